//! `greywall`, the launcher: see the crate's documentation.

fn main() -> std::process::ExitCode {
    greywall::launcher_main()
}
