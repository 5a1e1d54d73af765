//! `[cors]`: a preflight from an allowed origin is answered without
//! credentials even with auth on; responses to that origin carry the
//! `Access-Control-*` headers; other origins get none.

use reqwest::Method;

use crate::support::auth::{self, Setup, ALICE};
use crate::support::http::client;

const UI: &str = "https://ui.example";
const CORS: &str = "[cors]\nallowed_origins = [\"https://ui.example\"]\nallowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"DELETE\"]\nmax_age = \"5m\"\n";

fn preflight(base: &str, path: &str, origin: &str) -> reqwest::blocking::Response {
    client()
        .request(Method::OPTIONS, format!("{base}{path}"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .unwrap()
}

fn cors_headers(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[test]
fn a_cors_preflight_is_answered_without_credentials_when_auth_is_on() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start(CORS);
    let r = preflight(&reg.base, "/v2/_catalog", UI);
    assert!(matches!(r.status().as_u16(), 200 | 204), "{r:?}");
    let h = r.headers();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(get("access-control-allow-origin").as_deref(), Some(UI));
    assert_eq!(
        get("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let methods = get("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("GET") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = get("access-control-allow-headers").unwrap().to_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(get("access-control-max-age").as_deref(), Some("300"));

    // The same request from another origin is not answered for CORS: it
    // meets auth like any other request.
    let r = preflight(&reg.base, "/v2/_catalog", "https://evil.example");
    assert_eq!(r.status(), 401);
    assert!(cors_headers(r.headers()).is_empty(), "{r:?}");
}

#[test]
fn responses_to_an_allowed_origin_carry_cors_and_exposed_headers() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start(CORS);
    let r = auth::with(client().get(reg.url("/v2/")).header("Origin", UI), ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h.get("access-control-allow-origin").unwrap(), UI);
    assert_eq!(h.get("access-control-allow-credentials").unwrap(), "true");
    let exposed = h
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "docker-content-digest",
        "link",
        "location",
        "docker-upload-uuid",
        "range",
        "www-authenticate",
    ] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    // A 401 to the UI carries them too, so it can read the challenge.
    let r = client()
        .get(reg.url("/v2/"))
        .header("Origin", UI)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("access-control-allow-origin").unwrap(), UI);
    // Another origin gets no CORS headers.
    let r = auth::with(
        client()
            .get(reg.url("/v2/"))
            .header("Origin", "https://evil.example"),
        ALICE,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(cors_headers(r.headers()).is_empty(), "{r:?}");
}

#[test]
fn without_a_cors_section_there_are_no_cors_headers() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start("");
    let r = preflight(&reg.base, "/v2/", UI);
    assert_eq!(r.status(), 401);
    assert!(cors_headers(r.headers()).is_empty(), "{r:?}");
    let r = auth::with(client().get(reg.url("/v2/")).header("Origin", UI), ALICE)
        .send()
        .unwrap();
    assert!(cors_headers(r.headers()).is_empty(), "{r:?}");
}

#[test]
fn any_origin_with_credentials_stops_start_up() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let config = s.config("[cors]\nallowed_origins = [\"*\"]\n");
    let out = s.command(Some(&config), &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow_credentials"), "{err}");
}
