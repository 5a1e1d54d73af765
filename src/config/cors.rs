//! `[cors]`: Berth's answers to browsers on other origins (a web UI such as
//! joxit/docker-registry-ui beside the registry). Off unless
//! `allowed_origins` names some origin.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::{duration, ConfigError};

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// Origins allowed (`https://ui.example`), or `["*"]` for any; empty: CORS off.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    /// Response headers a browser script may read.
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight's answer.
    #[serde(deserialize_with = "duration::human")]
    pub max_age: Duration,
}

impl Default for Cors {
    fn default() -> Cors {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Cors {
            allowed_origins: Vec::new(),
            allowed_methods: strings(&["GET", "HEAD", "OPTIONS"]),
            allowed_headers: strings(&["Authorization", "Accept", "Content-Type"]),
            expose_headers: strings(&[
                "Docker-Content-Digest",
                "Link",
                "Location",
                "Docker-Upload-UUID",
                "Range",
                "WWW-Authenticate",
                "Docker-Distribution-Api-Version",
            ]),
            allow_credentials: true,
            max_age: Duration::from_secs(600),
        }
    }
}

impl Cors {
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    pub fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, v: &str, what: &str| {
            ConfigError::Invalid(format!("cors.{key}: {v:?} is not {what}"))
        };
        if self.any_origin() && self.allow_credentials {
            return Err(ConfigError::Invalid(
                "cors.allowed_origins = [\"*\"] with cors.allow_credentials = true: browsers \
                 refuse credentials for any origin; name the origins or set allow_credentials = false"
                    .into(),
            ));
        }
        for o in &self.allowed_origins {
            if o != "*" && (HeaderValue::try_from(o.as_str()).is_err() || !o.contains("://")) {
                return Err(bad(
                    "allowed_origins",
                    o,
                    "an origin like https://ui.example",
                ));
            }
        }
        for m in &self.allowed_methods {
            Method::from_bytes(m.as_bytes()).map_err(|_| bad("allowed_methods", m, "a method"))?;
        }
        for (key, list) in [
            ("allowed_headers", &self.allowed_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            for h in list {
                HeaderName::try_from(h.as_str()).map_err(|_| bad(key, h, "a header name"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{test_env, Config};

    #[test]
    fn any_origin_with_credentials_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[cors]\nallowed_origins = [\"*\"]\n").unwrap();
        let e = Config::load(Some(&p), test_env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_credentials"), "{e}");
        std::fs::write(
            &p,
            "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = false\nmax_age = \"1h\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&p), test_env(&[])).unwrap();
        assert!(c.cors.enabled() && c.cors.any_origin());
        std::fs::write(&p, "[cors]\nallowed_headers = [\"bad header\"]\n").unwrap();
        let e = Config::load(Some(&p), test_env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cors.allowed_headers"), "{e}");
    }

    #[test]
    fn bad_http_headers_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[http.headers]\n\"X Bad\" = [\"v\"]\n").unwrap();
        let e = Config::load(Some(&p), test_env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.headers") && e.contains("X Bad"), "{e}");
        std::fs::write(&p, "[http.headers]\nX-Ok = [\"a\\nb\"]\n").unwrap();
        let e = Config::load(Some(&p), test_env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.headers.X-Ok"), "{e}");
        let c = Config::load(
            None,
            test_env(&[("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true")]),
        )
        .unwrap();
        assert!(c.storage.maintenance.readonly.enabled);
    }
}
