//! Black-box tests of the manifests a PUT refuses (end-7): references to
//! blobs or child manifests the repository lacks, malformed JSON, sizes
//! over the limit; and foreign layers it need not have, against the real
//! binary.

use crate::support;

use serde_json::{json, Value};
use support::served::*;
use support::*;

#[test]
fn index_with_a_missing_child_is_400_manifest_blob_unknown() {
    let api = Api::start();
    let a = api.oci_image("lib/multi", 12);
    let da = api.push_manifest("lib/multi", &sha256(&a), OCI_MANIFEST, &a);
    let missing = sha256(b"a manifest nobody pushed");
    for kind in [OCI_INDEX, DOCKER_LIST] {
        let child = if kind == OCI_INDEX {
            OCI_MANIFEST
        } else {
            DOCKER_MANIFEST
        };
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": kind,
            "manifests": [
                {"mediaType": child, "digest": da, "size": a.len(),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": child, "digest": missing, "size": 100,
                 "platform": {"architecture": "arm64", "os": "linux"}}
            ]
        }))
        .unwrap();
        api.put_manifest("lib/multi", "broken", kind, &index)
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
        api.get_manifest("lib/multi", "broken")
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
}

#[test]
fn manifest_referencing_missing_blobs_is_400_manifest_blob_unknown() {
    let api = Api::start();
    let good = api.oci_image("lib/missing", 40);
    let v: Value = serde_json::from_slice(&good).unwrap();
    let nowhere = sha256(b"never uploaded");

    let mut no_config = v.clone();
    no_config["config"]["digest"] = json!(nowhere);
    let mut no_layer = v.clone();
    no_layer["layers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mediaType": OCI_LAYER_GZIP, "digest": nowhere, "size": 14}));
    for bad in [no_config, no_layer] {
        api.put_manifest(
            "lib/missing",
            "bad",
            OCI_MANIFEST,
            &serde_json::to_vec(&bad).unwrap(),
        )
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    }
    // A blob that only another repository holds does not count.
    let theirs = api.push_blob("other/repo", b"their layer");
    let mut foreign = v.clone();
    foreign["layers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mediaType": OCI_LAYER_GZIP, "digest": theirs, "size": 11}));
    api.put_manifest(
        "lib/missing",
        "bad",
        OCI_MANIFEST,
        &serde_json::to_vec(&foreign).unwrap(),
    )
    .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Docker schema 2 too.
    let d = api.docker_image("lib/missing", 41);
    let mut dv: Value = serde_json::from_slice(&d).unwrap();
    dv["config"]["digest"] = json!(nowhere);
    api.put_manifest(
        "lib/missing",
        "bad",
        DOCKER_MANIFEST,
        &serde_json::to_vec(&dv).unwrap(),
    )
    .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    api.get_manifest("lib/missing", "bad")
        .expect_error(404, "MANIFEST_UNKNOWN");
    // And the valid one is still accepted.
    api.push_manifest("lib/missing", "good", OCI_MANIFEST, &good);
}

#[test]
fn malformed_manifest_is_400_manifest_invalid() {
    let api = Api::start();
    let good = api.oci_image("lib/malformed", 50);
    let v: Value = serde_json::from_slice(&good).unwrap();
    let mut v1 = v.clone();
    v1["schemaVersion"] = json!(1);
    let mut config_string = v.clone();
    config_string["config"] = json!("nope");
    let mut layers_object = v.clone();
    layers_object["layers"] = json!({"not": "an array"});
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", good[..good.len() / 2].to_vec()),
        ("not JSON", b"this is not json".to_vec()),
        ("empty body", vec![]),
        ("a JSON array", b"[1,2,3]".to_vec()),
        ("schemaVersion 1", serde_json::to_vec(&v1).unwrap()),
        (
            "config is a string",
            serde_json::to_vec(&config_string).unwrap(),
        ),
        (
            "layers is an object",
            serde_json::to_vec(&layers_object).unwrap(),
        ),
    ];
    for (what, body) in cases {
        let r = api.put_manifest("lib/malformed", "bad", OCI_MANIFEST, &body);
        assert_eq!(r.status, 400, "{what}: {r}");
        r.expect_error(400, "MANIFEST_INVALID");
    }
    let r = api.put_manifest(
        "lib/malformed",
        "bad",
        OCI_INDEX,
        b"{\"manifests\": 7, \"schemaVersion\": 2}",
    );
    r.expect_error(400, "MANIFEST_INVALID");
    api.get_manifest("lib/malformed", "bad")
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[test]
fn manifest_of_4_mib_is_accepted_and_bigger_is_413() {
    let api = Api::start();
    let v: Value = serde_json::from_slice(&api.oci_image("lib/size", 60)).unwrap();
    let limit = 4 * 1024 * 1024;

    let exact = padded_to(v.clone(), limit);
    let d = api.push_manifest("lib/size", "max", OCI_MANIFEST, &exact);
    let g = api.get_manifest("lib/size", "max");
    g.expect(200);
    assert_eq!(g.body.len(), limit);
    assert_eq!(sha256(&g.body), d);

    let over = padded_to(v, limit + 1);
    let r = api.put_manifest("lib/size", "over", OCI_MANIFEST, &over);
    r.expect(413).expect_api_version();
    api.get_manifest("lib/size", "over")
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[test]
fn a_layer_digest_is_not_a_manifest() {
    let api = Api::start();
    let m = api.oci_image("lib/notman", 160);
    api.push_manifest("lib/notman", "v1", OCI_MANIFEST, &m);
    let v: Value = serde_json::from_slice(&m).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap().to_string();
    api.get_manifest("lib/notman", &layer)
        .expect_error(404, "MANIFEST_UNKNOWN");
    api.head_manifest("lib/notman", &layer).expect(404);
    // Nor can an index name it as a child manifest.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": layer, "size": 10}]
    }))
    .unwrap();
    api.put_manifest("lib/notman", "idx", OCI_INDEX, &index)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[test]
fn oversized_manifest_sent_chunked_is_413() {
    // No Content-Length: the limit must hold while reading, not only from the header.
    let api = Api::start();
    let v: Value = serde_json::from_slice(&api.oci_image("lib/bigte", 170)).unwrap();
    let over = padded_to(v.clone(), 5 * 1024 * 1024);
    for attempt in 0..3 {
        let r = raw_chunked(
            &api.reg,
            "PUT",
            "/v2/lib/bigte/manifests/over",
            &[("Content-Type", OCI_MANIFEST)],
            &over,
        )
        .unwrap_or_else(|e| panic!("attempt {attempt}: the client never sees the answer: {e}"));
        assert_eq!(r.status, 413, "attempt {attempt}: {r:?}");
    }
    api.get_manifest("lib/bigte", "over")
        .expect_error(404, "MANIFEST_UNKNOWN");
    // A small one sent chunked is fine.
    let small = padded_to(v, 10_000);
    api.send(
        api.req(reqwest::Method::PUT, "/v2/lib/bigte/manifests/small")
            .header("Content-Type", OCI_MANIFEST)
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(
                small.clone(),
            ))),
    )
    .expect(201);
    assert_served(&api, "lib/bigte", "small", OCI_MANIFEST, &small);
}

#[test]
fn a_deleted_blob_no_longer_satisfies_a_manifest() {
    let api = Api::start();
    let m = api.oci_image("lib/gone", 180);
    let v: Value = serde_json::from_slice(&m).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap();
    api.delete(&format!("/v2/lib/gone/blobs/{layer}"))
        .expect(202);
    api.put_manifest("lib/gone", "v1", OCI_MANIFEST, &m)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[test]
fn a_child_manifest_from_another_repository_does_not_count() {
    let api = Api::start();
    let (theirs, td) = api.push_oci_image("other/repo", "v1", 190);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": td, "size": theirs.len()}]
    }))
    .unwrap();
    api.push_blob("lib/mine", b"make the repository exist");
    api.put_manifest("lib/mine", "idx", OCI_INDEX, &index)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[test]
fn foreign_layers_with_urls_need_not_be_in_the_registry() {
    // Windows base layers: registry:2 accepts them without the blob, and
    // docker pushes such images; an ordinary layer must still be there.
    let api = Api::start();
    let config = br#"{"os":"windows"}"#;
    let cd = api.push_blob("lib/win", config);
    let missing = sha256(b"a foreign layer");
    let manifest = |layer: Value| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": cd, "size": config.len()},
            "layers": [layer]
        }))
        .unwrap()
    };
    let foreign = manifest(json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": missing, "size": 15,
        "urls": ["https://example.invalid/layer"]
    }));
    api.push_manifest("lib/win", "ltsc", DOCKER_MANIFEST, &foreign);
    assert_eq!(api.get_manifest("lib/win", "ltsc").body, foreign);
    let no_urls = manifest(json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": missing, "size": 15
    }));
    api.put_manifest("lib/win", "bad", DOCKER_MANIFEST, &no_urls)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let ordinary = manifest(json!({
        "mediaType": DOCKER_LAYER_GZIP, "digest": missing, "size": 15,
        "urls": ["https://example.invalid/layer"]
    }));
    api.put_manifest("lib/win", "bad", DOCKER_MANIFEST, &ordinary)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}
