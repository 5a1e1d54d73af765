//! Configuration: a TOML file whose keys mirror registry:2's configuration
//! tree, overridden by registry:2's environment variables (`REGISTRY_` + the
//! key path in upper case joined by `_`). Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub log: Log,
    pub storage: Storage,
    /// `[auth.htpasswd]`: registry:2's authentication section.
    pub auth: crate::auth::AuthConfig,
    /// `[access]`: Berth's access rules and login lockout.
    pub access: crate::auth::AccessConfig,
    pub gc: Gc,
    /// `REGISTRY_*` variables that name no Berth setting (registry:2 warns
    /// about and ignores them too); logged once logging is up.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// `host:port` to listen on; `:5000` means every interface, as in registry:2.
    pub addr: String,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            addr: "127.0.0.1:5000".into(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace` (overridden by `RUST_LOG`).
    pub level: String,
    /// `text` or `json` (registry:2 calls this key `formatter`).
    pub formatter: LogFormat,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            level: "info".into(),
            formatter: LogFormat::Text,
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub filesystem: Filesystem,
    pub delete: Delete,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Filesystem {
    pub rootdirectory: PathBuf,
}

impl Default for Filesystem {
    fn default() -> Filesystem {
        Filesystem {
            rootdirectory: PathBuf::from("./data"),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Delete {
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bool,
    /// `REGISTRY_AUTH=htpasswd`: names the auth scheme, whose settings come
    /// from the file or the other `REGISTRY_AUTH_*` variables.
    AuthScheme,
}

/// Keys that can be set from the environment, registry:2 style.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("http.addr", Kind::Str),
    ("log.level", Kind::Str),
    ("log.formatter", Kind::Str),
    ("storage.filesystem.rootdirectory", Kind::Str),
    ("storage.delete.enabled", Kind::Bool),
    ("auth", Kind::AuthScheme),
    ("auth.htpasswd.realm", Kind::Str),
    ("auth.htpasswd.path", Kind::Str),
    ("gc.enabled", Kind::Bool),
    ("gc.interval", Kind::Str),
    ("gc.grace_period", Kind::Str),
    ("gc.delete_untagged", Kind::Bool),
    ("gc.purge_uploads_older_than", Kind::Str),
];

/// The environment variable for a key path: `http.addr` → `REGISTRY_HTTP_ADDR`.
pub fn env_name(key: &str) -> String {
    format!("REGISTRY_{}", key.replace('.', "_").to_uppercase())
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

impl Config {
    /// Loads `path` (if any), applies `env` overrides and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
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
        let mut ignored_env = Vec::new();
        for (name, value) in env {
            if !name.starts_with("REGISTRY_") {
                continue;
            }
            match ENV_KEYS.iter().find(|(k, _)| env_name(k) == name) {
                Some((key, kind)) => set_path(&mut tree, key, parse_env(&name, &value, *kind)?)?,
                None => {
                    refuse_unsupported_security(&name)?;
                    ignored_env.push(name);
                }
            }
        }
        let mut config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        ignored_env.sort();
        config.ignored_env = ignored_env;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.auth.validate().map_err(ConfigError::Invalid)?;
        self.access
            .validate(&self.auth)
            .map_err(ConfigError::Invalid)?;
        self.gc.validate()?;
        if self.storage.filesystem.rootdirectory.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "storage.filesystem.rootdirectory must not be empty".into(),
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log.level {:?} is not one of error, warn, info, debug, trace",
                self.log.level
            )));
        }
        Ok(())
    }

    /// `http.addr` as a socket address (`:5000` → `0.0.0.0:5000`).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let addr = &self.http.addr;
        let full = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else if let Some(rest) = addr.strip_prefix("localhost:") {
            format!("127.0.0.1:{rest}")
        } else {
            addr.clone()
        };
        full.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "http.addr {addr:?} is not an address like 127.0.0.1:5000 or :5000"
            ))
        })
    }
}

/// Ignoring an unknown variable is harmless for most of registry:2's
/// settings, but not for the ones that secure it: a registry started without
/// the TLS or token auth its operator asked for would be silently open.
fn refuse_unsupported_security(name: &str) -> Result<(), ConfigError> {
    let why = if name.starts_with("REGISTRY_HTTP_TLS_") {
        "Berth does not serve TLS itself; terminate TLS in a reverse proxy"
    } else if name.starts_with("REGISTRY_AUTH_") {
        "the only authentication Berth supports is htpasswd (REGISTRY_AUTH_HTPASSWD_REALM, REGISTRY_AUTH_HTPASSWD_PATH)"
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid(format!(
        "{name} is not supported: {why}"
    )))
}

fn parse_env(name: &str, value: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    match kind {
        Kind::Str => Ok(toml::Value::String(value.to_string())),
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(ConfigError::Invalid(format!(
                "{name}={value:?} is not a boolean (true or false)"
            ))),
        },
        Kind::AuthScheme => match value {
            "htpasswd" => {
                let mut t = toml::Table::new();
                t.insert("htpasswd".into(), toml::Value::Table(toml::Table::new()));
                Ok(toml::Value::Table(t))
            }
            _ => Err(ConfigError::Invalid(format!(
                "{name}={value:?} is not supported: the only auth scheme is htpasswd"
            ))),
        },
    }
}

fn set_path(tree: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut node = tree;
    for part in parts {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid(format!("{part} must be a table to set {key}")))?;
    }
    match (node.get_mut(last), value) {
        // A table (REGISTRY_AUTH=htpasswd) adds to what is there, never erases it.
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in new {
                old.entry(k).or_insert(v);
            }
        }
        (_, value) => {
            node.insert(last.to_string(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
        for name in ["REGISTRY_HTTP_TLS_CERTIFICATE", "REGISTRY_AUTH_TOKEN_REALM"] {
            let e = Config::load(None, env(&[(name, "x")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{e}");
        }
        std::fs::write(&p, "[http]\naddr = \"nonsense\"\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("http.addr"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// `[gc]`: garbage collection (Berth only; see `crate::gc`).
// ---------------------------------------------------------------------------

/// Online garbage collection and retention.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Gc {
    /// Run the collector inside the server.
    pub enabled: bool,
    /// Time between runs (`"1h"`, `"30m"`).
    #[serde(deserialize_with = "human_duration")]
    pub interval: std::time::Duration,
    /// Nothing modified more recently than this is swept.
    #[serde(deserialize_with = "human_duration")]
    pub grace_period: std::time::Duration,
    /// Also sweep manifests no tag (or live index, or live subject) reaches.
    pub delete_untagged: bool,
    /// Upload sessions older than this are removed.
    #[serde(deserialize_with = "human_duration")]
    pub purge_uploads_older_than: std::time::Duration,
    /// `[[gc.retention]]` rules; the first whose pattern matches a repository applies.
    pub retention: Vec<RetentionRule>,
}

impl Default for Gc {
    fn default() -> Gc {
        Gc {
            enabled: false,
            interval: std::time::Duration::from_secs(3600),
            grace_period: std::time::Duration::from_secs(3600),
            delete_untagged: false,
            purge_uploads_older_than: std::time::Duration::from_secs(7 * 24 * 3600),
            retention: Vec::new(),
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
    #[serde(default, deserialize_with = "human_duration_opt")]
    pub delete_older_than: Option<std::time::Duration>,
}

fn human_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"90s\", \"1h\" or \"7d\": {e}"
        ))
    })
}

fn human_duration_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    human_duration(d).map(Some)
}

impl Gc {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.interval.is_zero() {
            return Err(ConfigError::Invalid(
                "gc.interval must be more than 0s".into(),
            ));
        }
        for (i, rule) in self.retention.iter().enumerate() {
            if rule.keep_last.is_none() && rule.delete_older_than.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "gc.retention[{i}] ({}) needs keep_last or delete_older_than; \
                     otherwise it would delete every tag not matching keep_tags",
                    rule.repositories
                )));
            }
            if let Some(re) = &rule.keep_tags {
                regex::Regex::new(re).map_err(|e| {
                    ConfigError::Invalid(format!("gc.retention[{i}].keep_tags: {e}"))
                })?;
            }
        }
        Ok(())
    }
}
