//! `[gc]`: garbage collection and retention (Berth only; see `crate::gc`).

use std::time::Duration;

use serde::Deserialize;

use super::{duration, ConfigError};

/// Online garbage collection and retention.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Gc {
    /// Run the collector inside the server.
    pub enabled: bool,
    /// Time between runs (`"1h"`, `"30m"`).
    #[serde(deserialize_with = "duration::human")]
    pub interval: Duration,
    /// Nothing modified more recently than this is swept.
    #[serde(deserialize_with = "duration::human")]
    pub grace_period: Duration,
    /// Also sweep manifests no tag (or live index, or live subject) reaches.
    pub delete_untagged: bool,
    /// Upload sessions older than this are removed.
    #[serde(deserialize_with = "duration::human")]
    pub purge_uploads_older_than: Duration,
    /// `[[gc.retention]]` rules; the first whose pattern matches a repository applies.
    pub retention: Vec<RetentionRule>,
    /// From the environment, for the black-box tests only.
    #[serde(skip)]
    pub test_hooks: GcTestHooks,
}

/// Test hooks of every collection, from `BERTH_GC_FAULT_AFTER=N` and
/// `BERTH_GC_TEST_PAUSE_MS=MS` (the black-box tests set them on the
/// `berth` process to crash a collection or widen its race window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcTestHooks {
    /// Abort the process right after the N-th deletion of the run, to prove
    /// a crash at any point leaves live images intact.
    pub fault_after: Option<u64>,
    /// Sleep between mark and sweep, widening the window where a concurrent
    /// push could start relying on content the mark found dead.
    pub pause_after_mark: Option<Duration>,
}

impl GcTestHooks {
    /// Reads the two variables from `env`.
    pub fn from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> GcTestHooks {
        let mut hooks = GcTestHooks::default();
        for (name, value) in env {
            match name {
                "BERTH_GC_FAULT_AFTER" => hooks.fault_after = value.trim().parse().ok(),
                "BERTH_GC_TEST_PAUSE_MS" => {
                    hooks.pause_after_mark = value.parse().ok().map(Duration::from_millis)
                }
                _ => {}
            }
        }
        hooks
    }
}

impl Default for Gc {
    fn default() -> Gc {
        Gc {
            enabled: false,
            interval: Duration::from_secs(3600),
            grace_period: Duration::from_secs(3600),
            delete_untagged: false,
            purge_uploads_older_than: Duration::from_secs(7 * 24 * 3600),
            retention: Vec::new(),
            test_hooks: GcTestHooks::default(),
        }
    }
}

/// A retention rule: which tags of matching repositories to delete.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Glob over repository names (`*` within a segment, `**` across).
    pub repositories: String,
    /// Always keep the N most recently pushed tags.
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// Always keep tags matching this regex (e.g. `^v\d+\.\d+\.\d+$`).
    #[serde(default)]
    pub keep_tags: Option<String>,
    /// Only delete tags pushed longer ago than this.
    #[serde(default, deserialize_with = "duration::human_opt")]
    pub delete_older_than: Option<Duration>,
}

impl Gc {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.interval.is_zero() {
            return Err(ConfigError::Invalid(
                "gc.interval must be more than 0s".into(),
            ));
        }
        for (i, rule) in self.retention.iter().enumerate() {
            let n = super::rule_number(i);
            if rule.keep_last.is_none() && rule.delete_older_than.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "gc.retention[{n}] ({}) needs keep_last or delete_older_than; \
                     otherwise it would delete every tag not matching keep_tags",
                    rule.repositories
                )));
            }
            if let Some(re) = &rule.keep_tags {
                regex::Regex::new(re).map_err(|e| {
                    ConfigError::Invalid(format!("gc.retention[{n}].keep_tags: {e}"))
                })?;
            }
        }
        Ok(())
    }
}
