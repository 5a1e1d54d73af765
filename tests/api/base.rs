//! Black-box tests of the base endpoint `/v2/` and of what every response
//! carries (the API version header, JSON error bodies, 405 for methods an
//! endpoint does not take), against the real binary.

use crate::support;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;
use support::*;

#[test]
fn base_endpoint_answers_200_empty_object() {
    let api = Api::start();
    let r = api.get("/v2/");
    r.expect(200).expect_api_version();
    assert_eq!(r.json(), json!({}));
    api.get("/v2").expect_api_version();
}

#[test]
fn api_version_header_is_on_every_kind_of_response() {
    let api = Api::start();
    let data = noise(100, 1);
    let d = sha256(&data);
    let mut seen = BTreeSet::new();
    let mut check = |r: Resp| {
        r.expect_api_version();
        seen.insert(r.status);
    };
    let loc = api.start_upload("lib/hdr");
    let r = api.patch(&loc, &data[..10], Some((0, 9)));
    let loc = r.must_header("location");
    check(r); // 202
    check(api.get(&loc)); // 204
    check(api.patch(&loc, &data[50..60], Some((50, 59)))); // 416
    check(api.close_upload(&loc, &sha256(b"wrong"), &data[10..])); // 400
    let loc = api.start_upload("lib/hdr");
    check(api.close_upload(&loc, &d, &data)); // 201
    check(api.get(&format!("/v2/lib/hdr/blobs/{d}"))); // 200
    check(
        api.send(
            api.req(Method::GET, &format!("/v2/lib/hdr/blobs/{d}"))
                .header("Range", "bytes=0-1"),
        ),
    ); // 206
    check(api.get(&format!("/v2/lib/hdr/blobs/{}", sha256(b"x")))); // 404
    check(api.get("/v2/Bad/tags/list")); // 400
    check(api.head(&format!("/v2/lib/hdr/blobs/{}", sha256(b"x")))); // 404 HEAD
    check(api.get("/v2/lib/hdr/no-such-endpoint")); // 404 unrouted
    for s in [200, 201, 202, 204, 206, 400, 404, 416] {
        assert!(seen.contains(&s), "no {s} response seen: {seen:?}");
    }
    let off = Api::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")]);
    let d = off.push_blob("lib/hdr", b"x");
    off.delete(&format!("/v2/lib/hdr/blobs/{d}"))
        .expect(405)
        .expect_api_version();
}

#[test]
fn error_bodies_are_json() {
    let api = Api::start();
    let r = api.get("/v2/lib/nothing/tags/list");
    r.expect_error(404, "NAME_UNKNOWN");
    let ct = r.must_header("content-type");
    assert!(
        ct.starts_with("application/json"),
        "error Content-Type {ct:?}"
    );
}

#[test]
fn unsupported_methods_are_405() {
    let api = Api::start();
    let (_, d) = api.push_oci_image("lib/methods", "v1", 270);
    for (method, path) in [
        (Method::POST, "/v2/lib/methods/manifests/v1".to_string()),
        (Method::PATCH, format!("/v2/lib/methods/blobs/{d}")),
        (Method::PUT, format!("/v2/lib/methods/blobs/{d}")),
        (Method::DELETE, "/v2/lib/methods/tags/list".to_string()),
        (Method::PUT, "/v2/_catalog".to_string()),
    ] {
        let r = api.send(api.req(method.clone(), &path));
        r.expect(405).expect_api_version();
    }
}

#[test]
fn head_on_the_base_endpoint_is_200() {
    let api = Api::start();
    let r = api.head("/v2/");
    r.expect(200).expect_api_version();
    assert!(r.body.is_empty());
}
