//! The committed JSON Schema (`schema/greywall.schema.json`): that it is up to date, that it
//! documents every key, and that it agrees with the loader on valid and invalid files.
//!
//! Regenerate the committed file with
//! `GREYWALL_BLESS=1 cargo test -p greywall-compiler --test schema`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use greywall_compiler::jsonc;
use greywall_compiler::load::{Input, load};
use greywall_compiler::schema::{SCHEMA_ID, schema, schema_text};
use greywall_compiler::source::SourceId;
use serde_json::{Map, Value, json};

const BLESS_HINT: &str = "GREYWALL_BLESS=1 cargo test -p greywall-compiler --test schema";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the compiler crate lives in the workspace")
        .to_path_buf()
}

fn schema_path() -> PathBuf {
    repo_root().join("schema/greywall.schema.json")
}

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn blessing() -> bool {
    std::env::var_os("GREYWALL_BLESS").is_some_and(|v| !v.is_empty())
}

/// The committed schema, parsed (the generated one while blessing, since the file is being
/// rewritten concurrently).
fn committed() -> Value {
    if blessing() {
        return schema();
    }
    let path = schema_path();
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `{BLESS_HINT}`", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&committed()).expect("the committed schema is a valid JSON Schema")
}

/// The `*.json` files of a directory, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .json files in {}", dir.display());
    files
}

/// A JSONC file as plain JSON, through greywall's own parser.
fn read_jsonc(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap();
    let (root, diags) = jsonc::parse(&text, SourceId(0));
    assert!(
        diags.is_empty(),
        "{}: JSONC syntax problems: {diags:?}",
        path.display()
    );
    root.unwrap_or_else(|| panic!("{}: no value", path.display()))
        .to_json()
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn loader_errors(path: &Path) -> Vec<String> {
    let loaded = load(&Input::File(path.to_path_buf()));
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{} {}", d.code.id(), d.message))
        .collect();
    assert_eq!(loaded.has_errors(), !errors.is_empty());
    assert_eq!(loaded.policy.is_none(), loaded.has_errors());
    errors
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn committed_schema_is_fresh() {
    let path = schema_path();
    let expected = schema_text();
    if blessing() {
        // Write then rename, so that a concurrent reader never sees half a file.
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, &expected).unwrap();
        fs::rename(&tmp, &path).unwrap();
        return;
    }
    let actual = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date with the input types in compiler/src/config.rs; regenerate it with\n\n    \
         {BLESS_HINT}\n",
        path.display()
    );
}

#[test]
fn schema_text_is_deterministic() {
    let text = schema_text();
    assert_eq!(text, schema_text());
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), schema());
}

#[test]
fn root_metadata() {
    let s = committed();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["$id"], SCHEMA_ID);
    assert_eq!(s["type"], "object");
    assert!(s["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(s["description"].as_str().is_some_and(|t| !t.is_empty()));
    // Every key is optional.
    assert!(s.get("required").is_none());
}

/// Walks every schema object, calling `visit(path, schema)`.
fn walk(path: &str, schema: &Value, visit: &mut dyn FnMut(&str, &Map<String, Value>)) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    visit(path, obj);
    for (key, value) in obj {
        match key.as_str() {
            "properties" | "$defs" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    walk(&format!("{path}/{key}/{name}"), sub, visit);
                }
            }
            "items" | "additionalProperties" | "not" => {
                walk(&format!("{path}/{key}"), value, visit);
            }
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                    walk(&format!("{path}/{key}/{i}"), sub, visit);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_property_is_documented_with_examples() {
    let s = committed();
    let mut problems = Vec::new();
    let mut properties = 0;
    walk("#", &s, &mut |path, obj| {
        for (name, prop) in obj
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            properties += 1;
            let at = format!("{path}/properties/{name}");
            if prop["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                problems.push(format!("{at}: no description"));
            }
            if prop["examples"].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{at}: no examples"));
            }
        }
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // ConfigFile 7 + NetworkConfig 11 + FilesystemConfig 6 + CommandConfig 3 + SshConfig 6.
    assert!(properties >= 33, "only {properties} properties found");
}

#[test]
fn every_object_denies_unknown_keys() {
    let s = committed();
    let mut problems = Vec::new();
    let mut objects = 0;
    walk("#", &s, &mut |path, obj| {
        let is_object =
            obj.get("type").is_some_and(|t| t == "object") || obj.contains_key("properties");
        // A map (`profiles`) names its keys with `propertyNames` and gives every value a schema.
        let is_map = obj.contains_key("propertyNames")
            && obj
                .get("additionalProperties")
                .is_some_and(Value::is_object);
        if is_object && !is_map {
            objects += 1;
            if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
                problems.push(format!("{path}: no \"additionalProperties\": false"));
            }
        }
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        objects, 8,
        "the root, five sections, the platform and the profile objects"
    );
}

#[test]
fn no_key_accepts_null() {
    let text = committed().to_string();
    assert!(!text.contains("\"null\""), "a key accepts null");
}

#[test]
fn examples_are_valid() {
    let s = committed();
    let v = validator();
    let mut problems = Vec::new();
    for example in s["examples"].as_array().into_iter().flatten() {
        problems.extend(schema_errors(&v, example));
    }
    // Each property's examples, placed where the property lives in a file.
    let defs = s["$defs"].as_object().unwrap();
    for (name, prop) in s["properties"].as_object().unwrap() {
        for example in prop["examples"].as_array().into_iter().flatten() {
            problems.extend(schema_errors(&v, &json!({ name: example })));
        }
        let Some(def) = prop["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            continue;
        };
        for (key, sub) in defs[def]["properties"].as_object().into_iter().flatten() {
            for example in sub["examples"].as_array().into_iter().flatten() {
                problems.extend(schema_errors(&v, &json!({ name: { key: example } })));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shipped_policies_are_valid() {
    let v = validator();
    let mut problems = Vec::new();
    for path in json_files(&repo_root().join("policies")) {
        for e in schema_errors(&v, &read_jsonc(&path)) {
            problems.push(format!("{}: {e}", file_name(&path)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn valid_fixtures_pass_schema_and_loader() {
    let v = validator();
    let mut problems = Vec::new();
    for path in json_files(&fixtures("valid")) {
        let name = file_name(&path);
        for e in schema_errors(&v, &read_jsonc(&path)) {
            problems.push(format!("{name}: schema: {e}"));
        }
        for e in loader_errors(&path) {
            problems.push(format!("{name}: loader: {e}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn valid_fixtures_cover_every_key() {
    let s = committed();
    let mut seen = std::collections::BTreeSet::new();
    for path in json_files(&fixtures("valid")) {
        let doc = read_jsonc(&path);
        for (key, value) in doc.as_object().unwrap() {
            seen.insert(key.clone());
            if let Some(section) = value.as_object() {
                for sub in section.keys() {
                    seen.insert(format!("{key}.{sub}"));
                }
            }
        }
    }
    let mut missing = Vec::new();
    let defs = s["$defs"].as_object().unwrap();
    for (name, prop) in s["properties"].as_object().unwrap() {
        if !seen.contains(name) {
            missing.push(name.clone());
        }
        if let Some(def) = prop["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            for key in defs[def]["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if !seen.contains(&format!("{name}.{key}")) {
                    missing.push(format!("{name}.{key}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys no valid fixture uses: {missing:?}"
    );
}

#[test]
fn invalid_fixtures_fail_schema_and_loader() {
    let v = validator();
    let mut problems = Vec::new();
    let files = json_files(&fixtures("invalid"));
    assert!(files.len() >= 12, "only {} invalid fixtures", files.len());
    for path in files {
        let name = file_name(&path);
        if v.is_valid(&read_jsonc(&path)) {
            problems.push(format!("{name}: the schema accepts it"));
        }
        if loader_errors(&path).is_empty() {
            problems.push(format!("{name}: the loader accepts it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
