//! `greywall-tools`: the policy compiler and the commands around it, which the `greywall`
//! launcher executes for everything it does not do itself (see the crate's documentation).

fn main() -> std::process::ExitCode {
    greywall::tools_main()
}
