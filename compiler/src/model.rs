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
    pub allow_pty: Setting<bool>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            network: Network::default(),
            filesystem: Filesystem::default(),
            command: Commands::default(),
            ssh: Ssh::default(),
            allow_pty: Setting::default_value(false),
        }
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
            field("", "allowPty", flag(&self.allow_pty)),
        ]
    }
}
