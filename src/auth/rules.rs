//! Authorisation: which user may do which action on which repository,
//! compiled once from `[access]`.

use std::collections::{HashMap, HashSet};

use super::{AccessConfig, Action};

/// Repository patterns are the glob shared with retention rules.
pub use crate::oci::RepoPattern as Pattern;

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
