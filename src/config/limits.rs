//! `[limits]`: what one client can make the server spend (Berth only).
//! Every key has a default and a `REGISTRY_LIMITS_<KEY>` override.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, ConfigError};

/// Bounds on connections, time and per-request work.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A connection must send a complete request header this soon after it
    /// opens or after its first byte of a request; else it is closed.
    #[serde(deserialize_with = "duration::human")]
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight that sends and
    /// receives nothing for this long is closed.
    #[serde(deserialize_with = "duration::human")]
    pub idle_timeout: Duration,
    /// A request body that sends nothing for this long is cut: 408, and
    /// the upload it was feeding is released.
    #[serde(deserialize_with = "duration::human")]
    pub body_idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Open upload sessions in the whole registry.
    pub max_uploads: usize,
    /// Open upload sessions in one repository.
    pub max_uploads_per_repository: usize,
    /// Tags one manifest PUT may set (`?tag=` plus the reference).
    pub max_tags_per_put: usize,
    /// Descriptors one page of the referrers list holds.
    pub max_referrers_page: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_uploads: 4096,
            max_uploads_per_repository: 512,
            max_tags_per_put: 100,
            max_referrers_page: 1000,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_idle_timeout", self.body_idle_timeout),
        ];
        for (key, d) in durations {
            if d.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} must be more than 0s"
                )));
            }
        }
        let counts = [
            ("max_connections", self.max_connections),
            ("max_uploads", self.max_uploads),
            (
                "max_uploads_per_repository",
                self.max_uploads_per_repository,
            ),
            ("max_tags_per_put", self.max_tags_per_put),
            ("max_referrers_page", self.max_referrers_page),
        ];
        for (key, n) in counts {
            if n == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_env as env, Config};
    use super::*;

    #[test]
    fn defaults_file_and_env() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.limits, Limits::default());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[limits]\nheader_read_timeout = \"5s\"\nmax_tags_per_put = 7\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&p),
            env(&[
                ("REGISTRY_LIMITS_IDLE_TIMEOUT", "30s"),
                ("REGISTRY_LIMITS_MAX_CONNECTIONS", "20"),
                ("REGISTRY_LIMITS_MAX_TAGS_PER_PUT", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.limits.max_connections, 20);
        assert_eq!(c.limits.max_tags_per_put, 9);
        assert_eq!(c.limits.max_uploads, 4096);
    }

    #[test]
    fn rejects_zero_and_nonsense() {
        for (k, v) in [
            ("REGISTRY_LIMITS_MAX_CONNECTIONS", "0"),
            ("REGISTRY_LIMITS_MAX_CONNECTIONS", "-3"),
            ("REGISTRY_LIMITS_MAX_UPLOADS", "many"),
            ("REGISTRY_LIMITS_BODY_IDLE_TIMEOUT", "0s"),
            ("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "soon"),
        ] {
            let e = Config::load(None, env(&[(k, v)])).unwrap_err().to_string();
            let key = k.trim_start_matches("REGISTRY_LIMITS_").to_lowercase();
            assert!(e.contains(k) || e.contains(&key), "{k}={v}: {e}");
        }
    }
}
