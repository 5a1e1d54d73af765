//! Plain HTTP helpers: the test client, URL and `Location` handling, `Link`
//! headers and query strings, and small JSON readers.

use std::time::Duration;

use serde_json::Value;

/// A blocking HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// An absolute URL for a path (`/v2/...`) or a `Location` header value,
/// which may be absolute or relative to `base` (`http://HOST:PORT`).
pub fn absolute(base: &str, path_or_location: &str) -> String {
    let l = path_or_location;
    if l.starts_with("http://") || l.starts_with("https://") {
        l.to_string()
    } else if l.starts_with('/') {
        format!("{base}{l}")
    } else {
        format!("{base}/{l}")
    }
}

/// A response header as a string (empty if missing).
pub fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Appends `q` to `url`'s query (`?` or `&`).
pub fn with_query(url: &str, q: &str) -> String {
    if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

/// The target of a `Link: <url>; rel="next"` header (a path, or an absolute URL).
pub fn parse_link_next(link: &str) -> String {
    let open = link
        .find('<')
        .unwrap_or_else(|| panic!("Link without <: {link}"));
    let close = link
        .find('>')
        .unwrap_or_else(|| panic!("Link without >: {link}"));
    assert!(
        link[close..].replace(' ', "").contains(";rel=\"next\""),
        "Link is not rel=\"next\": {link}"
    );
    link[open + 1..close].to_string()
}

/// Query parameters of a URL, percent-decoded.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path and query of a `Location` (drops scheme and authority), so it
/// can be replayed against another server on the same data dir.
pub fn path_of(location: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_else(|| "/".into());
        }
    }
    location.to_string()
}

/// The strings of the array `v[key]`.
pub fn string_list(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {v}"))
        .iter()
        .map(|t| t.as_str().expect("string").to_string())
        .collect()
}

/// The path part of a `Link` target must be `want_path` (relative or absolute).
pub fn assert_link_path(link_target: &str, want_path: &str) {
    let p = path_of(link_target);
    let path = p.split('?').next().unwrap();
    assert_eq!(path, want_path, "Link target {link_target:?}");
}

/// The (first) value of query parameter `key` in `url`, percent-decoded.
pub fn param(url: &str, key: &str) -> Option<String> {
    query_params(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The `code`s of an OCI error body (empty if the body is not one).
pub fn error_codes(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
