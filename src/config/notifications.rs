//! `[notifications]`: registry:2's notification endpoints (webhooks that
//! receive push, pull and delete events), plus Berth's bound on each
//! endpoint's persisted queue (`queue_limit`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, rule_number, ConfigError};

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    /// `[[notifications.endpoints]]`, in the order they are configured.
    pub endpoints: Vec<Endpoint>,
    /// `[notifications.events]`.
    pub events: EventsConfig,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Push and pull events of manifests list what they reference
    /// (`target.references`).
    pub includereferences: bool,
}

/// Its `Debug` (`berth check-config` prints the config) names the headers
/// but not their values, which are often credentials.
#[derive(Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoint {
    /// Names the endpoint in logs, metrics and its queue directory; unique.
    pub name: String,
    pub disabled: bool,
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Headers sent with every request: name → values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Time one delivery attempt may take.
    #[serde(deserialize_with = "duration::human")]
    pub timeout: Duration,
    /// Failures in a row after which the endpoint is waited for.
    pub threshold: u32,
    /// How long to wait once `threshold` is reached (doubled on each further
    /// failure, up to [`Endpoint::max_backoff`]).
    #[serde(deserialize_with = "duration::human")]
    pub backoff: Duration,
    /// Events whose target has one of these media types are not sent
    /// (registry:2's older spelling of `ignore.mediatypes`).
    pub ignoredmediatypes: Vec<String>,
    pub ignore: Ignore,
    /// Berth: at most this many events wait on disk for this endpoint; when
    /// more come, the oldest are dropped (and counted).
    pub queue_limit: usize,
}

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ignore {
    pub mediatypes: Vec<String>,
    /// `push`, `pull`, `mount`, `delete`.
    pub actions: Vec<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("threshold", &self.threshold)
            .field("backoff", &self.backoff)
            .field("ignoredmediatypes", &self.ignoredmediatypes)
            .field("ignore", &self.ignore)
            .field("queue_limit", &self.queue_limit)
            .finish()
    }
}

impl Default for Endpoint {
    fn default() -> Endpoint {
        Endpoint {
            name: String::new(),
            disabled: false,
            url: String::new(),
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            threshold: 10,
            backoff: Duration::from_secs(1),
            ignoredmediatypes: Vec::new(),
            ignore: Ignore::default(),
            queue_limit: 10_000,
        }
    }
}

/// The actions an event can have.
pub const ACTIONS: &[&str] = &["push", "pull", "mount", "delete"];

impl Endpoint {
    /// The longest wait between two attempts: the backoff grows no further.
    pub fn max_backoff(&self) -> Duration {
        self.backoff.max(Duration::from_secs(60))
    }

    /// Whether an event of `action` on a target of `media_type` is not sent here.
    pub fn ignores(&self, action: &str, media_type: &str) -> bool {
        self.ignore.actions.iter().any(|a| a == action)
            || (!media_type.is_empty()
                && self
                    .ignoredmediatypes
                    .iter()
                    .chain(&self.ignore.mediatypes)
                    .any(|m| m == media_type))
    }
}

impl Notifications {
    /// The endpoints events are sent to.
    pub fn enabled(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(|e| !e.disabled)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, e) in self.endpoints.iter().enumerate() {
            let key = |k: &str| format!("notifications.endpoints[{}].{k}", rule_number(i));
            let bad = |k: &str, why: String| ConfigError::Invalid(format!("{}: {why}", key(k)));
            if e.name.trim().is_empty() {
                return Err(bad("name", "missing (every endpoint needs a name)".into()));
            }
            if self.endpoints[..i].iter().any(|o| o.name == e.name) {
                return Err(bad("name", format!("{:?} names two endpoints", e.name)));
            }
            let scheme_ok = reqwest::Url::parse(&e.url)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !scheme_ok {
                return Err(bad(
                    "url",
                    format!("{:?} is not an http:// or https:// URL", e.url),
                ));
            }
            for (name, values) in &e.headers {
                if axum::http::HeaderName::try_from(name.as_str()).is_err() {
                    return Err(bad("headers", format!("{name:?} is not a header name")));
                }
                for v in values {
                    if axum::http::HeaderValue::try_from(v.as_str()).is_err() {
                        return Err(bad(
                            "headers",
                            format!("{v:?} is not a valid value of {name}"),
                        ));
                    }
                }
            }
            if e.timeout.is_zero() {
                return Err(bad("timeout", "must be more than 0s".into()));
            }
            if e.backoff.is_zero() {
                return Err(bad("backoff", "must be more than 0s".into()));
            }
            if e.threshold == 0 {
                return Err(bad("threshold", "must be at least 1".into()));
            }
            if e.queue_limit == 0 {
                return Err(bad("queue_limit", "must be at least 1".into()));
            }
            if let Some(a) = e
                .ignore
                .actions
                .iter()
                .find(|a| !ACTIONS.contains(&a.as_str()))
            {
                return Err(bad(
                    "ignore.actions",
                    format!("{a:?} is not one of {}", ACTIONS.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{test_env, Config};

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), test_env(&[])).map_err(|e| e.to_string())
    }

    #[test]
    fn registry2_defaults_and_keys() {
        let c = load(
            "[notifications.events]\nincludereferences = true\n\
             [[notifications.endpoints]]\nname = \"ci\"\nurl = \"http://127.0.0.1:9/hook\"\n\
             headers = { Authorization = [\"Bearer x\"] }\n\
             ignore = { actions = [\"pull\"] }\n",
        )
        .unwrap();
        let e = &c.notifications.endpoints[0];
        assert_eq!(e.timeout.as_secs(), 1);
        assert_eq!(e.backoff.as_secs(), 1);
        assert_eq!(e.threshold, 10);
        assert_eq!(e.queue_limit, 10_000);
        assert!(c.notifications.events.includereferences);
        assert!(e.ignores("pull", ""));
        let debug = format!("{c:?}");
        assert!(
            debug.contains("Authorization") && !debug.contains("Bearer x"),
            "{debug}"
        );
        assert!(!e.ignores("push", "application/octet-stream"));
    }

    #[test]
    fn includereferences_can_be_set_from_the_environment() {
        let c = Config::load(
            None,
            test_env(&[("REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES", "true")]),
        )
        .unwrap();
        assert!(c.notifications.events.includereferences);
        assert!(c.notifications.endpoints.is_empty());
    }

    #[test]
    fn invalid_endpoints_are_refused_naming_the_key() {
        let cases = [
            ("url = \"http://a/\"", "notifications.endpoints[1].name"),
            (
                "name = \"a\"\nurl = \"ftp://a/\"",
                "notifications.endpoints[1].url",
            ),
            (
                "name = \"a\"\nurl = \"http://a/\"\ntimeout = \"0s\"",
                "notifications.endpoints[1].timeout",
            ),
            (
                "name = \"a\"\nurl = \"http://a/\"\nbackoff = \"0s\"",
                "notifications.endpoints[1].backoff",
            ),
            (
                "name = \"a\"\nurl = \"http://a/\"\nqueue_limit = 0",
                "notifications.endpoints[1].queue_limit",
            ),
            (
                "name = \"a\"\nurl = \"http://a/\"\nignore = { actions = [\"x\"] }",
                "notifications.endpoints[1].ignore.actions",
            ),
            (
                "name = \"a\"\nurl = \"http://a/\"\nheaders = { \"a b\" = [\"x\"] }",
                "notifications.endpoints[1].headers",
            ),
        ];
        for (body, key) in cases {
            let e = load(&format!("[[notifications.endpoints]]\n{body}\n")).unwrap_err();
            assert!(e.contains(key), "{body}: {e}");
        }
        let e = load(
            "[[notifications.endpoints]]\nname = \"a\"\nurl = \"http://a/\"\n\
             [[notifications.endpoints]]\nname = \"a\"\nurl = \"http://b/\"\n",
        )
        .unwrap_err();
        assert!(e.contains("notifications.endpoints[2].name"), "{e}");
    }
}
