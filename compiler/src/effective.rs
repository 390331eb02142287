//! The effective policy after `extends`, with where each entry came from
//! (`greywall config show`).

use std::fmt::Write as _;

use serde_json::json;

use crate::model::{FieldValue, Policy, Scalar};
use crate::source::{Sources, Span};

fn origin(sources: &Sources, span: Option<Span>) -> String {
    span.map_or_else(|| "default".to_string(), |s| sources.locate(s))
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Port(p) => p.to_string(),
        Scalar::Text(t) => t.clone(),
        Scalar::Unset => "(unset)".to_string(),
    }
}

/// The chain of files, from the policy asked for to the last template it extends.
fn chain(sources: &Sources) -> Vec<String> {
    sources.iter().map(|(_, f)| f.name.clone()).collect()
}

/// Human-readable listing.
pub fn render_text(policy: &Policy, sources: &Sources, found: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "policy: {found}");
    let files = chain(sources);
    if files.len() > 1 {
        let _ = writeln!(out, "extends: {}", files[1..].join(" -> "));
    }
    let _ = writeln!(out, "network mode: {}", policy.network.mode());
    let fields = policy.fields();
    let width = fields
        .iter()
        .flat_map(|f| match &f.value {
            FieldValue::List(items) => items.iter().map(|(v, _)| v.len() + 4).collect::<Vec<_>>(),
            FieldValue::Scalar(s, _) => vec![f.key.len() + 3 + scalar_text(s).len()],
        })
        .max()
        .unwrap_or(20)
        .min(60);
    let mut section = None;
    for f in &fields {
        if section != Some(f.section) {
            section = Some(f.section);
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{}",
                if f.section.is_empty() {
                    "(top level)"
                } else {
                    f.section
                }
            );
        }
        match &f.value {
            FieldValue::List(items) => {
                if items.is_empty() {
                    let _ = writeln!(out, "  {}: []", f.key);
                } else {
                    let _ = writeln!(out, "  {}:", f.key);
                    for (v, span) in items {
                        let _ = writeln!(
                            out,
                            "    {:w$}  {}",
                            v,
                            origin(sources, Some(*span)),
                            w = width.saturating_sub(4)
                        );
                    }
                }
            }
            FieldValue::Scalar(s, span) => {
                let text = format!("{}: {}", f.key, scalar_text(s));
                let _ = writeln!(
                    out,
                    "  {:w$}  {}",
                    text,
                    origin(sources, *span),
                    w = width.saturating_sub(2)
                );
            }
        }
    }
    out
}

fn origin_json(sources: &Sources, span: Option<Span>) -> serde_json::Value {
    match span.and_then(|s| sources.get(s.source).map(|f| (f, s))) {
        Some((f, s)) => {
            let lc = f.line_col(s.start);
            json!({ "file": f.name, "line": lc.line, "column": lc.col })
        }
        None => serde_json::Value::Null,
    }
}

/// JSON document: `{ "source", "files", "networkMode", "policy": { section: { key: … } } }`.
/// List entries are `{ "value", "origin" }`; scalars are `{ "value", "origin" }` with a null
/// origin for defaults.
pub fn to_json(policy: &Policy, sources: &Sources, found: &str) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    for f in policy.fields() {
        let v = match &f.value {
            FieldValue::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|(v, s)| json!({ "value": v, "origin": origin_json(sources, Some(*s)) }))
                    .collect(),
            ),
            FieldValue::Scalar(s, span) => {
                let value = match s {
                    Scalar::Bool(b) => json!(b),
                    Scalar::Port(p) => json!(p),
                    Scalar::Text(t) => json!(t),
                    Scalar::Unset => serde_json::Value::Null,
                };
                json!({ "value": value, "origin": origin_json(sources, *span) })
            }
        };
        if f.section.is_empty() {
            root.insert(f.key.to_string(), v);
        } else if let Some(obj) = root
            .entry(f.section.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            obj.insert(f.key.to_string(), v);
        }
    }
    json!({
        "source": found,
        "files": chain(sources),
        "networkMode": policy.network.mode().to_string(),
        "policy": root,
    })
}

pub fn to_json_text(policy: &Policy, sources: &Sources, found: &str) -> String {
    let mut s = serde_json::to_string_pretty(&to_json(policy, sources, found)).unwrap_or_default();
    s.push('\n');
    s
}
