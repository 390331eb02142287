//! Malformed policies: every one yields diagnostics at the right line and column, no policy,
//! and never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use greywall_compiler::diagnostic::{self, Code, Diagnostic, RenderOptions};
use greywall_compiler::jsonc::{self, MAX_DEPTH};
use greywall_compiler::load::{self, Input, Loaded};
use greywall_compiler::source::SourceId;
use proptest::prelude::*;

const CODE_JSON: &str = include_str!("../../policies/code.json");
const CODE_STRICT_JSON: &str = include_str!("../../policies/code-strict.json");

// ---------------------------------------------------------------------------------------------
// Helpers

fn no_dir() -> PathBuf {
    PathBuf::from("/nonexistent/greywall-test")
}

fn load_text_in(text: &str, dir: &Path) -> Loaded {
    let l = load::load(&Input::Text {
        name: "greywall.json".to_string(),
        text: text.to_string(),
        dir: dir.to_path_buf(),
    });
    check_invariants(&l);
    l
}

fn load_text(text: &str) -> Loaded {
    load_text_in(text, &no_dir())
}

fn load_file(path: &Path) -> Loaded {
    let l = load::load(&Input::File(path.to_path_buf()));
    check_invariants(&l);
    l
}

/// What must hold for any input: a policy exactly when there is no error, spans inside their
/// source, and rendering works.
fn check_invariants(l: &Loaded) {
    assert_eq!(
        l.policy.is_some(),
        !l.has_errors(),
        "a policy must be produced exactly when there is no error:\n{}",
        dump(l)
    );
    for d in &l.diagnostics {
        for span in d.primary.iter().chain(d.secondary.iter().map(|(s, _)| s)) {
            let file = l
                .sources
                .get(span.source)
                .expect("span names a known source");
            assert!(span.start <= span.end, "{d:?}");
            assert!(span.start as usize <= file.text.len(), "{d:?}");
        }
    }
    let _ = diagnostic::render_all(&l.diagnostics, &l.sources, RenderOptions::default(), 20);
}

fn dump(l: &Loaded) -> String {
    l.diagnostics
        .iter()
        .map(|d| {
            let at = d
                .primary
                .map_or_else(|| "-".to_string(), |s| l.sources.locate(s));
            format!("{} {} {}", d.code.id(), at, d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line:col` of a diagnostic's primary span.
fn at(l: &Loaded, d: &Diagnostic) -> String {
    let span = d.primary.expect("diagnostic has a primary span");
    l.sources
        .get(span.source)
        .unwrap()
        .line_col(span.start)
        .to_string()
}

/// `(code, line:col)` of every diagnostic.
fn found(l: &Loaded) -> Vec<(&'static str, String)> {
    l.diagnostics
        .iter()
        .map(|d| (d.code.id(), at(l, d)))
        .collect()
}

/// Asserts the load failed with exactly these `(code, line:col)` diagnostics.
#[track_caller]
fn assert_errors(l: &Loaded, expected: &[(&str, &str)]) {
    let got = found(l);
    let want: Vec<(&str, String)> = expected.iter().map(|(c, p)| (*c, p.to_string())).collect();
    assert_eq!(got, want, "\n{}", dump(l));
    assert!(l.policy.is_none());
    assert!(l.has_errors());
}

/// Removes every `§` from `text`, returning the text and the `line:col` of each mark (columns
/// in characters, as diagnostics count them).
fn marked(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut marks = Vec::new();
    let (mut line, mut col) = (1, 1);
    for c in text.chars() {
        match c {
            '§' => marks.push(format!("{line}:{col}")),
            '\n' => {
                out.push(c);
                line += 1;
                col = 1;
            }
            _ => {
                out.push(c);
                col += 1;
            }
        }
    }
    (out, marks)
}

// ---------------------------------------------------------------------------------------------
// Truncation

/// Every strict prefix of a real policy that stops before its closing brace is an error with a
/// position inside the prefix; none panics.
fn check_every_prefix(full: &str) {
    let close = full.rfind('}').unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, _) in full
        .char_indices()
        .chain(std::iter::once((full.len(), ' ')))
    {
        let prefix = &full[..i];
        let l = load_text_in(prefix, dir.path());
        if i <= close {
            assert!(l.has_errors(), "prefix of {i} bytes loaded without error");
            assert!(l.policy.is_none());
            let first = l.diagnostics.iter().find(|d| d.is_error()).unwrap();
            let span = first.primary.expect("syntax errors have a position");
            assert!(span.start as usize <= prefix.len());
        } else {
            assert!(!l.has_errors(), "{i}: {}", dump(&l));
        }
    }
}

#[test]
fn every_prefix_of_code_json() {
    check_every_prefix(CODE_JSON);
}

#[test]
fn every_prefix_of_code_strict_json() {
    check_every_prefix(CODE_STRICT_JSON);
}

#[test]
fn truncation_points_report_the_right_position() {
    // Cut inside a string: the string's opening quote.
    let (text, marks) = marked("{\n  \"network\": {\n    \"allowedDomains\": [§\"github.c");
    let l = load_text(&text);
    assert_errors(&l, &[("E101", &marks[0])]);
    assert!(l.diagnostics[0].message.contains("unterminated string"));

    // Cut after a value: the innermost unclosed container.
    let (text, marks) = marked("{\n  \"network\": {\n    \"allowedDomains\": §[\"github.com\",\n");
    let l = load_text(&text);
    assert_errors(&l, &[("E101", &marks[0])]);
    assert!(l.diagnostics[0].message.contains("unclosed array"));

    // Cut after a key: the end of the file.
    let (text, marks) = marked("{\n  \"allowPty\"§");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);

    // Cut after the colon.
    let (text, marks) = marked("{\n  \"allowPty\": §");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);

    // Cut in a literal.
    let (text, marks) = marked("{\n  \"allowPty\": §tr");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);

    // Cut in a block comment.
    let (text, marks) = marked("{\n  §/* a comment that never");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);

    // Cut in an escape.
    let (text, marks) = marked("{\"a\": §\"\\");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);
    let (text, marks) = marked("{\"a\": \"§\\u00");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);
}

// ---------------------------------------------------------------------------------------------
// Wrong types

#[test]
fn wrong_types_everywhere_are_all_reported() {
    let (text, marks) = marked(
        r#"{
  "$schema": §false,
  "extends": §1,
  "allowPty": §"true",
  "network": {
    "allowedDomains": §"github.com",
    "deniedDomains": [§1, "ok.example", §null],
    "allowUnixSockets": §{},
    "allowAllUnixSockets": §null,
    "allowLocalBinding": §0,
    "allowLocalOutbound": §[],
    "httpProxyPort": §"8080",
    "socksProxyPort": §true,
    "proxyUrl": §5,
    "httpProxyUrl": §false,
    "dnsAddr": §["a:1"]
  },
  "filesystem": {
    "defaultDenyRead": §"yes",
    "allowRead": §".",
    "denyRead": [§["~/.ssh"]],
    "allowWrite": §true,
    "denyWrite": §{"a": 1},
    "allowGitConfig": §1.5
  },
  "command": {
    "deny": §"git push",
    "allow": [§{}],
    "useDefaults": §"false"
  },
  "ssh": {
    "allowedHosts": §"github.com",
    "deniedHosts": [§true],
    "allowedCommands": §1,
    "deniedCommands": [§[]],
    "allowAllCommands": §"true",
    "inheritDeny": §[]
  }
}"#,
    );
    let l = load_text(&text);
    let expected: Vec<(&str, &str)> = marks.iter().map(|m| ("E201", m.as_str())).collect();
    assert_errors(&l, &expected);
    // Helpful hints for the common mistakes.
    let help_at = |pos: &str| {
        l.diagnostics
            .iter()
            .find(|d| at(&l, d) == pos)
            .and_then(|d| d.help.clone())
            .unwrap_or_default()
    };
    assert_eq!(help_at(&marks[2]), "write true without quotes");
    assert_eq!(help_at(&marks[3]), "wrap it in brackets: [\"github.com\"]");
    assert_eq!(help_at(&marks[7]), "remove the key to use the default");
}

#[test]
fn wrong_section_types() {
    let (text, marks) =
        marked("{\"network\": §[], \"filesystem\": §\"x\", \"command\": §null, \"ssh\": §7}");
    let l = load_text(&text);
    let expected: Vec<(&str, &str)> = marks.iter().map(|m| ("E201", m.as_str())).collect();
    assert_errors(&l, &expected);
}

#[test]
fn bad_numbers() {
    let (text, marks) = marked(
        "{\"network\": {\n  \"httpProxyPort\": §70000,\n  \"socksProxyPort\": §-1,\n  \"httpProxyPort\": §1e3\n}}",
    );
    let l = load_text(&text);
    let mut got = found(&l);
    got.sort();
    let mut want = vec![
        ("E103", "4:3".to_string()),
        ("E203", marks[0].clone()),
        ("E203", marks[1].clone()),
        ("E203", marks[2].clone()),
    ];
    want.sort();
    assert_eq!(got, want, "{}", dump(&l));
    // Leading zeros are a syntax error.
    let (text, marks) = marked("{\"network\": {\"httpProxyPort\": §0080}}");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);
}

// ---------------------------------------------------------------------------------------------
// Empty strings

#[test]
fn empty_strings_in_every_list() {
    let (text, marks) = marked(
        r#"{
  "network": {
    "allowedDomains": ["ok.example", §""],
    "deniedDomains": [§""],
    "allowUnixSockets": [§""]
  },
  "filesystem": {
    "allowRead": [§""],
    "denyRead": [§""],
    "allowWrite": [§""],
    "denyWrite": [".", §""]
  },
  "command": { "deny": [§""], "allow": [§""] },
  "ssh": {
    "allowedHosts": [§""],
    "deniedHosts": [§""],
    "allowedCommands": [§""],
    "deniedCommands": [§""]
  }
}"#,
    );
    assert_eq!(marks.len(), 13);
    let l = load_text(&text);
    let expected: Vec<(&str, &str)> = marks.iter().map(|m| ("E202", m.as_str())).collect();
    assert_errors(&l, &expected);
}

#[test]
fn empty_removals_and_blank_commands() {
    let (text, marks) = marked(
        "{\n  \"filesystem\": {\"denyRead\": [§\"!\"]},\n  \"command\": {\"deny\": [§\"   \"]},\n  \"extends\": §\"\"\n}",
    );
    let l = load_text(&text);
    let expected: Vec<(&str, &str)> = marks.iter().map(|m| ("E202", m.as_str())).collect();
    assert_errors(&l, &expected);
}

// ---------------------------------------------------------------------------------------------
// Unknown keys

#[test]
fn unknown_keys_at_every_depth_with_did_you_mean() {
    let (text, marks) = marked(
        r#"{
  §"netwrok": {},
  "network": { §"allowedDomain": ["github.com"] },
  "filesystem": { §"allowwrite": ["."] },
  "command": { §"denny": ["git push"] },
  "ssh": { §"allowedHost": ["github.com"] },
  §"extend": "code"
}"#,
    );
    let l = load_text(&text);
    let expected: Vec<(&str, &str)> = marks.iter().map(|m| ("E200", m.as_str())).collect();
    assert_errors(&l, &expected);
    let helps: Vec<&str> = l
        .diagnostics
        .iter()
        .map(|d| d.help.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        helps,
        [
            "did you mean `network`?",
            "did you mean `allowedDomains`?",
            "did you mean `allowWrite`?",
            "did you mean `deny`?",
            "did you mean `allowedHosts`?",
            "did you mean `extends`?",
        ]
    );
    assert!(
        l.diagnostics[1].message.contains("`network`"),
        "{}",
        l.diagnostics[1].message
    );
    assert!(
        l.diagnostics[4].message.contains("`ssh`"),
        "{}",
        l.diagnostics[4].message
    );
}

#[test]
fn unknown_keys_far_from_any_name() {
    let (text, marks) = marked(
        "{\n  §\"allowWrite\": [\".\"],\n  \"network\": {§\"zzzzzz\": 1},\n  §\"devices\": []\n}",
    );
    let l = load_text(&text);
    assert_errors(
        &l,
        &[
            ("E200", &marks[0]),
            ("E200", &marks[1]),
            ("E200", &marks[2]),
        ],
    );
    assert_eq!(
        l.diagnostics[0].help.as_deref(),
        Some("`allowWrite` belongs in `filesystem`")
    );
    assert!(
        l.diagnostics[1]
            .help
            .as_deref()
            .unwrap()
            .starts_with("known keys here: allowedDomains")
    );
    assert!(!l.diagnostics[2].notes.is_empty());
}

#[test]
fn unknown_key_with_non_ascii_text_before_it() {
    // Columns count characters, not bytes.
    let (text, marks) = marked("{\"$schema\": \"ü😀é\", §\"bogus\": 1}");
    assert_errors(&load_text(&text), &[("E200", &marks[0])]);
    let (text, marks) = marked("{\n\t\"$schema\": \"日本語\",\t§\"bogus\": 1}");
    assert_errors(&load_text(&text), &[("E200", &marks[0])]);
}

#[test]
fn duplicate_keys() {
    let (text, marks) = marked("{\n  \"allowPty\": true,\n  §\"allowPty\": false\n}");
    let l = load_text(&text);
    assert_errors(&l, &[("E103", &marks[0])]);
}

// ---------------------------------------------------------------------------------------------
// extends problems

#[test]
fn extends_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    fs::write(&a, "{\n  \"extends\": \"./b.json\"\n}").unwrap();
    fs::write(
        dir.path().join("b.json"),
        "{\n\n   \"extends\": \"a.json/../a.json\"\n}",
    )
    .unwrap();
    // `a.json/../a.json` does not name a file on Linux (a.json is not a directory) ...
    let l = load_file(&a);
    assert!(l.has_errors());
    // ... but `./a.json` does, and closes the cycle.
    fs::write(
        dir.path().join("b.json"),
        "{\n\n   \"extends\": \"./a.json\"\n}",
    )
    .unwrap();
    let l = load_file(&a);
    assert_errors(&l, &[("E404", "3:15")]);
}

#[test]
fn missing_extended_file() {
    let dir = tempfile::tempdir().unwrap();
    let (text, marks) =
        marked("{\r\n  \"allowPty\": true,\r\n  \"extends\": §\"../nothing/here.json\"\r\n}");
    let l = load_text_in(&text, dir.path());
    assert_errors(&l, &[("E402", &marks[0])]);
}

#[test]
fn unknown_template() {
    let (text, marks) = marked("{\"extends\": §\"npm-instal\"}");
    let l = load_text(&text);
    assert_errors(&l, &[("E403", &marks[0])]);
    assert_eq!(
        l.diagnostics[0].help.as_deref(),
        Some("did you mean `npm-install`?")
    );
}

// ---------------------------------------------------------------------------------------------
// Size and depth

/// A 10 MB policy: the parser, line table and positions scale. The list is long but its bulk is
/// comments, so the test does not depend on how fast lists merge.
#[test]
fn ten_megabyte_policy_reports_the_bad_entry_exactly() {
    let padding = format!("// {}\n", "x".repeat(2000));
    let mut text = String::from("{\n  \"network\": {\n    \"allowedDomains\": [\n");
    let mut line = 4;
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!("      \"host{i}.example.com\",\n"));
        text.push_str(&padding);
        line += 2;
        i += 1;
    }
    // The bad entry near the end, after some non-ASCII on its line.
    text.push_str("      /* é */ \"bad domain.example.com\",\n");
    let bad_line = line;
    text.push_str("      \"last.example.com\"\n    ]\n  }\n}\n");
    assert!(text.len() > 10 * 1024 * 1024);
    let l = load_text(&text);
    assert_errors(&l, &[("E300", &format!("{bad_line}:15"))]);
}

/// The same size, all of it list entries (merging must stay linear in the list length).
#[test]
fn ten_megabyte_domain_list() {
    let mut text = String::from("{\"network\": {\"allowedDomains\": [\n");
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!("  \"h{i}.example.com\",\n"));
        i += 1;
    }
    text.push_str("  \"bad_domain\",\n  \"z.example.com\"\n]}}\n");
    let l = load_text(&text);
    assert_errors(&l, &[("E300", &format!("{}:3", i + 2))]);
}

#[test]
fn ten_thousand_nested_arrays() {
    let text = "[".repeat(10_000) + &"]".repeat(10_000);
    let l = load_text(&text);
    assert_errors(&l, &[("E102", &format!("1:{}", MAX_DEPTH + 1))]);
}

#[test]
fn ten_thousand_nested_objects() {
    let text = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
    let l = load_text(&text);
    // Each level is five characters; the 65th `{` is refused.
    assert_errors(&l, &[("E102", &format!("1:{}", MAX_DEPTH * 5 + 1))]);
}

#[test]
fn deep_nesting_inside_a_real_policy() {
    let text = format!(
        "{{\n  \"network\": {{\n    \"allowedDomains\": {}\n",
        "[".repeat(10_000)
    );
    let l = load_text(&text);
    // The root and `network` are two levels, so the 63rd `[` is the 65th level.
    let col = "    \"allowedDomains\": ".len() + (MAX_DEPTH - 2) + 1;
    assert_errors(&l, &[("E102", &format!("3:{col}"))]);
}

#[test]
fn deep_nesting_straight_into_the_parser() {
    let text = "[{\"a\":".repeat(5_000);
    let (root, diags) = jsonc::parse(&text, SourceId(0));
    assert!(root.is_none());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, Code::TooDeep);
}

#[test]
fn oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("greywall.json");
    fs::File::create(&p)
        .unwrap()
        .set_len(load::MAX_FILE_SIZE + 1)
        .unwrap();
    let l = load_file(&p);
    assert_eq!(l.diagnostics.len(), 1);
    assert_eq!(l.diagnostics[0].code, Code::FileTooLarge);
    assert!(l.policy.is_none());
}

// ---------------------------------------------------------------------------------------------
// Encoding and line endings

#[test]
fn invalid_utf8_in_the_middle_of_line_3() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("greywall.json");
    let mut bytes = b"{\n  \"allowPty\": true,\n  \"$schema\": \"\xc3\xa9t\xc3\xa9".to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(b"x\",\n  \"bogus\": 1\n}\n");
    fs::write(&p, bytes).unwrap();
    let l = load_file(&p);
    // `  "$schema": "été` is 17 characters: the bad byte is the 18th.
    assert_errors(&l, &[("E100", "3:18")]);
}

#[test]
fn truncated_multibyte_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("greywall.json");
    // "€" is E2 82 AC; only its first two bytes are there.
    fs::write(&p, b"{\n\n\n  \"$schema\": \"ab\xe2\x82\"\n}").unwrap();
    let l = load_file(&p);
    assert_errors(&l, &[("E100", "4:17")]);
}

#[test]
fn invalid_utf8_in_an_extended_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("base.json"), b"{\"$schema\": \"\x80\"}").unwrap();
    let l = load_text_in(r#"{"extends": "./base.json"}"#, dir.path());
    assert_errors(&l, &[("E100", "1:14")]);
    let span = l.diagnostics[0].primary.unwrap();
    assert!(
        l.sources
            .get(span.source)
            .unwrap()
            .name
            .ends_with("base.json")
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let l = load_text("\u{feff}{\"allowPty\": true}");
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    assert!(l.policy.unwrap().allow_pty.value);
    // Positions on later lines are unaffected.
    let l = load_text("\u{feff}{\n  \"bogus\": 1\n}");
    assert_errors(&l, &[("E200", "2:3")]);
    // On the file as read from disk too.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("greywall.json");
    fs::write(&p, b"\xef\xbb\xbf{\r\n  \"bogus\": 1\r\n}\r\n").unwrap();
    assert_errors(&load_file(&p), &[("E200", "2:3")]);
}

/// The mark is invisible in editors and is not a column: an error on the first line after a
/// BOM is where the editor shows it.
#[test]
fn a_byte_order_mark_is_not_a_column() {
    let l = load_text("\u{feff}{\"bogus\": 1}");
    assert_errors(&l, &[("E200", "1:2")]);
}

#[test]
fn a_byte_order_mark_elsewhere_is_an_error() {
    let l = load_text("{\n \u{feff}\"a\": 1}");
    assert_eq!(l.diagnostics[0].code, Code::Syntax);
    assert!(l.policy.is_none());
}

#[test]
fn crlf_line_endings_keep_positions_right() {
    let (text, marks) = marked(
        "// policy\r\n{\r\n  \"network\": {\r\n    §\"allowedDomain\": [\"github.com\"],\r\n    \"deniedDomains\": [§\"*.com\"]\r\n  },\r\n  \"allowPty\": §\"no\"\r\n}\r\n",
    );
    let l = load_text(&text);
    assert_errors(
        &l,
        &[
            ("E200", &marks[0]),
            ("E301", &marks[1]),
            ("E201", &marks[2]),
        ],
    );
    // A missing comma at the end of a CRLF line: reported at the next token.
    let (text, marks) = marked("{\r\n  \"allowPty\": true\r\n  §\"network\": {}\r\n}\r\n");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);
    // A string broken by CRLF.
    let (text, marks) = marked("{\r\n  \"$schema\": §\"abc\r\n\"}");
    assert_errors(&load_text(&text), &[("E101", &marks[0])]);
}

#[test]
fn old_mac_line_endings_are_whitespace() {
    // A lone CR is whitespace to JSON; it does not start a line for positions.
    let l = load_text("{\r  \"bogus\": 1\r}");
    assert_errors(&l, &[("E200", "1:5")]);
}

// ---------------------------------------------------------------------------------------------
// Degenerate files

#[test]
fn empty_and_blank_files() {
    assert_errors(&load_text(""), &[("E104", "1:1")]);
    assert_errors(&load_text("  \n\t\n"), &[("E104", "3:1")]);
    assert_errors(&load_text("\u{feff}"), &[("E104", "1:1")]);
}

#[test]
fn a_file_that_is_only_a_comment() {
    assert_errors(&load_text("// nothing here\n"), &[("E104", "2:1")]);
    assert_errors(&load_text("// nothing here"), &[("E104", "1:16")]);
    assert_errors(&load_text("/* nothing\n here */"), &[("E104", "2:9")]);
    assert_errors(&load_text("/* never closed\n"), &[("E101", "1:1")]);
}

#[test]
fn null_root() {
    let l = load_text("null");
    assert_errors(&l, &[("E201", "1:1")]);
    assert!(l.diagnostics[0].message.contains("top level"));
    let l = load_text("// c\n  null\n");
    assert_errors(&l, &[("E201", "2:3")]);
}

#[test]
fn a_null_root_has_no_key_to_remove() {
    let l = load_text("null");
    let help = l.diagnostics[0].help.as_deref().unwrap_or("");
    assert!(!help.contains("remove the key"), "{help}");
}

#[test]
fn array_and_scalar_roots() {
    for (text, pos) in [
        ("[]", "1:1"),
        ("\n [{\"network\": {}}]", "2:2"),
        ("\"code\"", "1:1"),
        ("42", "1:1"),
        ("true", "1:1"),
    ] {
        let l = load_text(text);
        assert_errors(&l, &[("E201", pos)]);
    }
}

#[test]
fn trailing_content_and_bad_tokens() {
    let cases: &[(&str, &str)] = &[
        ("{} {}", "1:4"),
        ("{}\n]", "2:1"),
        ("{'allowPty': true}", "1:2"),
        ("{allowPty: true}", "1:2"),
        ("{\"allowPty\": True}", "1:14"),
        ("{\"allowPty\": tru}", "1:14"),
        ("{\"allowPty\" true}", "1:13"),
        ("{\"a\": 1 \"b\": 2}", "1:9"),
        ("{,}", "1:2"),
        ("[1,,2]", "1:4"),
        ("{\"a\": -}", "1:8"),
        ("{\"a\": 1.}", "1:9"),
        ("{\"a\": 1e}", "1:9"),
        ("{\"a\": \"\\x\"}", "1:8"),
        ("{\"a\": \"\\ud800\"}", "1:8"),
        ("{\"a\": \"\\uZZZZ\"}", "1:8"),
        ("{\"a\": \"tab\there\"}", "1:11"),
        ("{\"a\": / }", "1:7"),
        ("{\"a\": ü}", "1:7"),
    ];
    for (text, pos) in cases {
        let l = load_text(text);
        assert_errors(&l, &[("E101", pos)]);
    }
}

#[test]
fn problems_in_several_places_are_all_reported_in_order() {
    let (text, marks) = marked(
        r#"{
  "network": {
    "allowedDomains": [§"https://github.com", §"*.com", "ok.example"],
    §"deniedDomain": []
  },
  "filesystem": { "allowWrite": [§"~root/x"] },
  "ssh": { "allowedHosts": [§"git@github.com"] },
  "command": { "deny": [§"git 'push"] }
}"#,
    );
    let l = load_text(&text);
    let got: Vec<String> = l.diagnostics.iter().map(|d| at(&l, d)).collect();
    assert_eq!(got, marks, "{}", dump(&l));
    let codes: Vec<&str> = l.diagnostics.iter().map(|d| d.code.id()).collect();
    assert_eq!(codes, ["E302", "E301", "E200", "E304", "E303", "E306"]);
    assert!(l.policy.is_none());
}

// ---------------------------------------------------------------------------------------------
// Never panics

/// Mutations applied to a valid policy.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "/*",
    "*/",
    "//",
    "\n",
    "\r\n",
    "\u{feff}",
    "null",
    "true",
    "false",
    "-0",
    "1e999",
    "\"extends\": \"code\",",
    "\"extends\": \"./x.json\",",
    "\"!github.com\",",
    "\"\",",
    "\"*\",",
    "é",
    "😀",
    "\0",
    "\"network\": {",
    "\"allowedDomains\": [",
    "[[[[[[[[",
    "{\"a\":{\"a\":",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::Insert(i, t.as_bytes().to_vec())),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, b) if len > 0 => bytes[i % len] ^= b | 1,
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            Mutation::Insert(i, b) => {
                let at = i % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            _ => {}
        }
    }
    bytes
}

fn load_bytes_as_text(bytes: &[u8], dir: &Path) -> Loaded {
    load_text_in(&String::from_utf8_lossy(bytes), dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        load_bytes_as_text(&bytes, dir.path());
        let _ = jsonc::parse(&String::from_utf8_lossy(&bytes), SourceId(0));
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(
        parts in prop::collection::vec(prop::sample::select(TOKENS), 0..64)
    ) {
        let text: String = parts.concat();
        load_text(&text);
        load_text(&format!("{{{text}"));
    }

    #[test]
    fn mutations_of_code_json_never_panic(
        muts in prop::collection::vec(mutation(), 1..6)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = apply(CODE_JSON.as_bytes().to_vec(), &muts);
        load_bytes_as_text(&bytes, dir.path());
    }

    #[test]
    fn mutations_of_a_file_on_disk_never_panic(
        muts in prop::collection::vec(mutation(), 1..4)
    ) {
        // Through the file path, so invalid UTF-8 takes the real E100 route.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("greywall.json");
        fs::write(&p, apply(CODE_STRICT_JSON.as_bytes().to_vec(), &muts)).unwrap();
        load_file(&p);
    }
}
