//! The egress rule set: what `greywall-proxyd` needs from a policy to decide each connection.
//!
//! [`rules`] turns the model's `allowedDomains`/`deniedDomains` (and the upstream `proxyUrl`)
//! into an [`EgressRules`]; [`EgressRules::to_bytes`] is the artifact the launcher hands to
//! proxyd (canonical JSON: sorted, deduplicated, no timestamps), [`EgressRules::from_bytes`]
//! reads it back and re-validates every pattern.
//!
//! Deciding is two pure steps, so that every refusal can be tested without a socket:
//! 1. [`EgressRules::decide`]: the requested host (name or address literal) and port against the
//!    rules. Deny wins; a name matches name patterns only, an address literal matches address
//!    and CIDR patterns only; `*` matches both.
//! 2. [`EgressRules::check_address`]: each address the host resolved to. A deny rule naming the
//!    address refuses it. Loopback, link-local (cloud metadata), private, shared (CGNAT),
//!    unique-local, multicast and reserved addresses are refused unless an allow rule names the
//!    address or its range, or the name was mapped on purpose (`--resolve`). A permitted name
//!    resolving to such an address is therefore refused (DNS rebinding). An allowed `localhost`
//!    rule names the loopback addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::model::{Entry, Policy};
use crate::pattern::domain::DomainPattern;
use crate::source::Sources;

/// Version of the byte format; [`EgressRules::from_bytes`] refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// The rule set of one policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressRules {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    upstream: Option<Upstream>,
    dns: Option<DnsServer>,
}

/// One rule, with the text and place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: DomainPattern,
    text: String,
    origin: String,
}

impl Rule {
    fn to_ref(&self) -> RuleRef {
        RuleRef {
            text: self.text.clone(),
            origin: self.origin.clone(),
        }
    }

    fn matches(&self, host: &Host, port: u16) -> bool {
        if !self.pattern.matches_port(port) {
            return false;
        }
        match (self.pattern.host(), host) {
            (DomainPattern::Any, _) => true,
            (DomainPattern::Ip(_) | DomainPattern::Cidr(..), Host::Addr(a)) => {
                self.pattern.names_address(*a)
            }
            (DomainPattern::Ip(_) | DomainPattern::Cidr(..), Host::Name(_)) => false,
            (_, Host::Name(n)) => self.pattern.matches_host(n),
            (_, Host::Addr(_)) => false,
        }
    }

    /// Whether the rule names `addr` explicitly (an address, a range, or `localhost` for
    /// loopback addresses).
    fn names(&self, addr: IpAddr, port: u16) -> bool {
        self.pattern.matches_port(port)
            && (self.pattern.names_address(addr)
                || (matches!(self.pattern.host(), DomainPattern::Exact(h) if h == "localhost")
                    && AddressClass::of(addr) == AddressClass::Loopback))
    }
}

/// The rule that decided, as shown in logs and refusals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// The pattern, in canonical form (`*.example.com:443`).
    pub text: String,
    /// Where it was written, `file:line:col`.
    pub origin: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.origin)
    }
}

/// An upstream SOCKS5 proxy that allowed connections go through (`network.proxyUrl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `socks5` (proxyd resolves names) or `socks5h` (the upstream resolves names).
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The DNS server the sandbox's allowed queries are forwarded to (`network.dnsAddr`), instead
/// of proxyd's system resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsServer {
    pub host: String,
    pub port: u16,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The rule that decided, when one did.
    pub rule: Option<RuleRef>,
    pub reason: Reason,
}

/// Why a connection was allowed or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An `allowedDomains` rule matches.
    AllowedByRule,
    /// The name was mapped to this address on purpose (`--resolve`).
    Mapped,
    /// A `deniedDomains` rule matches.
    DeniedByRule,
    /// No `allowedDomains` rule matches.
    NotAllowed,
    /// The host is not a valid name or address.
    BadHost,
    /// Port 0.
    BadPort,
    /// The address is of a class refused unless named explicitly.
    Address(AddressClass),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::AllowedByRule => f.write_str("allowed by rule"),
            Reason::Mapped => f.write_str("address mapped with --resolve"),
            Reason::DeniedByRule => f.write_str("denied by rule"),
            Reason::NotAllowed => f.write_str("no allowedDomains rule matches"),
            Reason::BadHost => f.write_str("malformed host"),
            Reason::BadPort => f.write_str("port 0"),
            Reason::Address(c) => write!(f, "{c} address, not named by any rule"),
        }
    }
}

/// The kind of an address, for the second decision step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// `0.0.0.0/8`, `::`: reaches the local host.
    Unspecified,
    Loopback,
    /// `169.254.169.254`, `fd00:ec2::254`.
    Metadata,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `10/8`, `172.16/12`, `192.168/16`, `fec0::/10`, `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10`.
    SharedCgnat,
    /// `fc00::/7`.
    UniqueLocal,
    Multicast,
    /// `240.0.0.0/4`, `255.255.255.255`, `192.0.0.0/24`, `198.18.0.0/15`, Teredo.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Private => "private",
            AddressClass::SharedCgnat => "shared (CGNAT)",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        })
    }
}

impl AddressClass {
    /// Classifies an address; IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64,
    /// 6to4) are classified as the IPv4 address they carry.
    pub fn of(addr: IpAddr) -> AddressClass {
        match canonical_addr(addr) {
            IpAddr::V4(a) => Self::of_v4(a),
            IpAddr::V6(a) => Self::of_v6(a),
        }
    }

    fn of_v4(a: Ipv4Addr) -> AddressClass {
        let o = a.octets();
        let in_net = |net: [u8; 4], prefix: u8| {
            masked(IpAddr::V4(a), prefix) == IpAddr::V4(Ipv4Addr::from(net))
        };
        if o[0] == 0 {
            AddressClass::Unspecified
        } else if o[0] == 127 {
            AddressClass::Loopback
        } else if a == Ipv4Addr::new(169, 254, 169, 254) {
            AddressClass::Metadata
        } else if in_net([169, 254, 0, 0], 16) {
            AddressClass::LinkLocal
        } else if in_net([10, 0, 0, 0], 8)
            || in_net([172, 16, 0, 0], 12)
            || in_net([192, 168, 0, 0], 16)
        {
            AddressClass::Private
        } else if in_net([100, 64, 0, 0], 10) {
            AddressClass::SharedCgnat
        } else if in_net([224, 0, 0, 0], 4) {
            AddressClass::Multicast
        } else if in_net([240, 0, 0, 0], 4)
            || in_net([192, 0, 0, 0], 24)
            || in_net([198, 18, 0, 0], 15)
        {
            AddressClass::Reserved
        } else {
            AddressClass::Public
        }
    }

    fn of_v6(a: Ipv6Addr) -> AddressClass {
        let s = a.segments();
        let in_net = |net: Ipv6Addr, prefix: u8| masked(IpAddr::V6(a), prefix) == IpAddr::V6(net);
        if a.is_unspecified() {
            AddressClass::Unspecified
        } else if a.is_loopback() {
            AddressClass::Loopback
        } else if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            AddressClass::Metadata
        } else if in_net(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
            AddressClass::LinkLocal
        } else if in_net(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
            AddressClass::UniqueLocal
        } else if in_net(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10)
            || in_net(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48)
        {
            AddressClass::Private
        } else if s[0] >> 8 == 0xff {
            AddressClass::Multicast
        } else if in_net(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32)
            || in_net(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64)
        {
            AddressClass::Reserved
        } else {
            AddressClass::Public
        }
    }
}

/// The IPv4 address an IPv6 address carries (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`), or the address itself.
pub fn canonical_addr(addr: IpAddr) -> IpAddr {
    let IpAddr::V6(a) = addr else { return addr };
    let s = a.segments();
    let o = a.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = a.to_ipv4_mapped() {
        IpAddr::V4(v4)
    } else if (s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1))
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        IpAddr::V4(tail)
    } else if s[0] == 0x2002 {
        IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        addr
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    crate::pattern::domain::masked(ip, prefix)
}

/// A requested destination host, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A lower-case name without a trailing dot.
    Name(String),
    /// An address literal (IPv4 carried in IPv6 is unwrapped).
    Addr(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl Host {
    /// Normalises what a client asked for: `[v6]` brackets and one trailing dot are dropped,
    /// names are lower-cased. `None` for anything that is neither a host name (letters, digits,
    /// `-`, `_`, dots; at most 253 characters) nor an address.
    pub fn parse(raw: &str) -> Option<Host> {
        let inner = match raw.strip_prefix('[') {
            Some(r) => {
                let a = r.strip_suffix(']')?;
                return match a.parse::<Ipv6Addr>() {
                    Ok(v6) => Some(Host::Addr(canonical_addr(IpAddr::V6(v6)))),
                    Err(_) => None,
                };
            }
            None => raw,
        };
        if let Ok(a) = inner.parse::<IpAddr>() {
            return Some(Host::Addr(canonical_addr(a)));
        }
        let name = inner.strip_suffix('.').unwrap_or(inner);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !name.starts_with('.')
            && !name.contains("..");
        if !valid {
            return None;
        }
        if let Ok(a) = name.parse::<IpAddr>() {
            return Some(Host::Addr(a));
        }
        Some(Host::Name(name.to_ascii_lowercase()))
    }
}

fn verdict(allowed: bool, rule: Option<&Rule>, reason: Reason) -> Verdict {
    Verdict {
        allowed,
        rule: rule.map(Rule::to_ref),
        reason,
    }
}

impl EgressRules {
    /// Whether no destination can ever be allowed.
    pub fn allows_nothing(&self) -> bool {
        self.allow.is_empty()
    }

    /// The upstream proxy, if the policy names one.
    pub fn upstream(&self) -> Option<&Upstream> {
        self.upstream.as_ref()
    }

    /// The DNS server allowed queries go to (`network.dnsAddr`), if the policy names one.
    pub fn dns(&self) -> Option<&DnsServer> {
        self.dns.as_ref()
    }

    /// The name decision for a DNS query: may the sandbox learn the addresses of `host`?
    /// Yes when the rules allow the name on at least one port: a `deniedDomains` entry
    /// without a port refuses it, one with a port only takes that port away. Address
    /// literals are refused (a resolver is never asked for them).
    pub fn decide_name(&self, host: &Host) -> Verdict {
        if !matches!(host, Host::Name(_)) {
            return verdict(false, None, Reason::BadHost);
        }
        // Any port matches a rule without one; `1` stands for "some port".
        if let Some(r) = self
            .deny
            .iter()
            .find(|r| r.pattern.port().is_none() && r.matches(host, 1))
        {
            return verdict(false, Some(r), Reason::DeniedByRule);
        }
        let mut refusal = None;
        for r in &self.allow {
            match r.pattern.port() {
                None if r.matches(host, 1) => {
                    return verdict(true, Some(r), Reason::AllowedByRule);
                }
                None => {}
                Some(p) => {
                    let v = self.decide_host(host, p);
                    if v.allowed {
                        return v;
                    }
                    if v.reason == Reason::DeniedByRule {
                        refusal.get_or_insert(v);
                    }
                }
            }
        }
        refusal.unwrap_or_else(|| verdict(false, None, Reason::NotAllowed))
    }

    /// The name decision: the requested host (as the client wrote it) and port.
    pub fn decide(&self, host: &str, port: u16) -> Verdict {
        let Some(host) = Host::parse(host) else {
            return verdict(false, None, Reason::BadHost);
        };
        self.decide_host(&host, port)
    }

    /// [`EgressRules::decide`] for an already normalised host.
    pub fn decide_host(&self, host: &Host, port: u16) -> Verdict {
        if port == 0 {
            return verdict(false, None, Reason::BadPort);
        }
        if let Some(r) = self.deny.iter().find(|r| r.matches(host, port)) {
            return verdict(false, Some(r), Reason::DeniedByRule);
        }
        match self.allow.iter().find(|r| r.matches(host, port)) {
            Some(r) => verdict(true, Some(r), Reason::AllowedByRule),
            None => verdict(false, None, Reason::NotAllowed),
        }
    }

    /// The address decision, for one address the host resolved to (or the literal itself).
    /// `name` is the verdict of [`EgressRules::decide`]; `mapped` says the address came from a
    /// `--resolve` mapping. Returns the final verdict.
    pub fn check_address(&self, name: &Verdict, addr: IpAddr, port: u16, mapped: bool) -> Verdict {
        if !name.allowed {
            return name.clone();
        }
        let addr = canonical_addr(addr);
        let as_host = Host::Addr(addr);
        if let Some(r) = self
            .deny
            .iter()
            .find(|r| r.matches(&as_host, port) && !matches!(r.pattern.host(), DomainPattern::Any))
        {
            return verdict(false, Some(r), Reason::DeniedByRule);
        }
        let class = AddressClass::of(addr);
        if class == AddressClass::Public {
            return name.clone();
        }
        if let Some(r) = self.allow.iter().find(|r| r.names(addr, port)) {
            return verdict(true, Some(r), Reason::AllowedByRule);
        }
        if mapped {
            return Verdict {
                allowed: true,
                rule: name.rule.clone(),
                reason: Reason::Mapped,
            };
        }
        Verdict {
            allowed: false,
            rule: None,
            reason: Reason::Address(class),
        }
    }

    /// Canonical bytes: sorted, deduplicated, stable across runs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            format: FORMAT_VERSION,
            allow: self.allow.iter().map(Rule::to_ref).collect(),
            deny: self.deny.iter().map(Rule::to_ref).collect(),
            upstream: self.upstream.clone(),
            dns: self.dns.clone(),
        };
        let mut bytes = serde_json::to_vec(&wire).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Reads bytes written by [`EgressRules::to_bytes`]; every pattern is validated again.
    pub fn from_bytes(bytes: &[u8]) -> Result<EgressRules, EgressError> {
        let wire: Wire = serde_json::from_slice(bytes).map_err(EgressError::Syntax)?;
        if wire.format != FORMAT_VERSION {
            return Err(EgressError::Version(wire.format));
        }
        let read = |list: Vec<RuleRef>| -> Result<Vec<Rule>, EgressError> {
            list.into_iter()
                .map(|r| {
                    let pattern =
                        DomainPattern::parse(&r.text).map_err(|e| EgressError::Pattern {
                            text: r.text.clone(),
                            message: e.message,
                        })?;
                    if pattern.to_string() != r.text {
                        return Err(EgressError::Pattern {
                            text: r.text,
                            message: "not in canonical form".into(),
                        });
                    }
                    Ok(Rule {
                        pattern,
                        text: r.text,
                        origin: r.origin,
                    })
                })
                .collect()
        };
        if let Some(u) = &wire.upstream
            && !matches!(u.scheme.as_str(), "socks5" | "socks5h")
        {
            return Err(EgressError::Upstream(u.scheme.clone()));
        }
        if let Some(d) = &wire.dns
            && (d.host.is_empty() || d.port == 0)
        {
            return Err(EgressError::Dns(format!("{}:{}", d.host, d.port)));
        }
        Ok(EgressRules::new(
            read(wire.allow)?,
            read(wire.deny)?,
            wire.upstream,
            wire.dns,
        ))
    }

    fn new(
        mut allow: Vec<Rule>,
        mut deny: Vec<Rule>,
        upstream: Option<Upstream>,
        dns: Option<DnsServer>,
    ) -> Self {
        for list in [&mut allow, &mut deny] {
            list.sort_by(|a, b| (&a.text, &a.origin).cmp(&(&b.text, &b.origin)));
            list.dedup_by(|a, b| a.text == b.text && a.origin == b.origin);
        }
        EgressRules {
            allow,
            deny,
            upstream,
            dns,
        }
    }
}

/// A rule set that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    #[error("egress rules are not valid JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("egress rules have format version {0}; this build reads {FORMAT_VERSION}")]
    Version(u32),
    #[error("egress rule `{text}` is invalid: {message}")]
    Pattern { text: String, message: String },
    #[error(
        "upstream proxy scheme `{0}` is not supported: greywall-proxyd chains only to a SOCKS5 \
         proxy (`proxyUrl`, socks5:// or socks5h://), not to an HTTP proxy (`httpProxyUrl`)"
    )]
    Upstream(String),
    #[error("DNS server `{0}` needs a host and a port other than 0")]
    Dns(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: u32,
    allow: Vec<RuleRef>,
    deny: Vec<RuleRef>,
    upstream: Option<Upstream>,
    /// Absent (not `null`) without `dnsAddr`, so rule sets without it keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<DnsServer>,
}

/// Builds the rule set of a policy. `sources` names the origins (`file:line:col`).
pub fn rules(policy: &Policy, sources: &Sources) -> EgressRules {
    let rule = |e: &Entry<DomainPattern>| Rule {
        pattern: e.value.clone(),
        text: e.value.to_string(),
        origin: sources.locate(e.origin),
    };
    let net = &policy.network;
    // `httpProxyUrl` alone asks for an HTTP upstream proxy. proxyd chains only to SOCKS5, so
    // the rule set names it and proxyd refuses it ([`EgressRules::from_bytes`]): the launch
    // fails instead of connecting around the proxy. With `proxyUrl` set, that one is used.
    let upstream_url = net
        .proxy_url
        .value
        .as_ref()
        .or(net.http_proxy_url.value.as_ref());
    let upstream = upstream_url.map(|u| {
        let (username, password) = match u.userinfo.as_deref().map(|i| i.split_once(':')) {
            Some(Some((n, p))) => (Some(n.to_string()), Some(p.to_string())),
            Some(None) => (u.userinfo.clone(), None),
            None => (None, None),
        };
        Upstream {
            scheme: u.scheme.clone(),
            host: u.host.clone(),
            port: u.port,
            username,
            password,
        }
    });
    let dns = net.dns_addr.value.as_ref().map(|d| DnsServer {
        host: d.host.clone(),
        port: d.port,
    });
    EgressRules::new(
        net.allowed_domains.iter().map(rule).collect(),
        net.denied_domains.iter().map(rule).collect(),
        upstream,
        dns,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Input, load};
    use proptest::prelude::*;

    fn policy(network: &str) -> EgressRules {
        let text = format!("{{\n  \"network\": {network}\n}}\n");
        let l = load(&Input::Text {
            name: "greywall.json".into(),
            text,
            dir: ".".into(),
        });
        let p = l
            .policy
            .clone()
            .unwrap_or_else(|| panic!("{:?}", l.diagnostics));
        rules(&p, &l.sources)
    }

    fn allow(list: &[&str]) -> EgressRules {
        policy(&format!(
            "{{\"allowedDomains\": {}}}",
            serde_json::json!(list)
        ))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The full decision for a host that resolved to `addr`.
    fn full(r: &EgressRules, host: &str, port: u16, addr: &str, mapped: bool) -> Verdict {
        r.check_address(&r.decide(host, port), ip(addr), port, mapped)
    }

    const PUBLIC: &str = "93.184.216.34";

    #[test]
    fn names_wildcards_and_ports() {
        let r = allow(&[
            "github.com:22",
            "*.example.com:443",
            "**.example.org",
            "Exact.NET.",
        ]);
        assert!(r.decide("github.com", 22).allowed);
        assert!(!r.decide("github.com", 443).allowed);
        assert!(r.decide("api.example.com", 443).allowed);
        assert!(!r.decide("api.example.com", 80).allowed);
        assert!(
            !r.decide("example.com", 443).allowed,
            "apex is not a subdomain"
        );
        assert!(r.decide("example.org", 1).allowed && r.decide("a.b.example.org", 2).allowed);
        assert!(!r.decide("badexample.org", 80).allowed);
        assert!(r.decide("EXACT.net.", 80).allowed, "case and trailing dot");
        assert!(r.decide("[exact.net]", 80).reason == Reason::BadHost);
        let v = r.decide("api.example.com", 443);
        assert_eq!(v.reason, Reason::AllowedByRule);
        let rule = v.rule.unwrap();
        assert_eq!(rule.text, "*.example.com:443");
        assert_eq!(rule.origin, "greywall.json:2:50");
        assert_eq!(r.decide("other.com", 80).reason, Reason::NotAllowed);
        assert_eq!(r.decide("github.com", 0).reason, Reason::BadPort);
        for bad in [
            "",
            ".",
            "a b.com",
            "a/b",
            "x..y",
            "é.com",
            "[::1",
            "[1.2.3.4]",
            "a:b",
        ] {
            assert_eq!(r.decide(bad, 80).reason, Reason::BadHost, "{bad:?}");
        }
    }

    #[test]
    fn deny_wins() {
        let r = policy(
            r#"{"allowedDomains": ["**.example.com", "*"], "deniedDomains": ["telemetry.example.com", "*.ads.example.com:80"]}"#,
        );
        let v = r.decide("telemetry.example.com", 443);
        assert!(!v.allowed);
        assert_eq!(v.reason, Reason::DeniedByRule);
        assert_eq!(v.rule.unwrap().text, "telemetry.example.com");
        assert!(!r.decide("x.ads.example.com", 80).allowed);
        assert!(r.decide("x.ads.example.com", 443).allowed);
        assert!(r.decide("anything.net", 443).allowed);
    }

    #[test]
    fn addresses_and_ranges() {
        let r = allow(&["10.0.0.0/8:5432", "[::1]:8080", "192.0.2.7", "example.com"]);
        assert!(full(&r, "10.1.2.3", 5432, "10.1.2.3", false).allowed);
        assert!(!r.decide("10.1.2.3", 5433).allowed);
        assert!(full(&r, "[::1]", 8080, "::1", false).allowed);
        assert!(full(&r, "::1", 8080, "::1", false).allowed);
        assert!(!r.decide("[::1]", 8081).allowed);
        assert!(r.decide("192.0.2.7", 1).allowed);
        assert!(!r.decide("192.0.2.8", 1).allowed);
        // An address literal is not matched by name rules, nor a name by address rules.
        assert!(!r.decide(PUBLIC, 443).allowed);
        // IPv4 carried in IPv6 is the IPv4 address.
        assert!(full(&r, "::ffff:10.0.0.9", 5432, "::ffff:10.0.0.9", false).allowed);
        assert!(r.decide("[::ffff:192.0.2.7]", 9).allowed);
    }

    #[test]
    fn special_addresses_are_refused_unless_named() {
        let r = allow(&["*.example.com", "api.example.net"]);
        for (addr, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.9.9.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("64:ff9b::a9fe:a9fe", AddressClass::Metadata),
            ("2002:a9fe:a9fe::1", AddressClass::Metadata),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("::ffff:192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.100.100.200", AddressClass::SharedCgnat),
            ("fd12:3456::1", AddressClass::UniqueLocal),
            ("fc00::1", AddressClass::UniqueLocal),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
        ] {
            assert_eq!(AddressClass::of(ip(addr)), class, "{addr}");
            // DNS rebinding: an allowed name that resolves to such an address.
            let v = full(&r, "api.example.com", 443, addr, false);
            assert!(!v.allowed, "{addr} must be refused");
            assert_eq!(v.reason, Reason::Address(class), "{addr}");
            assert_eq!(v.rule, None);
            // The same address chosen on purpose with --resolve.
            let v = full(&r, "api.example.com", 443, addr, true);
            assert!(v.allowed, "{addr} was mapped");
            assert_eq!(v.reason, Reason::Mapped);
            // Mapping never rescues a name the rules refuse.
            assert!(!full(&r, "other.org", 443, addr, true).allowed);
        }
        for addr in [
            PUBLIC,
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "8.8.8.8",
        ] {
            assert_eq!(AddressClass::of(ip(addr)), AddressClass::Public, "{addr}");
            assert!(
                full(&r, "api.example.net", 443, addr, false).allowed,
                "{addr}"
            );
        }
    }

    #[test]
    fn special_addresses_named_by_a_rule() {
        let r = allow(&["*", "10.0.0.0/8:5432", "localhost:3000", "169.254.169.254"]);
        assert!(!full(&r, "db.corp", 5432, "192.168.0.1", false).allowed);
        let v = full(&r, "db.corp", 5432, "10.2.3.4", false);
        assert!(v.allowed);
        assert_eq!(v.rule.unwrap().text, "10.0.0.0/8:5432");
        assert!(!full(&r, "db.corp", 5433, "10.2.3.4", false).allowed);
        assert!(full(&r, "localhost", 3000, "127.0.0.1", false).allowed);
        assert!(full(&r, "localhost", 3000, "::1", false).allowed);
        assert!(!full(&r, "localhost", 3001, "127.0.0.1", false).allowed);
        assert!(full(&r, "169.254.169.254", 80, "169.254.169.254", false).allowed);
        // `*` alone names no address.
        let any = allow(&["*"]);
        assert!(any.decide("127.0.0.1", 80).allowed, "the name step allows");
        assert_eq!(
            full(&any, "127.0.0.1", 80, "127.0.0.1", false).reason,
            Reason::Address(AddressClass::Loopback)
        );
    }

    #[test]
    fn deny_rules_apply_to_resolved_addresses() {
        let r = policy(
            r#"{"allowedDomains": ["*", "10.0.0.0/8"], "deniedDomains": ["10.9.0.0/16", "93.184.216.0/24"]}"#,
        );
        let v = full(&r, "innocent.example", 443, PUBLIC, false);
        assert!(!v.allowed);
        assert_eq!(v.rule.unwrap().text, "93.184.216.0/24");
        assert!(
            !full(&r, "db.example", 443, "10.9.1.1", true).allowed,
            "deny beats --resolve"
        );
        assert!(full(&r, "db.example", 443, "10.8.1.1", false).allowed);
    }

    #[test]
    fn isolated_policy_allows_nothing() {
        let r = policy("{}");
        assert!(r.allows_nothing());
        assert!(!r.decide("example.com", 443).allowed);
    }

    #[test]
    fn bytes_are_canonical_and_round_trip() {
        let a = policy(
            r#"{"allowedDomains": ["b.example.com", "a.example.com:443", "[::1]:8080", "a.example.com:443"],
               "deniedDomains": ["10.0.0.0/8"], "proxyUrl": "socks5h://u:p@localhost:1080"}"#,
        );
        let bytes = a.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"format":1,"allow":[{"text":"[::1]:8080","origin":"greywall.json:2:"#
            ),
            "{text}"
        );
        assert!(text.contains(r#""upstream":{"scheme":"socks5h","host":"localhost","port":1080,"username":"u","password":"p"}"#), "{text}");
        let b = EgressRules::from_bytes(&bytes).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_bytes(), bytes);
        assert_eq!(a.allow.len(), 3);
    }

    #[test]
    fn dns_names_follow_the_name_rules_on_any_port() {
        let r = policy(
            r#"{"allowedDomains": ["*.example.com", "api.test:443", "both.test:443", "ssh.test:22", "*"],
               "deniedDomains": ["evil.example.com", "both.test:443", "ssh.test:22"]}"#,
        );
        let name = |h: &str| r.decide_name(&Host::parse(h).unwrap());
        assert!(name("a.example.com").allowed);
        assert!(name("A.Example.COM.").allowed, "case and trailing dot");
        let v = name("evil.example.com");
        assert!(!v.allowed);
        assert_eq!(v.reason, Reason::DeniedByRule);
        assert_eq!(v.rule.unwrap().text, "evil.example.com");
        // A deny on one port takes only that port: `*` still allows the others.
        assert!(name("both.test").allowed);
        assert!(!name("127.0.0.1").allowed, "literals are not names");

        let r = policy(
            r#"{"allowedDomains": ["api.test:443", "both.test:443"], "deniedDomains": ["both.test:443"]}"#,
        );
        let name = |h: &str| r.decide_name(&Host::parse(h).unwrap());
        let v = name("api.test");
        assert!(v.allowed);
        assert_eq!(v.rule.unwrap().text, "api.test:443");
        let v = name("both.test");
        assert!(!v.allowed, "its only allowed port is denied");
        assert_eq!(v.reason, Reason::DeniedByRule);
        let v = name("other.test");
        assert_eq!((v.allowed, v.reason), (false, Reason::NotAllowed));
        assert!(
            !policy("{}")
                .decide_name(&Host::parse("a.test").unwrap())
                .allowed
        );
    }

    #[test]
    fn dns_server_is_carried_only_when_set() {
        let plain = policy(r#"{"allowedDomains": ["a.test"]}"#);
        assert!(plain.dns().is_none());
        let text = String::from_utf8(plain.to_bytes()).unwrap();
        assert!(!text.contains("dns"), "{text}");
        let r = policy(r#"{"allowedDomains": ["a.test"], "dnsAddr": "localhost:43053"}"#);
        assert_eq!(
            r.dns(),
            Some(&DnsServer {
                host: "localhost".into(),
                port: 43053
            })
        );
        let bytes = r.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""dns":{"host":"localhost","port":43053}"#),
            "{text}"
        );
        assert_eq!(EgressRules::from_bytes(&bytes).unwrap(), r);
        let zero = text.replace("43053", "0");
        assert!(EgressRules::from_bytes(zero.as_bytes()).is_err());
    }

    #[test]
    fn http_proxy_url_alone_makes_a_rule_set_proxyd_refuses() {
        let r =
            policy(r#"{"allowedDomains": ["a.test"], "httpProxyUrl": "http://localhost:43051"}"#);
        assert_eq!(r.upstream().map(|u| u.scheme.as_str()), Some("http"));
        let e = EgressRules::from_bytes(&r.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("httpProxyUrl"), "{e}");
        let both = policy(
            r#"{"allowedDomains": ["a.test"], "httpProxyUrl": "http://localhost:43051", "proxyUrl": "socks5://localhost:43052"}"#,
        );
        assert_eq!(both.upstream().map(|u| u.port), Some(43052));
        assert!(EgressRules::from_bytes(&both.to_bytes()).is_ok());
    }

    #[test]
    fn from_bytes_refuses_bad_input() {
        for bad in [
            &b""[..],
            b"{}",
            br#"{"format":2,"allow":[],"deny":[],"upstream":null}"#,
            br#"{"format":1,"allow":[{"text":"https://x.com","origin":"a"}],"deny":[],"upstream":null}"#,
            br#"{"format":1,"allow":[{"text":"X.com","origin":"a"}],"deny":[],"upstream":null}"#,
            br#"{"format":1,"allow":[],"deny":[],"upstream":null,"extra":1}"#,
            br#"{"format":1,"allow":[],"deny":[],"upstream":{"scheme":"http","host":"h","port":1,"username":null,"password":null}}"#,
        ] {
            assert!(EgressRules::from_bytes(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,2}\\.(example|test)\\.com",
            "\\*\\.[a-c]{1,2}\\.example\\.com",
            "\\*\\*\\.[a-c]{0,1}example\\.com",
            "10\\.[0-2]\\.0\\.0/16",
            "127\\.0\\.0\\.[1-3]",
        ]
        .prop_flat_map(|p| {
            prop_oneof![
                Just(p.clone()),
                (1u16..4).prop_map(move |port| format!("{p}:{port}"))
            ]
        })
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "([a-c]{1,2}\\.){0,2}(example|test)\\.com",
            "10\\.[0-2]\\.[0-9]\\.[0-9]",
            "127\\.0\\.0\\.[0-4]",
        ]
    }

    proptest! {
        #[test]
        fn deny_always_wins(a in proptest::collection::vec(pattern(), 0..5),
                            d in proptest::collection::vec(pattern(), 0..5),
                            h in host(), port in 1u16..4) {
            let r = policy(&format!("{{\"allowedDomains\": {}, \"deniedDomains\": {}}}",
                serde_json::json!(a), serde_json::json!(d)));
            let v = r.decide(&h, port);
            let host = Host::parse(&h).unwrap();
            let denied = r.deny.iter().any(|x| x.matches(&host, port));
            let allowed = r.allow.iter().any(|x| x.matches(&host, port));
            prop_assert_eq!(v.allowed, allowed && !denied);
            // Case and a trailing dot never change a decision.
            prop_assert_eq!(r.decide(&format!("{}.", h.to_ascii_uppercase()), port), v.clone());
            // Bytes round-trip to the same decisions.
            let back = EgressRules::from_bytes(&r.to_bytes()).unwrap();
            prop_assert_eq!(back.decide(&h, port), v);
        }

        #[test]
        fn private_v4_refused_unless_mapped(b in 0u32..(1 << 24), port in 1u16..) {
            let r = allow(&["*.example.com"]);
            let addr = IpAddr::V4(Ipv4Addr::from((10u32 << 24) | b));
            let name = r.decide("a.example.com", port);
            prop_assert!(!r.check_address(&name, addr, port, false).allowed);
            let mapped = match addr { IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()), a => a };
            prop_assert!(!r.check_address(&name, mapped, port, false).allowed);
            prop_assert!(r.check_address(&name, addr, port, true).allowed);
        }

        #[test]
        fn host_parse_never_panics(s in "\\PC{0,40}") {
            let _ = Host::parse(&s);
            let _ = allow(&["*"]).decide(&s, 80);
        }
    }
}
