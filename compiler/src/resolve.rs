//! The resolve pass: the one place that turns a [`Policy`] into concrete paths on this machine.
//!
//! It expands `~` and the working directory, resolves symlinks, expands globs against what
//! exists (bounded: it never walks a whole tree), finds the git repository and a linked
//! worktree's common directory, and adds greywall's mandatory protections. Everything it looked
//! at is recorded in [`Resolved::deps`], so the artifact cache can tell when a compiled plan
//! no longer matches the machine.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::model::{NetworkMode, Policy};
use crate::pattern::path::{
    AbsPattern, Anchors, PathBase, PathPattern, Segment, glob_segment, under,
};
use crate::plan::{CreateDeny, EnvOp};
use crate::protections::{self, Scope};

/// Most directory entries the glob expansion looks at per compile.
pub const GLOB_BUDGET: usize = 20_000;
/// Deepest directory level a `**` glob is expanded to.
pub const GLOB_DEPTH: usize = 6;

/// What resolution needs to know about the machine and the invocation.
#[derive(Debug, Clone)]
pub struct ResolveEnv {
    /// Where the filesystem is: `/` on a real machine, a fixture tree in tests. Every path in
    /// the result is relative to it (written as absolute paths).
    pub root: PathBuf,
    pub cwd: PathBuf,
    pub home: PathBuf,
    /// greywall's configuration directory and artifact cache.
    pub config_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// The user's runtime directory (`$XDG_RUNTIME_DIR`), where per-user sockets live.
    pub runtime_dir: Option<PathBuf>,
    /// Every policy file the policy was loaded from (kept read-only).
    pub policy_files: Vec<PathBuf>,
}

/// Something the resolution depended on, for cache freshness.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dep {
    /// The path existed (as resolved) or did not.
    Path { path: String, exists: bool },
    /// The entries of this directory were listed (for a glob).
    Listing { path: String },
}

/// A policy with every path concrete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub cwd: String,
    pub home: String,
    pub default_deny_read: bool,
    /// Readable roots (directories or files), in a stable order.
    pub read: Vec<String>,
    /// Writable (and readable) roots.
    pub write: Vec<String>,
    /// Existing paths to hide entirely, and whether each is a directory.
    pub hide: Vec<(String, bool)>,
    /// Granted paths below `/tmp`, carried over into the sandbox's private `/tmp`.
    pub tmp_keep: Vec<String>,
    /// Directories between a writable root and a read-only path inside it, made mount points
    /// so they cannot be renamed away.
    pub pins: Vec<String>,
    /// Existing paths inside writable roots to keep read-only.
    pub read_only: Vec<String>,
    /// Protected paths that do not exist yet inside writable roots: nothing can be mounted over
    /// them, so the launcher refuses their creation instead (they are in `create_deny`).
    pub unprotected_new: Vec<String>,
    /// What the sandbox must not create inside writable roots: the protected paths (missing
    /// ones, and existing ones should they be moved away), the protected names below the
    /// working directory (and the home directory when it is writable), and the `denyWrite`
    /// globs that reach into writable roots.
    pub create_deny: CreateDeny,
    pub network: NetworkMode,
    pub local_binding: bool,
    pub local_outbound: bool,
    pub allow_pty: bool,
    /// Command prefixes (as words) refused before exec, and the ones allowed over them.
    pub deny_commands: Vec<Vec<String>>,
    pub allow_commands: Vec<Vec<String>>,
    /// How rules were approximated on this machine, one sentence each.
    pub notes: Vec<String>,
    /// The policy's environment rules, applied before greywall's own edits.
    pub env: Vec<EnvOp>,
    pub deps: Vec<Dep>,
}

fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// A directory's entries, sorted, with whether each is a directory; `complete` unless the
/// glob budget cut it short.
#[derive(Clone)]
struct Listing {
    names: Rc<[(std::ffi::OsString, bool)]>,
    complete: bool,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

struct Resolver<'a> {
    env: &'a ResolveEnv,
    deps: Vec<Dep>,
    budget: usize,
    notes: Vec<String>,
    /// Where `$tmp`, `$xdg_*`, `$git_root`, `$env.NAME`… are on this machine.
    anchors: Anchors,
    /// Every directory listed so far ([`Resolver::list`]): each `**` rule walks the same
    /// tree, and the walk lists every folder once per compile.
    listings: HashMap<PathBuf, Option<Listing>>,
    /// Every path resolved so far ([`Resolver::real`]): the resolved path, `None` when
    /// missing.
    reals: HashMap<PathBuf, Option<PathBuf>>,
}

impl Resolver<'_> {
    /// The path on the host (below the resolution root).
    fn host(&self, p: &Path) -> PathBuf {
        self.env.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// The path as the sandbox sees it (the resolution root removed).
    fn guest(&self, p: &Path) -> PathBuf {
        match p.strip_prefix(&self.env.root) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => p.to_path_buf(),
        }
    }

    /// `canonicalize` of a host path, each path once per compile (every rule under the
    /// working directory resolves the same ancestors, one `readlink` per component).
    fn canonical(&mut self, host: &Path) -> Option<PathBuf> {
        if let Some(known) = self.reals.get(host) {
            return known.clone();
        }
        let real = std::fs::canonicalize(host).ok();
        self.reals.insert(host.to_path_buf(), real.clone());
        real
    }

    /// The entries of `dir` (a path as the sandbox sees it), listed once per compile; `None`
    /// when it cannot be listed. The first listing records the dependency. A glob's listing
    /// (`budgeted`) counts against [`GLOB_BUDGET`] and is cut short past it (a note says so);
    /// other callers get the whole folder.
    fn list(&mut self, dir: &Path, budgeted: bool) -> Option<Listing> {
        if let Some(known) = self.listings.get(dir)
            && known.as_ref().is_none_or(|l| l.complete || budgeted)
        {
            return known.clone();
        }
        let listed = match std::fs::read_dir(self.host(dir)) {
            Ok(entries) => {
                if !self.listings.contains_key(dir) {
                    self.deps.push(Dep::Listing {
                        path: s(&self.host(dir)),
                    });
                }
                let mut names: Vec<(std::ffi::OsString, bool)> = Vec::new();
                let mut complete = true;
                for e in entries.flatten() {
                    if budgeted {
                        if self.budget == 0 {
                            self.note(format!(
                                "glob expansion stopped after {GLOB_BUDGET} entries"
                            ));
                            complete = false;
                            break;
                        }
                        self.budget -= 1;
                    }
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    names.push((e.file_name(), is_dir));
                }
                names.sort();
                Some(Listing {
                    names: Rc::from(names),
                    complete,
                })
            }
            Err(_) => None,
        };
        self.listings.insert(dir.to_path_buf(), listed.clone());
        listed
    }

    /// Resolves symlinks of an existing path; a missing path is cleaned lexically.
    fn real(&mut self, path: &Path) -> (PathBuf, bool) {
        let cleaned = clean(path);
        match self.canonical(&self.host(&cleaned)) {
            Some(p) => {
                self.deps.push(Dep::Path {
                    path: s(&self.host(&cleaned)),
                    exists: true,
                });
                (self.guest(&p), true)
            }
            None => {
                self.deps.push(Dep::Path {
                    path: s(&self.host(&cleaned)),
                    exists: false,
                });
                (cleaned, false)
            }
        }
    }

    /// A path that does not exist, with the symlinks of its deepest existing ancestor resolved:
    /// where the kernel would create it.
    fn real_new(&mut self, cleaned: &Path) -> PathBuf {
        let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
        let mut at = cleaned;
        while let (Some(parent), Some(name)) = (at.parent(), at.file_name()) {
            rest.push(name);
            if let Some(real) = self.canonical(&self.host(parent)) {
                let real = self.guest(&real);
                if real != parent {
                    // A symlink decides where the path would be created.
                    self.deps.push(Dep::Path {
                        path: s(&self.host(parent)),
                        exists: true,
                    });
                }
                return rest.iter().rev().fold(real, |p, n| p.join(n));
            }
            at = parent;
        }
        cleaned.to_path_buf()
    }

    fn abs(&self, p: &PathPattern) -> AbsPattern {
        // Rules whose anchor is missing here were dropped by `drop_missing_anchors`.
        p.absolute_in(&self.anchors)
            .unwrap_or_else(|| p.absolute(&s(&self.env.home), &s(&self.env.cwd)))
    }

    /// Every existing path a pattern matches (literal patterns: the path itself, existing or
    /// not). Bounded by [`GLOB_BUDGET`] and [`GLOB_DEPTH`].
    fn expand(&mut self, p: &PathPattern, include_missing: bool) -> Vec<PathBuf> {
        let abs = self.abs(p);
        let prefix = abs.literal_prefix();
        let base: PathBuf = std::iter::once("/").chain(prefix.iter().copied()).collect();
        if !p.is_glob() {
            let (real, exists) = self.real(&base);
            return if exists || include_missing {
                vec![real]
            } else {
                Vec::new()
            };
        }
        let rest: Vec<Segment> = abs.segments[prefix.len()..].to_vec();
        let (root, exists) = self.real(&base);
        if !exists {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.walk(&root, &rest, 0, &mut out);
        out.sort();
        out.dedup();
        out
    }

    fn walk(&mut self, dir: &Path, rest: &[Segment], depth: usize, out: &mut Vec<PathBuf>) {
        let Some((seg, more)) = rest.split_first() else {
            out.push(dir.to_path_buf());
            return;
        };
        if let Segment::Literal(l) = seg {
            let next = dir.join(l);
            if std::fs::symlink_metadata(self.host(&next)).is_ok() {
                self.walk(&next, more, depth + 1, out);
            }
            return;
        }
        if depth > GLOB_DEPTH {
            self.note(format!(
                "glob expansion stopped {GLOB_DEPTH} levels below {}",
                dir.display()
            ));
            return;
        }
        let Some(listing) = self.list(dir, true) else {
            return;
        };
        match seg {
            Segment::AnyDepth => {
                // Zero segments here, or one more directory level.
                self.walk(dir, more, depth, out);
                for (name, is_dir) in listing.names.iter() {
                    if *is_dir {
                        self.walk(&dir.join(name), rest, depth + 1, out);
                    }
                }
            }
            Segment::Glob(g) => {
                for (name, _) in listing.names.iter() {
                    if glob_segment(g, &name.to_string_lossy()) {
                        self.walk(&dir.join(name), more, depth + 1, out);
                    }
                }
            }
            Segment::Literal(_) => {}
        }
    }

    /// Everything below `top` except `inner` and its contents: the siblings of each directory
    /// on the way down from `top` to `inner` (one directory listing per level).
    fn around(&mut self, top: &Path, inner: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(rest) = inner.strip_prefix(top) else {
            return out;
        };
        let mut dir = top.to_path_buf();
        for comp in rest.components() {
            let Some(listing) = self.list(&dir, false) else {
                break;
            };
            for (n, _) in listing.names.iter() {
                if n.as_os_str() != comp.as_os_str() {
                    out.push(dir.join(n));
                }
            }
            dir.push(comp);
        }
        out
    }

    fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }
}

/// Finds the git directory for `cwd`: the repository's `.git` directory, or for a linked
/// worktree its private git directory and the repository's common directory.
fn git_dirs(root: &Path, cwd: &Path) -> Option<(PathBuf, PathBuf)> {
    let host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    for dir in cwd.ancestors() {
        let dotgit = dir.join(".git");
        let Ok(meta) = std::fs::metadata(host(&dotgit)) else {
            continue;
        };
        if meta.is_dir() {
            return Some((dotgit.clone(), dotgit));
        }
        let text = std::fs::read_to_string(host(&dotgit)).ok()?;
        let gitdir = text.strip_prefix("gitdir:")?.trim();
        let gitdir = if Path::new(gitdir).is_absolute() {
            PathBuf::from(gitdir)
        } else {
            dir.join(gitdir)
        };
        let common = std::fs::read_to_string(host(&gitdir.join("commondir")))
            .ok()
            .map(|c| {
                let c = c.trim();
                if Path::new(c).is_absolute() {
                    PathBuf::from(c)
                } else {
                    gitdir.join(c)
                }
            })
            .unwrap_or_else(|| gitdir.clone());
        return Some((clean(&gitdir), clean(&common)));
    }
    None
}

/// The create-deny rules: only those that can matter, that is that reach into a writable root.
fn create_rules(
    r: &mut Resolver<'_>,
    policy: &Policy,
    out: &Resolved,
    missing_denied: &[String],
) -> CreateDeny {
    let writes = &out.write;
    let inside = |p: &str| writes.iter().any(|w| under(p, w));
    let overlaps = |p: &str| writes.iter().any(|w| under(p, w) || under(w, p));
    let mut cd = CreateDeny::default();

    // Names protected everywhere below the working directory (when something there is
    // writable) and below the home directory (when it is writable itself).
    let cwd = s(&r.real(&r.env.cwd.clone()).0);
    let home = s(&r.real(&r.env.home.clone()).0);
    let mut roots: Vec<(String, bool)> = Vec::new();
    if inside(&home) {
        roots.push((home.clone(), false));
    }
    if overlaps(&cwd) {
        roots.push((cwd.clone(), true));
    }
    for (root, is_cwd) in &roots {
        // Below a writable home, the home's rules already cover the working directory.
        let everywhere = !is_cwd || !inside(&home) || !under(root, &home);
        let mut seqs: Vec<Vec<String>> = Vec::new();
        if everywhere {
            for prot in protections::WRITE_PROTECTED {
                if prot.scope == Scope::Everywhere {
                    seqs.push(prot.name.split('/').map(str::to_string).collect());
                }
            }
        }
        if *is_cwd {
            seqs.extend(
                protections::SECRET_FILES
                    .iter()
                    .map(|n| vec![n.to_string()]),
            );
        }
        cd.names.extend(seqs.into_iter().map(|q| (root.clone(), q)));
    }

    // Exact paths: the protected paths that exist (read-only mounts; listed so that the
    // launcher refuses to rename a folder above one away, which would leave its place free),
    // and the missing ones no name rule covers already.
    let by_name = |p: &str| {
        cd.names.iter().any(|(root, seq)| {
            p.strip_prefix(root.as_str())
                .filter(|rest| root == "/" || rest.is_empty() || rest.starts_with('/'))
                .is_some_and(|rest| {
                    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
                    comps.windows(seq.len()).any(|w| w == seq.as_slice())
                })
        })
    };
    let mut paths: Vec<String> = out
        .unprotected_new
        .iter()
        .chain(missing_denied)
        .filter(|p| !by_name(p))
        .chain(&out.read_only)
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    cd.paths = paths;

    // denyWrite globs reaching into a writable root, with their literal prefix resolved.
    for e in &policy.filesystem.deny_write {
        if !e.value.is_glob() {
            continue;
        }
        let abs = r.abs(&e.value);
        let n = abs.literal_prefix().len();
        let prefix: PathBuf = std::iter::once("/")
            .chain(abs.literal_prefix().iter().copied())
            .collect();
        let (real, exists) = r.real(&prefix);
        let real = if exists { real } else { r.real_new(&real) };
        if !overlaps(&s(&real)) {
            continue;
        }
        let mut segments: Vec<Segment> = real
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Segment::Literal(n.to_string_lossy().into_owned())),
                _ => None,
            })
            .collect();
        segments.extend(abs.segments[n..].iter().cloned());
        let glob = PathPattern {
            base: PathBase::Root,
            up: 0,
            segments,
        }
        .to_string();
        push_unique(&mut cd.globs, glob);
    }
    cd
}

fn push_unique(list: &mut Vec<String>, p: String) {
    if !list.contains(&p) {
        list.push(p);
    }
}

/// Where the built-in path anchors are for this invocation: the XDG directories from the
/// environment (or their defaults below the home directory), the git work tree and common
/// directory around the working directory, and the environment variables the policy names.
fn anchors(policy: &Policy, env: &ResolveEnv) -> Anchors {
    let mut a = Anchors::defaults(&s(&env.home), &s(&env.cwd));
    let var = |n: &str| std::env::var(n).ok().filter(|v| v.starts_with('/'));
    for (name, slot) in [
        ("XDG_CONFIG_HOME", &mut a.xdg_config),
        ("XDG_CACHE_HOME", &mut a.xdg_cache),
        ("XDG_DATA_HOME", &mut a.xdg_data),
        ("XDG_STATE_HOME", &mut a.xdg_state),
    ] {
        if let Some(v) = var(name) {
            *slot = v;
        }
    }
    let host = |p: &Path| env.root.join(p.strip_prefix("/").unwrap_or(p));
    a.git_root = env
        .cwd
        .ancestors()
        .find(|d| std::fs::symlink_metadata(host(&d.join(".git"))).is_ok())
        .map(s);
    a.git_common = git_dirs(&env.root, &env.cwd).map(|(_, common)| s(&common));
    for n in env_names(policy) {
        if let Some(v) = var(&n) {
            a.env.push((n, v));
        }
    }
    a
}

/// The environment variables the policy's paths are anchored at (`$env.NAME`), each once: a
/// compiled plan depends on their values.
pub fn env_names(policy: &Policy) -> Vec<String> {
    let f = &policy.filesystem;
    let mut names: Vec<String> = Vec::new();
    for e in f
        .allow_read
        .iter()
        .chain(&f.deny_read)
        .chain(&f.allow_write)
        .chain(&f.deny_write)
        .chain(&policy.network.allow_unix_sockets)
    {
        if let PathBase::Env(n) = &e.value.base
            && !names.contains(n)
        {
            names.push(n.clone());
        }
    }
    names
}

/// The policy without the path rules whose anchor this machine lacks (no git repository, an
/// unset variable): such a rule names nothing here. Each one dropped is noted.
fn drop_missing_anchors(policy: &Policy, r: &mut Resolver<'_>) -> Policy {
    let mut p = policy.clone();
    let f = &mut p.filesystem;
    for (name, list) in [
        ("filesystem.allowRead", &mut f.allow_read),
        ("filesystem.denyRead", &mut f.deny_read),
        ("filesystem.allowWrite", &mut f.allow_write),
        ("filesystem.denyWrite", &mut f.deny_write),
        (
            "network.allowUnixSockets",
            &mut p.network.allow_unix_sockets,
        ),
    ] {
        list.retain(|e| {
            let here = e.value.absolute_in(&r.anchors).is_some();
            if !here {
                let n = format!(
                    "`{}` in {name} is left out: ${} does not exist here",
                    e.value,
                    e.value.base.anchor_name().unwrap_or_default()
                );
                if !r.notes.contains(&n) {
                    r.notes.push(n);
                }
            }
            here
        });
    }
    p
}

/// The policy's environment rules as edits for the launcher: drops (with the `pass`
/// exceptions inside them), then sets.
fn env_edits(policy: &Policy) -> Vec<EnvOp> {
    let e = &policy.environment;
    let mut ops = Vec::new();
    for d in &e.drop {
        let d = &d.value;
        // A `pass` pattern covering the whole drop voids it.
        if e.pass.iter().any(|p| {
            let p = &p.value;
            p.prefix && d.name.starts_with(&p.name) || !d.prefix && !p.prefix && p.name == d.name
        }) {
            continue;
        }
        if !d.prefix {
            ops.push(EnvOp::Unset(d.name.clone()));
            continue;
        }
        let keep: Vec<String> = e
            .pass
            .iter()
            .filter(|p| p.value.name.starts_with(&d.name))
            .map(|p| p.value.to_string())
            .collect();
        ops.push(if keep.is_empty() {
            EnvOp::UnsetPrefix(d.name.clone())
        } else {
            EnvOp::UnsetPrefixExcept(d.name.clone(), keep)
        });
    }
    for x in &e.set {
        ops.push(EnvOp::Set(x.value.name.clone(), x.value.value.clone()));
    }
    ops
}

/// Resolves a policy on this machine.
pub fn resolve(policy: &Policy, env: &ResolveEnv) -> Resolved {
    let mut r = Resolver {
        env,
        deps: Vec::new(),
        budget: GLOB_BUDGET,
        notes: Vec::new(),
        anchors: anchors(policy, env),
        listings: HashMap::new(),
        reals: HashMap::new(),
    };
    let policy = &drop_missing_anchors(policy, &mut r);
    let fs = &policy.filesystem;
    let mut out = Resolved {
        cwd: s(&env.cwd),
        home: s(&env.home),
        default_deny_read: fs.default_deny_read.value,
        network: policy.network.mode(),
        local_binding: policy.network.allow_local_binding.value,
        local_outbound: policy.network.local_outbound(),
        allow_pty: policy.allow_pty.value,
        env: env_edits(policy),
        ..Resolved::default()
    };

    // Writable roots, then readable ones.
    for e in &fs.allow_write {
        for p in r.expand(&e.value, true) {
            push_unique(&mut out.write, s(&p));
        }
    }
    // The private /tmp and /dev/shm are always writable; they vanish with the sandbox.
    push_unique(&mut out.write, "/tmp".into());
    if out.default_deny_read {
        let (home_real, _) = r.real(&env.home);
        for sys in protections::SYSTEM_READABLE {
            let (p, exists) = r.real(Path::new(sys));
            if !exists {
                continue;
            }
            if home_real == p {
                // The home directory itself is never readable as a whole.
                continue;
            }
            if home_real.starts_with(&p) {
                // A home below a system folder (service accounts: /var/lib/jenkins): grant the
                // folder around the home directory, never the home itself.
                for q in r.around(&p, &home_real) {
                    push_unique(&mut out.read, s(&q));
                }
                r.note(format!(
                    "the home directory is inside {}; only the rest of that folder is readable",
                    p.display()
                ));
            } else {
                push_unique(&mut out.read, s(&p));
            }
        }
        for rel in protections::HOME_READABLE {
            let (p, exists) = r.real(&env.home.join(rel));
            if exists {
                push_unique(&mut out.read, s(&p));
            }
        }
        for e in &fs.allow_read {
            for p in r.expand(&e.value, true) {
                push_unique(&mut out.read, s(&p));
            }
        }
    } else {
        out.read.push("/".into());
    }

    // Git: the repository's hooks and configuration stay read-only, and a linked worktree's
    // common directory is writable when the worktree is.
    if let Some((gitdir, common)) = git_dirs(&env.root, &env.cwd) {
        let wt = s(&gitdir);
        if out.write.iter().any(|w| under(&wt, w)) {
            let c = s(&common);
            if !out.write.iter().any(|w| under(&c, w)) {
                push_unique(&mut out.write, c);
                r.note(format!(
                    "the linked worktree's common git directory {} is writable",
                    common.display()
                ));
            }
            for protected in ["hooks", "config"] {
                if protected == "config" && fs.allow_git_config.value {
                    continue;
                }
                let p = common.join(protected);
                let (p, exists) = r.real(&p);
                if exists {
                    push_unique(&mut out.read_only, s(&p));
                } else {
                    let p = r.real_new(&p);
                    push_unique(&mut out.unprotected_new, s(&p));
                }
            }
        }
    }

    // Mandatory protections inside writable roots.
    let writes = out.write.clone();
    let mut candidates: Vec<PathBuf> = Vec::new();
    for prot in protections::WRITE_PROTECTED {
        candidates.push(env.home.join(prot.name));
        if prot.scope == Scope::Everywhere {
            candidates.push(env.cwd.join(prot.name));
        }
    }
    if !fs.allow_git_config.value {
        candidates.push(env.cwd.join(protections::GIT_CONFIG));
    }
    for dir in env.cwd.ancestors() {
        candidates.push(dir.join("greywall.json"));
    }
    candidates.extend(env.config_dir.iter().cloned());
    candidates.extend(env.cache_dir.iter().cloned());
    candidates.extend(env.policy_files.iter().cloned());
    for c in candidates {
        let (p, exists) = r.real(&c);
        if exists {
            let ps = s(&p);
            if writes.iter().any(|w| under(&ps, w)) {
                push_unique(&mut out.read_only, ps);
            }
        } else {
            let ps = s(&r.real_new(&p));
            if writes.iter().any(|w| under(&ps, w)) {
                push_unique(&mut out.unprotected_new, ps);
            }
        }
    }
    let mut missing_denied: Vec<String> = Vec::new();
    for e in &fs.deny_write {
        for p in r.expand(&e.value, false) {
            let ps = s(&p);
            if writes.iter().any(|w| under(&ps, w)) {
                push_unique(&mut out.read_only, ps);
            }
        }
        if !e.value.is_glob() {
            let abs = r.abs(&e.value);
            let literal: PathBuf = std::iter::once("/")
                .chain(abs.literal_prefix().iter().copied())
                .collect();
            let (p, exists) = r.real(&literal);
            if !exists {
                let ps = s(&r.real_new(&p));
                if writes.iter().any(|w| under(&ps, w)) {
                    push_unique(&mut missing_denied, ps);
                }
            }
        }
    }

    // Hidden: denyRead, secret .env files in the working directory, container sockets.
    let mut hide: Vec<PathBuf> = Vec::new();
    for e in &fs.deny_read {
        hide.extend(r.expand(&e.value, false));
    }
    for name in protections::SECRET_FILES {
        let (p, exists) = r.real(&env.cwd.join(name));
        if exists {
            hide.push(p);
        }
    }
    let sockets_allowed = policy.network.allow_all_unix_sockets.value;
    let mut sockets: Vec<PathBuf> = protections::CONTAINER_SOCKETS
        .iter()
        .chain(protections::HOST_SERVICE_SOCKETS)
        .map(PathBuf::from)
        .collect();
    if let Some(rt) = &env.runtime_dir {
        sockets.extend(
            protections::USER_CONTAINER_SOCKETS
                .iter()
                .map(|n| rt.join(n)),
        );
    }
    for sock in sockets {
        let (p, exists) = r.real(&sock);
        let ps = s(&p);
        let allowed = sockets_allowed
            || policy
                .network
                .allow_unix_sockets
                .iter()
                .any(|a| r.abs(&a.value).covers(&ps));
        if exists && !allowed {
            hide.push(p);
        }
    }
    // The user's runtime directory (`$XDG_RUNTIME_DIR`) holds the session bus, the user's
    // systemd manager, SSH and GPG agents and the display server: talking to one of them runs
    // code outside the sandbox (`systemd-run --user`, D-Bus activation) or uses the user's
    // keys, and Landlock before ABI 9 cannot refuse a Unix socket connection. Hidden whole,
    // unless the policy allows Unix sockets there (or the folder holds the working or home
    // directory); proxyd's socket directory below it is never visible either way (see
    // `protections::PROXYD_RUNTIME_DIR`).
    if let Some(rt) = &env.runtime_dir {
        let (p, exists) = r.real(rt);
        let ps = s(&p);
        let allowed_inside = protections::runtime_dir_exposed(policy, &ps, |p| Some(r.abs(p)));
        let holds_work = [&env.cwd, &env.home]
            .iter()
            .any(|d| under(&s(&r.real(d).0), &ps));
        if exists && !allowed_inside && !holds_work {
            hide.push(p);
        } else {
            let (p, exists) = r.real(&rt.join(protections::PROXYD_RUNTIME_DIR));
            if exists {
                hide.push(p);
            }
        }
    }
    for p in hide {
        let is_dir = std::fs::metadata(r.host(&p)).is_ok_and(|m| m.is_dir());
        let entry = (s(&p), is_dir);
        if !out.hide.contains(&entry) {
            out.hide.push(entry);
        }
    }

    // Commands.
    let words =
        |l: &crate::model::List<crate::pattern::command::CommandPrefix>| -> Vec<Vec<String>> {
            l.iter().map(|e| e.value.words().to_vec()).collect()
        };
    out.deny_commands = words(&policy.command.deny);
    if policy.command.use_defaults.value {
        for c in protections::DEFAULT_DENIED_COMMANDS {
            if let Ok(p) = crate::pattern::command::CommandPrefix::parse(c) {
                out.deny_commands.push(p.words().to_vec());
            }
        }
    }
    out.allow_commands = words(&policy.command.allow);

    // Network notes.
    match out.network {
        NetworkMode::Filtered => r.note(
            "allowed domains are reached through greywall-proxyd (HTTP and SOCKS5 proxies on the sandbox's loopback); other connections have no route".into(),
        ),
        NetworkMode::Relaxed => r.note("relaxed network mode: the sandbox shares the host network".into()),
        NetworkMode::Isolated => {}
    }
    if out.local_outbound && out.network == NetworkMode::Isolated {
        r.note(
            "allowLocalOutbound: name the host ports in allowedDomains (`localhost:5432`); without them no host service is reachable"
                .into(),
        );
    }
    if !out.unprotected_new.is_empty() {
        r.note(format!(
            "{} protected paths do not exist yet inside writable folders: nothing can be mounted over them, so the launcher refuses their creation as it happens",
            out.unprotected_new.len()
        ));
    }
    // Granted paths below /tmp (a workspace there, say) stay visible in the private /tmp.
    let mut keep: Vec<String> = out
        .read
        .iter()
        .chain(out.write.iter())
        .filter(|p| p.starts_with("/tmp/"))
        // proxyd's socket directory stays outside (the private /tmp hides it).
        .filter(|p| !p.starts_with(protections::PROXYD_TMP_PREFIX))
        .cloned()
        .collect();
    keep.sort();
    keep.dedup();
    let outer: Vec<String> = keep
        .iter()
        .filter(|p| !keep.iter().any(|q| q != *p && under(p, q)))
        .cloned()
        .collect();
    out.tmp_keep = outer;
    out.hide.sort();
    // A hidden path needs no read-only mount of its own.
    let hidden: Vec<String> = out.hide.iter().map(|(p, _)| p.clone()).collect();
    out.read_only.retain(|p| !hidden.contains(p));
    out.read_only.sort();
    let mut pins: Vec<String> = Vec::new();
    for p in &out.read_only {
        let Some(root) = out
            .write
            .iter()
            .filter(|w| under(p, w))
            .max_by_key(|w| w.len())
        else {
            continue;
        };
        let mut a = Path::new(p).parent();
        while let Some(dir) = a {
            let d = s(dir);
            if d.len() <= root.len() || !under(&d, root) {
                break;
            }
            push_unique(&mut pins, d);
            a = dir.parent();
        }
    }
    pins.sort();
    out.pins = pins;
    out.create_deny = create_rules(&mut r, policy, &out, &missing_denied);
    out.unprotected_new.sort();
    r.deps.sort();
    r.deps.dedup();
    out.deps = r.deps;
    out.notes = r.notes;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../x")), PathBuf::from("/x"));
    }
}
