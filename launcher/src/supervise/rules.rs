//! The plan's create-deny rules, parsed once, matched against the paths of new entries.
//!
//! Paths are lists of components (byte strings, no `.` or `..`), absolute: the supervisor
//! resolves every path before it asks.

use greywall_compiler::pattern::path::{AbsPattern, PathBase, PathPattern};
use greywall_compiler::plan::CreateDeny;

/// An absolute path as its components.
pub type Components = Vec<Vec<u8>>;

/// The components of an absolute, normalised path (`/a/b` → `["a", "b"]`).
pub fn components(path: &[u8]) -> Components {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// `/a/b` for `["a", "b"]`; `/` for none.
pub fn display(path: &[Vec<u8>]) -> Vec<u8> {
    if path.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(path.iter().map(|c| c.len() + 1).sum());
    for c in path {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

/// What the sandbox must not create.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Exact paths, and everything below them.
    paths: Vec<Components>,
    /// `(root, sequence)`: below `root`, any path whose components contain `sequence`.
    names: Vec<(Components, Components)>,
    /// Patterns: any path a pattern covers (matches it or an ancestor).
    globs: Vec<AbsPattern>,
}

impl Rules {
    /// Parses the plan's rules (the patterns once, here, rather than per notification).
    pub fn new(c: &CreateDeny) -> Result<Rules, String> {
        let mut globs = Vec::with_capacity(c.globs.len());
        for g in &c.globs {
            let p = PathPattern::parse(g).map_err(|e| {
                format!(
                    "the plan's create-deny pattern {g:?} is invalid: {}",
                    e.message
                )
            })?;
            if p.base != PathBase::Root {
                return Err(format!(
                    "the plan's create-deny pattern {g:?} is not absolute"
                ));
            }
            globs.push(p.absolute("/", "/"));
        }
        Ok(Rules {
            paths: c.paths.iter().map(|p| components(p.as_bytes())).collect(),
            names: c
                .names
                .iter()
                .map(|(root, seq)| {
                    let seq = seq.iter().map(|s| s.as_bytes().to_vec()).collect();
                    (components(root.as_bytes()), seq)
                })
                .collect(),
            globs,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.names.is_empty() && self.globs.is_empty()
    }

    /// Whether a new entry at `path` is refused.
    pub fn refuses(&self, path: &[Vec<u8>]) -> bool {
        self.paths.iter().any(|p| path.starts_with(p))
            || self.names.iter().any(|(root, seq)| {
                path.strip_prefix(root.as_slice())
                    .is_some_and(|rel| rel.windows(seq.len()).any(|w| w == seq.as_slice()))
            })
            || (!self.globs.is_empty() && {
                let text = String::from_utf8_lossy(&display(path)).into_owned();
                self.globs.iter().any(|g| g.covers(&text))
            })
    }

    /// Whether creating a new, empty entry at `path` is refused: [`Rules::refuses`], except
    /// for what `git init` and `git clone` write into every new repository: the `.git/hooks`
    /// directory itself and the `*.sample` hooks in it, which git never runs. Renames and
    /// symlinks get no such exception ([`Rules::refuses_tree`]).
    pub fn refuses_creating(&self, path: &[Vec<u8>]) -> bool {
        self.refuses(path) && !is_git_template_hook(path)
    }

    /// Whether an entry at `path` that can bring a populated directory along (a renamed
    /// directory, a symlink) is refused: when [`Rules::refuses`] a new entry there, when `path`
    /// is an ancestor of a protected path (`mv dir .git` with `.git/config` protected), and
    /// when it ends with the start of a protected sequence (`mv dir .git` for `.git/hooks`).
    pub fn refuses_tree(&self, path: &[Vec<u8>]) -> bool {
        self.refuses(path)
            || self
                .paths
                .iter()
                .any(|p| p.len() > path.len() && p.starts_with(path))
            || self.names.iter().any(|(root, seq)| {
                path.strip_prefix(root.as_slice())
                    .is_some_and(|rel| (1..seq.len()).any(|k| rel.ends_with(&seq[..k])))
            })
    }
}

/// `…/.git/hooks` or `…/.git/hooks/NAME.sample`.
fn is_git_template_hook(path: &[Vec<u8>]) -> bool {
    let is_hooks =
        |p: &[Vec<u8>]| p.len() >= 2 && p[p.len() - 2] == b".git" && p[p.len() - 1] == b"hooks";
    match path.split_last() {
        Some((last, parent)) => is_hooks(path) || (last.ends_with(b".sample") && is_hooks(parent)),
        None => false,
    }
}

impl Rules {
    /// Whether renaming away the entry at `path` is refused: when it is an ancestor of a
    /// protected path, which would then be free to create (`mv .git x` with `.git/config`
    /// protected). A protected path itself is left to the kernel: a read-only mount point
    /// cannot be renamed (`EBUSY`), and a missing one cannot be either.
    pub fn refuses_moving(&self, path: &[Vec<u8>]) -> bool {
        self.paths
            .iter()
            .any(|p| p.len() > path.len() && p.starts_with(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(&CreateDeny {
            paths: vec!["/h/.config/autostart".into(), "/w/.git/config".into()],
            names: vec![
                ("/w".into(), vec![".git".into(), "hooks".into()]),
                ("/w".into(), vec![".bashrc".into()]),
            ],
            globs: vec!["/w/**/*.key".into(), "/w/\\*lit".into()],
        })
        .unwrap_or_default()
    }

    fn c(p: &str) -> Components {
        components(p.as_bytes())
    }

    #[test]
    fn exact_paths_and_below() {
        let r = rules();
        assert!(r.refuses(&c("/h/.config/autostart")));
        assert!(r.refuses(&c("/h/.config/autostart/x.desktop")));
        assert!(!r.refuses(&c("/h/.config/autostartx")));
        assert!(!r.refuses(&c("/h/.config")));
        assert!(r.refuses(&c("/w/.git/config")));
        assert!(!r.refuses(&c("/w/.git/config.lock")));
    }

    #[test]
    fn names_anywhere_below_their_root() {
        let r = rules();
        for p in [
            "/w/.bashrc",
            "/w/a/b/.bashrc",
            "/w/.bashrc/x",
            "/w/.git/hooks",
            "/w/.git/hooks/pre-commit",
            "/w/sub/.git/hooks",
        ] {
            assert!(r.refuses(&c(p)), "{p}");
        }
        for p in [
            "/w/.git",
            "/w/hooks",
            "/w/.git/x/hooks",
            "/w/x.bashrc",
            "/other/.bashrc",
            "/.bashrc",
            "/w",
        ] {
            assert!(!r.refuses(&c(p)), "{p}");
        }
    }

    #[test]
    fn globs_cover_their_matches() {
        let r = rules();
        assert!(r.refuses(&c("/w/x.key")));
        assert!(r.refuses(&c("/w/a/b/x.key")));
        assert!(r.refuses(&c("/w/dir.key/inner")));
        assert!(!r.refuses(&c("/w/x.keys")));
        assert!(!r.refuses(&c("/v/x.key")));
        // An escaped `*` is a literal.
        assert!(r.refuses(&c("/w/*lit")));
        assert!(!r.refuses(&c("/w/alit")));
        // Paths that are not UTF-8 still match the wildcards.
        let mut odd = c("/w");
        odd.push(b"\xff.key".to_vec());
        assert!(r.refuses(&odd));
    }

    #[test]
    fn trees_cannot_complete_a_protected_path() {
        let r = rules();
        assert!(r.refuses_tree(&c("/w/.git")));
        assert!(r.refuses_tree(&c("/w/sub/.git")));
        assert!(r.refuses_tree(&c("/h/.config")));
        assert!(r.refuses_tree(&c("/w/.bashrc")));
        assert!(!r.refuses_tree(&c("/w/src")));
        assert!(!r.refuses_tree(&c("/w/.gitx")));
        // Plain creation of the same paths is fine.
        assert!(!r.refuses(&c("/w/.git")));
    }

    #[test]
    fn ancestors_of_protected_paths_stay_put() {
        let r = rules();
        assert!(r.refuses_moving(&c("/w/.git")));
        assert!(r.refuses_moving(&c("/w")));
        assert!(r.refuses_moving(&c("/h/.config")));
        assert!(r.refuses_moving(&c("/")));
        assert!(!r.refuses_moving(&c("/w/.git/config")));
        assert!(!r.refuses_moving(&c("/w/src")));
    }

    #[test]
    fn bad_patterns_are_reported() {
        let relative = CreateDeny {
            globs: vec!["*.key".into()],
            ..CreateDeny::default()
        };
        assert!(Rules::new(&relative).is_err());
        let unclosed = CreateDeny {
            globs: vec!["/w/[x".into()],
            ..CreateDeny::default()
        };
        assert!(Rules::new(&unclosed).is_err());
    }

    #[test]
    fn git_template_hooks_may_be_created_but_not_moved_in() {
        let r = Rules {
            paths: vec![],
            names: vec![(c("/w"), vec![b".git".to_vec(), b"hooks".to_vec()])],
            globs: vec![],
        };
        assert!(!r.refuses_creating(&c("/w/sub/.git/hooks")));
        assert!(!r.refuses_creating(&c("/w/sub/.git/hooks/pre-commit.sample")));
        assert!(r.refuses_creating(&c("/w/sub/.git/hooks/pre-commit")));
        assert!(r.refuses_creating(&c("/w/sub/.git/hooks/x.sample/pre-commit")));
        assert!(
            r.refuses_tree(&c("/w/sub/.git/hooks")),
            "a populated directory cannot be moved in"
        );
        assert!(r.refuses_tree(&c("/w/sub/.git/hooks/pre-commit.sample")));
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(display(&c("/a/b")), b"/a/b");
        assert_eq!(display(&[]), b"/");
        assert_eq!(components(b"//a//b/"), c("/a/b"));
    }
}
