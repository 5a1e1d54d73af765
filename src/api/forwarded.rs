//! Who is asking, and under which address the registry is reached: the
//! client's address, the scheme and the host of a request, worked out once
//! per request into a [`ClientInfo`] extension. `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port` and RFC 7239
//! `Forwarded` are believed only when the TCP peer is one of
//! `http.trusted_proxies`; from anyone else they are ignored, so a client
//! cannot pick the address its failed logins count against, nor the host
//! an absolute `Location` names.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap};

use crate::config::{Http, IpNet, PublicUrls};

/// `http.trusted_proxies`, `http.host`, `http.prefix`, `http.relativeurls`
/// and whether the listener speaks TLS, ready for [`client_info`].
#[derive(Debug, Default)]
pub struct ProxyPolicy {
    trusted: Vec<IpNet>,
    urls: PublicUrls,
    tls: bool,
}

impl ProxyPolicy {
    /// From a validated `[http]` (an invalid one is refused here too).
    pub fn from_config(http: &Http) -> Result<ProxyPolicy, String> {
        Ok(ProxyPolicy {
            trusted: http.trusted_networks().map_err(|e| e.to_string())?,
            urls: http.public_urls().map_err(|e| e.to_string())?,
            tls: http.tls.enabled(),
        })
    }

    /// `http.prefix`, normalised: `/registry` for `/registry/`, empty for none.
    pub fn prefix(&self) -> &str {
        &self.urls.prefix
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The [`ClientInfo`] of a request from `peer` with these headers.
    pub fn client_info(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        uri_host: Option<&str>,
    ) -> ClientInfo {
        let forwarded = self.trusts(peer);
        let rfc7239 = if forwarded {
            parse_forwarded(headers)
        } else {
            Vec::new()
        };
        let client = if forwarded {
            self.forwarded_client(peer, headers, &rfc7239)
        } else {
            peer
        };
        let own_scheme = if self.tls { "https" } else { "http" };
        let scheme = if forwarded {
            first(headers, "x-forwarded-proto")
                .or_else(|| rfc7239.first().and_then(|e| e.proto.clone()))
                .and_then(|p| match p.to_ascii_lowercase().as_str() {
                    "https" => Some("https"),
                    "http" => Some("http"),
                    _ => None,
                })
                .unwrap_or(own_scheme)
        } else {
            own_scheme
        };
        let own_host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(uri_host)
            .and_then(valid_host);
        let host = if forwarded {
            let fwd = first(headers, "x-forwarded-host")
                .or_else(|| rfc7239.first().and_then(|e| e.host.clone()))
                .and_then(|h| valid_host(&h));
            match fwd {
                Some(h) => Some(with_forwarded_port(h, headers)),
                None => own_host,
            }
        } else {
            own_host
        };
        let absolute_root = match (&self.urls.host, &host) {
            (Some(configured), _) => Some(format!("{configured}{}", self.urls.prefix)),
            (None, Some(h)) => Some(format!("{scheme}://{h}{}", self.urls.prefix)),
            (None, None) => None,
        };
        let root = match &absolute_root {
            Some(r) if self.urls.absolute => r.clone(),
            // Relative by default; and with no usable host to name, a
            // relative URL is still right.
            _ => self.urls.prefix.clone(),
        };
        ClientInfo {
            client,
            peer,
            scheme,
            host,
            urls: Urls { root },
            absolute_root,
        }
    }

    /// Walks the forwarded-for chain from the right (the hop nearest to
    /// Berth, added by the trusted peer) past every trusted proxy; the
    /// first address that is not one is the client. Anything left of it
    /// was written by that client and is not believed. A chain made only
    /// of trusted addresses names its leftmost; an entry that is no address
    /// stops the walk at the last address known.
    fn forwarded_client(&self, peer: IpAddr, headers: &HeaderMap, rfc7239: &[Element]) -> IpAddr {
        let xff: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let chain: Vec<Option<IpAddr>> = if !xff.is_empty() {
            xff.iter().map(|s| parse_node(s)).collect()
        } else {
            rfc7239
                .iter()
                .filter_map(|e| e.for_.as_deref())
                .map(parse_node)
                .collect()
        };
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// Who sent a request and how the registry was addressed, as a request
/// extension (`Arc<ClientInfo>`) that [`client_info`] inserts.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client: the TCP peer, or from a trusted proxy the forwarded
    /// client address (see [`ProxyPolicy`]).
    pub client: IpAddr,
    /// The TCP peer.
    pub peer: IpAddr,
    /// `http` or `https`, as the client reached the registry.
    pub scheme: &'static str,
    /// The host (and port) the client addressed, when it named a valid one.
    pub host: Option<String>,
    /// How this request's `Location` and `Link` URLs are built.
    pub urls: Urls,
    /// The absolute URL of the API's root (`https://host/prefix`, without
    /// `/v2`), whatever `relativeurls` says, when a host is known: for the
    /// URLs in notification events, which registry:2 makes absolute.
    pub absolute_root: Option<String>,
}

impl ClientInfo {
    /// For a request that went through no proxy, relative URLs, no prefix
    /// (a request that reached the handlers without [`client_info`]).
    pub fn direct(peer: IpAddr) -> ClientInfo {
        ClientInfo {
            client: peer,
            peer,
            scheme: "http",
            host: None,
            urls: Urls::default(),
            absolute_root: None,
        }
    }
}

/// Builds the URLs the API hands out (`Location`, `Link`): relative, or
/// absolute with `http.relativeurls = false`; under `http.prefix` either way.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    /// `""`, `/registry`, or `https://registry.example.com/registry`.
    root: String,
}

impl Urls {
    /// The URL of `/v2/{rest}`.
    pub fn v2(&self, rest: impl Display) -> String {
        format!("{}/v2/{rest}", self.root)
    }
}

/// Puts the [`ClientInfo`] into the request (for the outer layers, which
/// run it first); returns the client's address.
pub fn client_info(policy: &ProxyPolicy, req: &mut Request) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let info = policy.client_info(
        peer,
        req.headers(),
        req.uri().authority().map(|a| a.as_str()),
    );
    let client = info.client;
    req.extensions_mut().insert(Arc::new(info));
    client
}

/// The first comma-separated value of header `name`.
fn first(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A host (with an optional port) fit to put in a URL: a DNS name or an
/// IP literal, nothing that could carry a user, a path or a second URL.
fn valid_host(h: &str) -> Option<String> {
    let h = h.trim();
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']' | b'_')
        })
        && Authority::try_from(h).is_ok();
    ok.then(|| h.to_ascii_lowercase())
}

/// `X-Forwarded-Port` joined to a forwarded host that has no port, as
/// registry:2 does.
fn with_forwarded_port(host: String, headers: &HeaderMap) -> String {
    let has_port = Authority::try_from(host.as_str()).is_ok_and(|a| a.port().is_some());
    match first(headers, "x-forwarded-port").and_then(|p| p.parse::<u16>().ok()) {
        Some(port) if !has_port => format!("{host}:{port}"),
        _ => host,
    }
}

/// An address in a forwarded chain: `10.0.0.1`, `10.0.0.1:1234`, `::1`,
/// `[::1]:1234`, quoted or not. Anything else (`unknown`, `_hidden`) is None.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// One element of RFC 7239 `Forwarded` (one hop).
#[derive(Debug, Default)]
struct Element {
    for_: Option<String>,
    proto: Option<String>,
    host: Option<String>,
}

/// Every `Forwarded` element, in order (every header line, comma-split).
/// A quoted value with a comma or semicolon inside is cut there; such
/// values name no address Berth could use anyway.
fn parse_forwarded(headers: &HeaderMap) -> Vec<Element> {
    headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(64)
        .map(|element| {
            let mut e = Element::default();
            for pair in element.split(';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => e.for_ = Some(v),
                    "proto" => e.proto = Some(v),
                    "host" => e.host = Some(v),
                    _ => {}
                }
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests;
