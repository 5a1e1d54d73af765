//! Configuration: a TOML file whose keys mirror registry:2's configuration
//! tree, overridden by registry:2's environment variables (`REGISTRY_` + the
//! key path in upper case joined by `_`). Validated once at start-up. One
//! module per section; [`env`] applies the overrides.

mod access;
mod auth;
mod cors;
mod debug;
pub mod duration;
mod env;
mod gc;
mod limits;
mod notifications;
mod proxy;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use access::{AccessConfig, AccessRule, Action, Lockout};
pub use auth::{AuthConfig, HtpasswdConfig, InitialUser};
pub use cors::Cors;
pub use debug::{Debug, Prometheus, DEBUG_HEALTH_PATHS};
pub use env::env_name;
pub use gc::{Gc, GcTestHooks, RetentionRule};
pub use limits::Limits;
pub use notifications::{Endpoint, EventsConfig, Ignore, Notifications};
pub use proxy::{IpNet, PublicUrls};
pub use server::{
    Delete, Filesystem, Http, Http2, Log, LogFormat, Maintenance, MinTls, ReadOnly, Storage, Tls,
};

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub log: Log,
    pub storage: Storage,
    /// `[auth.htpasswd]`: registry:2's authentication section.
    pub auth: AuthConfig,
    /// `[access]`: Berth's access rules and login lockout.
    pub access: AccessConfig,
    pub gc: Gc,
    /// `[limits]`: Berth's bounds on connections, time and per-request work.
    pub limits: Limits,
    /// `[cors]`: answers to browsers on other origins (off by default).
    pub cors: Cors,
    /// `[notifications]`: registry:2's event endpoints.
    pub notifications: Notifications,
    /// `BERTH_INITIAL_USER` / `BERTH_INITIAL_PASSWORD` from the environment.
    #[serde(skip)]
    pub initial_user: InitialUser,
    /// `REGISTRY_*` variables that name no Berth setting (registry:2 warns
    /// about and ignores them too); logged once logging is up.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// How error messages number the entries of an array of tables
/// (`[[access.rules]]`, `[[gc.retention]]`): from 1, as they appear.
fn rule_number(index: usize) -> usize {
    index + 1
}

impl Config {
    /// Loads `path` (if any), applies the overrides among `env` (the
    /// process environment: `REGISTRY_*` and `BERTH_INITIAL_*`) and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let pairs = || env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let mut tree: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        let ignored_env = env::apply(&mut tree, pairs())?;
        let mut config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        config.ignored_env = ignored_env;
        config.initial_user = InitialUser::from_env(pairs());
        config.gc.test_hooks = GcTestHooks::from_env(pairs());
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.auth.validate().map_err(ConfigError::Invalid)?;
        self.access
            .validate(&self.auth)
            .map_err(ConfigError::Invalid)?;
        self.gc.validate()?;
        self.limits.validate()?;
        self.storage.validate()?;
        self.http.header_lines()?;
        self.cors.validate()?;
        self.notifications.validate()?;
        self.http.validate()?;
        self.log.validate()
    }

    /// `http.addr` as a socket address (`:5000` → `0.0.0.0:5000`).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen_addr()
    }
}

/// An environment of `pairs`, for the tests of every section.
#[cfg(test)]
fn test_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_env as env;

    #[test]
    fn defaults_and_env() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen_addr().unwrap().to_string(), "127.0.0.1:5000");
        assert!(!c.storage.delete.enabled);
        let c = Config::load(
            None,
            env(&[
                ("REGISTRY_HTTP_ADDR", ":6000"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen_addr().unwrap().to_string(), "0.0.0.0:6000");
        assert!(c.storage.delete.enabled);
        assert_eq!(c.storage.filesystem.rootdirectory, PathBuf::from("/x"));
        assert_eq!(env_name("http.debug.addr"), "REGISTRY_HTTP_DEBUG_ADDR");
    }

    #[test]
    fn rejects_bad_values_and_unknown_keys() {
        let e = Config::load(None, env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "maybe")]));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("REGISTRY_STORAGE_DELETE_ENABLED"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[http]\naddr = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        // Other registry:2 variables are ignored (and logged), but not the
        // ones that would leave a registry open that was meant to be secured.
        let c = Config::load(None, env(&[("REGISTRY_HTTP_SECRET", "s")])).unwrap();
        assert_eq!(c.ignored_env, ["REGISTRY_HTTP_SECRET"]);
        for name in [
            "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE",
            "REGISTRY_AUTH_TOKEN_REALM",
        ] {
            let e = Config::load(None, env(&[(name, "x")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{e}");
        }
        std::fs::write(&p, "[http]\naddr = \"nonsense\"\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("http.addr"), "{e}");
    }

    #[test]
    fn berth_variables_from_the_environment() {
        let c = Config::load(
            None,
            env(&[
                ("BERTH_INITIAL_USER", "alice"),
                ("BERTH_INITIAL_PASSWORD", ""),
                ("BERTH_GC_FAULT_AFTER", " 3 "),
                ("BERTH_GC_TEST_PAUSE_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.initial_user.user.as_deref(), Some("alice"));
        // An empty value is no value: never a user with an empty password.
        assert_eq!(c.initial_user.password, None);
        assert_eq!(c.gc.test_hooks.fault_after, Some(3));
        assert_eq!(
            c.gc.test_hooks.pause_after_mark,
            Some(std::time::Duration::from_millis(250))
        );
        let c = Config::load(None, env(&[("BERTH_INITIAL_PASSWORD", "s3cret")])).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
