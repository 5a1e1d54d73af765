//! Black-box tests of the manifest endpoints (end-3, end-7, end-9): every
//! manifest kind, byte-exact storage, validation errors, size limit, delete.

mod support;

use serde_json::{json, Value};
use support::*;

/// GET and HEAD by `reference` answer `body` with `media_type`.
fn assert_served(api: &Api, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
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
fn put_and_check(api: &Api, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
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

fn tags(api: &Api, repo: &str) -> Vec<String> {
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
fn padded_to(mut v: Value, size: usize) -> Vec<u8> {
    v["annotations"] = json!({"pad": ""});
    let base = serde_json::to_vec(&v).unwrap().len();
    assert!(base <= size);
    v["annotations"]["pad"] = Value::String("x".repeat(size - base));
    let out = serde_json::to_vec(&v).unwrap();
    assert_eq!(out.len(), size);
    out
}

#[test]
fn oci_image_manifest_by_tag_and_by_digest() {
    let api = Api::start();
    let m = api.oci_image("lib/oci", 1);
    let d = put_and_check(&api, "lib/oci", "v1", OCI_MANIFEST, &m);
    assert_served(&api, "lib/oci", "v1", OCI_MANIFEST, &m);
    assert_served(&api, "lib/oci", &d, OCI_MANIFEST, &m);
    assert_eq!(tags(&api, "lib/oci"), ["v1"]);
}

#[test]
fn manifest_is_stored_byte_exact() {
    let api = Api::start();
    let pretty = api.oci_image("lib/exact", 2);
    let v: Value = serde_json::from_slice(&pretty).unwrap();
    // Odd whitespace, key order and a trailing newline: a re-serialising
    // registry would change the digest.
    let odd = format!(
        "{{\n\t\"layers\" :[ {} ],\r\n  \"schemaVersion\":   2,\"config\":{}  ,\n\"mediaType\":\"{}\"   }}\n\n",
        serde_json::to_string(&v["layers"][0]).unwrap(),
        serde_json::to_string_pretty(&v["config"]).unwrap(),
        OCI_MANIFEST
    );
    let odd = odd.into_bytes();
    let d = put_and_check(&api, "lib/exact", "odd", OCI_MANIFEST, &odd);
    assert_eq!(d, sha256(&odd));
    assert_served(&api, "lib/exact", "odd", OCI_MANIFEST, &odd);
    assert_served(&api, "lib/exact", &d, OCI_MANIFEST, &odd);
}

#[test]
fn content_type_is_returned_as_pushed_even_without_media_type_field() {
    let api = Api::start();
    let m = api.oci_image("lib/ct", 3);
    let mut v: Value = serde_json::from_slice(&m).unwrap();
    v.as_object_mut().unwrap().remove("mediaType");
    let body = serde_json::to_vec(&v).unwrap();
    put_and_check(&api, "lib/ct", "nomt", OCI_MANIFEST, &body);
    assert_served(&api, "lib/ct", "nomt", OCI_MANIFEST, &body);
}

#[test]
fn oci_index_with_child_manifests() {
    let api = Api::start();
    let a = api.oci_image("lib/multi", 10);
    let b = api.oci_image("lib/multi", 11);
    let da = put_and_check(&api, "lib/multi", &sha256(&a), OCI_MANIFEST, &a);
    let db = put_and_check(&api, "lib/multi", &sha256(&b), OCI_MANIFEST, &b);
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": da, "size": a.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": db, "size": b.len(),
             "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let di = put_and_check(&api, "lib/multi", "latest", OCI_INDEX, &index);
    assert_served(&api, "lib/multi", "latest", OCI_INDEX, &index);
    assert_served(&api, "lib/multi", &di, OCI_INDEX, &index);
    assert_served(&api, "lib/multi", &da, OCI_MANIFEST, &a);
    // Children pushed by digest are not tags.
    assert_eq!(tags(&api, "lib/multi"), ["latest"]);
}

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
fn docker_schema2_and_manifest_list() {
    let api = Api::start();
    let a = api.docker_image("lib/docker", 20);
    let b = api.docker_image("lib/docker", 21);
    let da = put_and_check(&api, "lib/docker", "amd64", DOCKER_MANIFEST, &a);
    let db = put_and_check(&api, "lib/docker", &sha256(&b), DOCKER_MANIFEST, &b);
    assert_served(&api, "lib/docker", "amd64", DOCKER_MANIFEST, &a);
    assert_served(&api, "lib/docker", &db, DOCKER_MANIFEST, &b);

    let list = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": da, "size": a.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": db, "size": b.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
        ]
    }))
    .unwrap();
    let dl = put_and_check(&api, "lib/docker", "latest", DOCKER_LIST, &list);
    assert_served(&api, "lib/docker", "latest", DOCKER_LIST, &list);
    assert_served(&api, "lib/docker", &dl, DOCKER_LIST, &list);
    assert_eq!(tags(&api, "lib/docker"), ["amd64", "latest"]);
}

#[test]
fn oci_artifact_with_empty_config() {
    let api = Api::start();
    let m = api.artifact(
        "lib/artifact",
        "application/vnd.example.sbom.v1",
        None,
        json!({"org.example": "yes"}),
    );
    // The `{}` blob is served like any other.
    let e = api.get(&format!("/v2/lib/artifact/blobs/{EMPTY_DIGEST}"));
    assert_eq!(e.expect(200).body, b"{}");
    let d = put_and_check(&api, "lib/artifact", "sbom", OCI_MANIFEST, &m);
    assert_served(&api, "lib/artifact", "sbom", OCI_MANIFEST, &m);
    assert_served(&api, "lib/artifact", &d, OCI_MANIFEST, &m);
}

#[test]
fn put_by_digest_checks_the_digest() {
    let api = Api::start();
    let m = api.oci_image("lib/bydigest", 30);
    let d = sha256(&m);
    put_and_check(&api, "lib/bydigest", &d, OCI_MANIFEST, &m);
    assert_served(&api, "lib/bydigest", &d, OCI_MANIFEST, &m);

    let other = api.oci_image("lib/bydigest", 31);
    api.put_manifest("lib/bydigest", &d, OCI_MANIFEST, &other)
        .expect_error(400, "DIGEST_INVALID");
    // The original is intact under its digest; nothing was stored under the lie.
    assert_served(&api, "lib/bydigest", &d, OCI_MANIFEST, &m);
    let lie = sha256(b"not the manifest");
    api.put_manifest("lib/bydigest", &lie, OCI_MANIFEST, &other)
        .expect_error(400, "DIGEST_INVALID");
    api.get_manifest("lib/bydigest", &lie)
        .expect_error(404, "MANIFEST_UNKNOWN");

    // sha512 references are checked with sha512.
    let d512 = sha512(&other);
    let r = api.put_manifest("lib/bydigest", &d512, OCI_MANIFEST, &other);
    r.expect(201);
    let g = api.get_manifest("lib/bydigest", &d512);
    assert_eq!(g.expect(200).body, other);
    api.put_manifest("lib/bydigest", &sha512(b"nope"), OCI_MANIFEST, &other)
        .expect_error(400, "DIGEST_INVALID");
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
fn delete_by_digest_removes_the_manifest_and_all_its_tags() {
    let api = Api::start();
    let m = api.oci_image("lib/del", 70);
    let d = api.push_manifest("lib/del", "t1", OCI_MANIFEST, &m);
    api.push_manifest("lib/del", "t2", OCI_MANIFEST, &m);
    let (keep, _) = api.push_oci_image("lib/del", "keep", 71);
    assert_eq!(tags(&api, "lib/del"), ["keep", "t1", "t2"]);

    api.delete(&format!("/v2/lib/del/manifests/{d}"))
        .expect(202)
        .expect_api_version();
    for reference in ["t1", "t2", d.as_str()] {
        api.get_manifest("lib/del", reference)
            .expect_error(404, "MANIFEST_UNKNOWN");
        api.head_manifest("lib/del", reference).expect(404);
    }
    assert_eq!(tags(&api, "lib/del"), ["keep"]);
    assert_eq!(api.get_manifest("lib/del", "keep").expect(200).body, keep);
    api.delete(&format!("/v2/lib/del/manifests/{d}"))
        .expect_error(404, "MANIFEST_UNKNOWN");

    // It can be pushed again afterwards.
    api.push_manifest("lib/del", "t1", OCI_MANIFEST, &m);
    assert_served(&api, "lib/del", "t1", OCI_MANIFEST, &m);
}

#[test]
fn delete_by_tag_removes_only_that_tag() {
    let api = Api::start();
    let m = api.oci_image("lib/untag", 80);
    let d = api.push_manifest("lib/untag", "t1", OCI_MANIFEST, &m);
    api.push_manifest("lib/untag", "t2", OCI_MANIFEST, &m);

    api.delete("/v2/lib/untag/manifests/t1")
        .expect(202)
        .expect_api_version();
    api.get_manifest("lib/untag", "t1")
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_served(&api, "lib/untag", "t2", OCI_MANIFEST, &m);
    assert_served(&api, "lib/untag", &d, OCI_MANIFEST, &m);
    assert_eq!(tags(&api, "lib/untag"), ["t2"]);
    api.delete("/v2/lib/untag/manifests/t1")
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[test]
fn unknown_manifest_is_404_manifest_unknown() {
    let api = Api::start();
    api.push_oci_image("lib/known", "v1", 90);
    let nowhere = sha256(b"no such manifest");
    api.get_manifest("lib/known", "nope")
        .expect_error(404, "MANIFEST_UNKNOWN");
    api.get_manifest("lib/known", &nowhere)
        .expect_error(404, "MANIFEST_UNKNOWN");
    let h = api.head_manifest("lib/known", "nope");
    h.expect(404).expect_api_version();
    assert!(h.body.is_empty());
    api.delete("/v2/lib/known/manifests/nope")
        .expect_error(404, "MANIFEST_UNKNOWN");
    api.delete(&format!("/v2/lib/known/manifests/{nowhere}"))
        .expect_error(404, "MANIFEST_UNKNOWN");

    // An unknown repository is a 404 too (registry:2 answers with either code).
    let r = api.get_manifest("lib/unknown-repo", "latest");
    r.expect(404);
    let codes = r.error_codes();
    assert!(
        codes
            .iter()
            .any(|c| c == "NAME_UNKNOWN" || c == "MANIFEST_UNKNOWN"),
        "unknown repo: {r}"
    );
}

#[test]
fn manifest_is_only_visible_in_its_repository() {
    let api = Api::start();
    let (_, d) = api.push_oci_image("team/a", "v1", 100);
    api.push_oci_image("team/b", "v1", 101);
    api.get_manifest("team/b", &d)
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[test]
fn manifest_delete_when_disabled_is_405_unsupported() {
    let api = Api::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")]);
    let (m, d) = api.push_oci_image("lib/nodel", "v1", 110);
    api.delete(&format!("/v2/lib/nodel/manifests/{d}"))
        .expect_error(405, "UNSUPPORTED");
    api.delete("/v2/lib/nodel/manifests/v1")
        .expect_error(405, "UNSUPPORTED");
    assert_served(&api, "lib/nodel", "v1", OCI_MANIFEST, &m);
    assert_eq!(tags(&api, "lib/nodel"), ["v1"]);
}

#[test]
fn pushing_to_an_existing_tag_moves_it() {
    let api = Api::start();
    let (a, da) = api.push_oci_image("lib/move", "latest", 120);
    let (b, _) = api.push_oci_image("lib/move", "latest", 121);
    assert_served(&api, "lib/move", "latest", OCI_MANIFEST, &b);
    // The old manifest is still there by digest.
    assert_served(&api, "lib/move", &da, OCI_MANIFEST, &a);
    assert_eq!(tags(&api, "lib/move"), ["latest"]);
    // Same bytes again: idempotent.
    api.push_manifest("lib/move", "latest", OCI_MANIFEST, &b);
    assert_served(&api, "lib/move", "latest", OCI_MANIFEST, &b);
}

#[test]
fn tag_grammar_is_enforced() {
    let api = Api::start();
    let m = api.oci_image("lib/tags", 130);
    let longest = "a".repeat(128);
    for ok in [longest.as_str(), "v1.0_rc-1.A", "_underscore", "0", "UPPER"] {
        api.push_manifest("lib/tags", ok, OCI_MANIFEST, &m);
        assert_served(&api, "lib/tags", ok, OCI_MANIFEST, &m);
    }
    let too_long = "a".repeat(129);
    for bad in [too_long.as_str(), ".hidden", "-dash", "a~b", "a,b"] {
        api.put_manifest("lib/tags", bad, OCI_MANIFEST, &m)
            .expect_error(400, "TAG_INVALID");
        // Nothing can be found under a name that cannot be a tag: 404, as
        // the spec has it for every manifest GET or HEAD that finds none
        // (the conformance suite asks for `.INVALID_MANIFEST_NAME`).
        api.get_manifest("lib/tags", bad)
            .expect_error(404, "MANIFEST_UNKNOWN");
        api.head_manifest("lib/tags", bad).expect(404);
    }
    // A reference with a colon is a digest, and this one is malformed.
    let r = api.put_manifest("lib/tags", "sha256:abc", OCI_MANIFEST, &m);
    r.expect(400);
    assert!(
        r.error_codes()
            .iter()
            .any(|c| c == "DIGEST_INVALID" || c == "TAG_INVALID"),
        "malformed digest reference: {r}"
    );
    let listed = tags(&api, "lib/tags");
    assert_eq!(listed.len(), 5, "{listed:?}");
}

#[test]
fn manifests_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("data");
    let env = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
    let mut api = Api::on(Registry::start_in(&root, &env, &[]));
    let (m, d) = api.push_oci_image("lib/persist", "v1", 140);
    api.reg.kill();
    drop(api);
    let api = Api::on(Registry::start_in(&root, &env, &[]));
    assert_served(&api, "lib/persist", "v1", OCI_MANIFEST, &m);
    assert_served(&api, "lib/persist", &d, OCI_MANIFEST, &m);
    assert_eq!(tags(&api, "lib/persist"), ["v1"]);
}

#[test]
fn put_without_content_type_uses_the_media_type_field() {
    let api = Api::start();
    let m = api.oci_image("lib/noct", 150);
    let r = api.send(
        api.req(reqwest::Method::PUT, "/v2/lib/noct/manifests/v1")
            .body(m.clone()),
    );
    r.expect(201);
    assert_served(&api, "lib/noct", "v1", OCI_MANIFEST, &m);
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
fn content_type_parameters_are_tolerated() {
    // Spec: registries SHOULD ignore parameters on the Content-Type.
    let api = Api::start();
    let m = api.oci_image("lib/params", 195);
    api.put_manifest(
        "lib/params",
        "v1",
        &format!("{OCI_MANIFEST}; charset=utf-8"),
        &m,
    )
    .expect(201);
    let g = api.get_manifest("lib/params", "v1");
    g.expect(200);
    assert_eq!(g.body, m);
    assert!(
        g.must_header("content-type").starts_with(OCI_MANIFEST),
        "{g}"
    );
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
