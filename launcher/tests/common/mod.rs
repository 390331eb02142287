//! What the launcher's kernel test suites share: saying loudly that a test cannot run here,
//! and finding processes by what `/proc` shows of them. Each suite uses part of it.
#![allow(dead_code, clippy::panic, clippy::unwrap_used)]

/// Whether `GREYWALL_REQUIRE_KERNEL=1` (CI): then a test that cannot run fails.
pub fn required() -> bool {
    std::env::var_os("GREYWALL_REQUIRE_KERNEL").is_some_and(|v| v == "1")
}

/// Says why a test does not run; fails it instead where the kernel is required.
pub fn skip(reason: &str) {
    if required() {
        panic!("GREYWALL_REQUIRE_KERNEL=1 but {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// Whether a launch that must work here (a sandboxed `true`) did; otherwise [`skip`]s with
/// what it printed.
pub fn launcher_runs(o: &std::process::Output) -> bool {
    if o.status.code() == Some(0) {
        return true;
    }
    skip(&format!(
        "the launcher cannot run here: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    ));
    false
}

/// A process as `/proc` shows it to anyone: its id, command line, name and parent.
pub struct Proc {
    pub pid: u32,
    pub argv: Vec<String>,
    pub name: String,
    pub parent: Option<u32>,
    /// Ended, not yet reaped.
    pub zombie: bool,
    /// Scheduling policy (`stat` field 41): 0 normal, 3 batch.
    pub policy: Option<u32>,
}

/// Every process this test can see (`cmdline` and `stat` are readable even for processes
/// that are not dumpable, such as greywall's supervisors).
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            // Field 3 (the state) first.
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            Some(Proc {
                pid,
                argv: cmdline
                    .split(|b| *b == 0)
                    .filter(|w| !w.is_empty())
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect(),
                name: stat[open + 1..close].to_string(),
                parent: fields.get(1).and_then(|p| p.parse().ok()),
                zombie: fields.first() == Some(&"Z"),
                policy: fields.get(38).and_then(|p| p.parse().ok()),
            })
        })
        .collect()
}

/// Whether process `pid` runs (a zombie, ended but not yet reaped, does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The script both "killed supervisor" tests run: it waits for a line, then tries to create
/// an ordinary file and a protected one.
pub const CREATE_AFTER_A_LINE: &str = "read line; echo x > plain && echo plain-ok; \
     echo x > .bashrc && echo rc-ok; echo end";

/// Kills `supervisor`, waits for it to end, then lets `child` (running
/// [`CREATE_AFTER_A_LINE`]) go on and returns the rest of its output.
pub fn kill_then_continue(
    supervisor: u32,
    child: &mut std::process::Child,
    out: &mut impl std::io::Read,
) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status();
    let start = std::time::Instant::now();
    while alive(supervisor) && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = std::io::Write::write_all(&mut stdin, b"go\n");
    }
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = child.wait();
    rest
}

/// Writes `text` to `path` (creating its folders) with permission bits `mode`.
pub fn write_file(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if mode & 0o111 != 0 {
        return install(None, text.as_bytes(), path, mode);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes an executable file (from the file `from`, or else `text`) through a child
/// `install`, so that no thread of this test process ever holds it open for writing: a child
/// another test thread forked at that moment would inherit the descriptor until it execs, and
/// running the file would then fail with `ETXTBSY` (CI hit this).
fn install(from: Option<&str>, text: &[u8], to: &std::path::Path, mode: u32) {
    use std::io::Write;
    let mut child = std::process::Command::new("install")
        .arg("-D")
        .arg(format!("-m{mode:o}"))
        .arg(from.unwrap_or("/dev/stdin"))
        .arg(to)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run install");
    let mut stdin = child.stdin.take().unwrap();
    if from.is_none() {
        stdin.write_all(text).unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "install {to:?} failed: {status}");
}

/// Copies the executable `from` to `to` (creating its folders), mode 0755, without this
/// process ever holding the copy open for writing (see [`install`]).
pub fn copy_exe(from: &str, to: &std::path::Path) {
    install(Some(from), &[], to, 0o755);
}

/// Whether bubblewrap is installed where greywall looks for it (never through `$PATH`).
pub fn bwrap_installed() -> bool {
    ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}
