//! Loading a policy: reading files, following `extends`, merging layers.
//!
//! This is the only module that reads policy files. It reports every problem it finds — in the
//! file asked for and in everything it extends — and produces a [`Policy`] only when there is
//! no error.

use std::path::{Path, PathBuf};

use crate::config;
use crate::diagnostic::{self, Code, Diagnostic};
use crate::gw;
use crate::jsonc;
use crate::lower;
use crate::merge;
use crate::model::Policy;
use crate::source::{SourceFile, SourceId, SourceKind, Sources, Span};
use crate::suggest::did_you_mean;
use crate::templates;

/// Longest `extends` chain accepted, as in Greywall.
pub const MAX_EXTENDS_DEPTH: usize = 10;
/// Largest policy file read.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A greywall.json on disk.
    File(PathBuf),
    /// A built-in template by name.
    Template(String),
    /// Text held in memory; `dir` is where relative `extends` paths start.
    Text {
        name: String,
        text: String,
        dir: PathBuf,
    },
}

/// The result of loading.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sources: Sources,
    /// The effective policy; `None` when there is an error.
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, in the order read (the compiled artifact depends on exactly these).
    pub files: Vec<PathBuf>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        diagnostic::has_errors(&self.diagnostics)
    }
}

/// How to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The profile to apply (`--profile NAME`); some file in the chain must define it.
    pub profile: Option<String>,
}

/// Loads a policy and everything it extends.
pub fn load(input: &Input) -> Loaded {
    load_with(input, &LoadOptions::default())
}

/// Whether a file is written in the `.gw` language (by its name).
pub fn is_gw(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gw")
}

/// Loads a policy and everything it extends, with options.
pub fn load_with(input: &Input, opts: &LoadOptions) -> Loaded {
    let mut l = Loader {
        sources: Sources::new(),
        diags: Vec::new(),
        files: Vec::new(),
        profile: opts.profile.clone(),
        profile_found: false,
        profile_names: Vec::new(),
        dirs: std::collections::HashMap::new(),
    };
    let mut chain = Vec::new();
    let unit = match input {
        Input::File(p) => Unit::File {
            path: p.clone(),
            display: p.display().to_string(),
        },
        Input::Template(n) => Unit::Template(n.clone()),
        Input::Text { name, text, dir } => Unit::Text {
            name: name.clone(),
            text: text.clone(),
            dir: dir.clone(),
        },
    };
    let policy = l.load_unit(unit, 0, &mut chain, None);
    if let Some(p) = &l.profile
        && !l.profile_found
        && !diagnostic::has_errors(&l.diags)
    {
        let mut d = Diagnostic::new(
            Code::GwUnknownProfile,
            format!("no profile named `{p}` in this policy or what it extends"),
        );
        let names: Vec<&str> = l.profile_names.iter().map(String::as_str).collect();
        d = match did_you_mean(p, names.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None if names.is_empty() => d.help("the policy defines no profiles"),
            None => d.help(format!("profiles: {}", names.join(", "))),
        };
        l.diags.push(d);
    }
    let mut diags = l.diags;
    diagnostic::sort(&mut diags);
    let policy = policy.filter(|_| !diagnostic::has_errors(&diags));
    Loaded {
        sources: l.sources,
        policy,
        diagnostics: diags,
        files: l.files,
    }
}

/// Whether an `extends` value names a file rather than a template (Greywall's rule).
pub fn is_path(value: &str) -> bool {
    value.contains('/') || value.contains('\\') || value.starts_with('.')
}

enum Unit {
    File {
        path: PathBuf,
        display: String,
    },
    Template(String),
    Text {
        name: String,
        text: String,
        dir: PathBuf,
    },
}

/// Identity of a unit for cycle detection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    File(PathBuf),
    Template(String),
    Text,
}

struct Loader {
    sources: Sources,
    diags: Vec<Diagnostic>,
    files: Vec<PathBuf>,
    profile: Option<String>,
    profile_found: bool,
    profile_names: Vec<String>,
    /// The directory of each source read from disk (for relative `include`s).
    dirs: std::collections::HashMap<SourceId, PathBuf>,
}

/// Reads the files `.gw` `include`s name, for the lowering.
struct Inc<'a> {
    l: &'a mut Loader,
}

impl gw::lower::Includes for Inc<'_> {
    fn include(
        &mut self,
        from: SourceId,
        path: &str,
        via: Span,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(SourceId, gw::ast::Body, PathBuf)> {
        let Some(dir) = self.l.dirs.get(&from).cloned() else {
            diags.push(
                Diagnostic::new(
                    Code::GwIncludeNotFound,
                    format!("cannot include `{path}` from a built-in template or text"),
                )
                .at(via),
            );
            return None;
        };
        let joined = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            dir.join(path)
        };
        let joined: PathBuf = joined
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if !joined.is_file() {
            diags.push(
                Diagnostic::new(
                    Code::GwIncludeNotFound,
                    format!("included file `{}` does not exist", joined.display()),
                )
                .at(via)
                .label("no such file")
                .note("relative paths are resolved from the directory of the including file"),
            );
            return None;
        }
        if !is_gw(&joined) {
            diags.push(
                Diagnostic::new(
                    Code::GwIncludeNotFound,
                    format!("`{}` is not a .gw fragment", joined.display()),
                )
                .at(via)
                .help("include .gw files; use `extends` for a greywall.json"),
            );
            return None;
        }
        let unit = Unit::File {
            display: joined.display().to_string(),
            path: joined.clone(),
        };
        let (id, dir) = self.l.read(&unit, Some(via))?;
        if let Some(d) = dir {
            self.l.dirs.insert(id, d);
        }
        let text = self
            .l
            .sources
            .get(id)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        let (body, parse_diags) = gw::parse::parse(&text, id);
        diags.extend(parse_diags);
        Some((id, body?, canonical(&joined)))
    }
}

impl Loader {
    fn fail(&mut self, d: Diagnostic, via: Option<Span>) {
        let d = match via {
            Some(span) if d.primary.is_none() => d.at(span),
            _ => d,
        };
        self.diags.push(d);
    }

    /// Reads a unit's text and registers it as a source.
    fn read(&mut self, unit: &Unit, via: Option<Span>) -> Option<(SourceId, Option<PathBuf>)> {
        let (name, kind, bytes, dir) = match unit {
            Unit::Template(n) => {
                let Some(t) = templates::find(n) else {
                    let mut d = Diagnostic::new(
                        Code::UnknownTemplate,
                        format!("no built-in template named `{n}`"),
                    );
                    d = match did_you_mean(n, templates::names()) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(format!(
                            "built-in templates: {}",
                            templates::names().collect::<Vec<_>>().join(", ")
                        )),
                    };
                    if via.is_some() {
                        d = d.label("not a template; a file path needs a `/` or a leading `.`");
                    }
                    self.fail(d, via);
                    return None;
                };
                (
                    format!("template:{}", t.name),
                    SourceKind::Template(t.name.to_string()),
                    t.json.as_bytes().to_vec(),
                    None,
                )
            }
            Unit::Text { name, text, dir } => (
                name.clone(),
                SourceKind::Inline,
                text.as_bytes().to_vec(),
                Some(dir.clone()),
            ),
            Unit::File { path, display } => {
                let missing = |what: Code| {
                    let msg = match what {
                        Code::SettingsNotFound => {
                            format!("settings file `{display}` does not exist")
                        }
                        _ => format!("extended file `{display}` does not exist"),
                    };
                    Diagnostic::new(what, msg).path(display.clone())
                };
                let meta = match std::fs::metadata(path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let code = if via.is_some() {
                            Code::ExtendsNotFound
                        } else {
                            Code::SettingsNotFound
                        };
                        let mut d = missing(code);
                        if via.is_some() {
                            d = d
                                .label("no such file")
                                .note("relative paths are resolved from the directory of the file that extends");
                        }
                        self.fail(d, via);
                        return None;
                    }
                    Err(e) => {
                        self.fail(cannot_read(display, &e), via);
                        return None;
                    }
                };
                if !meta.is_file() {
                    // Directories, FIFOs, sockets and devices: reading a FIFO would block
                    // forever, and a device could be anything.
                    let what = if meta.is_dir() {
                        "a directory"
                    } else {
                        "not a regular file"
                    };
                    self.fail(
                        Diagnostic::new(
                            Code::Io,
                            format!("`{display}` is {what}, not a policy file"),
                        )
                        .path(display.clone()),
                        via,
                    );
                    return None;
                }
                if meta.len() > MAX_FILE_SIZE {
                    self.fail(
                        Diagnostic::new(
                            Code::FileTooLarge,
                            format!(
                                "`{display}` is {} bytes; greywall reads policy files up to {} MiB",
                                meta.len(),
                                MAX_FILE_SIZE >> 20
                            ),
                        )
                        .path(display.clone()),
                        via,
                    );
                    return None;
                }
                let bytes = match std::fs::read(path) {
                    Ok(b) => b,
                    Err(e) => {
                        self.fail(cannot_read(display, &e), via);
                        return None;
                    }
                };
                self.files.push(path.clone());
                let dir = path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            p
                        }
                    })
                    .map(Path::to_path_buf);
                (display.clone(), SourceKind::File(path.clone()), bytes, dir)
            }
        };
        let (text, bad_at) = match String::from_utf8(bytes) {
            Ok(t) => (t, None),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                (String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(at))
            }
        };
        let mut file = SourceFile::new(name, kind, text);
        file.extended_by = via;
        let id = self.sources.add(file);
        if let Some(at) = bad_at {
            self.diags.push(
                Diagnostic::new(Code::InvalidUtf8, "the file is not valid UTF-8")
                    .at(Span::new(id, at, at + 1))
                    .label("invalid byte sequence")
                    .help("save the file as UTF-8"),
            );
            return None;
        }
        Some((id, dir))
    }

    fn load_unit(
        &mut self,
        unit: Unit,
        depth: usize,
        chain: &mut Vec<(Key, Option<Span>)>,
        via: Option<Span>,
    ) -> Option<Policy> {
        let (id, dir) = self.read(&unit, via)?;
        let key = match &unit {
            Unit::File { path, .. } => Key::File(canonical(path)),
            Unit::Template(n) => {
                Key::Template(templates::find(n).map_or_else(|| n.clone(), |t| t.name.to_string()))
            }
            Unit::Text { .. } => Key::Text,
        };
        chain.push((key, via));
        let result = self.load_source(id, dir, &unit, depth, chain);
        chain.pop();
        result
    }

    fn load_source(
        &mut self,
        id: SourceId,
        dir: Option<PathBuf>,
        unit: &Unit,
        depth: usize,
        chain: &mut Vec<(Key, Option<Span>)>,
    ) -> Option<Policy> {
        let text = self
            .sources
            .get(id)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        let layer = self.layer(id, &text, dir.clone(), unit)?;
        self.extend_and_merge(layer, dir, unit, depth, chain)
    }

    /// Parses and lowers one unit's text (following `include`s, not `extends`).
    fn layer(
        &mut self,
        id: SourceId,
        text: &str,
        dir: Option<PathBuf>,
        unit: &Unit,
    ) -> Option<lower::Layer> {
        let gw_source = match unit {
            Unit::File { path, .. } => is_gw(path),
            Unit::Text { name, .. } => is_gw(Path::new(name)),
            Unit::Template(_) => false,
        };
        let layer = if gw_source {
            if let Some(d) = &dir
                && !matches!(unit, Unit::Template(_))
            {
                self.dirs.insert(id, d.clone());
            }
            let key = match unit {
                Unit::File { path, .. } => Some(canonical(path)),
                _ => None,
            };
            let (body, parse_diags) = gw::parse::parse(text, id);
            self.diags.extend(parse_diags);
            let body = body?;
            let mut diags = Vec::new();
            let layer = gw::lower::lower(&body, id, key, &mut Inc { l: self }, &mut diags);
            self.diags.extend(diags);
            layer
        } else {
            let (root, parse_diags) = jsonc::parse(text, id);
            self.diags.extend(parse_diags);
            let root = root?;
            let (cfg, decode_diags) = config::decode_file(&root);
            self.diags.extend(decode_diags);
            let cfg = cfg?;
            lower::lower(&cfg, &mut self.diags)
        };
        Some(layer)
    }

    fn extend_and_merge(
        &mut self,
        layer: lower::Layer,
        dir: Option<PathBuf>,
        unit: &Unit,
        depth: usize,
        chain: &mut Vec<(Key, Option<Span>)>,
    ) -> Option<Policy> {
        let mut base = Policy::default();
        if let Some(ext) = &layer.extends {
            let value = ext.value.as_str();
            if value.trim().is_empty() {
                self.diags.push(
                    Diagnostic::new(Code::EmptyString, "`extends` is empty")
                        .at(ext.span)
                        .help("name a template (such as \"code\") or a file, or remove the key"),
                );
                return None;
            }
            if depth + 1 > MAX_EXTENDS_DEPTH {
                self.diags.push(
                    Diagnostic::new(
                        Code::ExtendsTooDeep,
                        format!("`extends` chain is deeper than {MAX_EXTENDS_DEPTH} levels"),
                    )
                    .at(ext.span)
                    .help("flatten the chain: copy what you need from the files it extends"),
                );
                return None;
            }
            let target = if is_path(value) {
                if matches!(unit, Unit::Template(_)) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::ExtendsNotFound,
                            "a built-in template can only extend templates",
                        )
                        .at(ext.span),
                    );
                    return None;
                }
                let base_dir = dir.unwrap_or_else(|| PathBuf::from("."));
                let path = if Path::new(value).is_absolute() {
                    PathBuf::from(value)
                } else {
                    base_dir.join(value)
                };
                // Drop `.` components so names read well in diagnostics; `..` stays for the
                // kernel to resolve.
                let path: PathBuf = path
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                Unit::File {
                    display: path.display().to_string(),
                    path,
                }
            } else {
                Unit::Template(value.to_string())
            };
            let target_key = match &target {
                Unit::File { path, .. } => Key::File(canonical(path)),
                Unit::Template(n) => Key::Template(
                    templates::find(n).map_or_else(|| n.clone(), |t| t.name.to_string()),
                ),
                Unit::Text { .. } => Key::Text,
            };
            if let Some(pos) = chain.iter().position(|(k, _)| *k == target_key) {
                let mut d = Diagnostic::new(
                    Code::ExtendsCycle,
                    format!("circular `extends`: `{value}` is already being loaded"),
                )
                .at(ext.span)
                .label("this leads back into the chain");
                for (_, span) in chain[pos + 1..].iter() {
                    if let Some(s) = span {
                        d = d.with_secondary(*s, "which extends");
                    }
                }
                self.diags.push(d);
                return None;
            }
            base = self.load_unit(target, depth + 1, chain, Some(ext.span))?;
            // Expectations test the file that states them, not the files extending it.
            base.expects.clear();
        }
        self.profile_names
            .extend(layer.profiles.iter().map(|(n, _)| n.value.clone()));
        let profile = self
            .profile
            .as_deref()
            .and_then(|p| layer.profile(p))
            .cloned();
        merge::merge(&mut base, layer, &mut self.diags);
        if let Some(p) = profile {
            self.profile_found = true;
            merge::merge(&mut base, p, &mut self.diags);
        }
        Some(base)
    }
}

fn cannot_read(display: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(Code::Io, format!("cannot read `{display}`: {e}")).path(display.to_string())
}

/// The canonical form of a path for cycle detection: resolved when it exists.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

/// One file's own layer: parsed and lowered (its `include`s followed, not its `extends`), for
/// `greywall convert`. `None` when the file has errors.
pub fn read_layer(input: &Input) -> (Sources, Option<lower::Layer>, Vec<Diagnostic>) {
    let mut l = Loader {
        sources: Sources::new(),
        diags: Vec::new(),
        files: Vec::new(),
        profile: None,
        profile_found: false,
        profile_names: Vec::new(),
        dirs: std::collections::HashMap::new(),
    };
    let unit = match input {
        Input::File(p) => Unit::File {
            path: p.clone(),
            display: p.display().to_string(),
        },
        Input::Template(n) => Unit::Template(n.clone()),
        Input::Text { name, text, dir } => Unit::Text {
            name: name.clone(),
            text: text.clone(),
            dir: dir.clone(),
        },
    };
    let layer = l.read(&unit, None).and_then(|(id, dir)| {
        let text = l
            .sources
            .get(id)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        l.layer(id, &text, dir, &unit)
    });
    let mut diags = l.diags;
    diagnostic::sort(&mut diags);
    let layer = layer.filter(|_| !diagnostic::has_errors(&diags));
    (l.sources, layer, diags)
}

/// Loads a built-in template by name.
pub fn template(name: &str) -> Loaded {
    load(&Input::Template(name.to_string()))
}

/// Every template the loader knows, loaded (for tests and `templates list`).
pub fn all_templates() -> Vec<(&'static str, Loaded)> {
    templates::TEMPLATES
        .iter()
        .map(|t| (t.name, template(t.name)))
        .collect()
}
