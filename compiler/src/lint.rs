//! Lint pass.
