//! The policy model: the one typed, validated form of a policy.
//!
//! Every front-end (greywall.json today, `.gw` next) produces a [`Policy`]; every pass and
//! backend consumes one. Each entry remembers where it was written ([`Entry::origin`]), so
//! `config show`, `lint` and `explain` can point at the rule that decided something, through
//! any chain of `extends`.
//!
//! The model states what the user asked for. Protections greywall always applies (shell
//! startup files, `.git/hooks`, greywall's own state, …) live in [`crate::protections`].

use std::fmt;

use crate::diagnostic::Code;
use crate::pattern::PatternError;
use crate::pattern::command::CommandPrefix;
use crate::pattern::domain::DomainPattern;
use crate::pattern::host::HostPattern;
use crate::pattern::path::PathPattern;
use crate::source::Span;

/// One list entry and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub value: T,
    pub origin: Span,
}

/// A scalar setting: its value, and where it was set (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Option<Span>,
}

impl<T> Setting<T> {
    pub fn default_value(value: T) -> Self {
        Setting {
            value,
            origin: None,
        }
    }

    pub fn set(value: T, origin: Span) -> Self {
        Setting {
            value,
            origin: Some(origin),
        }
    }

    pub fn is_set(&self) -> bool {
        self.origin.is_some()
    }
}

pub type List<T> = Vec<Entry<T>>;

/// Port on which the in-sandbox HTTP proxy listens unless `httpProxyPort` says otherwise.
pub const DEFAULT_HTTP_PROXY_PORT: u16 = 3128;
/// Port on which the in-sandbox SOCKS5 proxy listens unless `socksProxyPort` says otherwise.
pub const DEFAULT_SOCKS_PROXY_PORT: u16 = 1080;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub network: Network,
    pub filesystem: Filesystem,
    pub command: Commands,
    pub ssh: Ssh,
    pub environment: Environment,
    pub allow_pty: Setting<bool>,
    /// Sections whose rules a platform may approximate: where one cannot be enforced, the
    /// compiler warns and goes on instead of refusing the policy.
    pub best_effort: List<Section>,
    /// Rules that hold on one platform only, applied by [`Policy::for_platform`].
    pub platforms: Vec<Overlay>,
    /// The policy's own tests (`expect`), from the file asked for (not from what it extends).
    pub expects: List<Expectation>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            network: Network::default(),
            filesystem: Filesystem::default(),
            command: Commands::default(),
            ssh: Ssh::default(),
            environment: Environment::default(),
            allow_pty: Setting::default_value(false),
            best_effort: Vec::new(),
            platforms: Vec::new(),
            expects: Vec::new(),
        }
    }
}

/// An operating system a rule can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Linux,
    Macos,
}

impl Platform {
    pub const ALL: &'static [(&'static str, Platform)] =
        &[("linux", Platform::Linux), ("macos", Platform::Macos)];

    /// The platform this program runs on (Linux elsewhere, for evaluation).
    pub fn host() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Macos
        } else {
            Platform::Linux
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Macos => "macos",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rules added (and inherited entries removed) on one platform only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub platform: Platform,
    pub adds: Policy,
    pub removes: Policy,
}

/// A policy section, as named by best-effort markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Filesystem,
    Network,
    Command,
    Ssh,
    Environment,
}

impl Section {
    /// The greywall.json names (the `.gw` names are the same, with `commands` for `command`).
    pub const ALL: &'static [(&'static str, Section)] = &[
        ("filesystem", Section::Filesystem),
        ("network", Section::Network),
        ("command", Section::Command),
        ("ssh", Section::Ssh),
        ("environment", Section::Environment),
    ];

    pub fn parse(s: &str) -> Option<Section> {
        let s = if s == "commands" { "command" } else { s };
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(n, _)| n)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Environment rules: which variables of the caller reach the sandbox.
///
/// Every variable passes unless a `drop` pattern matches it and no `pass` pattern does; then
/// the `set` entries are applied in order (the last one for a name wins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    pub pass: List<EnvPattern>,
    pub drop: List<EnvPattern>,
    pub set: List<EnvSet>,
}

/// A variable name, or a prefix written `PREFIX*` (`*` alone: every variable).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvPattern {
    pub name: String,
    pub prefix: bool,
}

fn is_env_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl EnvPattern {
    pub fn parse(s: &str) -> Result<EnvPattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::new(
                Code::EmptyString,
                "empty variable pattern",
            ));
        }
        let (name, prefix) = match s.strip_suffix('*') {
            Some(p) => (p, true),
            None => (s, false),
        };
        if (prefix && name.is_empty()) || is_env_name(name) || (prefix && is_env_prefix(name)) {
            Ok(EnvPattern {
                name: name.to_string(),
                prefix,
            })
        } else {
            Err(PatternError::new(
                Code::GwEnvPattern,
                format!("`{s}` is not a variable name or a `PREFIX*` pattern"),
            )
            .help("names are letters, digits and `_`; a single `*` may end the pattern"))
        }
    }

    pub fn matches(&self, var: &str) -> bool {
        if self.prefix {
            var.starts_with(&self.name)
        } else {
            var == self.name
        }
    }
}

fn is_env_prefix(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, if self.prefix { "*" } else { "" })
    }
}

/// `NAME=value`: set a variable in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvSet {
    pub name: String,
    pub value: String,
}

impl EnvSet {
    pub fn parse(s: &str) -> Result<EnvSet, PatternError> {
        let Some((name, value)) = s.split_once('=') else {
            return Err(PatternError::new(
                Code::GwEnvPattern,
                format!("`{s}` does not set a value"),
            )
            .help("write NAME=value"));
        };
        if !is_env_name(name) {
            return Err(PatternError::new(
                Code::GwEnvPattern,
                format!("`{name}` is not a variable name"),
            )
            .help("names are letters, digits and `_`, not starting with a digit"));
        }
        if value.contains('\0') {
            return Err(PatternError::new(
                Code::GwEnvPattern,
                "the value contains a NUL byte",
            ));
        }
        Ok(EnvSet {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Display for EnvSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// What an expectation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectOp {
    Read,
    Write,
    /// Run a command line.
    Run,
    /// Connect to `host[:port]`.
    Connect,
}

impl ExpectOp {
    pub const ALL: &'static [(&'static str, ExpectOp)] = &[
        ("read", ExpectOp::Read),
        ("write", ExpectOp::Write),
        ("run", ExpectOp::Run),
        ("connect", ExpectOp::Connect),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(n, _)| n)
    }
}

/// A policy test: `allow read ./src/main.rs`, `deny connect evil.example:443`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Expectation {
    /// The expected decision: allowed (`true`) or denied.
    pub allow: bool,
    pub op: ExpectOp,
    pub target: String,
}

impl Expectation {
    /// Parses `allow|deny read|write|run|connect TARGET` (the greywall.json form).
    pub fn parse(s: &str) -> Result<Expectation, PatternError> {
        let s = s.trim();
        let (verdict, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        let allow = match verdict {
            "allow" => true,
            "deny" => false,
            _ => {
                return Err(PatternError::new(
                    Code::GwBadExpect,
                    format!("an expectation starts with `allow` or `deny`, not `{verdict}`"),
                )
                .help("write e.g. \"deny read ~/.ssh/id_rsa\""));
            }
        };
        let rest = rest.trim_start();
        let (op, target) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let Some((_, op)) = ExpectOp::ALL.iter().find(|(n, _)| *n == op) else {
            return Err(PatternError::new(
                Code::GwBadExpect,
                format!("unknown operation `{op}` in an expectation"),
            )
            .help("use read, write, run or connect"));
        };
        Self::new(allow, *op, target.trim())
    }

    /// Checks the target for the operation.
    pub fn new(allow: bool, op: ExpectOp, target: &str) -> Result<Expectation, PatternError> {
        if target.is_empty() {
            return Err(PatternError::new(
                Code::GwBadExpect,
                format!("`{}` needs a target", op.name()),
            ));
        }
        match op {
            ExpectOp::Read | ExpectOp::Write => {
                let p = PathPattern::parse(target)?;
                if p.is_glob() {
                    return Err(PatternError::new(
                        Code::GwBadExpect,
                        "an expectation names one path, not a glob",
                    ));
                }
            }
            ExpectOp::Connect => {
                if target.contains(char::is_whitespace) || target.contains('*') {
                    return Err(PatternError::new(
                        Code::GwBadExpect,
                        format!("`{target}` is not a host or `host:port`"),
                    ));
                }
            }
            ExpectOp::Run => {}
        }
        Ok(Expectation {
            allow,
            op,
            target: target.to_string(),
        })
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            if self.allow { "allow" } else { "deny" },
            self.op.name(),
            self.target
        )
    }
}

/// How the sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// No network at all (only the sandbox's own loopback).
    #[default]
    Isolated,
    /// Egress only through greywall's proxy, filtered by the domain rules.
    Filtered,
    /// `"*"` in allowedDomains: the host network is shared; only proxy-aware clients are
    /// filtered by `deniedDomains`.
    Relaxed,
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkMode::Isolated => "isolated",
            NetworkMode::Filtered => "filtered",
            NetworkMode::Relaxed => "relaxed",
        })
    }
}

/// An upstream proxy URL (`proxyUrl`, `httpProxyUrl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: String,
    /// `user:password@`, if given.
    pub userinfo: Option<String>,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.userinfo.is_some() {
            f.write_str("***@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A `host:port` address (`dnsAddr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub allowed_domains: List<DomainPattern>,
    pub denied_domains: List<DomainPattern>,
    pub allow_unix_sockets: List<PathPattern>,
    pub allow_all_unix_sockets: Setting<bool>,
    pub allow_local_binding: Setting<bool>,
    /// `None`: follows `allow_local_binding`.
    pub allow_local_outbound: Setting<Option<bool>>,
    pub http_proxy_port: Setting<u16>,
    pub socks_proxy_port: Setting<u16>,
    pub proxy_url: Setting<Option<ProxyUrl>>,
    pub http_proxy_url: Setting<Option<ProxyUrl>>,
    pub dns_addr: Setting<Option<HostPort>>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            allowed_domains: Vec::new(),
            denied_domains: Vec::new(),
            allow_unix_sockets: Vec::new(),
            allow_all_unix_sockets: Setting::default_value(false),
            allow_local_binding: Setting::default_value(false),
            allow_local_outbound: Setting::default_value(None),
            http_proxy_port: Setting::default_value(DEFAULT_HTTP_PROXY_PORT),
            socks_proxy_port: Setting::default_value(DEFAULT_SOCKS_PROXY_PORT),
            proxy_url: Setting::default_value(None),
            http_proxy_url: Setting::default_value(None),
            dns_addr: Setting::default_value(None),
        }
    }
}

impl Network {
    pub fn mode(&self) -> NetworkMode {
        if self
            .allowed_domains
            .iter()
            .any(|e| e.value == DomainPattern::Any)
        {
            NetworkMode::Relaxed
        } else if self.allowed_domains.is_empty() {
            NetworkMode::Isolated
        } else {
            NetworkMode::Filtered
        }
    }

    /// Whether the sandbox may connect to the host's loopback services.
    pub fn local_outbound(&self) -> bool {
        self.allow_local_outbound
            .value
            .unwrap_or(self.allow_local_binding.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub default_deny_read: Setting<bool>,
    pub allow_read: List<PathPattern>,
    pub deny_read: List<PathPattern>,
    pub allow_write: List<PathPattern>,
    pub deny_write: List<PathPattern>,
    pub allow_git_config: Setting<bool>,
}

impl Default for Filesystem {
    fn default() -> Self {
        Filesystem {
            default_deny_read: Setting::default_value(true),
            allow_read: Vec::new(),
            deny_read: Vec::new(),
            allow_write: Vec::new(),
            deny_write: Vec::new(),
            allow_git_config: Setting::default_value(false),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    pub deny: List<CommandPrefix>,
    pub allow: List<CommandPrefix>,
    pub use_defaults: Setting<bool>,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            deny: Vec::new(),
            allow: Vec::new(),
            use_defaults: Setting::default_value(true),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    pub allowed_hosts: List<HostPattern>,
    pub denied_hosts: List<HostPattern>,
    pub allowed_commands: List<CommandPrefix>,
    pub denied_commands: List<CommandPrefix>,
    pub allow_all_commands: Setting<bool>,
    pub inherit_deny: Setting<bool>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            allowed_hosts: Vec::new(),
            denied_hosts: Vec::new(),
            allowed_commands: Vec::new(),
            denied_commands: Vec::new(),
            allow_all_commands: Setting::default_value(false),
            inherit_deny: Setting::default_value(false),
        }
    }
}

impl Ssh {
    /// Greywall applies the SSH policy only when a host list is non-empty.
    pub fn is_active(&self) -> bool {
        !self.allowed_hosts.is_empty() || !self.denied_hosts.is_empty()
    }
}

/// A scalar value as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Bool(bool),
    Port(u16),
    Text(String),
    /// Not set, and no fixed default (e.g. `allowLocalOutbound` follows `allowLocalBinding`).
    Unset,
}

/// One field of a policy, flattened for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    List(Vec<(String, Span)>),
    Scalar(Scalar, Option<Span>),
}

/// A field with its greywall.json section and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `""` for top-level fields.
    pub section: &'static str,
    pub key: &'static str,
    pub value: FieldValue,
}

fn list_of<T: fmt::Display>(l: &List<T>) -> FieldValue {
    FieldValue::List(l.iter().map(|e| (e.value.to_string(), e.origin)).collect())
}

fn flag(s: &Setting<bool>) -> FieldValue {
    FieldValue::Scalar(Scalar::Bool(s.value), s.origin)
}

fn opt_text<T: fmt::Display>(s: &Setting<Option<T>>) -> FieldValue {
    FieldValue::Scalar(
        s.value
            .as_ref()
            .map_or(Scalar::Unset, |v| Scalar::Text(v.to_string())),
        s.origin,
    )
}

impl Policy {
    /// Every field, in greywall.json order, with the greywall.json key names.
    pub fn fields(&self) -> Vec<Field> {
        let n = &self.network;
        let f = &self.filesystem;
        let c = &self.command;
        let s = &self.ssh;
        let field = |section, key, value| Field {
            section,
            key,
            value,
        };
        vec![
            field("network", "allowedDomains", list_of(&n.allowed_domains)),
            field("network", "deniedDomains", list_of(&n.denied_domains)),
            field(
                "network",
                "allowUnixSockets",
                list_of(&n.allow_unix_sockets),
            ),
            field(
                "network",
                "allowAllUnixSockets",
                flag(&n.allow_all_unix_sockets),
            ),
            field("network", "allowLocalBinding", flag(&n.allow_local_binding)),
            field(
                "network",
                "allowLocalOutbound",
                FieldValue::Scalar(
                    n.allow_local_outbound
                        .value
                        .map_or(Scalar::Unset, Scalar::Bool),
                    n.allow_local_outbound.origin,
                ),
            ),
            field(
                "network",
                "httpProxyPort",
                FieldValue::Scalar(
                    Scalar::Port(n.http_proxy_port.value),
                    n.http_proxy_port.origin,
                ),
            ),
            field(
                "network",
                "socksProxyPort",
                FieldValue::Scalar(
                    Scalar::Port(n.socks_proxy_port.value),
                    n.socks_proxy_port.origin,
                ),
            ),
            field("network", "proxyUrl", opt_text(&n.proxy_url)),
            field("network", "httpProxyUrl", opt_text(&n.http_proxy_url)),
            field("network", "dnsAddr", opt_text(&n.dns_addr)),
            field("filesystem", "defaultDenyRead", flag(&f.default_deny_read)),
            field("filesystem", "allowRead", list_of(&f.allow_read)),
            field("filesystem", "denyRead", list_of(&f.deny_read)),
            field("filesystem", "allowWrite", list_of(&f.allow_write)),
            field("filesystem", "denyWrite", list_of(&f.deny_write)),
            field("filesystem", "allowGitConfig", flag(&f.allow_git_config)),
            field("command", "deny", list_of(&c.deny)),
            field("command", "allow", list_of(&c.allow)),
            field("command", "useDefaults", flag(&c.use_defaults)),
            field("ssh", "allowedHosts", list_of(&s.allowed_hosts)),
            field("ssh", "deniedHosts", list_of(&s.denied_hosts)),
            field("ssh", "allowedCommands", list_of(&s.allowed_commands)),
            field("ssh", "deniedCommands", list_of(&s.denied_commands)),
            field("ssh", "allowAllCommands", flag(&s.allow_all_commands)),
            field("ssh", "inheritDeny", flag(&s.inherit_deny)),
            field("environment", "pass", list_of(&self.environment.pass)),
            field("environment", "drop", list_of(&self.environment.drop)),
            field("environment", "set", list_of(&self.environment.set)),
            field("", "allowPty", flag(&self.allow_pty)),
            field("", "bestEffort", list_of(&self.best_effort)),
            field("", "expect", list_of(&self.expects)),
        ]
    }

    /// The policy as it applies on `platform`: the overlays for it merged in order, the others
    /// dropped. Problems merging (a removal that removes nothing) go to `diags`.
    pub fn for_platform(
        &self,
        platform: Platform,
        diags: &mut Vec<crate::diagnostic::Diagnostic>,
    ) -> Policy {
        let mut base = self.clone();
        let overlays = std::mem::take(&mut base.platforms);
        for o in overlays.into_iter().filter(|o| o.platform == platform) {
            let layer = crate::lower::Layer {
                adds: o.adds,
                removes: o.removes,
                ..crate::lower::Layer::default()
            };
            crate::merge::merge(&mut base, layer, diags);
        }
        base
    }

    /// The same policy with every origin erased: two front-ends that say the same thing
    /// produce equal policies after this.
    pub fn without_origins(&self) -> Policy {
        let mut p = self.clone();
        p.visit_origins(&mut |s| *s = Span::new(crate::source::SourceId(0), 0, 0));
        p
    }

    /// Calls `f` on every origin span in the policy (list entries, settings, overlays).
    pub fn visit_origins(&mut self, f: &mut dyn FnMut(&mut Span)) {
        fn list<T>(l: &mut List<T>, f: &mut dyn FnMut(&mut Span)) {
            for e in l {
                f(&mut e.origin);
            }
        }
        fn set<T>(s: &mut Setting<T>, f: &mut dyn FnMut(&mut Span)) {
            if let Some(o) = &mut s.origin {
                f(o);
            }
        }
        let n = &mut self.network;
        list(&mut n.allowed_domains, f);
        list(&mut n.denied_domains, f);
        list(&mut n.allow_unix_sockets, f);
        set(&mut n.allow_all_unix_sockets, f);
        set(&mut n.allow_local_binding, f);
        set(&mut n.allow_local_outbound, f);
        set(&mut n.http_proxy_port, f);
        set(&mut n.socks_proxy_port, f);
        set(&mut n.proxy_url, f);
        set(&mut n.http_proxy_url, f);
        set(&mut n.dns_addr, f);
        let fs = &mut self.filesystem;
        set(&mut fs.default_deny_read, f);
        list(&mut fs.allow_read, f);
        list(&mut fs.deny_read, f);
        list(&mut fs.allow_write, f);
        list(&mut fs.deny_write, f);
        set(&mut fs.allow_git_config, f);
        let c = &mut self.command;
        list(&mut c.deny, f);
        list(&mut c.allow, f);
        set(&mut c.use_defaults, f);
        let s = &mut self.ssh;
        list(&mut s.allowed_hosts, f);
        list(&mut s.denied_hosts, f);
        list(&mut s.allowed_commands, f);
        list(&mut s.denied_commands, f);
        set(&mut s.allow_all_commands, f);
        set(&mut s.inherit_deny, f);
        let e = &mut self.environment;
        list(&mut e.pass, f);
        list(&mut e.drop, f);
        list(&mut e.set, f);
        set(&mut self.allow_pty, f);
        list(&mut self.best_effort, f);
        list(&mut self.expects, f);
        for o in &mut self.platforms {
            o.adds.visit_origins(f);
            o.removes.visit_origins(f);
        }
    }
}
