//! Domain patterns for `network.allowedDomains` and `network.deniedDomains`.
//!
//! Accepted forms (Greywall's, plus addresses):
//! - `example.com`: exactly that host;
//! - `*.example.com`: strict subdomains, not the apex (Greywall's meaning);
//! - `**.example.com`: the apex and every subdomain;
//! - `*`: everything (relaxed network mode);
//! - `localhost`, IPv4 and IPv6 addresses (`[::1]` or `::1`) and CIDR ranges (`10.0.0.0/8`).
//!
//! Names are compared case-insensitively and without a trailing dot. Ports, schemes and paths
//! are rejected: a domain rule covers every port.

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
            let host = rest.split(['/', ':']).next().unwrap_or(rest);
            return Err(PatternError::new(
                Code::DomainHasPort,
                "domain pattern includes a URL scheme",
            )
            .help(format!("write only the host name: \"{host}\"")));
        }
        // Addresses: bracketed IPv6, bare IPv6, IPv4, CIDR.
        if let Some(inner) = s.strip_prefix('[') {
            return match inner.split_once(']') {
                Some((addr, "")) => match addr.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V6(_)) => Ok(DomainPattern::Ip(ip)),
                    _ => Err(PatternError::new(
                        Code::InvalidDomain,
                        format!("`{addr}` is not an IPv6 address"),
                    )),
                },
                Some((addr, _)) => Err(PatternError::new(
                    Code::DomainHasPort,
                    "domain pattern includes a port",
                )
                .help(format!(
                    "domain rules cover every port; write \"[{addr}]\" (port rules are a .gw feature)"
                ))),
                None => Err(PatternError::new(Code::InvalidDomain, "unclosed `[` in address")),
            };
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(DomainPattern::Ip(ip));
        }
        if let Some((addr, prefix)) = s.split_once('/') {
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                return match prefix.parse::<u8>() {
                    Ok(p) if p <= max => {
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
            let host = addr;
            return Err(
                PatternError::new(Code::DomainHasPort, "domain pattern includes a path")
                    .help(format!("write only the host name: \"{host}\"")),
            );
        }
        if s.contains(':') {
            let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
            return Err(PatternError::new(
                Code::DomainHasPort,
                "domain pattern includes a port",
            )
            .help(format!(
                "domain rules cover every port; write \"{host}\" (port rules are a .gw feature)"
            )));
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
        }
    }

    /// True if every host this pattern matches is also matched by `other`.
    pub fn is_covered_by(&self, other: &DomainPattern) -> bool {
        use DomainPattern as D;
        match (other, self) {
            (D::Any, _) => true,
            (_, D::Any) => false,
            (D::Exact(a), D::Exact(b)) => a == b,
            (D::Subdomains(a), D::Exact(b)) => is_strict_subdomain(b, a),
            (D::Subdomains(a), D::Subdomains(b) | D::ApexAndSubdomains(b)) => {
                is_strict_subdomain(b, a) || (a == b && matches!(self, D::Subdomains(_)))
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
        match self {
            DomainPattern::Subdomains(b) | DomainPattern::ApexAndSubdomains(b) => Some(b),
            _ => None,
        }
    }
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
        assert_eq!(code("example.com:443"), Code::DomainHasPort);
        assert_eq!(code("[::1]:443"), Code::DomainHasPort);
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
