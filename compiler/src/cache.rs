//! The artifact cache: content-addressed plans plus a small index that says, for one way of
//! invoking greywall, which plan is current and what it depended on.
//!
//! Layout under `$XDG_CACHE_HOME/greywall/` (directory 0700, files 0600):
//! - `plans/<key>.plan`: a [`crate::plan::LinuxPlan`]; `<key>` is the [`crate::plan::hash64`] of its bytes;
//! - `plans/<key>.bwrap`: the bwrap argument vector (NUL-separated, for `bwrap --args FD`);
//! - `plans/<key>.sb`: a Seatbelt profile for macOS (its first line names the parameters the
//!   launcher passes with `sandbox-exec -D`); `index/<invocation>.macos` says which is current;
//! - `egress/<sha256>.json`: a policy's egress rule set, read by greywall-proxyd (the plan names
//!   it with its SHA-256, so a plan never runs with another rule set);
//! - `index/<invocation>`: an [`Index`]: the plan key and every file-system fact the compile
//!   depended on, each with the stat signature it had. The launcher re-checks them with one
//!   `stat` each; any difference means a recompile, never a stale run.
//!
//! Writes go to a temporary file in the same directory and are renamed into place, so a reader
//! sees a whole file or none.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::plan::hash64;

const INDEX_MAGIC: &[u8; 8] = b"GWINDEX\x04";

/// A file-system fact a compiled plan depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatDep {
    pub path: String,
    /// `None`: the path did not exist.
    pub sig: Option<Signature>,
    /// A guard ([`condense`]): the number of dependencies after this one that need no `stat`
    /// while this directory's signature is unchanged. A guard is not a dependency itself: when
    /// its directory changed, the ones it covers are checked one by one.
    pub covers: u32,
}

impl StatDep {
    /// Depends on the exact state of a file (policy files, listed directories).
    pub fn exact(path: &str) -> Self {
        StatDep {
            path: path.to_string(),
            sig: Signature::now(path),
            covers: 0,
        }
    }

    /// Depends only on whether the path exists and which inode it is (paths the plan mounts
    /// over or grants): its contents may change freely.
    pub fn identity(path: &str) -> Self {
        StatDep {
            path: path.to_string(),
            sig: Signature::now(path).map(Signature::identity),
            covers: 0,
        }
    }
}

/// Whether `path` still has the signature `sig` (`None`: it did not exist; an identity
/// signature compares only which inode it is).
fn still(path: &str, sig: Option<Signature>) -> bool {
    match (sig, Signature::now(path)) {
        (None, None) => true,
        (Some(s), Some(n)) if s.is_identity() => n.identity() == s,
        (Some(s), Some(n)) => n == s,
        _ => false,
    }
}

/// Puts the dependencies that a directory's times stand for behind a guard on that directory,
/// so that a cached launch `stat`s the directory instead of each of them.
///
/// A path can only come into existence, disappear or become another inode by a change of an
/// entry in a directory, and that changes the directory's modification and change times. So
/// one `stat` of `~` stands for the startup files, toolchain folders and discovery candidates
/// in it that do not exist, and one of `/` for the existing folders under it the plan grants
/// or mounts. Covered are
/// - paths that do not exist, behind their nearest existing ancestor;
/// - paths the plan depends on only for what they are (an identity: which inode), behind
///   their parent, when they are not symlinks themselves (where a symlink points is not
///   covered by its parent's times).
///
/// Dependencies on contents (policy files, listed directories) keep their own `stat`. A guard
/// whose directory changed since the compile (a file created in the working directory, say)
/// costs one more `stat`, never a recompile: the launch then checks what it covers one by
/// one. On the development machine the default policy's cached launch went from 68 `stat`s
/// to 21.
///
/// File times are coarse (a clock tick): an entry made in the same tick as the compile's
/// `stat` would leave them unchanged. A directory that changed less than a second before the
/// compile ([`settled_now`]) therefore guards nothing.
pub fn condense(deps: Vec<StatDep>, settled: i64) -> Vec<StatDep> {
    let deps = strongest_per_path(deps);
    let settled_sig = |dir: &Path| -> Option<Signature> {
        let sig = Signature::now(dir.to_str()?)?;
        (sig.mtime_ns < settled && sig.ctime_ns < settled).then_some(sig)
    };
    let mut guarded: std::collections::BTreeMap<String, (Signature, Vec<StatDep>)> =
        std::collections::BTreeMap::new();
    let mut alone = Vec::new();
    for d in deps {
        let path = Path::new(&d.path);
        let guard = match d.sig {
            _ if !path.is_absolute() => None,
            // The nearest ancestor with an entry; a dangling symlink there guards nothing (its
            // target can appear without any change to the directory holding it).
            None => path
                .ancestors()
                .skip(1)
                .find(|a| fs::symlink_metadata(a).is_ok())
                .and_then(|a| Some((a, settled_sig(a)?))),
            Some(s)
                if s.is_identity()
                    && fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink()) =>
            {
                path.parent().and_then(|a| Some((a, settled_sig(a)?)))
            }
            Some(_) => None,
        };
        match guard.and_then(|(a, sig)| Some((a.to_str()?.to_string(), sig))) {
            Some((dir, sig)) => guarded.entry(dir).or_insert((sig, Vec::new())).1.push(d),
            None => alone.push(d),
        }
    }
    let mut out = Vec::new();
    for (dir, (sig, mut covered)) in guarded {
        covered.sort_by(|a, b| a.path.cmp(&b.path));
        // One covered path costs one `stat` either way.
        if covered.len() < 2 {
            alone.extend(covered);
            continue;
        }
        out.push(StatDep {
            path: dir,
            sig: Some(sig),
            covers: u32::try_from(covered.len()).unwrap_or(u32::MAX),
        });
        out.extend(covered);
    }
    alone.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(alone);
    out
}

/// One dependency per path: an exact one also says which inode it is, so it stands for an
/// identity one. Two that disagree about whether the path exists (it changed during the
/// compile) are both kept, and the entry is stale.
fn strongest_per_path(mut deps: Vec<StatDep>) -> Vec<StatDep> {
    deps.sort_by(|a, b| a.path.cmp(&b.path));
    deps.dedup();
    let mut out: Vec<StatDep> = Vec::with_capacity(deps.len());
    for d in deps {
        if let Some(last) = out.last_mut()
            && last.path == d.path
        {
            match (last.sig, d.sig) {
                (Some(a), Some(b)) if a.identity() == b.identity() => {
                    if a.is_identity() {
                        *last = d;
                    }
                    continue;
                }
                _ => {}
            }
        }
        out.push(d);
    }
    out
}

/// The `settled` argument of [`condense`] for a compile now: one second ago.
pub fn settled_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    now.saturating_sub(1_000_000_000)
}

/// What `stat` said about a path (following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Signature {
    pub fn of(meta: &fs::Metadata) -> Self {
        Signature {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }

    /// Only the device and inode (marked by `size == u64::MAX`).
    pub fn identity(self) -> Self {
        Signature {
            dev: self.dev,
            ino: self.ino,
            size: u64::MAX,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }

    fn is_identity(&self) -> bool {
        self.size == u64::MAX && self.mtime_ns == 0 && self.ctime_ns == 0
    }

    /// The signature of `path` now (`None` if it does not exist or cannot be seen).
    pub fn now(path: &str) -> Option<Signature> {
        fs::metadata(path).ok().map(|m| Signature::of(&m))
    }
}

/// The index entry for one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Hex key of the plan in `plans/`.
    pub key: String,
    pub deps: Vec<StatDep>,
    /// Environment variables the plan depends on (`$env.NAME` anchors) and their values at
    /// compile time (`None`: unset).
    pub env: Vec<(String, Option<String>)>,
}

impl Index {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.deps.len() * 64);
        out.extend_from_slice(INDEX_MAGIC);
        put_str(&mut out, &self.key);
        out.extend_from_slice(
            &u32::try_from(self.deps.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for d in &self.deps {
            put_str(&mut out, &d.path);
            match d.sig {
                None => out.push(0),
                Some(s) => {
                    out.push(if d.covers > 0 { 2 } else { 1 });
                    for v in [s.dev, s.ino, s.size] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    for v in [s.mtime_ns, s.ctime_ns] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    if d.covers > 0 {
                        out.extend_from_slice(&d.covers.to_le_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(
            &u32::try_from(self.env.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for (name, value) in &self.env {
            put_str(&mut out, name);
            match value {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_str(&mut out, v);
                }
            }
        }
        let sum = hash64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> Option<Index> {
        let mut r = IndexReader::open(buf)?;
        let key = r.key.to_string();
        let mut deps = Vec::with_capacity(r.deps_left.min(1 << 12));
        while let Some(d) = r.next_dep()? {
            deps.push(StatDep {
                path: d.path.to_string(),
                sig: d.sig,
                covers: d.covers,
            });
        }
        let mut env = Vec::new();
        while let Some((name, value)) = r.next_env()? {
            env.push((name.to_string(), value.map(str::to_string)));
        }
        r.finish()?;
        Some(Index { key, deps, env })
    }

    /// The plan key of an encoded index when it is well formed and fresh: every dependency
    /// still has the signature it had at compile time (an unchanged guard standing for the
    /// ones it covers, a changed one for nothing) and every environment variable the plan
    /// depends on still has its value. Read in place, without decoding every dependency (an
    /// index holds a hundred or more, most of them behind an unchanged guard) into owned
    /// strings.
    pub fn fresh_key(buf: &[u8]) -> Option<&str> {
        let mut r = IndexReader::open(buf)?;
        let mut skip = 0u32;
        let mut fresh = true;
        while let Some(d) = r.next_dep()? {
            if skip > 0 {
                skip -= 1;
            } else if !fresh {
                // Stale: the rest is only read to check the whole index is well formed.
            } else if d.covers > 0 {
                if d.sig.is_some() && Signature::now(d.path) == d.sig {
                    skip = d.covers;
                }
            } else if !still(d.path, d.sig) {
                fresh = false;
            }
        }
        while let Some((name, value)) = r.next_env()? {
            fresh = fresh && std::env::var(name).ok().as_deref() == value;
        }
        r.finish()?;
        fresh.then_some(r.key)
    }
}

/// A dependency as an encoded index holds it ([`StatDep`], borrowing its path).
struct DepRef<'a> {
    path: &'a str,
    sig: Option<Signature>,
    covers: u32,
}

/// Reads an encoded [`Index`] in place, in order: the key (checked with the checksum on
/// open), the dependencies, the environment, then [`IndexReader::finish`].
struct IndexReader<'a> {
    body: &'a [u8],
    pos: usize,
    key: &'a str,
    deps_left: usize,
    env_left: Option<usize>,
    /// The end of the furthest guard's range, in dependencies read so far plus to come.
    covered_to: usize,
    read: usize,
}

impl<'a> IndexReader<'a> {
    fn open(buf: &'a [u8]) -> Option<IndexReader<'a>> {
        if buf.len() < INDEX_MAGIC.len() + 8 || &buf[..8] != INDEX_MAGIC {
            return None;
        }
        let (body, sum) = buf.split_at(buf.len() - 8);
        if hash64(body).to_le_bytes() != sum {
            return None;
        }
        let mut pos = 8;
        let key = get_str_ref(body, &mut pos)?;
        let n = get_u32(body, &mut pos)? as usize;
        if n > 1 << 16 {
            return None;
        }
        Some(IndexReader {
            body,
            pos,
            key,
            deps_left: n,
            env_left: None,
            covered_to: 0,
            read: 0,
        })
    }

    /// The next dependency; `Some(None)` after the last, `None` when malformed.
    fn next_dep(&mut self) -> Option<Option<DepRef<'a>>> {
        if self.deps_left == 0 {
            // A guard covers only dependencies that follow it.
            return (self.covered_to <= self.read).then_some(None);
        }
        let (body, pos) = (self.body, &mut self.pos);
        let path = get_str_ref(body, pos)?;
        let tag = *body.get(*pos)?;
        *pos += 1;
        let sig = match tag {
            0 => None,
            1 | 2 => {
                let dev = get_u64(body, pos)?;
                let ino = get_u64(body, pos)?;
                let size = get_u64(body, pos)?;
                let mtime_ns = get_u64(body, pos)? as i64;
                let ctime_ns = get_u64(body, pos)? as i64;
                Some(Signature {
                    dev,
                    ino,
                    size,
                    mtime_ns,
                    ctime_ns,
                })
            }
            _ => return None,
        };
        let covers = if tag == 2 {
            get_u32(body, pos).filter(|&k| k > 0)?
        } else {
            0
        };
        self.deps_left -= 1;
        self.read += 1;
        if covers > 0 {
            self.covered_to = self.covered_to.max(self.read + covers as usize);
        }
        Some(Some(DepRef { path, sig, covers }))
    }

    /// The next environment variable and its value at compile time (after every
    /// dependency); `Some(None)` after the last, `None` when malformed.
    #[allow(clippy::type_complexity)]
    fn next_env(&mut self) -> Option<Option<(&'a str, Option<&'a str>)>> {
        if self.deps_left > 0 {
            return None;
        }
        let (body, pos) = (self.body, &mut self.pos);
        let left = match self.env_left {
            Some(n) => n,
            None => get_u32(body, pos)? as usize,
        };
        if left == 0 {
            self.env_left = Some(0);
            return Some(None);
        }
        let name = get_str_ref(body, pos)?;
        let value = match body.get(*pos) {
            Some(0) => {
                *pos += 1;
                None
            }
            Some(1) => {
                *pos += 1;
                Some(get_str_ref(body, pos)?)
            }
            _ => return None,
        };
        self.env_left = Some(left - 1);
        Some(Some((name, value)))
    }

    /// Whether the whole index was read, and nothing follows.
    fn finish(&self) -> Option<()> {
        (self.deps_left == 0 && self.env_left == Some(0) && self.pos == self.body.len())
            .then_some(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let v = b.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

fn get_u64(b: &[u8], pos: &mut usize) -> Option<u64> {
    let v = b.get(*pos..*pos + 8)?;
    *pos += 8;
    let mut a = [0u8; 8];
    a.copy_from_slice(v);
    Some(u64::from_le_bytes(a))
}

fn get_str_ref<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let n = get_u32(b, pos)? as usize;
    let v = b.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    std::str::from_utf8(v).ok()
}

/// The name of an invocation's index file: a hash of everything that decides which policy is
/// loaded and how it resolves, other than file contents (which the index's deps cover).
pub fn invocation_key(parts: &[&[u8]]) -> String {
    let mut buf = Vec::new();
    for p in parts {
        buf.extend_from_slice(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_le_bytes());
        buf.extend_from_slice(p);
    }
    format!("{:016x}", hash64(&buf))
}

/// The SHA-256 of an artifact, lower-case hex (the egress rule set's name and check).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The content key of an artifact.
pub fn content_key(bytes: &[u8]) -> String {
    format!("{:016x}", hash64(bytes))
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Cache { root }
    }

    pub fn index_path(&self, invocation: &str) -> PathBuf {
        self.root.join("index").join(invocation)
    }

    pub fn plan_path(&self, key: &str) -> PathBuf {
        self.root.join("plans").join(format!("{key}.plan"))
    }

    /// A Seatbelt profile (macOS): `plans/<key>.sb`, `<key>` the hash of its text.
    pub fn profile_path(&self, key: &str) -> PathBuf {
        self.root.join("plans").join(format!("{key}.sb"))
    }

    /// The macOS index entry of an invocation (which profile is current for it).
    pub fn macos_index_path(&self, invocation: &str) -> PathBuf {
        self.root.join("index").join(format!("{invocation}.macos"))
    }

    pub fn bwrap_path(&self, key: &str) -> PathBuf {
        self.root.join("plans").join(format!("{key}.bwrap"))
    }

    /// Where the egress rule set with this SHA-256 (lower-case hex) is stored.
    pub fn egress_path(&self, sha256: &str) -> PathBuf {
        self.root.join("egress").join(format!("{sha256}.json"))
    }

    /// Creates the cache directories with mode 0700 (and tightens them if they exist).
    pub fn ensure_dirs(&self) -> std::io::Result<()> {
        for dir in [
            self.root.clone(),
            self.root.join("plans"),
            self.root.join("index"),
            self.root.join("egress"),
        ] {
            match fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let meta = fs::metadata(&dir)?;
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `path` atomically with mode 0600: a reader sees the old file or the
    /// whole new one. Not flushed to disk (`fsync` cost a cache miss about 0.3 ms per file):
    /// after a crash a file may be empty or partial, and every artifact is checked before use
    /// (checksums and content keys; the bwrap files against the plan they are made from; the
    /// egress rule set by its SHA-256), so a damaged one means a compile, never a wrong run.
    pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a cached launch finds `idx` fresh: `fresh_key` of the encoded index, which
    /// names the plan when it is.
    fn fresh(idx: &Index) -> bool {
        let encoded = idx.encode();
        let key = Index::fresh_key(&encoded);
        assert!(key.is_none_or(|k| k == idx.key));
        key.is_some()
    }

    #[test]
    fn index_round_trip_and_corruption() {
        let idx = Index {
            key: "00ff".into(),
            env: vec![
                ("PROJECT".into(), Some("/p".into())),
                ("UNSET".into(), None),
            ],
            deps: vec![
                StatDep {
                    path: "/a".into(),
                    sig: None,
                    covers: 0,
                },
                StatDep {
                    path: "/b".into(),
                    sig: Some(Signature {
                        dev: 1,
                        ino: 2,
                        size: 3,
                        mtime_ns: 4,
                        ctime_ns: -5,
                    }),
                    covers: 0,
                },
            ],
        };
        let b = idx.encode();
        assert_eq!(Index::decode(&b), Some(idx));
        for n in 0..b.len() {
            assert_eq!(Index::decode(&b[..n]), None);
            assert_eq!(Index::fresh_key(&b[..n]), None);
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert_eq!(Index::decode(&c), None, "byte {i}");
            assert_eq!(Index::fresh_key(&c), None, "byte {i}");
        }
    }

    /// Back-dates folders, so that an entry made in the same clock tick as the set-up still
    /// changes their modification time (file times are coarse on older kernels).
    fn back_date(dirs: &[&Path]) {
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for d in dirs {
            fs::File::open(d).unwrap().set_modified(past).unwrap();
        }
    }

    fn index(deps: Vec<StatDep>) -> Index {
        Index {
            key: "k".into(),
            env: Vec::new(),
            deps,
        }
    }

    #[test]
    fn guards_stand_for_missing_paths_and_identities() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let ws = root.path().join("ws");
        fs::create_dir_all(home.join(".config")).unwrap();
        fs::create_dir_all(ws.join(".git")).unwrap();
        fs::write(ws.join(".git/config"), "").unwrap();
        back_date(&[&home, &home.join(".config"), &ws, &ws.join(".git")]);
        // Change times cannot be back-dated: "settled" is the end of the set-up.
        let settled = settled_now() + 2_000_000_000;
        let p = |path: &Path| path.to_string_lossy().into_owned();
        let missing = [
            p(&home.join(".bashrc")),
            p(&home.join(".zshrc")),
            p(&home.join(".claude/agents")),
            p(&home.join(".config/fish")),
            p(&ws.join(".bashrc")),
            p(&ws.join(".env")),
        ];
        let deps = || {
            let mut d: Vec<StatDep> = missing.iter().map(|m| StatDep::exact(m)).collect();
            d.push(StatDep::identity(&p(&home.join(".config"))));
            d.push(StatDep::identity(&p(&ws.join(".git"))));
            d.push(StatDep::identity(&p(&ws.join(".git/config"))));
            // An exact dependency also says which inode: it stands for the identity one.
            d.push(StatDep::identity(&p(&ws.join(".git/config"))));
            d
        };
        let condensed = condense(deps(), settled);
        let shape: Vec<(String, u32)> = condensed
            .iter()
            .map(|d| (d.path.clone(), d.covers))
            .collect();
        assert_eq!(
            shape,
            vec![
                (p(&home), 4),
                (p(&home.join(".bashrc")), 0),
                (p(&home.join(".claude/agents")), 0),
                (p(&home.join(".config")), 0),
                (p(&home.join(".zshrc")), 0),
                (p(&ws), 3),
                (p(&ws.join(".bashrc")), 0),
                (p(&ws.join(".env")), 0),
                (p(&ws.join(".git")), 0),
                // Alone under its folder (and so is .config/fish): one `stat` either way.
                (p(&home.join(".config/fish")), 0),
                (p(&ws.join(".git/config")), 0),
            ]
        );
        let idx = index(condensed);
        assert_eq!(Index::decode(&idx.encode()).as_ref(), Some(&idx));
        assert!(fresh(&idx));
        // An unrelated entry changes a guard's folder: what it covers is checked one by one,
        // and is still as it was.
        fs::write(ws.join("notes.md"), "x").unwrap();
        fs::write(home.join(".bash_history"), "x").unwrap();
        assert!(fresh(&idx));
        // Any of the covered paths appearing, however deep, or a covered folder replaced by
        // another, makes the plan stale.
        let appear = [
            (home.join(".zshrc"), false),
            (home.join(".claude/agents"), true),
            (home.join(".config/fish"), true),
            (ws.join(".env"), false),
        ];
        for (make, dir) in appear {
            back_date(&[&home, &home.join(".config"), &ws]);
            let idx = index(condense(deps(), settled));
            assert!(fresh(&idx));
            if dir {
                // A folder on the way changes nothing yet.
                fs::create_dir_all(make.parent().unwrap()).unwrap();
                assert!(fresh(&idx));
                fs::create_dir(&make).unwrap();
            } else {
                fs::write(&make, "x").unwrap();
            }
            assert!(!fresh(&idx), "{} appeared", make.display());
            if dir {
                fs::remove_dir(&make).unwrap();
                let _ = fs::remove_dir(home.join(".claude"));
            } else {
                fs::remove_file(&make).unwrap();
            }
        }
        back_date(&[&home, &home.join(".config"), &ws]);
        let idx = index(condense(deps(), settled));
        fs::rename(ws.join(".git"), ws.join(".git.old")).unwrap();
        fs::create_dir(ws.join(".git")).unwrap();
        fs::rename(ws.join(".git.old/config"), ws.join(".git/config")).unwrap();
        assert!(!fresh(&idx), "another .git folder");
        // A folder that has just changed guards nothing: its times could miss an entry made
        // in the same clock tick.
        let racy = condense(
            vec![StatDep::exact(&missing[0]), StatDep::exact(&missing[1])],
            settled_now(),
        );
        assert!(racy.iter().all(|d| d.covers == 0), "{racy:?}");
    }

    #[test]
    fn symlinks_keep_their_own_dependency() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::create_dir_all(root.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(root.path().join("elsewhere"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("nowhere"), dir.join("dangling")).unwrap();
        back_date(&[&dir]);
        let settled = settled_now() + 2_000_000_000;
        let p = |path: &Path| path.to_string_lossy().into_owned();
        let deps = vec![
            StatDep::identity(&p(&dir.join("real"))),
            StatDep::identity(&p(&dir.join("link"))),
            StatDep::exact(&p(&dir.join("dangling/x"))),
            StatDep::exact(&p(&dir.join("missing"))),
        ];
        let idx = index(condense(deps, settled));
        let covered: Vec<&str> = idx
            .deps
            .iter()
            .filter(|d| d.covers == 0)
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(idx.deps[0].covers, 2, "{:?}", idx.deps);
        assert_eq!(
            &covered[..2],
            &[p(&dir.join("missing")), p(&dir.join("real"))]
        );
        assert!(fresh(&idx));
        // The dangling symlink's target appearing leaves `d` unchanged: caught all the same.
        fs::create_dir_all(root.path().join("nowhere/x")).unwrap();
        assert!(!fresh(&idx));
    }

    #[test]
    fn a_guard_covers_only_what_follows_it() {
        let sig = Signature {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: 5,
        };
        let mut idx = index(vec![
            StatDep {
                path: "/g".into(),
                sig: Some(sig),
                covers: 1,
            },
            StatDep {
                path: "/g/a".into(),
                sig: None,
                covers: 0,
            },
        ]);
        assert!(Index::decode(&idx.encode()).is_some());
        idx.deps[0].covers = 2;
        assert_eq!(Index::decode(&idx.encode()), None);
        assert_eq!(Index::fresh_key(&idx.encode()), None);
    }

    #[test]
    fn freshness_follows_the_environment() {
        let path = std::env::var("PATH").ok();
        let index = |env: Vec<(String, Option<String>)>| Index {
            key: "k".into(),
            deps: Vec::new(),
            env,
        };
        assert!(fresh(&index(vec![("PATH".into(), path.clone())])));
        assert!(!fresh(&index(vec![(
            "PATH".into(),
            Some("/elsewhere".into())
        )])));
        let unset = "GREYWALL_TEST_SURELY_UNSET_VARIABLE";
        assert!(fresh(&index(vec![(unset.into(), None)])));
        assert!(!fresh(&index(vec![(unset.into(), Some("/x".into()))])));
    }

    #[test]
    fn freshness_follows_the_file_system() {
        let dir = std::env::temp_dir().join(format!("gw-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        let fs_ = f.to_string_lossy().into_owned();
        let idx = Index {
            key: "k".into(),
            env: Vec::new(),
            deps: vec![StatDep {
                path: fs_.clone(),
                sig: None,
                covers: 0,
            }],
        };
        assert!(fresh(&idx));
        fs::write(&f, "x").unwrap();
        assert!(!fresh(&idx), "a file that appeared makes the plan stale");
        let idx = Index {
            key: "k".into(),
            env: Vec::new(),
            deps: vec![StatDep::exact(&fs_)],
        };
        assert!(fresh(&idx));
        std::thread::sleep(std::time::Duration::from_millis(5));
        fs::write(&f, "xy").unwrap();
        assert!(!fresh(&idx), "a changed file makes the plan stale");
        let idx = Index {
            key: "k".into(),
            env: Vec::new(),
            deps: vec![StatDep::identity(&fs_)],
        };
        fs::write(&f, "xyz").unwrap();
        assert!(fresh(&idx), "identity deps ignore content");
        fs::remove_file(&f).unwrap();
        assert!(!fresh(&idx), "but not removal");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn sha256_of_known_inputs() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn atomic_write_and_modes() {
        let dir = std::env::temp_dir().join(format!("gw-cache-modes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = Cache::new(dir.join("greywall"));
        cache.ensure_dirs().unwrap();
        assert_eq!(
            fs::metadata(&cache.root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let p = cache.plan_path("abc");
        Cache::write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
