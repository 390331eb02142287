//! Checking a policy's own tests (`expect` in `.gw`, `"expect"` in greywall.json).
//!
//! Each expectation is decided by [`crate::decide::decide`] over the policy as it applies on
//! one platform; a failing one is an error (E615) at the `expect`, with the rule that decided
//! otherwise shown beside it. `greywall test` reports these alone; `greywall lint` and
//! `greywall compile` report them with everything else.

use crate::decide::{self, Decision, Facts, Op};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Entry, ExpectOp, Expectation, Platform, Policy};
use crate::pattern::command::tokenize;
use crate::pattern::path::PathPattern;
use crate::source::Sources;

/// The outcome of one expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub expectation: Entry<Expectation>,
    pub decision: Decision,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.decision.allowed == self.expectation.value.allow
    }
}

/// The operation an expectation names, with its anchors (`$git_root`, …) placed by `facts`.
pub fn op(x: &Expectation, facts: &Facts) -> Result<Op, String> {
    let path = |t: &str| -> Result<String, String> {
        let p = PathPattern::parse(t).map_err(|e| e.message)?;
        match p.absolute_in(&facts.anchors) {
            Some(a) => Ok(a.to_string()),
            None => Err(format!("`{t}` names a location this machine does not have")),
        }
    };
    Ok(match x.op {
        ExpectOp::Read => Op::Read(path(&x.target)?),
        ExpectOp::Write => Op::Write(path(&x.target)?),
        ExpectOp::Run => Op::Exec(tokenize(&x.target)?),
        ExpectOp::Connect => {
            let (host, port) = host_port(&x.target)?;
            Op::Connect(host, port)
        }
    })
}

/// `host`, `host:port`, `[v6]:port` (443 when no port is given).
fn host_port(t: &str) -> Result<(String, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{p}` is not a port number"))
    };
    if let Some(rest) = t.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, "")) => Ok((h.to_string(), 443)),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => Ok((h.to_string(), port(p)?)),
                None => Err(format!("`{t}` is not `[address]:port`")),
            },
            None => Err(format!("`{t}` has an unclosed `[`")),
        };
    }
    match t.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Ok((t.to_string(), 443)),
        Some((h, p)) => Ok((h.to_string(), port(p)?)),
        None => Ok((t.to_string(), 443)),
    }
}

/// Decides every expectation of `policy` on `platform`.
pub fn run(policy: &Policy, platform: Platform, facts: &Facts) -> (Vec<Outcome>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let view = policy.for_platform(platform, &mut diags);
    let mut out = Vec::new();
    for x in &policy.expects {
        match op(&x.value, facts) {
            Ok(o) => out.push(Outcome {
                expectation: x.clone(),
                decision: decide::decide(&view, facts, &o),
            }),
            Err(why) => diags.push(
                Diagnostic::new(
                    Code::GwBadExpect,
                    format!("cannot check this expectation: {why}"),
                )
                .at(x.origin),
            ),
        }
    }
    (out, diags)
}

/// The diagnostics for failed expectations.
pub fn failures(outcomes: &[Outcome], sources: &Sources) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for o in outcomes.iter().filter(|o| !o.passed()) {
        let x = &o.expectation.value;
        let actual = if o.decision.allowed {
            "allows"
        } else {
            "denies"
        };
        let mut d = Diagnostic::new(
            Code::GwExpectFailed,
            format!("expectation failed: `{x}`, but the policy {actual} it",),
        )
        .at(o.expectation.origin)
        .label(format!("the policy {actual} this"))
        .note(o.decision.because.clone());
        if let Some(rule) = &o.decision.rule {
            match rule.origin {
                Some(origin) if sources.get(origin.source).is_some() => {
                    d = d.with_secondary(origin, format!("decided by {}", rule.text));
                    for via in rule.extends_chain(sources) {
                        d = d.with_secondary(via, "through this `extends`");
                    }
                }
                _ => d = d.note(format!("decided by {}", rule.text)),
            }
        }
        diags.push(d);
    }
    diags
}

/// Runs the expectations and returns the problems (failures and unusable expectations).
pub fn check(
    policy: &Policy,
    platform: Platform,
    facts: &Facts,
    sources: &Sources,
) -> Vec<Diagnostic> {
    let (outcomes, mut diags) = run(policy, platform, facts);
    diags.extend(failures(&outcomes, sources));
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(host_port("a.com:22").unwrap(), ("a.com".into(), 22));
        assert_eq!(host_port("a.com").unwrap(), ("a.com".into(), 443));
        assert_eq!(host_port("[::1]:8080").unwrap(), ("::1".into(), 8080));
        assert!(host_port("a.com:x").is_err());
    }
}
