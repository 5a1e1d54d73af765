//! Manifest assertions of the API tests: a manifest served exactly as
//! pushed (by tag and digest, GET and HEAD), tag lists, padded manifests.

use serde_json::{json, Value};

use super::api::Api;
use super::content::*;

/// GET and HEAD by `reference` answer `body` with `media_type`.
pub fn assert_served(api: &Api, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let d = sha256(body);
    let g = api.get_manifest(repo, reference);
    g.expect(200).expect_api_version();
    assert_eq!(
        g.text(),
        String::from_utf8_lossy(body),
        "GET {repo}:{reference}: bytes differ"
    );
    assert_eq!(
        g.must_header("content-type"),
        media_type,
        "GET {repo}:{reference}"
    );
    assert_eq!(
        g.must_header("docker-content-digest"),
        d,
        "GET {repo}:{reference}"
    );
    assert_eq!(g.must_header("content-length"), body.len().to_string());

    let h = api.head_manifest(repo, reference);
    h.expect(200).expect_api_version();
    assert!(h.body.is_empty(), "HEAD has a body");
    assert_eq!(
        h.must_header("content-type"),
        media_type,
        "HEAD {repo}:{reference}"
    );
    assert_eq!(
        h.must_header("docker-content-digest"),
        d,
        "HEAD {repo}:{reference}"
    );
    assert_eq!(h.must_header("content-length"), body.len().to_string());
}

/// PUT → 201 with a pullable Location and the digest of the bytes.
pub fn put_and_check(
    api: &Api,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> String {
    let r = api.put_manifest(repo, reference, media_type, body);
    r.expect(201).expect_api_version();
    let d = sha256(body);
    assert_eq!(r.must_header("docker-content-digest"), d);
    let loc = r.must_header("location");
    let g = api.send(
        api.req(reqwest::Method::GET, &loc)
            .header("Accept", ACCEPT_ALL),
    );
    g.expect(200);
    assert_eq!(
        g.body, body,
        "the PUT Location {loc} does not serve the manifest"
    );
    d
}

pub fn tags(api: &Api, repo: &str) -> Vec<String> {
    let r = api.get(&format!("/v2/{repo}/tags/list"));
    r.expect(200);
    let v = r.json();
    assert_eq!(v["name"], repo);
    v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A manifest JSON `v` serialised to exactly `size` bytes by padding an annotation.
pub fn padded_to(mut v: Value, size: usize) -> Vec<u8> {
    v["annotations"] = json!({"pad": ""});
    let base = serde_json::to_vec(&v).unwrap().len();
    assert!(base <= size);
    v["annotations"]["pad"] = Value::String("x".repeat(size - base));
    let out = serde_json::to_vec(&v).unwrap();
    assert_eq!(out.len(), size);
    out
}
