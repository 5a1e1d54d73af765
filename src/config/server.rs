//! `[http]`, `[log]` and `[storage]`: registry:2's sections for where the
//! registry listens, what it logs and where it keeps its data.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
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

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `fd00::/8`; a bare address is
/// a network of one), as `http.trusted_proxies` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    bits: u8,
}

impl IpNet {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR (10.0.0.0/8, fd00::/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, bits })
    }
}

/// `http.host`, `http.prefix` and `http.relativeurls`, checked.
#[derive(Debug, Clone, Default)]
pub struct PublicUrls {
    /// `scheme://authority` from `http.host`, without a trailing `/`.
    pub host: Option<String>,
    /// `/registry` for `/registry/`; empty for the root.
    pub prefix: String,
    /// Absolute `Location` and `Link` (only with `relativeurls = false`).
    pub absolute: bool,
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

/// `[http.debug]`, registry:2's keys: a second, plain-HTTP listener for
/// operators (health, Prometheus metrics), off while `addr` is empty.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Debug {
    /// `host:port` (`:5001` means every interface); empty: no listener.
    pub addr: String,
    /// `[http.debug.prometheus]`.
    pub prometheus: Prometheus,
}

/// `[http.debug.prometheus]`: metrics in Prometheus' text format at `path`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Prometheus {
    pub enabled: bool,
    pub path: String,
}

impl Default for Prometheus {
    fn default() -> Prometheus {
        Prometheus {
            enabled: false,
            path: "/metrics".into(),
        }
    }
}

/// The paths the debug listener always answers (the metrics path must
/// not hide one).
pub const DEBUG_HEALTH_PATHS: [&str; 3] = ["/debug/health", "/healthz", "/readyz"];

impl Debug {
    /// The listener's address, `None` when it is off; an invalid address
    /// or metrics path names its key.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.addr.is_empty() {
            return Ok(None);
        }
        parse_addr(&self.addr).map(Some).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "http.debug.addr {:?} is not an address like 127.0.0.1:5001 or :5001",
                self.addr
            ))
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let path = &self.prometheus.path;
        if !path.starts_with('/')
            || path.contains(['?', '#'])
            || path.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::Invalid(format!(
                "http.debug.prometheus.path {path:?} must be a path starting with / (like /metrics)"
            )));
        }
        if self.prometheus.enabled && DEBUG_HEALTH_PATHS.contains(&path.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "http.debug.prometheus.path {path:?} is one of the health paths ({})",
                DEBUG_HEALTH_PATHS.join(", ")
            )));
        }
        Ok(())
    }
}

/// `:5000` → `0.0.0.0:5000`, `localhost:5000` → `127.0.0.1:5000`.
fn parse_addr(addr: &str) -> Option<SocketAddr> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else if let Some(rest) = addr.strip_prefix("localhost:") {
        format!("127.0.0.1:{rest}")
    } else {
        addr.to_string()
    };
    full.parse().ok()
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

    /// `http.trusted_proxies`, parsed; an invalid entry names the key.
    pub fn trusted_networks(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| ConfigError::Invalid(format!("http.trusted_proxies: {e}")))
            })
            .collect()
    }

    /// `http.host`, `http.prefix` and `http.relativeurls`, checked:
    /// the host must be an `http`/`https` URL with a host name and at most
    /// a path (checked, not used: URLs take their path from the prefix);
    /// the prefix a plain path
    /// (`/registry/`; registry:2 asks for both slashes, Berth takes it
    /// with or without them).
    pub fn public_urls(&self) -> Result<PublicUrls, ConfigError> {
        let invalid =
            |key: &str, v: &str, why: &str| ConfigError::Invalid(format!("http.{key} {v:?} {why}"));
        let plain_path = |key: &str, p: &str| -> Result<String, ConfigError> {
            let ok = p.split('/').all(|seg| {
                seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
                    })
            });
            if !ok || p.contains("//") {
                return Err(invalid(
                    key,
                    p,
                    "is not a plain path (letters, digits, - _ . ~ between single slashes)",
                ));
            }
            let trimmed = p.trim_matches('/');
            Ok(if trimmed.is_empty() {
                String::new()
            } else {
                format!("/{trimmed}")
            })
        };
        let prefix = plain_path("prefix", &self.prefix)?;
        let host = if self.host.is_empty() {
            None
        } else {
            let h = &self.host;
            let rest = h
                .strip_prefix("https://")
                .or_else(|| h.strip_prefix("http://"))
                .ok_or_else(|| invalid("host", h, "is not an http:// or https:// URL"))?;
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority_ok = !authority.is_empty()
                && authority.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                })
                && axum::http::uri::Authority::try_from(authority).is_ok();
            if !authority_ok {
                return Err(invalid("host", h, "has no valid host[:port]"));
            }
            // The path of URLs is `prefix` (registry:2 resolves its
            // routes, which carry the prefix, against this URL): a path
            // here is checked but not used.
            plain_path("host", path)?;
            let scheme_len = h.len() - rest.len();
            Some(format!("{}{authority}", &h[..scheme_len]))
        };
        Ok(PublicUrls {
            host,
            prefix,
            absolute: self.relativeurls == Some(false),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_listener_is_off_by_default_and_checked_when_on() {
        let mut d = Debug::default();
        assert_eq!(d.listen_addr().unwrap(), None);
        assert_eq!(d.prometheus.path, "/metrics");
        d.addr = ":5001".into();
        assert_eq!(
            d.listen_addr().unwrap(),
            Some("0.0.0.0:5001".parse().unwrap())
        );
        d.validate().unwrap();
        d.addr = "nowhere".into();
        assert!(d
            .validate()
            .unwrap_err()
            .to_string()
            .contains("http.debug.addr"));
        d.addr = "127.0.0.1:5001".into();
        d.prometheus.path = "metrics".into();
        let e = d.validate().unwrap_err().to_string();
        assert!(e.contains("http.debug.prometheus.path"), "{e}");
        d.prometheus = Prometheus {
            enabled: true,
            path: "/healthz".into(),
        };
        assert!(d.validate().is_err());
    }
}
