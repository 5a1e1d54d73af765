//! `[access]`: Berth's own authorisation section: who may pull, push and
//! delete where, and how repeated login failures are slowed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, AuthConfig};

/// What a request does to a repository.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and put manifests.
    Push,
    /// Delete manifests and blobs.
    Delete,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        })
    }
}

/// `[access]`: authorisation. With no `rules`, any authenticated user may do
/// everything (registry:2's behaviour).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Repository patterns anyone may pull without credentials.
    pub anonymous_pull: Vec<String>,
    /// Named groups of users, usable in rules.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Grants; a request is allowed when one rule matches it.
    pub rules: Vec<AccessRule>,
    /// Slowing down password guessing.
    pub lockout: Lockout,
}

/// `[[access.rules]]`: `users` (or members of `groups`) may do `actions` on
/// repositories matching `repositories`. In patterns `*` matches within one
/// path component, `**` across components; user `"*"` is any authenticated user.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub repositories: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub actions: Vec<Action>,
}

/// `[access.lockout]`: after `failures` failed logins from one address group
/// (`ipv4_prefix`, `ipv6_prefix`) within any `window`, that group is answered
/// 429 for `duration`; after `user_failures` failed logins for one user from
/// anywhere within `user_window`, that user's password is not checked for
/// `user_duration`. While locked, a user who logged in from that address group
/// in the last few minutes is still accepted from it (see the README).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Lockout {
    /// 0 disables the per-address limit.
    pub failures: u32,
    #[serde(deserialize_with = "duration::human")]
    pub window: Duration,
    #[serde(deserialize_with = "duration::human")]
    pub duration: Duration,
    /// IPv4 clients are counted by this many leading bits (32: each address).
    pub ipv4_prefix: u8,
    /// IPv6 clients are counted by this many leading bits (64: each /64).
    pub ipv6_prefix: u8,
    /// 0 disables the per-user limit. Unset: 20, or 0 when `failures` is 0
    /// (so that `failures = 0` still turns the whole lockout off).
    pub user_failures: Option<u32>,
    #[serde(deserialize_with = "duration::human")]
    pub user_window: Duration,
    #[serde(deserialize_with = "duration::human")]
    pub user_duration: Duration,
}

impl Default for Lockout {
    fn default() -> Lockout {
        Lockout {
            failures: 10,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(60),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            user_failures: None,
            user_window: Duration::from_secs(300),
            user_duration: Duration::from_secs(300),
        }
    }
}

impl Lockout {
    /// The per-user limit in force (see [`Lockout::user_failures`]).
    pub fn user_failures(&self) -> u32 {
        match self.user_failures {
            Some(n) => n,
            None if self.failures == 0 => 0,
            None => 20,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.failures > 0 && (self.window.is_zero() || self.duration.is_zero()) {
            return Err("access.lockout window and duration must be more than 0".into());
        }
        if self.user_failures() > 0 && (self.user_window.is_zero() || self.user_duration.is_zero())
        {
            return Err("access.lockout user_window and user_duration must be more than 0".into());
        }
        if self.ipv4_prefix > 32 {
            return Err("access.lockout ipv4_prefix must be 0 to 32".into());
        }
        if self.ipv6_prefix > 128 {
            return Err("access.lockout ipv6_prefix must be 0 to 128".into());
        }
        Ok(())
    }
}

impl AccessConfig {
    /// Checks the section on its own and against whether authentication is on.
    pub fn validate(&self, auth: &AuthConfig) -> Result<(), String> {
        let configured = !self.rules.is_empty() || !self.anonymous_pull.is_empty();
        if configured && auth.htpasswd.is_none() {
            return Err(
                "access rules need authentication: set auth.htpasswd (or REGISTRY_AUTH=htpasswd)"
                    .into(),
            );
        }
        let patterns = self
            .anonymous_pull
            .iter()
            .map(|p| ("access.anonymous_pull".to_string(), p))
            .chain(self.rules.iter().enumerate().flat_map(|(i, r)| {
                let key = format!("access.rules[{}].repositories", super::rule_number(i));
                r.repositories.iter().map(move |p| (key.clone(), p))
            }));
        for (key, p) in patterns {
            if p.is_empty() || p.contains(char::is_whitespace) {
                return Err(format!(
                    "{key}: repository pattern {p:?} is empty or has spaces"
                ));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let n = super::rule_number(i);
            if rule.repositories.is_empty() {
                return Err(format!("access.rules[{n}] has no repositories"));
            }
            if rule.actions.is_empty() {
                return Err(format!("access.rules[{n}] has no actions"));
            }
            if rule.users.is_empty() && rule.groups.is_empty() {
                return Err(format!(
                    "access.rules[{n}] names no users or groups (use users = [\"*\"] for everyone)"
                ));
            }
            if let Some(g) = rule.groups.iter().find(|g| !self.groups.contains_key(*g)) {
                return Err(format!(
                    "access.rules[{n}] names group {g:?}, which access.groups does not define"
                ));
            }
        }
        self.lockout.validate()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{test_env as env, Config};

    #[test]
    fn access_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            r#"
            [auth.htpasswd]
            realm = "r"
            path = "/h"
            [access]
            anonymous_pull = ["public/*"]
            [access.groups]
            devs = ["a"]
            [[access.rules]]
            repositories = ["x/*"]
            groups = ["devs"]
            actions = ["pull", "push"]
            [access.lockout]
            failures = 3
            window = "10s"
            duration = "2m"
            ipv4_prefix = 24
            user_failures = 7
            user_window = "1m"
            "#,
        )
        .unwrap();
        let c = Config::load(Some(&p), env(&[])).unwrap();
        assert_eq!(c.access.rules.len(), 1);
        assert_eq!(c.access.lockout.duration.as_secs(), 120);
        assert_eq!(c.access.lockout.ipv4_prefix, 24);
        assert_eq!(c.access.lockout.ipv6_prefix, 64);
        assert_eq!(c.access.lockout.user_failures(), 7);
        assert_eq!(c.access.lockout.user_window.as_secs(), 60);
        assert_eq!(c.access.lockout.user_duration.as_secs(), 300);
        for bad in [
            "ipv4_prefix = 33",
            "ipv6_prefix = 129",
            "user_window = \"0s\"",
        ] {
            std::fs::write(&p, format!("[access.lockout]\n{bad}\n")).unwrap();
            let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
            assert!(e.contains("access.lockout"), "{bad}: {e}");
        }
        std::fs::write(
            &p,
            "[auth.htpasswd]\npath = \"/h\"\n[[access.rules]]\nrepositories = [\"x\"]\ngroups = [\"nope\"]\nactions = [\"pull\"]\n",
        )
        .unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        std::fs::write(&p, "[access]\nanonymous_pull = [\"x\"]\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("auth.htpasswd"), "{e}");
        std::fs::write(
            &p,
            "[[access.rules]]\nrepositories = [\"x\"]\nusers = [\"a\"]\nactions = [\"fly\"]\n",
        )
        .unwrap();
        assert!(Config::load(Some(&p), env(&[])).is_err());
    }
}
