//! Machine-readable diagnostic output: JSON, SARIF 2.1.0 (code scanning) and GitHub Actions
//! workflow commands. The human form is [`crate::diagnostic::render`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::json;

use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::source::{LineCol, Sources};

/// The diagnostics found in one policy, with the sources they point into.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

/// Where a diagnostic is, resolved to a file name and positions.
struct Place {
    file: Option<String>,
    start: Option<LineCol>,
    end: Option<LineCol>,
}

fn place(d: &Diagnostic, sources: &Sources) -> Place {
    match d
        .primary
        .and_then(|s| sources.get(s.source).map(|f| (f, s)))
    {
        Some((f, s)) => Place {
            file: Some(f.name.clone()),
            start: Some(f.line_col(s.start)),
            end: Some(
                f.line_col(
                    s.end
                        .max(s.start + 1)
                        .min(u32::try_from(f.text.len()).unwrap_or(u32::MAX)),
                ),
            ),
        },
        None => Place {
            file: d.path.clone(),
            start: None,
            end: None,
        },
    }
}

fn counts(reports: &[FileReport]) -> (usize, usize) {
    let all = reports.iter().flat_map(|r| &r.diagnostics);
    let errors = all
        .clone()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = all.filter(|d| d.severity == Severity::Warning).count();
    (errors, warnings)
}

/// `{"version": 1, "diagnostics": [...], "summary": {"errors": N, "warnings": N}}`.
pub fn json(reports: &[FileReport]) -> String {
    let mut items = Vec::new();
    for r in reports {
        for d in &r.diagnostics {
            let p = place(d, &r.sources);
            items.push(json!({
                "code": d.code.id(),
                "name": d.code.name(),
                "severity": d.severity.as_str(),
                "message": d.message,
                "file": p.file,
                "line": p.start.map(|l| l.line),
                "column": p.start.map(|l| l.col),
                "endLine": p.end.map(|l| l.line),
                "endColumn": p.end.map(|l| l.col),
                "label": d.label,
                "notes": d.notes,
                "help": d.help,
            }));
        }
    }
    let (errors, warnings) = counts(reports);
    let doc = json!({
        "version": 1,
        "diagnostics": items,
        "summary": { "errors": errors, "warnings": warnings },
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn full_text(d: &Diagnostic) -> String {
    let mut text = d.message.clone();
    if let Some(l) = &d.label {
        let _ = write!(text, " ({l})");
    }
    for n in &d.notes {
        let _ = write!(text, "\nnote: {n}");
    }
    if let Some(h) = &d.help {
        let _ = write!(text, "\nhelp: {h}");
    }
    text
}

/// A SARIF 2.1.0 log with one run. Every code used appears as a rule.
pub fn sarif(reports: &[FileReport], tool_version: &str) -> String {
    let used: BTreeSet<Code> = reports
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(|d| d.code))
        .collect();
    let rules: Vec<Code> = used.into_iter().collect();
    let rule_objs: Vec<_> = rules
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "name": c.name(),
                "shortDescription": { "text": c.summary() },
                "helpUri": format!("https://greywall.dev/docs/diagnostics#{}", c.id().to_ascii_lowercase()),
                "defaultConfiguration": { "level": sarif_level(c.severity()) },
            })
        })
        .collect();
    let mut results = Vec::new();
    for r in reports {
        for d in &r.diagnostics {
            let p = place(d, &r.sources);
            let mut result = json!({
                "ruleId": d.code.id(),
                "ruleIndex": rules.iter().position(|c| *c == d.code).unwrap_or(0),
                "level": sarif_level(d.severity),
                "message": { "text": full_text(d) },
            });
            if let Some(file) = &p.file {
                let mut phys = json!({ "artifactLocation": { "uri": uri(file) } });
                if let (Some(s), Some(e)) = (p.start, p.end) {
                    phys["region"] = json!({
                        "startLine": s.line,
                        "startColumn": s.col,
                        "endLine": e.line,
                        "endColumn": e.col,
                    });
                }
                result["locations"] = json!([{ "physicalLocation": phys }]);
            }
            results.push(result);
        }
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "greywall",
                    "version": tool_version,
                    "informationUri": "https://greywall.dev",
                    "rules": rule_objs,
                }
            },
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// A relative file name as a URI reference (percent-encoding what a URI cannot hold).
fn uri(file: &str) -> String {
    let mut out = String::new();
    for b in file.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char);
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_prop(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=…::message`.
pub fn github(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for d in &r.diagnostics {
            let p = place(d, &r.sources);
            let kind = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let mut props = Vec::new();
            if let Some(f) = &p.file {
                props.push(format!("file={}", gh_escape_prop(f)));
            }
            if let (Some(s), Some(e)) = (p.start, p.end) {
                props.push(format!("line={}", s.line));
                props.push(format!("col={}", s.col));
                props.push(format!("endLine={}", e.line));
                props.push(format!("endColumn={}", e.col));
            }
            props.push(format!(
                "title={}",
                gh_escape_prop(&format!("{} {}", d.code.id(), d.code.name()))
            ));
            let _ = writeln!(
                out,
                "::{kind} {}::{}",
                props.join(","),
                gh_escape_data(&full_text(d))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SourceFile, SourceKind, Span};

    fn report() -> Vec<FileReport> {
        let mut sources = Sources::new();
        let id = sources.add(SourceFile::new(
            "dir/my policy.json",
            SourceKind::Inline,
            "{\n  \"x\": 1\n}\n".to_string(),
        ));
        let d = Diagnostic::new(Code::UnknownKey, "unknown key `x`, really: yes")
            .at(Span::new(id, 4, 7))
            .help("remove it");
        vec![FileReport {
            sources,
            diagnostics: vec![
                d,
                Diagnostic::new(Code::SettingsNotFound, "missing").path("nope.json"),
            ],
        }]
    }

    #[test]
    fn github_commands_are_escaped() {
        let out = github(&report());
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            "::error file=dir/my policy.json,line=2,col=3,endLine=2,endColumn=6,title=E200 unknown-key::unknown key `x`, really: yes%0Ahelp: remove it"
        );
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .starts_with("::error file=nope.json,title=E401")
        );
    }

    #[test]
    fn json_and_sarif_shapes() {
        let j: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(j["summary"]["errors"], 2);
        assert_eq!(j["diagnostics"][0]["line"], 2);
        assert_eq!(j["diagnostics"][0]["column"], 3);
        let s: serde_json::Value = serde_json::from_str(&sarif(&report(), "0.1.0")).unwrap();
        let res = &s["runs"][0]["results"];
        assert_eq!(
            res[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "dir/my%20policy.json"
        );
        assert_eq!(
            res[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            2
        );
        assert_eq!(
            s["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(res[1].get("locations").is_some());
    }
}
