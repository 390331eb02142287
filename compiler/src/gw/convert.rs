//! Writing a [`Layer`] (one file's contribution) as `.gw` or as greywall.json.
//!
//! `greywall convert` loads a file with either front-end and writes it with the other. Both
//! writers print everything a layer holds, so converting and loading again gives the same layer
//! (origins aside); the tests check this for every shipped policy. Comments, `let` variables and
//! `include`s do not survive: the output states the rules they produced.

use std::fmt::Write as _;

use crate::lower::Layer;
use crate::model::{
    EnvPattern, EnvSet, ExpectOp, Expectation, HostPort, List, Platform, Policy, ProxyUrl, Setting,
};
use crate::pattern::domain::DomainPattern;
use crate::pattern::path::PathPattern;

/// Lines longer than this are broken after commas.
const WIDTH: usize = 96;

/// Words with a meaning inside rules; values spelled like them are quoted.
const RESERVED: &[&str] = &[
    "except",
    "and",
    "subdomains",
    "of",
    "true",
    "false",
    "unix-socket",
    "unix-sockets",
    "host",
    "hosts",
    "command",
    "commands",
    "read",
    "write",
];

/// A value as a `.gw` atom: bare when that reads back the same, quoted otherwise.
pub fn atom(s: &str) -> String {
    let bare = !s.is_empty()
        && !RESERVED.contains(&s)
        && s.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    ',' | ';' | '#' | '{' | '}' | '[' | ']' | '"' | '=' | '$' | '\\'
                )
        });
    if bare { s.to_string() } else { quote(s) }
}

/// A `"string"` with escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path: a leading `$anchor` stays a variable, the rest is quoted as needed.
fn path_atom(p: &PathPattern) -> String {
    let s = p.to_string();
    if let Some(rest) = s.strip_prefix('$') {
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if tail.is_empty() {
            return format!("${name}");
        }
        let t = atom(tail);
        return if t.starts_with('"') {
            format!("\"${{{name}}}/{}", &quote(tail)[1..])
        } else {
            format!("${name}/{tail}")
        };
    }
    atom(&s)
}

fn domain_atom(d: &DomainPattern) -> String {
    let (host, port) = match d {
        DomainPattern::OnPort(h, p) => (h.as_ref(), Some(*p)),
        other => (other, None),
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    match host {
        DomainPattern::Subdomains(b) => format!("subdomains of {}", atom(&format!("{b}{port}"))),
        DomainPattern::ApexAndSubdomains(b) => {
            format!("{} and subdomains", atom(&format!("{b}{port}")))
        }
        h => atom(&format!("{h}{port}")),
    }
}

fn url_text(u: &ProxyUrl) -> String {
    let host = HostPort {
        host: u.host.clone(),
        port: u.port,
    };
    match &u.userinfo {
        Some(ui) => format!("{}://{ui}@{host}", u.scheme),
        None => format!("{}://{host}", u.scheme),
    }
}

/// Writes `head a, b, c`, broken after commas when long.
fn rule(out: &mut String, indent: &str, head: &str, vals: &[String]) {
    if vals.is_empty() {
        return;
    }
    let one = format!("{indent}{head} {}", vals.join(", "));
    if one.len() <= WIDTH {
        out.push_str(&one);
        out.push('\n');
        return;
    }
    // Fill lines up to the width, continuing after commas one level deeper.
    let mut line = format!("{indent}{head} {}", vals[0]);
    for v in &vals[1..] {
        if line.len() + 2 + v.len() + 1 > WIDTH {
            out.push_str(&line);
            out.push_str(",\n");
            line = format!("{indent}    {v}");
        } else {
            line.push_str(", ");
            line.push_str(v);
        }
    }
    out.push_str(&line);
    out.push('\n');
}

fn vals<T>(l: &List<T>, f: impl Fn(&T) -> String) -> Vec<String> {
    l.iter().map(|e| f(&e.value)).collect()
}

fn setting<T>(
    out: &mut String,
    indent: &str,
    name: &str,
    s: &Setting<T>,
    f: impl Fn(&T) -> Option<String>,
) {
    if s.is_set()
        && let Some(v) = f(&s.value)
    {
        let _ = writeln!(out, "{indent}{name} = {v}");
    }
}

/// A command line: bare words when each reads back as itself, else one string.
fn cmd(c: &impl std::fmt::Display) -> String {
    let s = c.to_string();
    let plain = s
        .split(' ')
        .all(|w| !w.is_empty() && atom(w) == w || RESERVED.contains(&w) && !w.is_empty())
        && !s.contains("  ");
    if plain { s } else { quote(&s) }
}

/// The `.gw` text of one policy body (adds and removes), at `indent`.
fn gw_body(out: &mut String, a: &Policy, r: &Policy, indent: &str) {
    let inner = format!("{indent}    ");
    let i = inner.as_str();
    let b = |v: &bool| Some(v.to_string());

    setting(out, indent, "allow-pty", &a.allow_pty, b);
    rule(
        out,
        indent,
        "best-effort",
        &vals(&a.best_effort, |s| s.to_string()),
    );

    let mut s = String::new();
    let f = &a.filesystem;
    let rf = &r.filesystem;
    setting(&mut s, i, "default-deny-read", &f.default_deny_read, b);
    rule(&mut s, i, "read", &vals(&f.allow_read, path_atom));
    rule(&mut s, i, "write", &vals(&f.allow_write, path_atom));
    rule(&mut s, i, "deny read", &vals(&f.deny_read, path_atom));
    rule(&mut s, i, "deny write", &vals(&f.deny_write, path_atom));
    setting(&mut s, i, "allow-git-config", &f.allow_git_config, b);
    rule(&mut s, i, "remove read", &vals(&rf.allow_read, path_atom));
    rule(&mut s, i, "remove write", &vals(&rf.allow_write, path_atom));
    rule(
        &mut s,
        i,
        "remove deny read",
        &vals(&rf.deny_read, path_atom),
    );
    rule(
        &mut s,
        i,
        "remove deny write",
        &vals(&rf.deny_write, path_atom),
    );
    section(out, indent, "filesystem", &s);

    let mut s = String::new();
    let n = &a.network;
    let rn = &r.network;
    rule(&mut s, i, "allow", &vals(&n.allowed_domains, domain_atom));
    rule(&mut s, i, "deny", &vals(&n.denied_domains, domain_atom));
    rule(
        &mut s,
        i,
        "allow unix-socket",
        &vals(&n.allow_unix_sockets, path_atom),
    );
    setting(
        &mut s,
        i,
        "allow-all-unix-sockets",
        &n.allow_all_unix_sockets,
        b,
    );
    setting(&mut s, i, "allow-local-binding", &n.allow_local_binding, b);
    setting(
        &mut s,
        i,
        "allow-local-outbound",
        &n.allow_local_outbound,
        |v| v.map(|x| x.to_string()),
    );
    setting(&mut s, i, "http-proxy-port", &n.http_proxy_port, |p| {
        Some(p.to_string())
    });
    setting(&mut s, i, "socks-proxy-port", &n.socks_proxy_port, |p| {
        Some(p.to_string())
    });
    setting(&mut s, i, "proxy-url", &n.proxy_url, |u| {
        u.as_ref().map(|u| quote(&url_text(u)))
    });
    setting(&mut s, i, "http-proxy-url", &n.http_proxy_url, |u| {
        u.as_ref().map(|u| quote(&url_text(u)))
    });
    setting(&mut s, i, "dns-addr", &n.dns_addr, |h| {
        h.as_ref().map(|h| quote(&h.to_string()))
    });
    rule(
        &mut s,
        i,
        "remove allow",
        &vals(&rn.allowed_domains, domain_atom),
    );
    rule(
        &mut s,
        i,
        "remove deny",
        &vals(&rn.denied_domains, domain_atom),
    );
    rule(
        &mut s,
        i,
        "remove allow unix-socket",
        &vals(&rn.allow_unix_sockets, path_atom),
    );
    section(out, indent, "network", &s);

    let mut s = String::new();
    let c = &a.command;
    let rc = &r.command;
    rule(&mut s, i, "deny", &vals(&c.deny, cmd));
    rule(&mut s, i, "allow", &vals(&c.allow, cmd));
    setting(&mut s, i, "use-defaults", &c.use_defaults, b);
    rule(&mut s, i, "remove deny", &vals(&rc.deny, cmd));
    rule(&mut s, i, "remove allow", &vals(&rc.allow, cmd));
    section(out, indent, "commands", &s);

    let mut s = String::new();
    let h = &a.ssh;
    let rh = &r.ssh;
    rule(
        &mut s,
        i,
        "allow host",
        &vals(&h.allowed_hosts, |x| atom(&x.to_string())),
    );
    rule(
        &mut s,
        i,
        "deny host",
        &vals(&h.denied_hosts, |x| atom(&x.to_string())),
    );
    rule(&mut s, i, "allow command", &vals(&h.allowed_commands, cmd));
    rule(&mut s, i, "deny command", &vals(&h.denied_commands, cmd));
    setting(&mut s, i, "allow-all-commands", &h.allow_all_commands, b);
    setting(&mut s, i, "inherit-deny", &h.inherit_deny, b);
    rule(
        &mut s,
        i,
        "remove allow host",
        &vals(&rh.allowed_hosts, |x| atom(&x.to_string())),
    );
    rule(
        &mut s,
        i,
        "remove deny host",
        &vals(&rh.denied_hosts, |x| atom(&x.to_string())),
    );
    rule(
        &mut s,
        i,
        "remove allow command",
        &vals(&rh.allowed_commands, cmd),
    );
    rule(
        &mut s,
        i,
        "remove deny command",
        &vals(&rh.denied_commands, cmd),
    );
    section(out, indent, "ssh", &s);

    let mut s = String::new();
    let e = &a.environment;
    let re = &r.environment;
    let pat = |p: &EnvPattern| atom(&p.to_string());
    let set = |x: &EnvSet| format!("{} = {}", x.name, quote(&x.value));
    rule(&mut s, i, "pass", &vals(&e.pass, pat));
    rule(&mut s, i, "drop", &vals(&e.drop, pat));
    for x in &e.set {
        let _ = writeln!(s, "{i}set {}", set(&x.value));
    }
    rule(&mut s, i, "remove pass", &vals(&re.pass, pat));
    rule(&mut s, i, "remove drop", &vals(&re.drop, pat));
    for x in &re.set {
        let _ = writeln!(s, "{i}remove set {}", set(&x.value));
    }
    section(out, indent, "environment", &s);

    for o in &a.platforms {
        let mut s = String::new();
        gw_body(&mut s, &o.adds, &o.removes, &inner);
        section(out, indent, &format!("on {}", o.platform), &s);
    }
}

fn section(out: &mut String, indent: &str, head: &str, body: &str) {
    if body.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with("{\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "{indent}{head} {{");
    out.push_str(body);
    let _ = writeln!(out, "{indent}}}");
}

fn expect_atom(x: &Expectation) -> String {
    let target = match x.op {
        ExpectOp::Run => quote(&x.target),
        _ => atom(&x.target),
    };
    format!(
        "expect {} {} {target}",
        if x.allow { "allow" } else { "deny" },
        x.op.name()
    )
}

/// A layer as `.gw` text.
pub fn to_gw(layer: &Layer) -> String {
    let mut out = String::new();
    if let Some(e) = &layer.extends {
        let _ = writeln!(out, "extends {}", quote(&e.value));
    }
    let mut body = String::new();
    gw_body(&mut body, &layer.adds, &layer.removes, "");
    if !body.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&body);
    }
    for (name, p) in &layer.profiles {
        let mut s = String::new();
        gw_body(&mut s, &p.adds, &p.removes, "    ");
        if s.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "profile {} {{\n}}", name.value);
        } else {
            section(&mut out, "", &format!("profile {}", name.value), &s);
        }
    }
    if !layer.adds.expects.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        for x in &layer.adds.expects {
            out.push_str(&expect_atom(&x.value));
            out.push('\n');
        }
    }
    out
}

// ----- greywall.json -----------------------------------------------------------------------

/// A JSON value with keys in the order greywall.json documents them.
enum J {
    /// A literal (`true`, `8080`, an already quoted string).
    Raw(String),
    Arr(Vec<String>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn render(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth + 1);
        let close = "  ".repeat(depth);
        match self {
            J::Raw(s) => out.push_str(s),
            J::Arr(items) => {
                let one = format!("[{}]", items.join(", "));
                if one.len() + pad.len() + 24 <= WIDTH {
                    out.push_str(&one);
                } else {
                    let _ = write!(
                        out,
                        "[\n{pad}{}\n{close}]",
                        items.join(&format!(",\n{pad}"))
                    );
                }
            }
            J::Obj(members) if members.is_empty() => out.push_str("{}"),
            J::Obj(members) => {
                out.push_str("{\n");
                for (i, (k, v)) in members.iter().enumerate() {
                    let _ = write!(out, "{pad}{}: ", json_str(k));
                    v.render(depth + 1, out);
                    out.push_str(if i + 1 < members.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push('}');
            }
        }
    }
}

#[derive(Default)]
struct Obj(Vec<(String, J)>);

impl Obj {
    fn raw(&mut self, key: &str, json: String) {
        self.0.push((key.to_string(), J::Raw(json)));
    }

    fn list<T>(&mut self, key: &str, adds: &List<T>, removes: &List<T>, f: impl Fn(&T) -> String) {
        let mut items: Vec<String> = adds.iter().map(|e| json_str(&f(&e.value))).collect();
        items.extend(
            removes
                .iter()
                .map(|e| json_str(&format!("!{}", f(&e.value)))),
        );
        if !items.is_empty() {
            self.0.push((key.to_string(), J::Arr(items)));
        }
    }

    fn flag(&mut self, key: &str, s: &Setting<bool>) {
        if s.is_set() {
            self.raw(key, s.value.to_string());
        }
    }

    fn obj(&mut self, key: &str, o: Obj) {
        if !o.0.is_empty() {
            self.0.push((key.to_string(), J::Obj(o.0)));
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn json_sections(o: &mut Obj, a: &Policy, r: &Policy) {
    let n = &a.network;
    let rn = &r.network;
    let mut net = Obj::default();
    net.list(
        "allowedDomains",
        &n.allowed_domains,
        &rn.allowed_domains,
        |d| d.to_string(),
    );
    net.list(
        "deniedDomains",
        &n.denied_domains,
        &rn.denied_domains,
        |d| d.to_string(),
    );
    net.list(
        "allowUnixSockets",
        &n.allow_unix_sockets,
        &rn.allow_unix_sockets,
        |p| p.to_string(),
    );
    net.flag("allowAllUnixSockets", &n.allow_all_unix_sockets);
    net.flag("allowLocalBinding", &n.allow_local_binding);
    if let (Some(_), Some(v)) = (n.allow_local_outbound.origin, n.allow_local_outbound.value) {
        net.raw("allowLocalOutbound", v.to_string());
    }
    if n.http_proxy_port.is_set() {
        net.raw("httpProxyPort", n.http_proxy_port.value.to_string());
    }
    if n.socks_proxy_port.is_set() {
        net.raw("socksProxyPort", n.socks_proxy_port.value.to_string());
    }
    if let (Some(_), Some(u)) = (n.proxy_url.origin, &n.proxy_url.value) {
        net.raw("proxyUrl", json_str(&url_text(u)));
    }
    if let (Some(_), Some(u)) = (n.http_proxy_url.origin, &n.http_proxy_url.value) {
        net.raw("httpProxyUrl", json_str(&url_text(u)));
    }
    if let (Some(_), Some(h)) = (n.dns_addr.origin, &n.dns_addr.value) {
        net.raw("dnsAddr", json_str(&h.to_string()));
    }
    o.obj("network", net);

    let f = &a.filesystem;
    let rf = &r.filesystem;
    let mut fs = Obj::default();
    fs.flag("defaultDenyRead", &f.default_deny_read);
    fs.list("allowRead", &f.allow_read, &rf.allow_read, |p| {
        p.to_string()
    });
    fs.list("denyRead", &f.deny_read, &rf.deny_read, |p| p.to_string());
    fs.list("allowWrite", &f.allow_write, &rf.allow_write, |p| {
        p.to_string()
    });
    fs.list("denyWrite", &f.deny_write, &rf.deny_write, |p| {
        p.to_string()
    });
    fs.flag("allowGitConfig", &f.allow_git_config);
    o.obj("filesystem", fs);

    let c = &a.command;
    let rc = &r.command;
    let mut cm = Obj::default();
    cm.list("deny", &c.deny, &rc.deny, |x| x.to_string());
    cm.list("allow", &c.allow, &rc.allow, |x| x.to_string());
    cm.flag("useDefaults", &c.use_defaults);
    o.obj("command", cm);

    let s = &a.ssh;
    let rs = &r.ssh;
    let mut ssh = Obj::default();
    ssh.list("allowedHosts", &s.allowed_hosts, &rs.allowed_hosts, |x| {
        x.to_string()
    });
    ssh.list("deniedHosts", &s.denied_hosts, &rs.denied_hosts, |x| {
        x.to_string()
    });
    ssh.list(
        "allowedCommands",
        &s.allowed_commands,
        &rs.allowed_commands,
        |x| x.to_string(),
    );
    ssh.list(
        "deniedCommands",
        &s.denied_commands,
        &rs.denied_commands,
        |x| x.to_string(),
    );
    ssh.flag("allowAllCommands", &s.allow_all_commands);
    ssh.flag("inheritDeny", &s.inherit_deny);
    o.obj("ssh", ssh);

    let e = &a.environment;
    let re = &r.environment;
    let mut env = Obj::default();
    env.list("pass", &e.pass, &re.pass, |x| x.to_string());
    env.list("drop", &e.drop, &re.drop, |x| x.to_string());
    env.list("set", &e.set, &re.set, |x| x.to_string());
    o.obj("environment", env);

    o.flag("allowPty", &a.allow_pty);
    o.list("bestEffort", &a.best_effort, &r.best_effort, |x| {
        x.to_string()
    });
    for (key, platform) in Platform::ALL {
        for ov in a.platforms.iter().filter(|ov| ov.platform == *platform) {
            let mut p = Obj::default();
            json_sections(&mut p, &ov.adds, &ov.removes);
            o.0.push(((*key).to_string(), J::Obj(p.0)));
        }
    }
}

/// A layer as greywall.json text.
pub fn to_json(layer: &Layer) -> String {
    let mut o = Obj::default();
    if let Some(e) = &layer.extends {
        o.raw("extends", json_str(&e.value));
    }
    json_sections(&mut o, &layer.adds, &layer.removes);
    if !layer.profiles.is_empty() {
        let mut ps = Vec::new();
        for (name, p) in &layer.profiles {
            let mut po = Obj::default();
            json_sections(&mut po, &p.adds, &p.removes);
            ps.push((name.value.clone(), J::Obj(po.0)));
        }
        o.0.push(("profiles".into(), J::Obj(ps)));
    }
    let expects: Vec<String> = layer
        .adds
        .expects
        .iter()
        .map(|e| json_str(&e.value.to_string()))
        .collect();
    if !expects.is_empty() {
        o.0.push(("expect".into(), J::Arr(expects)));
    }
    let mut s = String::new();
    J::Obj(o.0).render(0, &mut s);
    s.push('\n');
    s
}
