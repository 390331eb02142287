//! Golden files for the Linux backends: every shipped template, resolved against a fixture
//! file system, compiled to a launch plan and a bwrap argument vector.
//!
//! On drift the test fails with a diff hint; `GREYWALL_BLESS=1 cargo test -p
//! greywall-compiler --test golden_linux` rewrites the files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use greywall_compiler::backend::{bwrap, linux};
use greywall_compiler::cache::sha256_hex;
use greywall_compiler::load::{Input, load};
use greywall_compiler::model::NetworkMode;
use greywall_compiler::resolve::{Dep, ResolveEnv, resolve};
use greywall_compiler::templates::TEMPLATES;

/// A small machine: system directories, a home with credentials and caches, and a git
/// workspace with a secret `.env` and existing hooks.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in [
        "usr/bin",
        "usr/lib",
        "etc",
        "bin",
        "lib",
        "lib64",
        "opt",
        "proc",
        "sys",
        "dev/pts",
        "dev/shm",
        "run/user/1000",
        "var/lib",
        "var/cache",
        "tmp",
        "var/run",
        "home/user/.ssh",
        "home/user/.aws",
        "home/user/.config/gh",
        "home/user/.config/gcloud",
        "home/user/.cache/greywall",
        "home/user/.cargo/registry",
        "home/user/.cargo/bin",
        "home/user/.rustup",
        "home/user/.npm/_cacache",
        "home/user/.claude",
        "home/user/.local/bin",
        "home/user/project/.git/hooks",
        "home/user/project/src",
        "home/user/project/.vscode",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "dev/null",
        "dev/zero",
        "dev/tty",
        "dev/urandom",
        "home/user/.ssh/id_ed25519",
        "home/user/.ssh/config",
        "home/user/.aws/credentials",
        "home/user/.config/gh/hosts.yml",
        "home/user/.npmrc",
        "home/user/.gitconfig",
        "home/user/.bashrc",
        "home/user/.claude.json",
        "home/user/.cargo/credentials.toml",
        "home/user/project/.git/config",
        "home/user/project/.git/hooks/pre-commit.sample",
        "home/user/project/.env",
        "home/user/project/server.key",
        "home/user/project/src/main.rs",
        "home/user/project/greywall.json",
        "var/run/docker.sock",
    ] {
        std::fs::write(root.join(f), "").unwrap();
    }
    dir
}

fn render(name: &str, root: &Path) -> String {
    let loaded = load(&Input::Template(name.to_string()));
    let policy = loaded.policy.clone().expect("shipped templates load");
    let env = ResolveEnv {
        root: root.to_path_buf(),
        cwd: PathBuf::from("/home/user/project"),
        home: PathBuf::from("/home/user"),
        config_dir: Some(PathBuf::from("/home/user/.config/greywall")),
        cache_dir: Some(PathBuf::from("/home/user/.cache/greywall")),
        runtime_dir: Some(PathBuf::from("/run/user/1000")),
        policy_files: vec![PathBuf::from("/home/user/project/greywall.json")],
    };
    let resolved = resolve(&policy, &env);
    let kernel = linux::KernelFacts {
        landlock_abi: 7,
        audit_arch: 0xC000_003E,
    };
    let mut plan = linux::plan(&resolved, &kernel, Vec::new());
    if policy.network.mode() == NetworkMode::Filtered {
        let bytes = greywall_compiler::egress::rules(&policy, &loaded.sources).to_bytes();
        let sha256 = sha256_hex(&bytes);
        let ruleset = linux::RulesetRef {
            path: format!("/home/user/.cache/greywall/egress/{sha256}.json"),
            sha256,
        };
        plan = linux::with_egress(plan, linux::egress(&policy.network, ruleset));
    }
    let mut out = format!("# template {name}\n{plan}");
    out.push_str("bwrap\n");
    for a in bwrap::argv(&plan) {
        out.push_str(&format!("  {a}\n"));
    }
    out.push_str("notes\n");
    for n in &resolved.notes {
        out.push_str(&format!("  {n}\n"));
    }
    out.push_str("protected paths missing at compile time (creation refused)\n");
    for p in &resolved.unprotected_new {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

#[test]
fn linux_plans_match_golden_files() {
    let fx = fixture();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/linux");
    let bless = std::env::var_os("GREYWALL_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for t in TEMPLATES {
        let got = render(t.name, fx.path());
        let path = dir.join(format!("{}.txt", t.name));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            stale.push(format!("--- {}\n{}", path.display(), diff(&want, &got)));
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ; if the change is intended run\n  GREYWALL_BLESS=1 cargo test -p greywall-compiler --test golden_linux\n{}",
        stale.join("\n")
    );
}

/// A line diff good enough to see what moved.
fn diff(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for l in &w {
        if !g.contains(l) {
            out.push_str(&format!("- {l}\n"));
        }
    }
    for l in &g {
        if !w.contains(l) {
            out.push_str(&format!("+ {l}\n"));
        }
    }
    out
}

#[test]
fn code_template_protects_what_it_must() {
    let fx = fixture();
    let text = render("code", fx.path());
    // Credentials hidden, secrets hidden, git hooks and config read-only, docker socket hidden.
    for needle in [
        "hide-dir /home/user/.aws",
        "hide-file /home/user/.ssh/id_ed25519",
        "hide-dir /home/user/.config/gh",
        "hide-file /home/user/project/.env",
        "hide-file /var/run/docker.sock",
        "read-only /home/user/project/.git/hooks",
        "read-only /home/user/project/.git/config",
        "read-only /home/user/project/.vscode",
        "read-only /home/user/project/greywall.json",
        "read-only /home/user/.cache/greywall",
        "read-only /home/user/project/server.key",
        "read+write /home/user/project",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // The workspace's .mcp.json does not exist: the plan says so instead of pretending.
    assert!(text.contains("/home/user/project/.mcp.json"), "{text}");
}

#[test]
fn default_deny_read_never_grants_credential_folders() {
    let fx = fixture();
    let text = render("code-strict", fx.path());
    for forbidden in [
        "read /home/user\n",
        "read /home/user/.config\n",
        "read /home/user/.cargo\n",
        "read /home/user/.ssh",
    ] {
        assert!(!text.contains(forbidden), "`{forbidden}` granted:\n{text}");
    }
    assert!(text.contains("read /home/user/.cargo/bin"), "{text}");
}

/// The create-deny rules of a policy given as text, resolved against the fixture.
fn create_deny(fx: &Path, text: &str) -> greywall_compiler::plan::CreateDeny {
    let loaded = load(&Input::Text {
        name: "policy.json".into(),
        text: text.into(),
        dir: PathBuf::from("/"),
    });
    let policy = loaded.policy.expect("the test policy loads");
    let env = ResolveEnv {
        root: fx.to_path_buf(),
        cwd: PathBuf::from("/home/user/project"),
        home: PathBuf::from("/home/user"),
        config_dir: Some(PathBuf::from("/home/user/.config/greywall")),
        cache_dir: Some(PathBuf::from("/home/user/.cache/greywall")),
        runtime_dir: None,
        policy_files: vec![],
    };
    resolve(&policy, &env).create_deny
}

fn has_name(c: &greywall_compiler::plan::CreateDeny, root: &str, seq: &str) -> bool {
    c.names.iter().any(|(r, s)| r == root && s.join("/") == seq)
}

#[test]
fn create_deny_reaches_only_writable_roots() {
    let fx = fixture();
    // Nothing writable but the private /tmp: no rules about the workspace or the home.
    let none = create_deny(fx.path(), r#"{"filesystem": {"allowWrite": []}}"#);
    assert!(none.names.is_empty(), "{none:?}");
    assert!(none.paths.iter().all(|p| p.starts_with("/tmp")), "{none:?}");

    // A writable workspace: names below it, the workspace repository's protected paths
    // (existing: read-only mounts that must stay in place), globs made absolute.
    let ws = create_deny(
        fx.path(),
        r#"{"filesystem": {"allowWrite": ["."], "denyWrite": ["**/*.key", "missing.pem", "~/.ssh/*"]}}"#,
    );
    for (root, seq) in [
        ("/home/user/project", ".git/hooks"),
        ("/home/user/project", ".mcp.json"),
        ("/home/user/project", ".env"),
        ("/home/user/project", "greywall.json"),
    ] {
        assert!(has_name(&ws, root, seq), "{root} {seq}: {ws:?}");
    }
    assert!(!ws.names.iter().any(|(r, _)| r == "/home/user"), "{ws:?}");
    for p in [
        "/home/user/project/.git/config",
        "/home/user/project/.git/hooks",
        "/home/user/project/missing.pem",
    ] {
        assert!(ws.paths.contains(&p.to_string()), "{p}: {ws:?}");
    }
    assert_eq!(ws.globs, ["/home/user/project/**/*.key"]);

    // A writable home: names below it too, and the working directory's own secrets.
    let home = create_deny(fx.path(), r#"{"filesystem": {"allowWrite": ["~"]}}"#);
    assert!(has_name(&home, "/home/user", ".bashrc"), "{home:?}");
    assert!(has_name(&home, "/home/user", ".git/hooks"), "{home:?}");
    assert!(has_name(&home, "/home/user/project", ".env"), "{home:?}");
    assert!(
        !has_name(&home, "/home/user/project", ".bashrc"),
        "covered by the home's rules: {home:?}"
    );
    for p in [
        "/home/user/.ssh",
        "/home/user/.config/greywall",
        "/home/user/.greywall.json",
    ] {
        assert!(home.paths.contains(&p.to_string()), "{p}: {home:?}");
    }
}

#[test]
fn create_deny_paths_go_through_symlinked_folders() {
    let fx = fixture();
    let real = fx.path().join("home/user/dotfiles/config");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(fx.path().join("home/user/proj2")).unwrap();
    // ~/.config is a symlink (as dotfile managers make it): the kernel creates
    // ~/.config/autostart in the real folder.
    let cfg = fx.path().join("home/user/.config");
    std::fs::rename(&cfg, fx.path().join("home/user/config-old")).unwrap();
    std::os::unix::fs::symlink(&real, &cfg).unwrap();
    let c = create_deny(
        fx.path(),
        r#"{"filesystem": {"allowWrite": ["~/.config"]}}"#,
    );
    assert!(
        c.paths
            .contains(&"/home/user/dotfiles/config/autostart".to_string()),
        "{c:?}"
    );
}

#[test]
fn a_home_below_a_system_folder_stays_unreadable() {
    let fx = fixture();
    let root = fx.path();
    for d in ["var/lib/jenkins/.ssh", "var/lib/dpkg"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/jenkins/.ssh/id_rsa"), "").unwrap();
    let loaded = load(&Input::Template("default".into()));
    let env = ResolveEnv {
        root: root.to_path_buf(),
        cwd: PathBuf::from("/home/user/project"),
        home: PathBuf::from("/var/lib/jenkins"),
        config_dir: None,
        cache_dir: None,
        runtime_dir: None,
        policy_files: vec![],
    };
    let r = resolve(&loaded.policy.unwrap(), &env);
    assert!(
        !r.read
            .iter()
            .any(|p| p == "/var/lib" || p == "/var/lib/jenkins"),
        "{:?}",
        r.read
    );
    assert!(r.read.iter().any(|p| p == "/var/lib/dpkg"), "{:?}", r.read);
}

/// Every `**` rule walks the same tree: each folder is listed once per compile (one
/// dependency each), and every rule still finds its matches.
#[test]
fn each_folder_is_listed_once_however_many_globs_walk_it() {
    let fx = fixture();
    let root = fx.path();
    for (rel, text) in [
        ("home/user/project/a/b/server.pem", ""),
        ("home/user/project/a/b/c/id.key", ""),
        ("home/user/project/x/.env.local", ""),
    ] {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), text).unwrap();
    }
    let loaded = load(&Input::Text {
        name: "policy.json".into(),
        text: r#"{"filesystem": {"allowWrite": ["."],
            "denyWrite": ["**/*.pem", "**/*.key", "**/.env.*"],
            "denyRead": ["**/*.key"]}}"#
            .into(),
        dir: PathBuf::from("/"),
    });
    let env = ResolveEnv {
        root: root.to_path_buf(),
        cwd: PathBuf::from("/home/user/project"),
        home: PathBuf::from("/home/user"),
        config_dir: None,
        cache_dir: None,
        runtime_dir: None,
        policy_files: vec![],
    };
    let r = resolve(&loaded.policy.unwrap(), &env);
    let listings: Vec<&String> = r
        .deps
        .iter()
        .filter_map(|d| match d {
            Dep::Listing { path } => Some(path),
            Dep::Path { .. } => None,
        })
        .collect();
    let mut unique = listings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(listings.len(), unique.len(), "{listings:#?}");
    assert!(
        listings
            .iter()
            .any(|p| p.ends_with("/home/user/project/a/b/c")),
        "{listings:#?}"
    );
    for found in [
        "/home/user/project/a/b/server.pem",
        "/home/user/project/x/.env.local",
    ] {
        assert!(
            r.read_only.iter().any(|p| p == found),
            "{found}: {:?}",
            r.read_only
        );
    }
    assert!(
        r.hide
            .iter()
            .any(|(p, _)| p == "/home/user/project/a/b/c/id.key"),
        "{:?}",
        r.hide
    );
}
