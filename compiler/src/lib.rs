//! The greywall policy compiler.
//!
//! Front-ends turn policy sources into one [`model::Policy`]; passes check it; backends turn it
//! into platform artifacts. This crate never executes anything: it reads policy files (in
//! [`load`]) and, for discovery and linting, a few facts about the environment.

pub mod config;
pub mod diagnostic;
pub mod jsonc;
pub mod pattern;
pub mod source;
pub mod suggest;
