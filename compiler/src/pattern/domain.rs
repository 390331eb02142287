//! Domain patterns for `network.allowedDomains` and `network.deniedDomains`.
//!
//! Accepted forms (Greywall's, plus addresses and ports):
//! - `example.com`: exactly that host;
//! - `*.example.com`: strict subdomains, not the apex (Greywall's meaning);
//! - `**.example.com`: the apex and every subdomain;
//! - `*`: everything (relaxed network mode);
//! - `localhost`, IPv4 and IPv6 addresses (`[::1]` or `::1`) and CIDR ranges (`10.0.0.0/8`);
//! - any of these but `*` with a port: `github.com:22`, `*.example.com:443`,
//!   `10.0.0.0/8:5432`, `[::1]:8080` (an IPv6 address with a port needs its brackets).
//!
//! Names are compared case-insensitively and without a trailing dot. A rule without a port
//! covers every port. Schemes and paths are rejected (E302): the proxy sees hosts, not URLs.

use std::fmt;
use std::net::IpAddr;

use super::PatternError;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `*`: every destination.
    Any,
    /// One host name, lower-case, no trailing dot.
    Exact(String),
    /// `*.base`: every strict subdomain of `base`.
    Subdomains(String),
    /// `**.base`: `base` and every subdomain.
    ApexAndSubdomains(String),
    /// One address.
    Ip(IpAddr),
    /// An address range.
    Cidr(IpAddr, u8),
    /// A host pattern (never `Any`, never another `OnPort`) restricted to one port.
    OnPort(Box<DomainPattern>, u16),
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(h) => f.write_str(h),
            DomainPattern::Subdomains(b) => write!(f, "*.{b}"),
            DomainPattern::ApexAndSubdomains(b) => write!(f, "**.{b}"),
            DomainPattern::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            DomainPattern::Ip(a) => write!(f, "{a}"),
            DomainPattern::Cidr(a, p) => write!(f, "{a}/{p}"),
            DomainPattern::OnPort(h, port) => write!(f, "{h}:{port}"),
        }
    }
}

impl DomainPattern {
    /// Parses and validates a pattern.
    pub fn parse(raw: &str) -> Result<DomainPattern, PatternError> {
        let s = raw.trim();
        if s != raw {
            return Err(PatternError::new(
                Code::InvalidDomain,
                "domain pattern has leading or trailing whitespace",
            )
            .help(format!("write \"{s}\"")));
        }
        if s.is_empty() {
            return Err(PatternError::new(Code::EmptyString, "empty domain pattern"));
        }
        if s == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(idx) = s.find("://") {
            let rest = &s[idx + 3..];
            let host = rest.split('/').next().unwrap_or(rest);
            return Err(PatternError::new(
                Code::DomainHasPort,
                "domain pattern includes a URL scheme",
            )
            .help(format!("write only the host name: \"{host}\"")));
        }
        let (host, port) = split_port(s)?;
        let host = parse_host(host)?;
        match port {
            None => Ok(host),
            Some(_) if host == DomainPattern::Any => any_with_port(),
            Some(p) => Ok(DomainPattern::OnPort(Box::new(host), p)),
        }
    }

    /// The host part, without a port.
    pub fn host(&self) -> &DomainPattern {
        match self {
            DomainPattern::OnPort(h, _) => h,
            other => other,
        }
    }

    /// The one port this pattern is restricted to, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            DomainPattern::OnPort(_, p) => Some(*p),
            _ => None,
        }
    }

    /// Whether the pattern covers `port` (a pattern without a port covers every port).
    pub fn matches_port(&self, port: u16) -> bool {
        self.port().is_none_or(|p| p == port)
    }

    /// Whether the pattern names this address or a range containing it. `*` and names do not.
    pub fn names_address(&self, addr: IpAddr) -> bool {
        match self.host() {
            DomainPattern::Ip(ip) => *ip == addr,
            DomainPattern::Cidr(net, p) => {
                addr.is_ipv4() == net.is_ipv4() && masked(addr, *p) == *net
            }
            _ => false,
        }
    }

    /// Whether a (lower-case, dot-trimmed) host name matches. Addresses never match names here:
    /// address rules are checked against resolved addresses by proxyd.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(h) => *h == host,
            DomainPattern::Subdomains(b) => is_strict_subdomain(&host, b),
            DomainPattern::ApexAndSubdomains(b) => host == *b || is_strict_subdomain(&host, b),
            DomainPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            DomainPattern::Cidr(net, p) => host
                .parse::<IpAddr>()
                .is_ok_and(|h| masked(h, *p) == *net && h.is_ipv4() == net.is_ipv4()),
            DomainPattern::OnPort(h, _) => h.matches_host(&host),
        }
    }

    /// True if every host this pattern matches is also matched by `other`.
    pub fn is_covered_by(&self, other: &DomainPattern) -> bool {
        use DomainPattern as D;
        if other.port().is_some_and(|p| self.port() != Some(p)) {
            return false;
        }
        let (other, this) = (other.host(), self.host());
        match (other, this) {
            (D::Any, _) => true,
            (_, D::Any) => false,
            (D::Exact(a), D::Exact(b)) => a == b,
            (D::Subdomains(a), D::Exact(b)) => is_strict_subdomain(b, a),
            (D::Subdomains(a), D::Subdomains(b) | D::ApexAndSubdomains(b)) => {
                is_strict_subdomain(b, a) || (a == b && matches!(this, D::Subdomains(_)))
            }
            (D::ApexAndSubdomains(a), D::Exact(b) | D::Subdomains(b) | D::ApexAndSubdomains(b)) => {
                a == b || is_strict_subdomain(b, a)
            }
            (D::Ip(a), D::Ip(b)) => a == b,
            (D::Cidr(n, p), D::Ip(b)) => b.is_ipv4() == n.is_ipv4() && masked(*b, *p) == *n,
            (D::Cidr(n, p), D::Cidr(m, q)) => {
                m.is_ipv4() == n.is_ipv4() && q >= p && masked(*m, *p) == *n
            }
            _ => false,
        }
    }

    /// The domain the pattern is anchored at, for wildcard patterns.
    pub fn wildcard_base(&self) -> Option<&str> {
        match self.host() {
            DomainPattern::Subdomains(b) | DomainPattern::ApexAndSubdomains(b) => Some(b),
            _ => None,
        }
    }
}

fn any_with_port() -> Result<DomainPattern, PatternError> {
    Err(
        PatternError::new(Code::InvalidDomain, "`*` cannot be limited to a port")
            .help("name the hosts, as in \"*.example.com:443\", or write \"*\" for every port"),
    )
}

/// Splits `host[:port]`, `[v6][:port]` and `addr/prefix[:port]`. Paths are E302.
fn split_port(s: &str) -> Result<(&str, Option<u16>), PatternError> {
    if let Some(inner) = s.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err(PatternError::new(
                Code::InvalidDomain,
                "unclosed `[` in address",
            ));
        };
        let host = &s[..close + 2];
        let rest = &inner[close + 1..];
        return match rest.strip_prefix(':') {
            _ if rest.is_empty() => Ok((host, None)),
            Some(port) => Ok((host, Some(parse_port(port, host)?))),
            None if rest.starts_with('/') => Err(path_error(host)),
            None => Err(PatternError::new(
                Code::InvalidDomain,
                format!("unexpected `{rest}` after `{host}`"),
            )
            .help(format!("write \"{host}\" or \"{host}:PORT\""))),
        };
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok((s, None));
    }
    if let Some((addr, tail)) = s.split_once('/') {
        if addr.parse::<IpAddr>().is_err() {
            return Err(path_error(addr));
        }
        return match tail.find(':') {
            Some(i) => {
                let host = &s[..addr.len() + 1 + i];
                Ok((host, Some(parse_port(&tail[i + 1..], host)?)))
            }
            None => Ok((s, None)),
        };
    }
    match s.split_once(':') {
        None => Ok((s, None)),
        Some((host, port)) if !port.contains(':') => Ok((host, Some(parse_port(port, host)?))),
        Some(_) => Err(PatternError::new(
            Code::InvalidDomain,
            format!("`{s}` is neither an IPv6 address nor `host:port`"),
        )
        .help("write an IPv6 address with a port in brackets, as in \"[2001:db8::1]:443\"")),
    }
}

fn path_error(host: &str) -> PatternError {
    PatternError::new(Code::DomainHasPort, "domain pattern includes a path")
        .help(format!("write only the host name: \"{host}\""))
}

fn parse_port(text: &str, host: &str) -> Result<u16, PatternError> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(PatternError::new(
            Code::InvalidDomain,
            format!("`{text}` is not a port number"),
        )
        .help(format!(
            "use a number from 1 to 65535, as in \"{host}:443\", or leave the port out to cover every port"
        ))),
    }
}

/// Parses the host part of a pattern (no port, no scheme).
fn parse_host(s: &str) -> Result<DomainPattern, PatternError> {
    if s.is_empty() {
        return Err(PatternError::new(
            Code::InvalidDomain,
            "domain pattern has no host before its port",
        ));
    }
    if s == "*" {
        return Ok(DomainPattern::Any);
    }
    if let Some(inner) = s.strip_prefix('[') {
        let addr = inner.strip_suffix(']').unwrap_or(inner);
        return match addr.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V6(_)) => Ok(DomainPattern::Ip(ip)),
            _ => Err(PatternError::new(
                Code::InvalidDomain,
                format!("`{addr}` is not an IPv6 address"),
            )),
        };
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(DomainPattern::Ip(ip));
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return Err(path_error(addr));
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return match prefix.parse::<u8>() {
            Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                if masked(ip, p) != ip {
                    return Err(PatternError::new(
                        Code::InvalidDomain,
                        format!("`{s}` has bits set outside its /{p} prefix"),
                    )
                    .help(format!("write \"{}/{p}\"", masked(ip, p))));
                }
                Ok(DomainPattern::Cidr(ip, p))
            }
            _ => Err(PatternError::new(
                Code::InvalidDomain,
                format!("`/{prefix}` is not a valid prefix length for {addr}"),
            )
            .help(format!("use a number from 0 to {max}"))),
        };
    }

    let lower = s.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
    let (kind, base): (fn(String) -> DomainPattern, &str) =
        if let Some(b) = lower.strip_prefix("**.") {
            (DomainPattern::ApexAndSubdomains, b)
        } else if let Some(b) = lower.strip_prefix("*.") {
            (DomainPattern::Subdomains, b)
        } else {
            (DomainPattern::Exact, lower.as_str())
        };
    if base.contains('*') {
        return Err(PatternError::new(
            Code::InvalidDomain,
            "a wildcard may only stand at the start, as `*.` or `**.`",
        )
        .help("write \"*.example.com\" for subdomains, \"**.example.com\" for the domain and its subdomains"));
    }
    validate_name(base)?;
    let is_wild = base.len() != lower.len();
    if is_wild {
        if base.split('.').count() < 2 {
            return Err(PatternError::new(
                Code::DomainTooBroad,
                format!("`{s}` covers a whole top-level domain"),
            )
            .help("name at least two labels after the wildcard, as in \"*.example.com\""));
        }
    } else if base != "localhost" && !base.contains('.') {
        return Err(PatternError::new(
            Code::InvalidDomain,
            format!("`{s}` is not a fully qualified domain name"),
        )
        .help("write the full name, as in \"example.com\""));
    }
    Ok(kind(base.to_string()))
}

fn is_strict_subdomain(host: &str, base: &str) -> bool {
    host.len() > base.len() + 1
        && host.ends_with(base)
        && host.as_bytes()[host.len() - base.len() - 1] == b'.'
}

fn validate_name(name: &str) -> Result<(), PatternError> {
    if name.is_empty() {
        return Err(PatternError::new(
            Code::InvalidDomain,
            "wildcard with no domain after it",
        ));
    }
    if name.len() > 253 {
        return Err(PatternError::new(
            Code::InvalidDomain,
            "domain name is longer than 253 characters",
        ));
    }
    if !name.is_ascii() {
        return Err(
            PatternError::new(Code::InvalidDomain, "domain name has non-ASCII characters")
                .help("write internationalised names in their punycode (xn--) form"),
        );
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(PatternError::new(
            Code::InvalidDomain,
            "domain name has an empty label (a leading, trailing or doubled dot)",
        ));
    }
    for label in name.split('.') {
        if label.len() > 63 {
            return Err(PatternError::new(
                Code::InvalidDomain,
                format!("label `{label}` is longer than 63 characters"),
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(PatternError::new(
                Code::InvalidDomain,
                format!("`{c}` is not allowed in a domain name"),
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(PatternError::new(
                Code::InvalidDomain,
                format!("label `{label}` starts or ends with `-`"),
            ));
        }
    }
    Ok(())
}

/// `ip` with every bit past `prefix` cleared.
pub fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> DomainPattern {
        DomainPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }
    fn code(s: &str) -> Code {
        DomainPattern::parse(s).unwrap_err().code
    }

    #[test]
    fn greywall_validation_cases() {
        assert_eq!(
            ok("example.com"),
            DomainPattern::Exact("example.com".into())
        );
        assert_eq!(
            ok("Example.COM."),
            DomainPattern::Exact("example.com".into())
        );
        assert_eq!(
            ok("*.example.com"),
            DomainPattern::Subdomains("example.com".into())
        );
        assert_eq!(
            ok("**.example.com"),
            DomainPattern::ApexAndSubdomains("example.com".into())
        );
        assert_eq!(ok("localhost"), DomainPattern::Exact("localhost".into()));
        assert_eq!(ok("*"), DomainPattern::Any);
        assert_eq!(
            ok("169.254.169.254"),
            DomainPattern::Ip("169.254.169.254".parse().unwrap())
        );
        assert_eq!(ok("[::1]"), DomainPattern::Ip("::1".parse().unwrap()));
        assert_eq!(ok("fd00::1"), DomainPattern::Ip("fd00::1".parse().unwrap()));
        assert_eq!(
            ok("10.0.0.0/8"),
            DomainPattern::Cidr("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(code("*.com"), Code::DomainTooBroad);
        assert_eq!(code("*."), Code::InvalidDomain);
        assert_eq!(code("example.*.com"), Code::InvalidDomain);
        assert_eq!(code("example.com.*"), Code::InvalidDomain);
        assert_eq!(code("example"), Code::InvalidDomain);
        assert_eq!(code(".example.com"), Code::InvalidDomain);
        assert_eq!(code("https://example.com"), Code::DomainHasPort);
        assert_eq!(code("example.com/path"), Code::DomainHasPort);
        assert_eq!(code("10.0.0.1/8"), Code::InvalidDomain);
        assert_eq!(code("10.0.0.0/33"), Code::InvalidDomain);
        assert_eq!(code("exa mple.com"), Code::InvalidDomain);
        assert_eq!(code("bücher.de"), Code::InvalidDomain);
        assert_eq!(code(""), Code::EmptyString);
        assert_eq!(code(" example.com"), Code::InvalidDomain);
    }

    #[test]
    fn ports() {
        let on = |h: &str, p| DomainPattern::OnPort(Box::new(ok(h)), p);
        assert_eq!(ok("github.com:22"), on("github.com", 22));
        assert_eq!(ok("*.Example.com.:443"), on("*.example.com", 443));
        assert_eq!(ok("**.example.com:443"), on("**.example.com", 443));
        assert_eq!(ok("10.0.0.0/8:5432"), on("10.0.0.0/8", 5432));
        assert_eq!(ok("[::1]:8080"), on("::1", 8080));
        assert_eq!(ok("192.0.2.7:80"), on("192.0.2.7", 80));
        assert_eq!(ok("fd00::/8:443"), on("fd00::/8", 443));
        assert_eq!(ok("localhost:3000"), on("localhost", 3000));
        assert_eq!(ok("github.com:22").to_string(), "github.com:22");
        assert_eq!(ok("[::1]:8080").to_string(), "[::1]:8080");
        assert_eq!(ok("github.com:22").port(), Some(22));
        assert_eq!(ok("github.com").port(), None);
        // Bare IPv6 addresses are addresses, not host:port.
        assert_eq!(
            ok("2001:db8::1"),
            DomainPattern::Ip("2001:db8::1".parse().unwrap())
        );
        for bad in [
            "example.com:0",
            "example.com:65536",
            "example.com:",
            "example.com:+443",
            "example.com:4a",
            "example.com:1:2",
            ":443",
            "*:443",
            "[::1]:",
            "[::1]x",
            "[10.0.0.1]:80",
            "10.0.0.0/8:",
            "10.0.0.0/+8",
        ] {
            assert_eq!(code(bad), Code::InvalidDomain, "{bad}");
        }
        for bad in [
            "https://example.com:443",
            "example.com:443/api",
            "example.com/api:443",
            "[::1]/x",
        ] {
            assert_eq!(code(bad), Code::DomainHasPort, "{bad}");
        }
        assert_eq!(code("*.com:443"), Code::DomainTooBroad);
    }

    #[test]
    fn port_matching_and_coverage() {
        let p = ok("*.example.com:443");
        assert!(p.matches_host("a.example.com") && p.matches_port(443) && !p.matches_port(80));
        assert!(ok("example.com").matches_port(1));
        assert!(ok("a.example.com:443").is_covered_by(&ok("*.example.com")));
        assert!(ok("a.example.com:443").is_covered_by(&ok("*.example.com:443")));
        assert!(!ok("a.example.com:80").is_covered_by(&ok("*.example.com:443")));
        assert!(!ok("a.example.com").is_covered_by(&ok("*.example.com:443")));
        assert!(ok("10.1.0.0/16:5432").is_covered_by(&ok("10.0.0.0/8")));
        assert_eq!(ok("*.example.com:443").wildcard_base(), Some("example.com"));
        assert!(ok("10.0.0.0/8:5432").names_address("10.9.9.9".parse().unwrap()));
        assert!(!ok("*").names_address("10.9.9.9".parse().unwrap()));
        assert!(!ok("localhost").names_address("127.0.0.1".parse().unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(s in "[a-zA-Z0-9*.:/\\[\\]-]{0,24}") {
            if let Ok(p) = DomainPattern::parse(&s) {
                let again = DomainPattern::parse(&p.to_string());
                proptest::prop_assert_eq!(again, Ok(p));
            }
        }

        #[test]
        fn generated_ports_round_trip(label in "[a-z][a-z0-9]{0,10}", port in 1u16..) {
            let text = format!("*.{label}.example:{port}");
            let p = DomainPattern::parse(&text);
            proptest::prop_assert_eq!(p.as_ref().map(DomainPattern::port), Ok(Some(port)));
            proptest::prop_assert_eq!(p.map(|p| p.to_string()), Ok(text));
        }
    }

    #[test]
    fn matching() {
        let sub = ok("*.example.com");
        assert!(sub.matches_host("api.example.com"));
        assert!(sub.matches_host("a.b.example.com."));
        assert!(!sub.matches_host("example.com"), "apex is not a subdomain");
        assert!(!sub.matches_host("badexample.com"));
        let both = ok("**.example.com");
        assert!(both.matches_host("example.com") && both.matches_host("x.example.com"));
        assert!(ok("EXAMPLE.com").matches_host("example.COM"));
        assert!(ok("10.0.0.0/8").matches_host("10.1.2.3"));
        assert!(!ok("10.0.0.0/8").matches_host("11.1.2.3"));
    }

    #[test]
    fn coverage() {
        assert!(ok("api.example.com").is_covered_by(&ok("*.example.com")));
        assert!(!ok("example.com").is_covered_by(&ok("*.example.com")));
        assert!(ok("example.com").is_covered_by(&ok("**.example.com")));
        assert!(ok("*.a.example.com").is_covered_by(&ok("*.example.com")));
        assert!(!ok("**.example.com").is_covered_by(&ok("*.example.com")));
        assert!(ok("10.1.0.0/16").is_covered_by(&ok("10.0.0.0/8")));
        assert!(ok("anything.org").is_covered_by(&ok("*")));
    }
}
