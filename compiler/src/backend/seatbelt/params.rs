//! Profile parameters: the facts of one run that a cached profile leaves open.
//!
//! A profile names the parameters it uses in its first line (`;; greywall-params: CWD HOME …`).
//! The launcher computes their values with [`values`] and passes each as
//! `sandbox-exec -D NAME=VALUE`. Values are never part of the profile text, so a working
//! directory with quotes or parentheses in its name cannot change the profile.
//!
//! Every anchor a path pattern can start at (`/` aside) is a parameter: `CWD`, `HOME`,
//! `TMPDIR` (`$tmp`), `XDG_CONFIG`, `XDG_CACHE`, `XDG_DATA`, `XDG_STATE`, `GIT_ROOT`,
//! `GIT_COMMON` and `ENV.<NAME>` (`$env.NAME`). Each has a regex twin (`CWD_RE`: the value
//! with regex metacharacters escaped) for globs below it, and `CWD_UP2` / `CWD_UP2_RE` stand
//! for `../..`. `CWD_ANCESTORS_RE` and `HOME_ANCESTORS_RE` match the directory and each of its
//! ancestors (the rename guards). `GREYWALL_CONFIG` and `GREYWALL_CACHE` are greywall's own
//! directories.

use std::fmt;

use super::sbpl::regex_escape;
use crate::pattern::path::{Anchors, PathBase};

/// Marks the line that lists a profile's parameters.
pub const HEADER: &str = ";; greywall-params:";

/// The value given to a parameter whose anchor does not exist on this run (no git repository,
/// an unset variable): a path below a character device, which can never exist, so rules
/// starting there match nothing.
pub const NOWHERE: &str = "/dev/null/greywall-unset";

/// What a parameter stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    /// An anchor's path (`up` levels above it), or its regex-escaped form.
    Anchor {
        base: PathBase,
        up: u8,
        regex: bool,
    },
    CwdAncestorsRe,
    HomeAncestorsRe,
    GreywallConfig,
    GreywallCache,
}

/// The largest `n` of a `../`×n climb a profile can follow.
pub const MAX_UP: u8 = 8;

fn base_name(b: &PathBase) -> String {
    match b {
        PathBase::Root => "ROOT".into(),
        PathBase::Home => "HOME".into(),
        PathBase::Cwd => "CWD".into(),
        PathBase::Tmp => "TMPDIR".into(),
        PathBase::XdgConfig => "XDG_CONFIG".into(),
        PathBase::XdgCache => "XDG_CACHE".into(),
        PathBase::XdgData => "XDG_DATA".into(),
        PathBase::XdgState => "XDG_STATE".into(),
        PathBase::GitRoot => "GIT_ROOT".into(),
        PathBase::GitCommon => "GIT_COMMON".into(),
        PathBase::Env(n) => format!("ENV.{n}"),
    }
}

impl Param {
    pub fn path(base: PathBase) -> Param {
        Param::Anchor {
            base,
            up: 0,
            regex: false,
        }
    }

    pub fn regex(base: PathBase) -> Param {
        Param::Anchor {
            base,
            up: 0,
            regex: true,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Param::Anchor { base, up, regex } => {
                // `ENV.NAME.UP1.RE`: a variable's name may hold `_UP1`, never a dot.
                let sep = if matches!(base, PathBase::Env(_)) {
                    '.'
                } else {
                    '_'
                };
                let mut n = base_name(base);
                if *up > 0 {
                    n.push_str(&format!("{sep}UP{up}"));
                }
                if *regex {
                    n.push(sep);
                    n.push_str("RE");
                }
                n
            }
            Param::CwdAncestorsRe => "CWD_ANCESTORS_RE".into(),
            Param::HomeAncestorsRe => "HOME_ANCESTORS_RE".into(),
            Param::GreywallConfig => "GREYWALL_CONFIG".into(),
            Param::GreywallCache => "GREYWALL_CACHE".into(),
        }
    }

    /// The parameter a name stands for (the inverse of [`Param::name`]).
    pub fn from_name(name: &str) -> Option<Param> {
        match name {
            "CWD_ANCESTORS_RE" => return Some(Param::CwdAncestorsRe),
            "HOME_ANCESTORS_RE" => return Some(Param::HomeAncestorsRe),
            "GREYWALL_CONFIG" => return Some(Param::GreywallConfig),
            "GREYWALL_CACHE" => return Some(Param::GreywallCache),
            _ => {}
        }
        let sep = if name.starts_with("ENV.") { '.' } else { '_' };
        let (rest, regex) = match name.strip_suffix(&format!("{sep}RE")) {
            Some(r) => (r, true),
            None => (name, false),
        };
        let (rest, up) = match rest.rfind(&format!("{sep}UP")) {
            Some(i) => match rest[i + 3..].parse::<u8>() {
                Ok(n) if (1..=MAX_UP).contains(&n) && rest[i + 3..] == n.to_string() => {
                    (&rest[..i], n)
                }
                _ => (rest, 0),
            },
            None => (rest, 0),
        };
        let fixed = [
            PathBase::Home,
            PathBase::Cwd,
            PathBase::Tmp,
            PathBase::XdgConfig,
            PathBase::XdgCache,
            PathBase::XdgData,
            PathBase::XdgState,
            PathBase::GitRoot,
            PathBase::GitCommon,
        ];
        let base = fixed
            .into_iter()
            .find(|b| base_name(b) == rest)
            .or_else(|| {
                rest.strip_prefix("ENV.")
                    .filter(|v| {
                        !v.is_empty()
                            && !v.starts_with(|c: char| c.is_ascii_digit())
                            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                    .map(|v| PathBase::Env(v.to_string()))
            })?;
        let p = Param::Anchor { base, up, regex };
        // Names are canonical: one name, one parameter.
        (p.name() == name).then_some(p)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The facts of one run: the anchors (every path absolute, symlinks resolved, no trailing
/// slash) and greywall's own directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub anchors: Anchors,
    pub config_dir: String,
    pub cache_dir: String,
}

/// Why a run cannot be given parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(what: &str, p: &str) -> Result<(), ParamError> {
    if !p.starts_with('/') || p.contains('\0') {
        return Err(ParamError(format!(
            "the {what} {p:?} is not an absolute path"
        )));
    }
    if p == "/" {
        // Profiles append "/name" to these: `/` would give `//name`, which matches nothing.
        return Err(ParamError(format!(
            "the {what} is `/`; greywall on macOS needs one below it"
        )));
    }
    if p.ends_with('/')
        || p.split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ParamError(format!(
            "the {what} {p:?} is not a normalised path"
        )));
    }
    Ok(())
}

/// A regular expression matching `path` and each of its ancestors, `/` included.
pub fn ancestors_regex(path: &str) -> String {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut re = String::from("^/");
    for (i, c) in comps.iter().enumerate() {
        re.push_str(if i > 0 { "(/" } else { "(" });
        re.push_str(&regex_escape(c));
    }
    for _ in &comps {
        re.push_str(")?");
    }
    re.push('$');
    re
}

fn up(path: &str, n: u8) -> &str {
    let mut p = path;
    for _ in 0..n {
        p = match p.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &p[..i],
        };
    }
    p
}

fn anchor_value<'a>(a: &'a Anchors, base: &PathBase) -> Option<&'a str> {
    match base {
        PathBase::Root => Some("/"),
        PathBase::Home => Some(&a.home),
        PathBase::Cwd => Some(&a.cwd),
        PathBase::Tmp => Some(&a.tmp),
        PathBase::XdgConfig => Some(&a.xdg_config),
        PathBase::XdgCache => Some(&a.xdg_cache),
        PathBase::XdgData => Some(&a.xdg_data),
        PathBase::XdgState => Some(&a.xdg_state),
        PathBase::GitRoot => a.git_root.as_deref(),
        PathBase::GitCommon => a.git_common.as_deref(),
        PathBase::Env(n) => a
            .env
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .filter(|v| v.starts_with('/')),
    }
}

/// The values of `params` for one run, in the order given.
pub fn values(params: &[Param], facts: &RunFacts) -> Result<Vec<(String, String)>, ParamError> {
    let a = &facts.anchors;
    check("working directory", &a.cwd)?;
    check("home directory", &a.home)?;
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let v = match p {
            Param::Anchor { base, up: n, regex } => {
                let what = format!("`${}` directory", base_name(base).to_lowercase());
                let v = match anchor_value(a, base) {
                    Some(v) => {
                        check(&what, v)?;
                        let u = up(v, *n);
                        if u == "/" {
                            return Err(ParamError(format!(
                                "the policy climbs {n} levels above {v:?}, to `/`"
                            )));
                        }
                        u.to_string()
                    }
                    None => NOWHERE.to_string(),
                };
                if *regex { regex_escape(&v) } else { v }
            }
            Param::CwdAncestorsRe => ancestors_regex(&a.cwd),
            Param::HomeAncestorsRe => ancestors_regex(&a.home),
            Param::GreywallConfig => {
                check("greywall configuration directory", &facts.config_dir)?;
                facts.config_dir.clone()
            }
            Param::GreywallCache => {
                check("greywall cache directory", &facts.cache_dir)?;
                facts.cache_dir.clone()
            }
        };
        out.push((p.name(), v));
    }
    Ok(out)
}

/// The parameters a profile declares in its header line, or `None` if the header is missing
/// or names a parameter this version does not know.
pub fn declared(profile: &str) -> Option<Vec<Param>> {
    let first = profile.lines().next()?;
    let rest = first.strip_prefix(HEADER)?;
    rest.split_whitespace().map(Param::from_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cwd: &str) -> RunFacts {
        RunFacts {
            anchors: Anchors {
                git_root: None,
                git_common: None,
                ..Anchors::defaults("/Users/a", cwd)
            },
            config_dir: "/Users/a/.config/greywall".into(),
            cache_dir: "/Users/a/.cache/greywall".into(),
        }
    }

    #[test]
    fn ancestors() {
        assert_eq!(ancestors_regex("/Users/a.b/p"), r"^/(Users(/a\.b(/p)?)?)?$");
    }

    #[test]
    fn names_round_trip() {
        for base in [
            PathBase::Cwd,
            PathBase::GitCommon,
            PathBase::Env("A_UP1".into()),
        ] {
            for up in [0, 1, MAX_UP] {
                for regex in [false, true] {
                    let p = Param::Anchor {
                        base: base.clone(),
                        up,
                        regex,
                    };
                    assert_eq!(Param::from_name(&p.name()), Some(p.clone()), "{p}");
                }
            }
        }
        assert_eq!(
            Param::from_name("HOME_ANCESTORS_RE"),
            Some(Param::HomeAncestorsRe)
        );
        assert_eq!(Param::from_name("NOPE"), None);
        assert_eq!(Param::from_name("CWD_UP9"), None);
        assert_eq!(Param::from_name("ENV.1X"), None);
        assert_eq!(
            Param::from_name("ENV.A_UP1"),
            Some(Param::path(PathBase::Env("A_UP1".into())))
        );
    }

    #[test]
    fn refuses_root_and_unnormalised() {
        assert!(values(&[Param::path(PathBase::Cwd)], &facts("/")).is_err());
        assert!(values(&[Param::path(PathBase::Cwd)], &facts("/a/../b")).is_err());
        let v = values(
            &[
                Param::Anchor {
                    base: PathBase::Cwd,
                    up: 1,
                    regex: false,
                },
                Param::path(PathBase::GitCommon),
                Param::regex(PathBase::Tmp),
            ],
            &facts("/w/p.q"),
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                ("CWD_UP1".to_string(), "/w".to_string()),
                ("GIT_COMMON".to_string(), NOWHERE.to_string()),
                ("TMPDIR_RE".to_string(), "/tmp".to_string()),
            ]
        );
        let two_up = Param::Anchor {
            base: PathBase::Cwd,
            up: 2,
            regex: false,
        };
        assert!(values(&[two_up], &facts("/w/p")).is_err());
    }
}
