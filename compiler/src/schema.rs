//! The JSON Schema of greywall.json, generated from [`crate::config::ConfigFile`].
//!
//! The schema is derived with schemars from the same field lists the decoder uses, so it names
//! exactly the keys the loader accepts. It follows JSON Schema draft 2020-12 and is committed as
//! `schema/greywall.schema.json` (a test keeps that file in step with [`schema_text`]); editors
//! pick it up through a file's `"$schema"` key.
//!
//! Three adjustments are made to what schemars produces:
//!
//! - Optional fields are `Option<T>` in Rust, which schemars renders as "T or null". greywall
//!   treats an absent key as "use the default" but rejects `null`, so the null alternative is
//!   removed everywhere: optional keys are simply not `required`.
//! - `format` values that JSON Schema does not define (schemars writes `"format": "uint16"` for
//!   ports) are dropped; the `minimum`/`maximum` bounds say the same thing portably.
//! - Descriptions come from doc comments, which are hard-wrapped; single line breaks are joined
//!   so editors show flowing text (blank lines still separate paragraphs).
//!
//! Every object schema carries `"additionalProperties": false` (from `deny_unknown_fields` on
//! the input types): an unknown key is an error, as it is for the loader.

use std::cmp::Ordering;

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{RestrictFormats, transform_subschemas};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::config::ConfigFile;

/// Where the published schema lives; also its `$id`.
pub const SCHEMA_ID: &str = "https://greywall.dev/schema/greywall.schema.json";

/// The JSON Schema (draft 2020-12) of greywall.json.
pub fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with_transform(drop_null)
        .with_transform(RestrictFormats::default())
        .into_generator();
    let mut schema = generator.into_root_schema_for::<ConfigFile>();
    schema.insert("$id".to_string(), SCHEMA_ID.into());
    schema.to_value()
}

/// The schema as committed in `schema/greywall.schema.json`: pretty-printed with a fixed key
/// order (independent of how `serde_json` orders maps) and a trailing newline.
pub fn schema_text() -> String {
    let value = schema();
    let ordered = Ordered {
        value: &value,
        kind: Kind::Schema,
    };
    let mut text = serde_json::to_string_pretty(&ordered).unwrap_or_default();
    text.push('\n');
    text
}

/// Removes the `null` alternative schemars adds for `Option` fields and unwraps hard-wrapped
/// descriptions, in a schema and all its subschemas.
fn drop_null(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        // `"type": ["string", "null"]` -> `"type": "string"`.
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".to_string(), only);
            }
        }
        // `"anyOf": [{"$ref": …}, {"type": "null"}]` -> `"$ref": …`.
        if let Some(Value::Array(branches)) = obj.get_mut("anyOf") {
            branches.retain(|b| !is_null_schema(b));
            if let [Value::Object(only)] = branches.as_slice() {
                let only = only.clone();
                obj.remove("anyOf");
                for (k, v) in only {
                    obj.entry(k).or_insert(v);
                }
            }
        }
        if let Some(Value::String(text)) = obj.get_mut("description") {
            *text = unwrap_lines(text);
        }
    }
    transform_subschemas(&mut drop_null, schema);
}

fn is_null_schema(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.get("type").and_then(Value::as_str) == Some("null"))
}

/// Joins single line breaks with a space; keeps blank lines as paragraph breaks.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|para| {
            para.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// What a JSON value is, for choosing the order of its keys.
#[derive(Clone, Copy)]
enum Kind {
    /// A schema: keywords in [`KEYWORD_ORDER`].
    Schema,
    /// A map from names to schemas (`properties`, `$defs`): alphabetical.
    SchemaMap,
    /// Anything else (examples): alphabetical.
    Data,
}

/// The order keywords appear in within a schema; others follow alphabetically.
const KEYWORD_ORDER: &[&str] = &[
    "$schema",
    "$id",
    "$ref",
    "title",
    "description",
    "type",
    "format",
    "minimum",
    "maximum",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "properties",
    "required",
    "additionalProperties",
    "default",
    "examples",
    "$defs",
];

fn keyword_rank(key: &str) -> usize {
    KEYWORD_ORDER
        .iter()
        .position(|k| *k == key)
        .unwrap_or(KEYWORD_ORDER.len())
}

/// The kind of the value under `key` in a value of kind `parent`.
fn child_kind(parent: Kind, key: &str) -> Kind {
    match parent {
        Kind::Schema => match key {
            "properties" | "$defs" | "patternProperties" => Kind::SchemaMap,
            "items"
            | "additionalProperties"
            | "anyOf"
            | "oneOf"
            | "allOf"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "prefixItems" => Kind::Schema,
            _ => Kind::Data,
        },
        Kind::SchemaMap => Kind::Schema,
        Kind::Data => Kind::Data,
    }
}

/// Serializes a JSON value with object keys in a fixed order.
struct Ordered<'a> {
    value: &'a Value,
    kind: Kind,
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|(a, _), (b, _)| compare_keys(self.kind, a, b));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(
                        key,
                        &Ordered {
                            value,
                            kind: child_kind(self.kind, key),
                        },
                    )?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    out.serialize_element(&Ordered {
                        value,
                        kind: self.kind,
                    })?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

fn compare_keys(kind: Kind, a: &str, b: &str) -> Ordering {
    match kind {
        Kind::Schema => keyword_rank(a).cmp(&keyword_rank(b)).then_with(|| a.cmp(b)),
        Kind::SchemaMap | Kind::Data => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_null_anywhere() {
        let text = schema_text();
        assert!(!text.contains("\"null\""), "{text}");
        assert!(!text.contains("anyOf"), "{text}");
    }

    #[test]
    fn deterministic_and_round_trips() {
        let text = schema_text();
        assert_eq!(text, schema_text());
        assert!(text.ends_with("}\n"));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, schema());
    }

    #[test]
    fn root_metadata() {
        let s = schema();
        assert_eq!(s["$id"], SCHEMA_ID);
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["network"]["$ref"], "#/$defs/NetworkConfig");
        assert_eq!(s["properties"]["allowPty"]["type"], "boolean");
        assert!(s.get("required").is_none());
    }

    #[test]
    fn unwraps_descriptions() {
        assert_eq!(unwrap_lines("a\nb\n\nc\n d"), "a b\n\nc d");
    }
}
