//! The greywall policy compiler.
//!
//! Front-ends turn policy sources into one [`model::Policy`]; passes check it; backends turn it
//! into platform artifacts. This crate never executes anything: it reads policy files (in
//! [`load`]) and, for discovery and linting, a few facts about the environment.

pub mod backend;
pub mod cache;
pub mod compile;
pub mod config;
pub mod decide;
pub mod diagnostic;
pub mod discover;
pub mod effective;
pub mod egress;
pub mod expect;
pub mod fidelity;
pub mod gw;
pub mod jsonc;
pub mod lint;
pub mod load;
pub mod lower;
pub mod merge;
pub mod model;
pub mod pattern;
pub mod plan;
pub mod protections;
pub mod report;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod templates;
