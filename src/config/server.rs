//! `[http]`, `[log]` and `[storage]`: registry:2's sections for where the
//! registry listens, what it logs and where it keeps its data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Debug};

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// `host:port` to listen on; `:5000` means every interface, as in registry:2.
    pub addr: String,
    /// `[http.headers]`: header name → values, added to every response
    /// (registry:2's `http.headers`; several values, several header lines).
    pub headers: BTreeMap<String, Vec<String>>,
    /// `[http.tls]`: serve HTTPS when a certificate and key are given.
    pub tls: Tls,
    /// `[http.http2]`.
    pub http2: Http2,
    /// registry:2's `http.host`: the externally reachable URL
    /// (`https://registry.example.com`) absolute URLs are built from.
    pub host: String,
    /// registry:2's `http.prefix`: the path the API is served under
    /// (`/registry/` → `/registry/v2/...`); empty: the root.
    pub prefix: String,
    /// registry:2's `http.relativeurls`. Unset, Berth's `Location` and
    /// `Link` headers are relative; `false` makes them absolute (from
    /// `host`, else from the request).
    pub relativeurls: Option<bool>,
    /// Berth: the peers (IPs or CIDRs) whose `X-Forwarded-*` and
    /// `Forwarded` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// `[http.debug]`: the debug listener (metrics and health).
    pub debug: Debug,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            addr: "127.0.0.1:5000".into(),
            headers: BTreeMap::new(),
            tls: Tls::default(),
            http2: Http2::default(),
            host: String::new(),
            prefix: String::new(),
            relativeurls: None,
            trusted_proxies: Vec::new(),
            debug: Debug::default(),
        }
    }
}

/// `[http.tls]`, registry:2's keys: the certificate chain and key (PEM
/// files, re-read when they change), the oldest TLS version accepted and
/// the CAs client certificates must be signed by (none: no client
/// certificates asked for).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `tls1.2` (the default) or `tls1.3`.
    pub minimumtls: Option<String>,
    pub clientcas: Vec<PathBuf>,
}

/// `[http.http2]`: `disabled = true` serves HTTP/1.1 only (no h2 through
/// ALPN, no h2c).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Http2 {
    pub disabled: bool,
}

/// The TLS versions `http.tls.minimumtls` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinTls {
    Tls12,
    Tls13,
}

impl Tls {
    /// Whether HTTPS is on.
    pub fn enabled(&self) -> bool {
        self.certificate.is_some()
    }

    /// `minimumtls`, checked.
    pub fn minimum(&self) -> Result<MinTls, ConfigError> {
        match self.minimumtls.as_deref() {
            None | Some("") | Some("tls1.2") => Ok(MinTls::Tls12),
            Some("tls1.3") => Ok(MinTls::Tls13),
            Some(v @ ("tls1.0" | "tls1.1")) => Err(ConfigError::Invalid(format!(
                "http.tls.minimumtls {v:?} is not supported: Berth serves TLS 1.2 and 1.3 only \
                 (tls1.2 or tls1.3)"
            ))),
            Some(v) => Err(ConfigError::Invalid(format!(
                "http.tls.minimumtls {v:?} is not one of tls1.2, tls1.3"
            ))),
        }
    }

    /// Both `certificate` and `key` or neither; the other keys only with
    /// them. (The files are read when the server starts.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
        if empty(&self.certificate) || empty(&self.key) {
            return Err(ConfigError::Invalid(
                "http.tls.certificate and http.tls.key must not be empty".into(),
            ));
        }
        match (&self.certificate, &self.key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "http.tls.certificate is set but http.tls.key is not: both are needed".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "http.tls.key is set but http.tls.certificate is not: both are needed".into(),
                ))
            }
            (None, None) if !self.clientcas.is_empty() => {
                return Err(ConfigError::Invalid(
                    "http.tls.clientcas needs http.tls.certificate and http.tls.key".into(),
                ))
            }
            _ => {}
        }
        self.minimum().map(|_| ())
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

    /// The address, the TLS keys, the debug listener and the proxy keys, checked.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.tls.validate()?;
        self.debug.validate()?;
        self.trusted_networks()?;
        self.public_urls().map(|_| ())
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
