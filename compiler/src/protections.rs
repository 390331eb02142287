//! Protections.
