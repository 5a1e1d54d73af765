//! The reverse-proxy keys of `[http]` (registry:2's `http.host`,
//! `http.prefix`, `http.relativeurls`; Berth's `http.trusted_proxies`), checked.

use std::net::IpAddr;

use super::{ConfigError, Http};

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

impl Http {
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
}
