//! `[http.debug]`: the debug listener's keys (health and Prometheus metrics).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

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
