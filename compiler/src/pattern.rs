//! The typed values inside policy lists: domains, SSH hosts, paths and command prefixes.
//!
//! Each is parsed and validated from its string form once, by the front-end; the rest of the
//! compiler works with the typed form. Parsing never looks at the filesystem or environment.

pub mod command;
pub mod domain;
pub mod host;
pub mod path;

use crate::diagnostic::Code;

/// Why a pattern string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
}

impl PatternError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        PatternError {
            code,
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
