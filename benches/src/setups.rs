//! Names of the setups the suite compares, shared by the runner and the report.

/// The command run directly: the baseline of every ratio.
pub const BARE: &str = "bare";
/// `greywall exec --cached` with the built-in `default` policy (filesystem only, no network).
pub const GREYWALL_CACHED: &str = "greywall exec --cached";
/// The same with the namespace pool off: the launcher creates every namespace itself.
pub const GREYWALL_NO_POOL: &str = "greywall exec --cached, no namespace pool";
/// `greywall exec --cached` with a policy that allows network through proxyd.
pub const GREYWALL_NETWORK: &str = "greywall exec --cached, network policy";
/// `greywall exec --cached` right after the policy file was edited: a cache miss, so a compile.
pub const GREYWALL_EDITED: &str = "greywall exec, after a policy edit";
/// `greywall exec --cached --backend bwrap`: bwrap builds the namespaces and mounts.
pub const GREYWALL_BWRAP: &str = "greywall exec --cached --backend bwrap";
/// The same with the network policy: the bridge prepared outside bwrap, bound inside.
pub const GREYWALL_BWRAP_NETWORK: &str = "greywall exec --cached --backend bwrap, network policy";
pub const BWRAP_MINIMAL: &str = "bwrap, minimal";
pub const BWRAP_POLICY30: &str = "bwrap, 30-entry policy";
pub const C_PROBE: &str = "C probe (static; userns+netns+Landlock)";
pub const SRT: &str = "srt";
pub const CODEX: &str = "codex sandbox";
