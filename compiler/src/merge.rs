//! Merging a [`Layer`] onto the policy it `extends`, with Greywall's rules:
//!
//! - lists: inherited entries first, then the layer's, de-duplicated keeping the first; a
//!   `"!entry"` in the layer first removes equal inherited entries;
//! - `allowPty`, `allowAllUnixSockets`, `allowLocalBinding`, `allowGitConfig`,
//!   `ssh.allowAllCommands`, `ssh.inheritDeny`: OR (a child cannot turn them off; an explicit
//!   `false` under an inherited `true` is reported);
//! - `defaultDenyRead`, `allowLocalOutbound`, `useDefaults`, ports, URLs, `dnsAddr`: the layer
//!   wins when it sets them;
//! - environment rules, best-effort sections and expectations are lists like the others;
//!   platform overlays are kept, in order, for [`crate::model::Policy::for_platform`].

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::diagnostic::{Code, Diagnostic};
use crate::lower::Layer;
use crate::model::{List, Policy, Setting};

/// Applies `layer` on top of `base` (the inherited policy, or the defaults).
pub fn merge(base: &mut Policy, layer: Layer, diags: &mut Vec<Diagnostic>) {
    let Layer { adds, removes, .. } = layer;
    macro_rules! lists {
        ($($sec:ident . $field:ident => $name:literal),* $(,)?) => {$(
            list(&mut base.$sec.$field, adds.$sec.$field, removes.$sec.$field, $name, diags);
        )*};
    }
    lists! {
        network.allowed_domains => "network.allowedDomains",
        network.denied_domains => "network.deniedDomains",
        network.allow_unix_sockets => "network.allowUnixSockets",
        filesystem.allow_read => "filesystem.allowRead",
        filesystem.deny_read => "filesystem.denyRead",
        filesystem.allow_write => "filesystem.allowWrite",
        filesystem.deny_write => "filesystem.denyWrite",
        command.deny => "command.deny",
        command.allow => "command.allow",
        ssh.allowed_hosts => "ssh.allowedHosts",
        ssh.denied_hosts => "ssh.deniedHosts",
        ssh.allowed_commands => "ssh.allowedCommands",
        ssh.denied_commands => "ssh.deniedCommands",
        environment.pass => "environment.pass",
        environment.drop => "environment.drop",
        environment.set => "environment.set",
    }
    list(
        &mut base.best_effort,
        adds.best_effort,
        removes.best_effort,
        "bestEffort",
        diags,
    );
    list(
        &mut base.expects,
        adds.expects,
        removes.expects,
        "expect",
        diags,
    );
    // Platform rules stay conditional; `Policy::for_platform` applies them in this order.
    base.platforms.extend(adds.platforms);
    or(&mut base.allow_pty, adds.allow_pty, "allowPty", diags);
    or(
        &mut base.network.allow_all_unix_sockets,
        adds.network.allow_all_unix_sockets,
        "network.allowAllUnixSockets",
        diags,
    );
    or(
        &mut base.network.allow_local_binding,
        adds.network.allow_local_binding,
        "network.allowLocalBinding",
        diags,
    );
    or(
        &mut base.filesystem.allow_git_config,
        adds.filesystem.allow_git_config,
        "filesystem.allowGitConfig",
        diags,
    );
    or(
        &mut base.ssh.allow_all_commands,
        adds.ssh.allow_all_commands,
        "ssh.allowAllCommands",
        diags,
    );
    or(
        &mut base.ssh.inherit_deny,
        adds.ssh.inherit_deny,
        "ssh.inheritDeny",
        diags,
    );

    over(
        &mut base.filesystem.default_deny_read,
        adds.filesystem.default_deny_read,
    );
    over(
        &mut base.network.allow_local_outbound,
        adds.network.allow_local_outbound,
    );
    over(&mut base.command.use_defaults, adds.command.use_defaults);
    over(
        &mut base.network.http_proxy_port,
        adds.network.http_proxy_port,
    );
    over(
        &mut base.network.socks_proxy_port,
        adds.network.socks_proxy_port,
    );
    over(&mut base.network.proxy_url, adds.network.proxy_url);
    over(
        &mut base.network.http_proxy_url,
        adds.network.http_proxy_url,
    );
    over(&mut base.network.dns_addr, adds.network.dns_addr);
}

fn list<T: Eq + Hash + Clone>(
    base: &mut List<T>,
    adds: List<T>,
    removes: List<T>,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) {
    if !removes.is_empty() {
        let before: HashSet<T> = base.iter().map(|e| e.value.clone()).collect();
        let gone: HashSet<&T> = removes.iter().map(|r| &r.value).collect();
        base.retain(|e| !gone.contains(&e.value));
        for r in &removes {
            if !before.contains(&r.value) {
                diags.push(
                    Diagnostic::new(
                        Code::RemoveNothing,
                        format!("`!` entry in `{name}` removes nothing"),
                    )
                    .at(r.origin)
                    .label("no inherited entry is equal to this one")
                    .note("a `!entry` removes an equal entry inherited through `extends`"),
                );
            }
        }
    }
    // Position of each value already in the list, so merging stays linear in its length.
    let mut seen: HashMap<T, usize> = HashMap::with_capacity(base.len() + adds.len());
    for (i, e) in base.iter().enumerate() {
        seen.entry(e.value.clone()).or_insert(i);
    }
    for a in adds {
        match seen.get(&a.value) {
            Some(&i) => diags.push(
                Diagnostic::new(Code::Duplicate, format!("duplicate entry in `{name}`"))
                    .at(a.origin)
                    .label("already in the list")
                    .with_secondary(base[i].origin, "first listed here")
                    .help("remove the repeated entry"),
            ),
            None => {
                seen.insert(a.value.clone(), base.len());
                base.push(a);
            }
        }
    }
}

fn or(base: &mut Setting<bool>, add: Setting<bool>, name: &str, diags: &mut Vec<Diagnostic>) {
    let Some(span) = add.origin else { return };
    if add.value {
        if !base.value {
            *base = add;
        }
    } else if base.value {
        let mut d = Diagnostic::new(
            Code::OrBoolean,
            format!("`{name}: false` has no effect: an inherited `true` wins"),
        )
        .at(span)
        .note("greywall.json booleans are OR-ed across `extends`, as in Greywall");
        if let Some(o) = base.origin {
            d = d.with_secondary(o, "set to true here");
        }
        diags.push(d.help("extend a policy that leaves it off, or copy what you need from it"));
    } else if base.origin.is_none() {
        *base = add;
    }
}

fn over<T>(base: &mut Setting<T>, add: Setting<T>) {
    if add.is_set() {
        *base = add;
    }
}
