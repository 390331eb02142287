//! The JSON Schema of greywall.json, generated from [`crate::config::ConfigFile`].
