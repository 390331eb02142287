//! The `.gw` policy language: a front-end that compiles to the same [`crate::model::Policy`]
//! as greywall.json.
//!
//! - [`parse`] turns text into a syntax tree ([`ast`]); it is the only module that sees pest;
//! - [`lower`] gives the tree its meaning: sections, rules, variables, `include`, profiles,
//!   platform blocks, expectations; it produces a [`crate::lower::Layer`], like the JSON
//!   front-end;
//! - [`fmt`] prints a tree back in the canonical layout, comments kept;
//! - [`convert`] writes a layer as `.gw` or as greywall.json.
//!
//! The language is described in `docs/policy-language.md`.

pub mod ast;
pub mod convert;
pub mod fmt;
pub mod lower;
pub mod parse;
