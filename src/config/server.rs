//! `[http]`, `[log]` and `[storage]`: registry:2's sections for where the
//! registry listens, what it logs and where it keeps its data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// `host:port` to listen on; `:5000` means every interface, as in registry:2.
    pub addr: String,
    /// `[http.headers]`: header name → values, added to every response
    /// (registry:2's `http.headers`; several values, several header lines).
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            addr: "127.0.0.1:5000".into(),
            headers: BTreeMap::new(),
        }
    }
}

impl Http {
    /// `http.headers` as header lines; an invalid name or value names its key.
    pub fn header_lines(
        &self,
    ) -> Result<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>, ConfigError> {
        let mut lines = Vec::new();
        for (name, values) in &self.headers {
            let n = axum::http::HeaderName::try_from(name.as_str()).map_err(|_| {
                ConfigError::Invalid(format!("http.headers: {name:?} is not a header name"))
            })?;
            for value in values {
                let v = axum::http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                    ConfigError::Invalid(format!(
                        "http.headers.{name}: {value:?} is not a header value"
                    ))
                })?;
                lines.push((n.clone(), v));
            }
        }
        Ok(lines)
    }

    /// `addr` as a socket address (`:5000` → `0.0.0.0:5000`).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let addr = &self.addr;
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

impl Log {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !["error", "warn", "info", "debug", "trace"].contains(&self.level.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log.level {:?} is not one of error, warn, info, debug, trace",
                self.level
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub filesystem: Filesystem,
    pub delete: Delete,
    /// `[storage.maintenance]`: registry:2's read-only switch.
    pub maintenance: Maintenance,
}

impl Storage {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.filesystem.rootdirectory.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "storage.filesystem.rootdirectory must not be empty".into(),
            ));
        }
        Ok(())
    }
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

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Maintenance {
    pub readonly: ReadOnly,
}

/// `storage.maintenance.readonly.enabled`: pulls are served, every write
/// answers 405 UNSUPPORTED, and the online collector does not run.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ReadOnly {
    pub enabled: bool,
}
