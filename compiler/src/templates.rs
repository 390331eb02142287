//! The built-in policy templates, embedded from `policies/`.

/// A built-in template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub name: &'static str,
    pub summary: &'static str,
    /// The greywall.json text.
    pub json: &'static str,
}

macro_rules! templates {
    ($($name:literal: $summary:literal),* $(,)?) => {
        /// Every built-in template, in alphabetical order.
        pub const TEMPLATES: &[Template] = &[$(
            Template {
                name: $name,
                summary: $summary,
                json: include_str!(concat!("../../policies/", $name, ".json")),
            },
        )*];
    };
}

templates! {
    "cargo": "cargo build/fetch: crates.io reachable, workspace and cargo caches writable",
    "code": "AI coding agents: LLM APIs, forges and registries; workspace and agent state writable; credentials hidden",
    "code-relaxed": "code with relaxed network mode, for agents that ignore HTTP_PROXY (weaker)",
    "code-strict": "code with reads denied by default outside the workspace and agent folders",
    "default": "used when no greywall.json is found: workspace read-write, no network",
    "disable-telemetry": "open network minus analytics and crash-reporting services (relaxed mode)",
    "git-readonly": "inspect a repository: .git read-only, no network",
    "local-dev-server": "dev servers: listen on and reach loopback ports, workspace writable",
    "npm-install": "npm install: npm and Yarn registries reachable, workspace and npm cache writable",
    "pip-install": "pip install: PyPI reachable, workspace and pip cache writable",
}

/// Looks a template up by name; a trailing `.json` is ignored, as in Greywall.
pub fn find(name: &str) -> Option<&'static Template> {
    let name = name.strip_suffix(".json").unwrap_or(name);
    TEMPLATES.iter().find(|t| t.name == name)
}

/// Template names, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_findable() {
        let names: Vec<_> = names().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(find("code.json").map(|t| t.name), Some("code"));
        assert!(find("ai-coding-agents").is_none());
    }
}
