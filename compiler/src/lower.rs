//! Lowering: one decoded greywall.json file to a typed [`Layer`].
//!
//! Every string is parsed into its typed pattern here, and every invalid one is reported with
//! its span. A list entry written as `"!entry"` is a removal: it drops a matching entry
//! inherited through `extends`.

use crate::config::{
    CommandConfig, ConfigFile, EnvironmentConfig, FilesystemConfig, NetworkConfig, PlatformConfig,
    Spanned, SshConfig, StringList,
};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{
    Entry, EnvPattern, EnvSet, Expectation, HostPort, List, Overlay, Platform, Policy, ProxyUrl,
    Section, Setting,
};
use crate::pattern::PatternError;
use crate::pattern::command::CommandPrefix;
use crate::pattern::domain::DomainPattern;
use crate::pattern::host::HostPattern;
use crate::pattern::path::PathPattern;
use crate::source::Span;
use crate::suggest::did_you_mean;

/// One file's contribution to a policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    pub extends: Option<Spanned<String>>,
    /// What the file sets and adds. Settings it does not mention keep `origin: None`.
    pub adds: Policy,
    /// Entries the file removes from what it inherits (`"!entry"`); only lists are used.
    pub removes: Policy,
    /// Named profiles (`--profile NAME`), each applied on top of the file when chosen.
    pub profiles: Vec<(Spanned<String>, Layer)>,
}

impl Layer {
    /// The same layer with every origin erased: a file and its conversion to the other
    /// language give equal layers after this.
    pub fn without_origins(&self) -> Layer {
        let zero = Span::new(crate::source::SourceId(0), 0, 0);
        Layer {
            extends: self.extends.as_ref().map(|e| Spanned {
                value: e.value.clone(),
                span: zero,
            }),
            adds: self.adds.without_origins(),
            removes: self.removes.without_origins(),
            profiles: self
                .profiles
                .iter()
                .map(|(n, p)| {
                    (
                        Spanned {
                            value: n.value.clone(),
                            span: zero,
                        },
                        p.without_origins(),
                    )
                })
                .collect(),
        }
    }

    /// The profile named `name`, if the file has one.
    pub fn profile(&self, name: &str) -> Option<&Layer> {
        self.profiles
            .iter()
            .find(|(n, _)| n.value == name)
            .map(|(_, l)| l)
    }
}

/// The sections shared by the top level, platform blocks and profiles.
struct Sections<'a> {
    network: Option<&'a NetworkConfig>,
    filesystem: Option<&'a FilesystemConfig>,
    command: Option<&'a CommandConfig>,
    ssh: Option<&'a SshConfig>,
    environment: Option<&'a EnvironmentConfig>,
    allow_pty: Option<&'a Spanned<bool>>,
    best_effort: Option<&'a StringList>,
    linux: Option<&'a PlatformConfig>,
    macos: Option<&'a PlatformConfig>,
}

macro_rules! sections {
    ($c:expr, $linux:expr, $macos:expr) => {
        Sections {
            network: $c.network.as_ref(),
            filesystem: $c.filesystem.as_ref(),
            command: $c.command.as_ref(),
            ssh: $c.ssh.as_ref(),
            environment: $c.environment.as_ref(),
            allow_pty: $c.allow_pty.as_ref(),
            best_effort: $c.best_effort.as_ref(),
            linux: $linux,
            macos: $macos,
        }
    };
}

/// Lowers a decoded file, appending problems to `diags`.
pub fn lower(cfg: &ConfigFile, diags: &mut Vec<Diagnostic>) -> Layer {
    let mut layer = Layer {
        extends: cfg.extends.clone(),
        ..Layer::default()
    };
    let mut cx = Lower { diags };
    cx.sections(
        &sections!(cfg, cfg.linux.as_ref(), cfg.macos.as_ref()),
        &mut layer.adds,
        &mut layer.removes,
    );
    if let Some(items) = &cfg.expect {
        for item in items {
            match Expectation::parse(&item.value) {
                Ok(value) => layer.adds.expects.push(Entry {
                    value,
                    origin: item.span,
                }),
                Err(e) => cx.report(e, item.span),
            }
        }
    }
    if let Some(profiles) = &cfg.profiles {
        for (name, p) in &profiles.0 {
            let mut pl = Layer::default();
            cx.sections(
                &sections!(p, p.linux.as_ref(), p.macos.as_ref()),
                &mut pl.adds,
                &mut pl.removes,
            );
            layer.profiles.push((name.clone(), pl));
        }
    }
    layer
}

impl Lower<'_> {
    fn sections(&mut self, c: &Sections<'_>, a: &mut Policy, r: &mut Policy) {
        if let Some(b) = c.allow_pty {
            a.allow_pty = Setting::set(b.value, b.span);
        }
        if let Some(n) = c.network {
            self.network(n, a, r);
        }
        if let Some(f) = c.filesystem {
            self.filesystem(f, a, r);
        }
        if let Some(cm) = c.command {
            self.command(cm, a, r);
        }
        if let Some(s) = c.ssh {
            self.ssh(s, a, r);
        }
        if let Some(e) = c.environment {
            self.list(
                &e.pass,
                &mut a.environment.pass,
                &mut r.environment.pass,
                EnvPattern::parse,
            );
            self.list(
                &e.drop,
                &mut a.environment.drop,
                &mut r.environment.drop,
                EnvPattern::parse,
            );
            self.list(
                &e.set,
                &mut a.environment.set,
                &mut r.environment.set,
                EnvSet::parse,
            );
        }
        self.list(
            &c.best_effort.cloned(),
            &mut a.best_effort,
            &mut r.best_effort,
            parse_section,
        );
        for (platform, pc) in [(Platform::Linux, c.linux), (Platform::Macos, c.macos)] {
            let Some(pc) = pc else { continue };
            let mut o = Overlay {
                platform,
                adds: Policy::default(),
                removes: Policy::default(),
            };
            self.sections(&sections!(pc, None, None), &mut o.adds, &mut o.removes);
            a.platforms.push(o);
        }
    }

    fn network(&mut self, n: &NetworkConfig, a: &mut Policy, r: &mut Policy) {
        let cx = self;
        cx.list(
            &n.allowed_domains,
            &mut a.network.allowed_domains,
            &mut r.network.allowed_domains,
            DomainPattern::parse,
        );
        cx.list(
            &n.denied_domains,
            &mut a.network.denied_domains,
            &mut r.network.denied_domains,
            DomainPattern::parse,
        );
        cx.list(
            &n.allow_unix_sockets,
            &mut a.network.allow_unix_sockets,
            &mut r.network.allow_unix_sockets,
            PathPattern::parse,
        );
        flag(
            &n.allow_all_unix_sockets,
            &mut a.network.allow_all_unix_sockets,
        );
        flag(&n.allow_local_binding, &mut a.network.allow_local_binding);
        if let Some(b) = &n.allow_local_outbound {
            a.network.allow_local_outbound = Setting::set(Some(b.value), b.span);
        }
        // 0 means "the default port", as in Greywall.
        if let Some(p) = n.http_proxy_port.as_ref().filter(|p| p.value != 0) {
            a.network.http_proxy_port = Setting::set(p.value, p.span);
        }
        if let Some(p) = n.socks_proxy_port.as_ref().filter(|p| p.value != 0) {
            a.network.socks_proxy_port = Setting::set(p.value, p.span);
        }
        if let Some(u) = &n.proxy_url
            && let Some(v) = cx.check(u, |s| parse_proxy_url(s, &["socks5", "socks5h"]))
        {
            a.network.proxy_url = Setting::set(Some(v), u.span);
        }
        if let Some(u) = &n.http_proxy_url
            && let Some(v) = cx.check(u, |s| parse_proxy_url(s, &["http", "https"]))
        {
            a.network.http_proxy_url = Setting::set(Some(v), u.span);
        }
        if let Some(d) = &n.dns_addr
            && let Some(v) = cx.check(d, parse_host_port)
        {
            a.network.dns_addr = Setting::set(Some(v), d.span);
        }
    }

    fn filesystem(&mut self, f: &FilesystemConfig, a: &mut Policy, r: &mut Policy) {
        let cx = self;
        if let Some(b) = &f.default_deny_read {
            a.filesystem.default_deny_read = Setting::set(b.value, b.span);
        }
        cx.list(
            &f.allow_read,
            &mut a.filesystem.allow_read,
            &mut r.filesystem.allow_read,
            PathPattern::parse,
        );
        cx.list(
            &f.deny_read,
            &mut a.filesystem.deny_read,
            &mut r.filesystem.deny_read,
            PathPattern::parse,
        );
        cx.list(
            &f.allow_write,
            &mut a.filesystem.allow_write,
            &mut r.filesystem.allow_write,
            PathPattern::parse,
        );
        cx.list(
            &f.deny_write,
            &mut a.filesystem.deny_write,
            &mut r.filesystem.deny_write,
            PathPattern::parse,
        );
        flag(&f.allow_git_config, &mut a.filesystem.allow_git_config);
    }

    fn command(&mut self, c: &CommandConfig, a: &mut Policy, r: &mut Policy) {
        let cx = self;
        cx.list(
            &c.deny,
            &mut a.command.deny,
            &mut r.command.deny,
            CommandPrefix::parse,
        );
        cx.list(
            &c.allow,
            &mut a.command.allow,
            &mut r.command.allow,
            CommandPrefix::parse,
        );
        if let Some(b) = &c.use_defaults {
            a.command.use_defaults = Setting::set(b.value, b.span);
        }
    }

    fn ssh(&mut self, s: &SshConfig, a: &mut Policy, r: &mut Policy) {
        let cx = self;
        cx.list(
            &s.allowed_hosts,
            &mut a.ssh.allowed_hosts,
            &mut r.ssh.allowed_hosts,
            HostPattern::parse,
        );
        cx.list(
            &s.denied_hosts,
            &mut a.ssh.denied_hosts,
            &mut r.ssh.denied_hosts,
            HostPattern::parse,
        );
        cx.list(
            &s.allowed_commands,
            &mut a.ssh.allowed_commands,
            &mut r.ssh.allowed_commands,
            CommandPrefix::parse,
        );
        cx.list(
            &s.denied_commands,
            &mut a.ssh.denied_commands,
            &mut r.ssh.denied_commands,
            CommandPrefix::parse,
        );
        flag(&s.allow_all_commands, &mut a.ssh.allow_all_commands);
        flag(&s.inherit_deny, &mut a.ssh.inherit_deny);
    }
}

/// Parses a section name (`bestEffort`).
pub fn parse_section(s: &str) -> Result<Section, PatternError> {
    Section::parse(s).ok_or_else(|| {
        let mut e = PatternError::new(Code::WrongType, format!("`{s}` is not a section"));
        let names = Section::ALL.iter().map(|(n, _)| *n);
        e = match did_you_mean(s, names) {
            Some(n) => e.help(format!("did you mean `{n}`?")),
            None => e.help("sections: filesystem, network, command, ssh, environment"),
        };
        e
    })
}

fn flag(src: &Option<Spanned<bool>>, dst: &mut Setting<bool>) {
    if let Some(b) = src {
        *dst = Setting::set(b.value, b.span);
    }
}

struct Lower<'a> {
    diags: &'a mut Vec<Diagnostic>,
}

impl Lower<'_> {
    pub(crate) fn report(&mut self, err: PatternError, span: Span) {
        let mut d = Diagnostic::new(err.code, err.message).at(span);
        if let Some(h) = err.help {
            d = d.help(h);
        }
        self.diags.push(d);
    }

    fn check<T>(
        &mut self,
        s: &Spanned<String>,
        parse: impl Fn(&str) -> Result<T, PatternError>,
    ) -> Option<T> {
        match parse(&s.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(e, s.span);
                None
            }
        }
    }

    fn list<T>(
        &mut self,
        src: &Option<StringList>,
        adds: &mut List<T>,
        removes: &mut List<T>,
        parse: impl Fn(&str) -> Result<T, PatternError>,
    ) {
        let Some(items) = src else { return };
        for item in items {
            let (text, target) = match item.value.strip_prefix('!') {
                Some(rest) => (rest, &mut *removes),
                None => (item.value.as_str(), &mut *adds),
            };
            match parse(text) {
                Ok(value) => target.push(Entry {
                    value,
                    origin: item.span,
                }),
                Err(e) => self.report(e, item.span),
            }
        }
    }
}

/// Parses `scheme://[userinfo@]host:port[/]` with one of the allowed schemes.
pub fn parse_proxy_url(s: &str, schemes: &[&str]) -> Result<ProxyUrl, PatternError> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(PatternError::new(
            Code::InvalidUrl,
            format!("proxy URL must start with {expected}"),
        ));
    };
    let scheme_l = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme_l.as_str()) {
        return Err(PatternError::new(
            Code::InvalidUrl,
            format!("unsupported proxy scheme `{scheme}://`; expected {expected}"),
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err(PatternError::new(
            Code::InvalidUrl,
            "proxy URL must not have a path or query",
        ));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, rest),
    };
    let hp = parse_host_port(hostport).map_err(|e| PatternError {
        code: Code::InvalidUrl,
        message: format!("proxy URL: {}", e.message),
        help: e.help,
    })?;
    Ok(ProxyUrl {
        scheme: scheme_l,
        userinfo,
        host: hp.host,
        port: hp.port,
    })
}

/// Parses `host:port` or `[v6]:port`.
pub fn parse_host_port(s: &str) -> Result<HostPort, PatternError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (h, p),
            None => {
                return Err(PatternError::new(
                    Code::InvalidAddr,
                    "expected `[address]:port`",
                ));
            }
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(
                    PatternError::new(Code::InvalidAddr, "IPv6 addresses need brackets")
                        .help("write `[address]:port`"),
                );
            }
            Some((h, p)) => (h, p),
            None => {
                return Err(
                    PatternError::new(Code::InvalidAddr, format!("`{s}` has no port"))
                        .help("write `host:port`"),
                );
            }
        }
    };
    if host.is_empty() {
        return Err(PatternError::new(
            Code::InvalidAddr,
            "missing host before the port",
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err(PatternError::new(
            Code::InvalidAddr,
            format!("`{host}` is not a host name or address"),
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port: p,
        }),
        _ => Err(PatternError::new(
            Code::InvalidAddr,
            format!("`{port}` is not a port number from 1 to 65535"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let u =
            parse_proxy_url("socks5h://user:pw@localhost:43052", &["socks5", "socks5h"]).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("localhost", 43052));
        assert_eq!(u.to_string(), "socks5h://***@localhost:43052");
        assert!(parse_proxy_url("http://localhost:1", &["socks5"]).is_err());
        assert!(parse_proxy_url("socks5://localhost", &["socks5"]).is_err());
        assert!(parse_proxy_url("socks5://:80", &["socks5"]).is_err());
        assert!(parse_proxy_url("socks5://[::1]:1080", &["socks5"]).is_ok());
        assert!(parse_proxy_url("localhost:1080", &["socks5"]).is_err());
    }

    #[test]
    fn host_ports() {
        assert_eq!(parse_host_port("localhost:53").unwrap().port, 53);
        assert_eq!(parse_host_port("[::1]:53").unwrap().host, "::1");
        assert!(parse_host_port("::1:53").is_err());
        assert!(parse_host_port("localhost").is_err());
        assert!(parse_host_port("localhost:0").is_err());
        assert!(parse_host_port(":53").is_err());
    }
}
