//! The greywall.json input types, exactly as users write them.
//!
//! These types are the single source of truth for the file format: the decoder (which reports
//! every problem with its position) and the JSON Schema (`schema/greywall.schema.json`, via
//! schemars) are both generated from the field lists below by [`input_struct!`], so the two can
//! never disagree about which keys exist.
//!
//! Values are kept as spanned strings here; the loader turns them into typed patterns and
//! reports invalid ones.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::diagnostic::{Code, Diagnostic};
use crate::jsonc::{Member, Node, Value};
use crate::source::Span;
use crate::suggest::did_you_mean;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A list of strings as written.
pub type StringList = Vec<Spanned<String>>;

/// Decoding state: collected diagnostics and the key path being decoded.
#[derive(Debug, Default)]
pub struct DecodeCx {
    pub diags: Vec<Diagnostic>,
    path: Vec<String>,
}

impl DecodeCx {
    fn path_str(&self) -> String {
        if self.path.is_empty() {
            "the top level".to_string()
        } else {
            format!("`{}`", self.path.join("."))
        }
    }

    fn wrong_type(&mut self, node: &Node, expected: &str) {
        let mut d = Diagnostic::new(
            Code::WrongType,
            format!(
                "{} must be {expected}, found {}",
                self.path_str(),
                node.value.type_name()
            ),
        )
        .at(node.span)
        .label(format!("expected {expected}"));
        if expected.starts_with("an array") {
            if let Value::String(s) = &node.value {
                d = d.help(format!("wrap it in brackets: [{}]", quote(s)));
            }
        } else if expected == "a boolean"
            && let Value::String(s) = &node.value
            && (s == "true" || s == "false")
        {
            d = d.help(format!("write {s} without quotes"));
        }
        if matches!(node.value, Value::Null) && !self.path.is_empty() {
            d = d.help("remove the key to use the default");
        }
        self.diags.push(d);
    }

    fn unknown_key(&mut self, m: &Member, known: &[&str]) {
        let mut d = Diagnostic::new(
            Code::UnknownKey,
            format!("unknown key `{}` in {}", m.key, self.path_str()),
        )
        .at(m.key_span)
        .label("greywall does not know this key");
        if let Some(s) = did_you_mean(&m.key, known.iter().copied()) {
            d = d.help(format!("did you mean `{s}`?"));
        } else if let Some((section, key)) = elsewhere(&m.key) {
            d = d.help(format!("`{key}` belongs in `{section}`"));
        } else {
            d = d.help(format!("known keys here: {}", known.join(", ")));
        }
        if m.key == "devices" || m.key == "wslInterop" || m.key == "allowManagedDomainsOnly" {
            d = d
                .note("this is a setting of newer Fence releases that greywall does not implement");
        }
        self.diags.push(d);
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Finds the section (`network`, …) a key belongs to, for "belongs in" hints.
fn elsewhere(key: &str) -> Option<(&'static str, &'static str)> {
    for (section, keys) in SECTIONS {
        for k in *keys {
            if k.eq_ignore_ascii_case(key) {
                return Some((section, k));
            }
        }
    }
    None
}

/// Turns a JSON node into an input value, reporting problems to the context.
pub trait Decode: Sized {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self>;
}

impl Decode for Spanned<String> {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
        match &node.value {
            Value::String(s) => Some(Spanned {
                value: s.clone(),
                span: node.span,
            }),
            _ => {
                cx.wrong_type(node, "a string");
                None
            }
        }
    }
}

impl Decode for Spanned<bool> {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
        match &node.value {
            Value::Bool(b) => Some(Spanned {
                value: *b,
                span: node.span,
            }),
            _ => {
                cx.wrong_type(node, "a boolean");
                None
            }
        }
    }
}

impl Decode for Spanned<u16> {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
        match &node.value {
            Value::Number(text) => match text.parse::<u16>() {
                Ok(v) => Some(Spanned {
                    value: v,
                    span: node.span,
                }),
                Err(_) => {
                    cx.diags.push(
                        Diagnostic::new(
                            Code::InvalidNumber,
                            format!(
                                "{} must be a port number from 0 to 65535, found {text}",
                                cx.path_str()
                            ),
                        )
                        .at(node.span),
                    );
                    None
                }
            },
            _ => {
                cx.wrong_type(node, "a port number");
                None
            }
        }
    }
}

impl Decode for StringList {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
        let Value::Array(items) = &node.value else {
            cx.wrong_type(node, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match &item.value {
                Value::String(s) => out.push(Spanned {
                    value: s.clone(),
                    span: item.span,
                }),
                _ => cx.wrong_type(item, "a string (in an array of strings)"),
            }
        }
        Some(out)
    }
}

/// Declares an input struct: the Rust type (with its JSON Schema) and its decoder.
macro_rules! input_struct {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $key:literal => $field:ident : $ty:ty,
            )*
        }
    ) => {
        #[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
        #[schemars(deny_unknown_fields)]
        $(#[$smeta])*
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[schemars(rename = $key)]
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// The keys this object accepts.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl Decode for $name {
            fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
                let Value::Object(members) = &node.value else {
                    cx.wrong_type(node, "an object");
                    return None;
                };
                let mut out = Self::default();
                for m in members {
                    match m.key.as_str() {
                        $(
                            $key => {
                                cx.path.push($key.to_string());
                                out.$field = <$ty as Decode>::decode(&m.value, cx);
                                cx.path.pop();
                            }
                        )*
                        _ => cx.unknown_key(m, Self::KEYS),
                    }
                }
                Some(out)
            }
        }
    };
}

input_struct! {
    /// A greywall policy file (`greywall.json`). Accepts every setting of Greywall and Fence.
    /// Comments (`//`, `/* */`) and trailing commas are allowed. Unknown keys are errors.
    #[schemars(title = "greywall policy", example = example_config())]
    pub struct ConfigFile {
        /// The JSON Schema this file follows, for editors. Greywall does not read it.
        #[schemars(example = &"https://greywall.dev/schema/greywall.schema.json")]
        "$schema" => schema: Spanned<String>,
        /// A policy to build on: a built-in template name (`code`, `code-strict`, …) or a path to
        /// another greywall.json, relative to this file. Lists are appended (a `!entry` removes
        /// an inherited entry), booleans are OR-ed, other values are overridden. At most 10 levels.
        #[schemars(example = &"code", example = &"../shared/greywall.json")]
        "extends" => extends: Spanned<String>,
        /// Network egress. Without any allowed domain the sandbox has no network at all.
        #[schemars(example = example_network())]
        "network" => network: NetworkConfig,
        /// What the sandbox may read and write.
        #[schemars(example = example_filesystem())]
        "filesystem" => filesystem: FilesystemConfig,
        /// Commands refused before the sandbox starts (a safety net, not a boundary).
        #[schemars(example = example_command())]
        "command" => command: CommandConfig,
        /// Which hosts and remote commands `ssh` may reach.
        #[schemars(example = example_ssh())]
        "ssh" => ssh: SshConfig,
        /// Allow allocating pseudo-terminals (`/dev/ptmx`). Needed by interactive tools such as
        /// `script`, `expect` and terminal multiplexers.
        #[schemars(example = true)]
        "allowPty" => allow_pty: Spanned<bool>,
        /// Which environment variables reach the sandbox.
        #[schemars(example = example_environment())]
        "environment" => environment: EnvironmentConfig,
        /// Sections a platform may only approximate: where a rule in one cannot be enforced,
        /// greywall warns (W690) and leaves it out instead of refusing the policy.
        #[schemars(example = &EX14)]
        "bestEffort" => best_effort: StringList,
        /// Rules that apply on Linux only (same sections as the top level).
        #[schemars(example = example_linux())]
        "linux" => linux: PlatformConfig,
        /// Rules that apply on macOS only (same sections as the top level).
        #[schemars(example = example_macos())]
        "macos" => macos: PlatformConfig,
        /// Named variants of this policy, chosen with `--profile NAME`; each is applied on top
        /// of the rest of the file.
        #[schemars(example = example_profiles())]
        "profiles" => profiles: Profiles,
        /// Policy tests, checked by `greywall test`, `lint` and `compile`:
        /// `allow|deny read|write|run|connect TARGET`.
        #[schemars(example = &EX15)]
        "expect" => expect: StringList,
    }
}

input_struct! {
    /// Rules for one platform (`linux`, `macos`): the sections of the top level.
    pub struct PlatformConfig {
        /// Network rules for this platform.
        #[schemars(example = example_network())]
        "network" => network: NetworkConfig,
        /// Filesystem rules for this platform.
        #[schemars(example = example_filesystem())]
        "filesystem" => filesystem: FilesystemConfig,
        /// Command rules for this platform.
        #[schemars(example = example_command())]
        "command" => command: CommandConfig,
        /// SSH rules for this platform.
        #[schemars(example = example_ssh())]
        "ssh" => ssh: SshConfig,
        /// Environment rules for this platform.
        #[schemars(example = example_environment())]
        "environment" => environment: EnvironmentConfig,
        /// Allow pseudo-terminals on this platform.
        #[schemars(example = true)]
        "allowPty" => allow_pty: Spanned<bool>,
        /// Best-effort sections on this platform.
        #[schemars(example = &EX14)]
        "bestEffort" => best_effort: StringList,
    }
}

input_struct! {
    /// One named profile: the sections of the top level, applied on top of the file.
    pub struct ProfileConfig {
        /// Network rules of the profile.
        #[schemars(example = example_network())]
        "network" => network: NetworkConfig,
        /// Filesystem rules of the profile.
        #[schemars(example = example_filesystem())]
        "filesystem" => filesystem: FilesystemConfig,
        /// Command rules of the profile.
        #[schemars(example = example_command())]
        "command" => command: CommandConfig,
        /// SSH rules of the profile.
        #[schemars(example = example_ssh())]
        "ssh" => ssh: SshConfig,
        /// Environment rules of the profile.
        #[schemars(example = example_environment())]
        "environment" => environment: EnvironmentConfig,
        /// Allow pseudo-terminals in the profile.
        #[schemars(example = true)]
        "allowPty" => allow_pty: Spanned<bool>,
        /// Best-effort sections of the profile.
        #[schemars(example = &EX14)]
        "bestEffort" => best_effort: StringList,
        /// Linux-only rules of the profile.
        #[schemars(example = example_linux())]
        "linux" => linux: PlatformConfig,
        /// macOS-only rules of the profile.
        #[schemars(example = example_macos())]
        "macos" => macos: PlatformConfig,
    }
}

input_struct! {
    /// Environment variables. Every variable of the caller passes unless a `drop` pattern
    /// matches it and no `pass` pattern does; `set` entries are applied last.
    pub struct EnvironmentConfig {
        /// Variables kept even when a `drop` pattern matches them (`NAME` or `PREFIX*`).
        #[schemars(example = &EX16)]
        "pass" => pass: StringList,
        /// Variables removed (`NAME` or `PREFIX*`; `*` removes all but `pass`).
        #[schemars(example = &EX17)]
        "drop" => drop: StringList,
        /// Variables set in the sandbox, `NAME=value`.
        #[schemars(example = &EX18)]
        "set" => set: StringList,
    }
}

/// `profiles`: profile name to profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles(pub Vec<(Spanned<String>, ProfileConfig)>);

impl JsonSchema for Profiles {
    fn schema_name() -> Cow<'static, str> {
        "Profiles".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<ProfileConfig>();
        schemars::json_schema!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z][A-Za-z0-9_-]*$" },
            "additionalProperties": inner,
        })
    }
}

impl Decode for Profiles {
    fn decode(node: &Node, cx: &mut DecodeCx) -> Option<Self> {
        let Value::Object(members) = &node.value else {
            cx.wrong_type(node, "an object of profiles");
            return None;
        };
        let mut out = Vec::new();
        for m in members {
            let ok = m
                .key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && m.key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                cx.diags.push(
                    Diagnostic::new(
                        Code::WrongType,
                        format!("`{}` is not a profile name", m.key),
                    )
                    .at(m.key_span)
                    .help("profile names are letters, digits, `-` and `_`, starting with a letter"),
                );
                continue;
            }
            cx.path.push(format!("profiles.{}", m.key));
            let p = ProfileConfig::decode(&m.value, cx);
            cx.path.pop();
            if let Some(p) = p {
                out.push((
                    Spanned {
                        value: m.key.clone(),
                        span: m.key_span,
                    },
                    p,
                ));
            }
        }
        Some(Profiles(out))
    }
}

input_struct! {
    /// Network egress settings. Traffic leaves only through greywall's proxy, which checks each
    /// destination against these lists; direct connections fail.
    pub struct NetworkConfig {
        /// Domains the sandbox may reach through the proxy. `example.com` is exactly that host,
        /// `*.example.com` its subdomains (not the apex), `**.example.com` both. IP addresses and
        /// CIDR ranges are accepted; `:PORT` limits an entry to one port (`github.com:22`,
        /// `[::1]:8080`). `"*"` turns on relaxed mode (no isolation; avoid).
        #[schemars(example = &EX1)]
        "allowedDomains" => allowed_domains: StringList,
        /// Domains always refused, even when an allowed pattern matches them. Deny wins.
        #[schemars(example = &EX2)]
        "deniedDomains" => denied_domains: StringList,
        /// Unix socket paths the sandbox may connect to (for example an SSH agent socket).
        #[schemars(example = &EX3)]
        "allowUnixSockets" => allow_unix_sockets: StringList,
        /// Allow connecting to any Unix socket the sandbox can see.
        #[schemars(example = false)]
        "allowAllUnixSockets" => allow_all_unix_sockets: Spanned<bool>,
        /// Allow servers inside the sandbox to listen on loopback ports.
        #[schemars(example = true)]
        "allowLocalBinding" => allow_local_binding: Spanned<bool>,
        /// Allow connecting to services on the host's loopback interface. Defaults to the value
        /// of `allowLocalBinding`.
        #[schemars(example = true)]
        "allowLocalOutbound" => allow_local_outbound: Spanned<bool>,
        /// The loopback port, inside the sandbox, where the HTTP proxy listens (`HTTP_PROXY`).
        /// 0 or absent: 3128.
        #[schemars(example = 3128, range(max = 65535))]
        "httpProxyPort" => http_proxy_port: Spanned<u16>,
        /// The loopback port, inside the sandbox, where the SOCKS5 proxy listens (`ALL_PROXY`).
        /// 0 or absent: 1080.
        #[schemars(example = 1080, range(max = 65535))]
        "socksProxyPort" => socks_proxy_port: Spanned<u16>,
        /// An upstream SOCKS5 proxy that greywall's proxy forwards allowed traffic to
        /// (`socks5://` or `socks5h://`, with host and port), for example greyproxy.
        #[schemars(example = &"socks5h://localhost:43052")]
        "proxyUrl" => proxy_url: Spanned<String>,
        /// Greywall's `HTTP(S)_PROXY` on macOS (`http://` or `https://`, with host and port).
        /// Not used by greywall, whose proxy chains only to `proxyUrl`; set alone with
        /// `allowedDomains`, launches fail rather than connect around it.
        #[schemars(example = &"http://localhost:43051")]
        "httpProxyUrl" => http_proxy_url: Spanned<String>,
        /// The DNS server (`host:port`) that answers the sandbox's DNS queries for allowed
        /// names. Absent: greywall-proxyd's system resolver.
        #[schemars(example = &"127.0.0.1:53")]
        "dnsAddr" => dns_addr: Spanned<String>,
    }
}

input_struct! {
    /// Filesystem access. Writes are denied unless allowed; reads are denied unless allowed
    /// when `defaultDenyRead` is on (the default).
    pub struct FilesystemConfig {
        /// Deny reads everywhere except a curated list of system and toolchain paths (which
        /// excludes credentials) plus `allowRead`. Default: true. Set false to allow reads
        /// everywhere except `denyRead`.
        #[schemars(example = true)]
        "defaultDenyRead" => default_deny_read: Spanned<bool>,
        /// Extra paths the sandbox may read when `defaultDenyRead` is on. `~` is the home
        /// directory; relative paths and globs are relative to the working directory.
        #[schemars(example = &EX4)]
        "allowRead" => allow_read: StringList,
        /// Paths the sandbox may never read (directories appear empty). Wins over `allowRead`.
        #[schemars(example = &EX5)]
        "denyRead" => deny_read: StringList,
        /// Paths the sandbox may write. Globs: `*`, `?`, `[a-z]`, `**`.
        #[schemars(example = &EX6)]
        "allowWrite" => allow_write: StringList,
        /// Paths the sandbox may never write, even inside `allowWrite`; also holds for files
        /// created later.
        #[schemars(example = &EX7)]
        "denyWrite" => deny_write: StringList,
        /// Let the sandbox write `.git/config` (it is protected by default because it can run
        /// commands through `core.fsmonitor` and friends).
        #[schemars(example = false)]
        "allowGitConfig" => allow_git_config: Spanned<bool>,
    }
}

input_struct! {
    /// Command prefixes checked before the sandbox starts. Matching is by whole words
    /// (`git push` matches `git push origin` but not `git pushall`), through `&&`, `;`, pipes
    /// and `sh -c`. This is a convenience, not a security boundary.
    pub struct CommandConfig {
        /// Command prefixes to refuse.
        #[schemars(example = &EX8)]
        "deny" => deny: StringList,
        /// Command prefixes allowed even when a deny entry or the default list matches.
        #[schemars(example = &EX9)]
        "allow" => allow: StringList,
        /// Also refuse greywall's built-in list of dangerous commands (`shutdown`, `mkfs`,
        /// `insmod`, `rm -rf /`, …). Default: true.
        #[schemars(example = true)]
        "useDefaults" => use_defaults: Spanned<bool>,
    }
}

input_struct! {
    /// SSH policy. Active when `allowedHosts` or `deniedHosts` is non-empty.
    pub struct SshConfig {
        /// Hosts `ssh` may connect to (globs with `*`, `?`).
        #[schemars(example = &EX10)]
        "allowedHosts" => allowed_hosts: StringList,
        /// Hosts `ssh` may never connect to. Wins over `allowedHosts`.
        #[schemars(example = &EX11)]
        "deniedHosts" => denied_hosts: StringList,
        /// Remote command prefixes allowed over ssh.
        #[schemars(example = &EX12)]
        "allowedCommands" => allowed_commands: StringList,
        /// Remote command prefixes refused over ssh.
        #[schemars(example = &EX13)]
        "deniedCommands" => denied_commands: StringList,
        /// Allow every remote command except `deniedCommands`.
        #[schemars(example = false)]
        "allowAllCommands" => allow_all_commands: Spanned<bool>,
        /// Also apply `command.deny` and the default list to remote commands.
        #[schemars(example = true)]
        "inheritDeny" => inherit_deny: Spanned<bool>,
    }
}

// Examples shown by editors.
const EX1: [&str; 3] = [
    "github.com",
    "*.githubusercontent.com",
    "registry.npmjs.org",
];
const EX2: [&str; 2] = ["169.254.169.254", "*.sentry.io"];
const EX3: [&str; 1] = ["/run/user/1000/ssh-agent.socket"];
const EX4: [&str; 2] = [".", "~/.gitconfig"];
const EX5: [&str; 2] = ["~/.ssh", "~/.aws"];
const EX6: [&str; 2] = [".", "~/.cache"];
const EX7: [&str; 2] = [".env", "**/*.pem"];
const EX8: [&str; 2] = ["git push", "npm publish"];
const EX9: [&str; 1] = ["git push origin docs"];
const EX10: [&str; 2] = ["github.com", "*.internal.example.com"];
const EX11: [&str; 1] = ["prod-*"];
const EX12: [&str; 2] = ["git-upload-pack", "git-receive-pack"];
const EX13: [&str; 1] = ["rm -rf"];
const EX14: [&str; 1] = ["ssh"];
const EX15: [&str; 2] = ["deny read ~/.ssh/id_rsa", "allow write ./src/main.rs"];
const EX16: [&str; 1] = ["AWS_REGION"];
const EX17: [&str; 2] = ["AWS_*", "GITHUB_TOKEN"];
const EX18: [&str; 1] = ["GIT_TERMINAL_PROMPT=0"];

/// Every section and its keys, for "belongs in" hints.
const SECTIONS: &[(&str, &[&str])] = &[
    ("network", NetworkConfig::KEYS),
    ("filesystem", FilesystemConfig::KEYS),
    ("command", CommandConfig::KEYS),
    ("ssh", SshConfig::KEYS),
    ("environment", EnvironmentConfig::KEYS),
];

fn example_environment() -> serde_json::Value {
    serde_json::json!({ "drop": ["AWS_*", "GITHUB_TOKEN"], "set": ["GIT_TERMINAL_PROMPT=0"] })
}

fn example_linux() -> serde_json::Value {
    serde_json::json!({ "filesystem": { "allowWrite": ["/dev/shm"] } })
}

fn example_macos() -> serde_json::Value {
    serde_json::json!({ "filesystem": { "allowRead": ["/Library/Developer"] } })
}

fn example_profiles() -> serde_json::Value {
    serde_json::json!({ "ci": { "network": { "allowedDomains": ["ghcr.io"] } } })
}

fn example_config() -> serde_json::Value {
    serde_json::json!({
        "extends": "code",
        "network": { "allowedDomains": ["api.example.com"] },
        "filesystem": { "allowWrite": ["."], "denyRead": ["~/.ssh"] }
    })
}

fn example_network() -> serde_json::Value {
    serde_json::json!({ "allowedDomains": ["github.com", "*.githubusercontent.com"] })
}

fn example_filesystem() -> serde_json::Value {
    serde_json::json!({ "allowWrite": ["."], "denyRead": ["~/.ssh"] })
}

fn example_command() -> serde_json::Value {
    serde_json::json!({ "deny": ["git push"], "useDefaults": true })
}

fn example_ssh() -> serde_json::Value {
    serde_json::json!({ "allowedHosts": ["github.com"], "allowedCommands": ["git-upload-pack"] })
}

/// Decodes a whole file's root node.
pub fn decode_file(root: &Node) -> (Option<ConfigFile>, Vec<Diagnostic>) {
    let mut cx = DecodeCx::default();
    let cfg = ConfigFile::decode(root, &mut cx);
    (cfg, cx.diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonc;
    use crate::source::SourceId;

    fn decode(text: &str) -> (Option<ConfigFile>, Vec<Diagnostic>) {
        let (root, diags) = jsonc::parse(text, SourceId(0));
        assert!(diags.is_empty(), "{diags:?}");
        decode_file(&root.unwrap())
    }

    #[test]
    fn reports_every_problem_at_once() {
        let (_, diags) = decode(
            r#"{
              "network": { "allowedDomain": ["x.com"], "allowLocalBinding": "true" },
              "filesystem": { "allowWrite": "." , "denyRead": [1] },
              "allowWrite": ["."],
              "bogus": 1,
              "ssh": { "allowedHosts": [], "inheritDeny": null }
            }"#,
        );
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            vec![
                Code::UnknownKey,
                Code::WrongType,
                Code::WrongType,
                Code::WrongType,
                Code::UnknownKey,
                Code::UnknownKey,
                Code::WrongType
            ]
        );
        assert_eq!(
            diags[0].help.as_deref(),
            Some("did you mean `allowedDomains`?")
        );
        assert_eq!(diags[1].help.as_deref(), Some("write true without quotes"));
        assert_eq!(
            diags[2].help.as_deref(),
            Some("wrap it in brackets: [\".\"]")
        );
        assert_eq!(
            diags[4].help.as_deref(),
            Some("`allowWrite` belongs in `filesystem`")
        );
        assert!(
            diags[4].message.contains("at the top level")
                || diags[4].message.contains("the top level")
        );
    }

    #[test]
    fn decodes_fields() {
        let (cfg, diags) = decode(
            r#"{"extends": "code", "allowPty": true,
                "network": {"httpProxyPort": 8080, "allowedDomains": ["a.com", "b.com"]}}"#,
        );
        assert!(diags.is_empty());
        let cfg = cfg.unwrap();
        assert_eq!(cfg.extends.unwrap().value, "code");
        assert!(cfg.allow_pty.unwrap().value);
        let net = cfg.network.unwrap();
        assert_eq!(net.http_proxy_port.unwrap().value, 8080);
        assert_eq!(net.allowed_domains.unwrap().len(), 2);
    }

    #[test]
    fn port_out_of_range() {
        let (_, diags) = decode(r#"{"network": {"socksProxyPort": 70000}}"#);
        assert_eq!(diags[0].code, Code::InvalidNumber);
        let (_, diags) = decode(r#"{"network": {"socksProxyPort": 1.5}}"#);
        assert_eq!(diags[0].code, Code::InvalidNumber);
    }
}
