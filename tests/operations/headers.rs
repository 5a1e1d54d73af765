//! `http.headers`: the configured header lines on every response.

use crate::support::api::Api;
use crate::support::auth::{self, Setup, ALICE};

const HEADERS: &str =
    "[http.headers]\nX-Content-Type-Options = [\"nosniff\"]\nX-Berth-Test = [\"one\", \"two\"]\n";

fn assert_configured(h: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        h.get("x-content-type-options").unwrap(),
        "nosniff",
        "{what}: {h:?}"
    );
    let values: Vec<_> = h.get_all("x-berth-test").iter().collect();
    assert_eq!(values, ["one", "two"], "{what}: {h:?}");
}

#[test]
fn configured_headers_are_on_every_response_including_errors_and_401s() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start(HEADERS);
    let ok = auth::get(&reg, "/v2/", ALICE);
    assert_eq!(ok.status(), 200);
    assert_configured(ok.headers(), "200");
    let missing = auth::get(&reg, "/v2/nope/manifests/latest", ALICE);
    assert_eq!(missing.status(), 404);
    assert_configured(missing.headers(), "404");
    let denied = auth::get(&reg, "/v2/", None);
    assert_eq!(denied.status(), 401);
    assert_configured(denied.headers(), "401");
}

#[test]
fn without_http_headers_none_are_added() {
    let api = Api::start();
    let r = api.get("/v2/");
    r.expect(200);
    assert!(r.header("x-content-type-options").is_none(), "{r}");
}

#[test]
fn an_invalid_configured_header_stops_start_up_naming_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("berth.toml");
    std::fs::write(&config, "[http.headers]\nX-Bad = [\"a\\u0001b\"]\n").unwrap();
    let out = crate::support::harness::serve_command(
        &tmp.path().join("data"),
        &[],
        &["--config", config.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.headers.X-Bad"), "{err}");
}
