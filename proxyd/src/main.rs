//! `greywall-proxyd`: the egress daemon (HTTP CONNECT, plain HTTP and SOCKS5, filtered by the
//! compiled policy's network rules).
//!
//! Not implemented yet: this binary only answers `--version` and `--help`, and refuses to run
//! as a proxy, so nothing can mistake it for a working egress filter.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => {
            println!("greywall-proxyd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("greywall-proxyd: greywall's egress proxy daemon (not implemented yet)");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "greywall-proxyd: the egress proxy is not implemented yet; refusing to start"
            );
            ExitCode::from(2)
        }
    }
}
