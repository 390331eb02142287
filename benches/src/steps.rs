//! The launcher's set-up steps, one at a time: variants of a compiled plan that each add one
//! step to the one before, for `greywall __exec-plan` (the launcher's own code, timed as a
//! whole process; the difference between neighbours is that step's cost).

use greywall_compiler::plan::{CreateDeny, Landlock, LinuxPlan, Network};

/// `(name, plan)` from "exec only" to the whole plan. Every variant keeps the plan's
/// environment and command policy, so the command runs the same in all of them.
pub fn step_plans(full: &LinuxPlan) -> Vec<(String, LinuxPlan)> {
    let mut p = full.clone();
    p.namespaces = false;
    p.network = Network::Host;
    p.mounts.clear();
    p.create_deny = CreateDeny::default();
    p.seccomp_notify.clear();
    p.seccomp.clear();
    p.landlock = Landlock::default();
    p.egress = None;
    let mut out = vec![("exec only: no set-up step".to_string(), p.clone())];
    if !full.namespaces {
        return vec![("the whole plan (no namespaces)".into(), full.clone())];
    }
    p.namespaces = true;
    out.push(("+ user and mount namespaces".into(), p.clone()));
    if full.network == Network::Isolated {
        p.network = Network::Isolated;
        out.push(("+ network namespace, lo up".into(), p.clone()));
    }
    p.mounts = full.mounts.clone();
    out.push((format!("+ {} mount steps", full.mounts.len()), p.clone()));
    p.landlock = full.landlock.clone();
    out.push((
        format!("+ Landlock ({} path rules)", full.landlock.paths.len()),
        p.clone(),
    ));
    p.seccomp = full.seccomp.clone();
    out.push(("+ seccomp filter".into(), p.clone()));
    let mut rest = Vec::new();
    if !full.create_deny.is_empty() || !full.seccomp_notify.is_empty() {
        rest.push("create-deny supervisor");
    }
    if full.egress.is_some() {
        rest.push("egress bridge");
    }
    if p != *full {
        let what = if rest.is_empty() {
            "the rest".to_string()
        } else {
            rest.join(", ")
        };
        out.push((format!("+ {what} (the whole plan)"), full.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use greywall_compiler::compile::{self, Source};
    use greywall_compiler::load::Input;

    /// The `default` template compiled for a scratch workspace, with every step present.
    fn full() -> LinuxPlan {
        // The tests run in parallel and share this directory (the plan names it): one
        // removing it while another compiles in it would change that plan.
        static SCRATCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SCRATCH
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("gw-bench-steps-{}", std::process::id()));
        let env = crate::scratch::compile_env(&dir).unwrap();
        let source = Source::Named(Input::Template("default".into()));
        let mut p = compile::compile(&source, &env).unwrap().plan;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(p.namespaces && p.network == Network::Isolated);
        assert!(!p.mounts.is_empty() && !p.landlock.paths.is_empty() && !p.seccomp.is_empty());
        if p.create_deny.is_empty() {
            p.create_deny.paths = vec!["/w/.env".into()];
            p.seccomp_notify = p.seccomp.clone();
        }
        p
    }

    fn minimal() -> LinuxPlan {
        let mut p = full();
        p.namespaces = false;
        p.network = Network::Host;
        p.egress = None;
        p
    }

    #[test]
    fn each_step_adds_one_part_and_the_last_is_the_whole_plan() {
        let full = full();
        let steps = step_plans(&full);
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "exec only: no set-up step",
                "+ user and mount namespaces",
                "+ network namespace, lo up",
                names[3],
                names[4],
                "+ seccomp filter",
                "+ create-deny supervisor (the whole plan)",
            ]
        );
        let first = &steps[0].1;
        assert!(!first.namespaces && first.mounts.is_empty() && first.seccomp.is_empty());
        assert_eq!(first.landlock, Landlock::default());
        assert!(first.create_deny.is_empty() && first.seccomp_notify.is_empty());
        assert_eq!(steps[1].1.network, Network::Host);
        assert_eq!(steps[2].1.network, Network::Isolated);
        assert!(steps[3].1.landlock.paths.is_empty() && !steps[3].1.mounts.is_empty());
        assert!(steps[5].1.create_deny.is_empty() && !steps[5].1.seccomp.is_empty());
        assert!(names[3].ends_with(" mount steps") && names[4].starts_with("+ Landlock ("));
        assert_eq!(steps.last().unwrap().1, full);
        // every variant still encodes to a plan the launcher can decode
        for (_, p) in &steps {
            assert_eq!(&LinuxPlan::decode(&p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn a_plan_without_namespaces_is_one_step() {
        // One compile: a second one could see other tests' files come and go in /tmp.
        let plan = minimal();
        let steps = step_plans(&plan);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].1, plan);
    }
}
