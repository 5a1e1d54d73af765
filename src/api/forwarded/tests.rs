//! Tests of the forwarded-header parsing and the client info.

use super::*;
use axum::http::HeaderValue;

fn policy(trusted: &[&str], relativeurls: Option<bool>, host: &str) -> ProxyPolicy {
    let http = Http {
        trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
        relativeurls,
        host: host.into(),
        prefix: "/reg/".into(),
        ..Http::default()
    };
    ProxyPolicy::from_config(&http).expect("valid")
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn forwarded_for_is_walked_from_the_right_past_trusted_hops() {
    let p = policy(&["10.0.0.0/8", "fd00::/8"], None, "");
    let h = headers(&[
        ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
        ("x-forwarded-for", "10.1.1.1"),
    ]);
    assert_eq!(
        p.client_info(ip("10.0.0.2"), &h, None).client,
        ip("1.2.3.4")
    );
    // From an untrusted peer, nothing forwarded is believed.
    assert_eq!(p.client_info(ip("8.8.8.8"), &h, None).client, ip("8.8.8.8"));
    // IPv6 peers and hops, RFC 7239 with ports and quotes.
    let h = headers(&[(
        "forwarded",
        r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.9"#,
    )]);
    let info = p.client_info(ip("fd00::1"), &h, None);
    assert_eq!(info.client, ip("2001:db8::1"));
    assert_eq!(info.scheme, "https");
    // A garbage hop stops the walk at the last address known.
    let h = headers(&[("x-forwarded-for", "1.1.1.1, unknown, 10.2.2.2")]);
    assert_eq!(
        p.client_info(ip("10.0.0.2"), &h, None).client,
        ip("10.2.2.2")
    );
    // An IPv4-mapped peer counts as its IPv4 address.
    let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
    assert_eq!(
        p.client_info(ip("::ffff:10.0.0.2"), &h, None).client,
        ip("1.2.3.4")
    );
}

#[test]
fn absolute_urls_come_from_the_configured_host_or_a_trusted_request() {
    let h = headers(&[
        ("host", "berth:5000"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
    ]);
    let p = policy(&["10.0.0.0/8"], Some(false), "");
    assert_eq!(
        p.client_info(ip("8.8.8.8"), &h, None).urls.v2("a"),
        "http://berth:5000/reg/v2/a"
    );
    assert_eq!(
        p.client_info(ip("10.0.0.1"), &h, None).urls.v2("a"),
        "https://evil.example/reg/v2/a"
    );
    let p = policy(
        &["10.0.0.0/8"],
        Some(false),
        "https://r.example:8443/ignored/",
    );
    assert_eq!(
        p.client_info(ip("10.0.0.1"), &h, None).urls.v2("a"),
        "https://r.example:8443/reg/v2/a"
    );
    let p = policy(&[], None, "https://r.example");
    assert_eq!(
        p.client_info(ip("10.0.0.1"), &h, None).urls.v2("a"),
        "/reg/v2/a"
    );
    // A host that could smuggle a path or a user is not used.
    let p = policy(&["10.0.0.0/8"], Some(false), "");
    let h = headers(&[("host", "a@b/c"), ("x-forwarded-host", "x/y")]);
    assert_eq!(
        p.client_info(ip("10.0.0.1"), &h, None).urls.v2("a"),
        "/reg/v2/a"
    );
}

#[test]
fn trusted_proxies_are_validated_naming_the_key() {
    for bad in ["10.0.0.0/33", "fd00::/129", "example.com", "10.0.0/8", ""] {
        let http = Http {
            trusted_proxies: vec![bad.into()],
            ..Http::default()
        };
        let e = http.validate().expect_err(bad).to_string();
        assert!(e.contains("http.trusted_proxies"), "{e}");
    }
    let net: IpNet = "0.0.0.0/0".parse().expect("all");
    assert!(net.contains(ip("255.1.2.3")));
    let net: IpNet = "127.0.0.1".parse().expect("one");
    assert!(net.contains(ip("127.0.0.1")) && !net.contains(ip("127.0.0.2")));
    assert!(!net.contains(ip("::1")));
}

#[test]
fn prefix_and_host_are_validated_naming_the_key() {
    for (host, prefix) in [
        ("", "/a/../b"),
        ("", "/a%2f"),
        ("", "a//b"),
        ("ftp://x", ""),
        ("https://", ""),
        ("https://u@h", ""),
    ] {
        let http = Http {
            host: host.into(),
            prefix: prefix.into(),
            ..Http::default()
        };
        let e = http.validate().expect_err(prefix).to_string();
        let key = if host.is_empty() {
            "http.prefix"
        } else {
            "http.host"
        };
        assert!(e.contains(key), "{e}");
    }
}
