//! Authorisation: which user may do which action on which repository,
//! compiled once from `[access]`.

use std::collections::{HashMap, HashSet};

use super::{AccessConfig, Action};

/// A repository name pattern: `*` matches within one path component, `**`
/// across components, `?` one character other than `/`.
#[derive(Debug, Clone)]
pub struct Pattern(Vec<u8>);

impl Pattern {
    pub fn new(p: &str) -> Pattern {
        Pattern(p.as_bytes().to_vec())
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(&self.0, name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            // `**/` may also match no component at all: `**/x` matches `x`.
            if rest.first() == Some(&b'/') && glob(&rest[1..], s) {
                return true;
            }
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if glob(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(b'?') => matches!(s.first(), Some(c) if *c != b'/') && glob(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

struct Rule {
    repositories: Vec<Pattern>,
    any_user: bool,
    users: HashSet<String>,
    actions: Vec<Action>,
}

/// The compiled `[access]` section.
pub struct Policy {
    anonymous_pull: Vec<Pattern>,
    rules: Vec<Rule>,
}

impl Policy {
    pub fn new(config: &AccessConfig) -> Policy {
        let groups: HashMap<&str, &Vec<String>> =
            config.groups.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let mut users: HashSet<String> = r.users.iter().cloned().collect();
                for g in &r.groups {
                    if let Some(members) = groups.get(g.as_str()) {
                        users.extend(members.iter().cloned());
                    }
                }
                Rule {
                    repositories: r.repositories.iter().map(|p| Pattern::new(p)).collect(),
                    any_user: users.contains("*"),
                    users,
                    actions: r.actions.clone(),
                }
            })
            .collect();
        Policy {
            anonymous_pull: config
                .anonymous_pull
                .iter()
                .map(|p| Pattern::new(p))
                .collect(),
            rules,
        }
    }

    /// Whether anything may be pulled without credentials.
    pub fn has_anonymous(&self) -> bool {
        !self.anonymous_pull.is_empty()
    }

    /// May `user` (None: anonymous) do `action` on `repo`?
    pub fn allows(&self, user: Option<&str>, action: Action, repo: &str) -> bool {
        if action == Action::Pull && self.anonymous_pull.iter().any(|p| p.matches(repo)) {
            return true;
        }
        let Some(user) = user else { return false };
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| {
            r.actions.contains(&action)
                && (r.any_user || r.users.contains(user))
                && r.repositories.iter().any(|p| p.matches(repo))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| Pattern::new(p).matches(s);
        assert!(m("team-a/*", "team-a/app"));
        assert!(!m("team-a/*", "team-a/sub/app"));
        assert!(!m("team-a/*", "team-ab/app"));
        assert!(m("team-a/**", "team-a/sub/app"));
        assert!(m("**", "x/y/z"));
        assert!(m("*", "library"));
        assert!(!m("*", "a/b"));
        assert!(m("**/base", "base"));
        assert!(m("**/base", "x/y/base"));
        assert!(m("app-?", "app-1"));
        assert!(!m("app-?", "app-12"));
        assert!(m("exact/name", "exact/name"));
        assert!(!m("exact/name", "exact/names"));
        assert!(m("*-dev/*", "web-dev/app"));
    }

    #[test]
    fn policy() {
        let config: AccessConfig = toml::from_str(
            r#"
            anonymous_pull = ["public/**"]
            [groups]
            devs = ["bob", "carol"]
            [[rules]]
            repositories = ["team-a/*"]
            users = ["alice"]
            groups = ["devs"]
            actions = ["pull", "push"]
            [[rules]]
            repositories = ["**"]
            users = ["admin"]
            actions = ["pull", "push", "delete"]
            [[rules]]
            repositories = ["shared/*"]
            users = ["*"]
            actions = ["pull"]
            "#,
        )
        .unwrap();
        let p = Policy::new(&config);
        assert!(p.allows(None, Action::Pull, "public/x/y"));
        assert!(!p.allows(None, Action::Push, "public/x"));
        assert!(!p.allows(None, Action::Pull, "team-a/app"));
        assert!(p.allows(Some("alice"), Action::Push, "team-a/app"));
        assert!(p.allows(Some("carol"), Action::Pull, "team-a/app"));
        assert!(!p.allows(Some("carol"), Action::Delete, "team-a/app"));
        assert!(!p.allows(Some("alice"), Action::Pull, "team-b/app"));
        assert!(p.allows(Some("admin"), Action::Delete, "team-b/app"));
        assert!(p.allows(Some("zed"), Action::Pull, "shared/lib"));
        assert!(!p.allows(Some("zed"), Action::Push, "shared/lib"));
        let open = Policy::new(&AccessConfig::default());
        assert!(open.allows(Some("anyone"), Action::Delete, "x"));
        assert!(!open.allows(None, Action::Pull, "x"));
    }
}
