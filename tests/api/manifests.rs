//! Black-box tests of the manifest endpoints (end-3, end-7, end-9): every
//! kind of manifest pushed and served byte-exact by tag and by digest,
//! content types, tags moving, DELETE, visibility and restarts, against
//! the real binary.

use crate::support;

use serde_json::{json, Value};
use support::served::*;
use support::*;

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
