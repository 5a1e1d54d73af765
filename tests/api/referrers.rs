//! Black-box tests of the referrers API: manifests whose `subject` is a
//! digest, filtering by artifact type, `OCI-Subject`, deletion, against
//! the real binary.

use crate::support;

use serde_json::{json, Value};
use support::*;

/// An image manifest with a subject and no artifactType (its config type counts).
fn image_referrer(api: &Api, repo: &str, subject: &str, subject_size: usize) -> Vec<u8> {
    let config = br#"{"example":true}"#;
    let cd = api.push_blob(repo, config);
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EXAMPLE_CONFIG, "digest": cd, "size": config.len()},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"org.example.kind": "image"}
    }))
    .unwrap()
}

#[test]
fn referrers_list_manifests_whose_subject_is_the_digest() {
    let api = Api::start();
    let repo = "lib/ref";
    let (subject, sd) = api.push_oci_image(repo, "v1", 200);

    let sbom = api.artifact(
        repo,
        SBOM,
        Some((&sd, subject.len())),
        json!({"org.example.kind": "sbom"}),
    );
    let sig = api.artifact(
        repo,
        SIG,
        Some((&sd, subject.len())),
        json!({"org.example.kind": "sig"}),
    );
    let img = image_referrer(&api, repo, &sd, subject.len());
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle.v1",
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": subject.len()},
        "annotations": {"org.example.kind": "index"}
    }))
    .unwrap();
    // A referrer of something else, and a plain manifest.
    let (other, od) = api.push_oci_image(repo, "other", 201);
    let unrelated = api.artifact(repo, SBOM, Some((&od, other.len())), Value::Null);

    for (body, mt) in [
        (&sbom, OCI_MANIFEST),
        (&sig, OCI_MANIFEST),
        (&img, OCI_MANIFEST),
        (&index, OCI_INDEX),
    ] {
        let r = api.put_manifest(repo, &sha256(body), mt, body);
        r.expect(201);
        assert_eq!(r.must_header("oci-subject"), sd, "PUT with a subject: {r}");
    }
    let r = api.put_manifest(repo, &sha256(&unrelated), OCI_MANIFEST, &unrelated);
    r.expect(201);
    assert_eq!(r.must_header("oci-subject"), od);

    let (_, found) = referrers(&api, repo, &sd, "");
    assert_eq!(found.len(), 4, "{found:?}");
    assert_descriptor(
        &found,
        &sbom,
        OCI_MANIFEST,
        Some(SBOM),
        json!({"org.example.kind": "sbom"}),
    );
    assert_descriptor(
        &found,
        &sig,
        OCI_MANIFEST,
        Some(SIG),
        json!({"org.example.kind": "sig"}),
    );
    assert_descriptor(
        &found,
        &img,
        OCI_MANIFEST,
        Some(EXAMPLE_CONFIG),
        json!({"org.example.kind": "image"}),
    );
    assert_descriptor(
        &found,
        &index,
        OCI_INDEX,
        Some("application/vnd.example.bundle.v1"),
        json!({"org.example.kind": "index"}),
    );

    let (_, found) = referrers(&api, repo, &od, "");
    assert_eq!(found.keys().collect::<Vec<_>>(), [&sha256(&unrelated)]);
}

#[test]
fn referrers_filter_by_artifact_type() {
    let api = Api::start();
    let repo = "lib/filter";
    let (subject, sd) = api.push_oci_image(repo, "v1", 210);
    let sbom = api.artifact(repo, SBOM, Some((&sd, subject.len())), json!({"k": "sbom"}));
    let sig = api.artifact(repo, SIG, Some((&sd, subject.len())), json!({"k": "sig"}));
    let img = image_referrer(&api, repo, &sd, subject.len());
    for body in [&sbom, &sig, &img] {
        api.push_manifest(repo, &sha256(body), OCI_MANIFEST, body);
    }

    let (r, found) = referrers(&api, repo, &sd, &format!("?artifactType={SBOM}"));
    assert_eq!(
        r.header("oci-filters-applied").as_deref(),
        Some("artifactType"),
        "{r}"
    );
    assert_eq!(found.keys().collect::<Vec<_>>(), [&sha256(&sbom)]);

    // A '+' in the type must be percent-encoded in the query.
    let (r, found) = referrers(
        &api,
        repo,
        &sd,
        &format!(
            "?artifactType={}",
            EXAMPLE_CONFIG.replace('+', "%2B").replace('/', "%2F")
        ),
    );
    assert_eq!(
        r.header("oci-filters-applied").as_deref(),
        Some("artifactType"),
        "{r}"
    );
    assert_eq!(found.keys().collect::<Vec<_>>(), [&sha256(&img)]);

    let (r, found) = referrers(
        &api,
        repo,
        &sd,
        "?artifactType=application/vnd.example.none",
    );
    assert_eq!(
        r.header("oci-filters-applied").as_deref(),
        Some("artifactType"),
        "{r}"
    );
    assert!(found.is_empty(), "{found:?}");

    let (_, found) = referrers(&api, repo, &sd, "");
    assert_eq!(found.len(), 3);

    // An empty filter filters nothing.
    let (r, found) = referrers(&api, repo, &sd, "?artifactType=");
    assert_eq!(r.header("oci-filters-applied"), None, "{r}");
    assert_eq!(found.len(), 3);
}

#[test]
fn referrers_treat_an_empty_artifact_type_as_none() {
    // Image spec: an empty artifactType is absent; the referrers list then
    // reports an image's config media type and nothing for an index.
    let api = Api::start();
    let repo = "lib/emptytype";
    let (subject, sd) = api.push_oci_image(repo, "v1", 230);
    let mut img: Value =
        serde_json::from_slice(&image_referrer(&api, repo, &sd, subject.len())).unwrap();
    img["artifactType"] = json!("");
    let img = serde_json::to_vec(&img).unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "",
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": subject.len()}
    }))
    .unwrap();
    api.push_manifest(repo, &sha256(&img), OCI_MANIFEST, &img);
    api.push_manifest(repo, &sha256(&index), OCI_INDEX, &index);

    let (_, found) = referrers(&api, repo, &sd, "");
    assert_descriptor(
        &found,
        &img,
        OCI_MANIFEST,
        Some(EXAMPLE_CONFIG),
        json!({"org.example.kind": "image"}),
    );
    assert_descriptor(&found, &index, OCI_INDEX, None, Value::Null);
    let q = format!("?artifactType={}", EXAMPLE_CONFIG.replace('+', "%2B"));
    let (_, found) = referrers(&api, repo, &sd, &q);
    assert_eq!(found.keys().collect::<Vec<_>>(), [&sha256(&img)]);
}

#[test]
fn referrers_of_a_digest_without_referrers_is_an_empty_index() {
    let api = Api::start();
    let (_, sd) = api.push_oci_image("lib/none", "v1", 220);
    let (r, found) = referrers(&api, "lib/none", &sd, "");
    assert!(found.is_empty(), "{r}");
    let (_, found) = referrers(&api, "lib/none", &sha256(b"not even a manifest"), "");
    assert!(found.is_empty());
}

#[test]
fn referrers_with_malformed_digest_is_400() {
    let api = Api::start();
    api.push_oci_image("lib/bad", "v1", 230);
    for bad in [
        "sha256:abc",
        "latest",
        "sha256:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    ] {
        let r = api.get(&format!("/v2/lib/bad/referrers/{bad}"));
        r.expect(400).expect_api_version();
        assert!(
            !r.error_codes().is_empty(),
            "400 without an error body: {r}"
        );
    }
}

#[test]
fn subject_need_not_exist_and_plain_manifests_have_no_oci_subject() {
    let api = Api::start();
    let repo = "lib/orphan";
    let ghost = sha256(b"a manifest that will be pushed later");
    let a = api.artifact(repo, SIG, Some((&ghost, 1234)), json!({"k": "v"}));
    let r = api.put_manifest(repo, &sha256(&a), OCI_MANIFEST, &a);
    r.expect(201);
    assert_eq!(r.must_header("oci-subject"), ghost);
    let (_, found) = referrers(&api, repo, &ghost, "");
    assert_descriptor(&found, &a, OCI_MANIFEST, Some(SIG), json!({"k": "v"}));

    let plain = api.oci_image(repo, 240);
    let r = api.put_manifest(repo, "plain", OCI_MANIFEST, &plain);
    r.expect(201);
    assert!(
        r.header("oci-subject").is_none(),
        "OCI-Subject on a manifest without subject: {r}"
    );
}

#[test]
fn referrers_forget_deleted_manifests_and_stay_in_their_repository() {
    let api = Api::start();
    let (subject, sd) = api.push_oci_image("lib/scoped", "v1", 250);
    let a = api.artifact(
        "lib/scoped",
        SBOM,
        Some((&sd, subject.len())),
        json!({"n": "a"}),
    );
    let b = api.artifact(
        "lib/scoped",
        SIG,
        Some((&sd, subject.len())),
        json!({"n": "b"}),
    );
    let da = api.push_manifest("lib/scoped", &sha256(&a), OCI_MANIFEST, &a);
    api.push_manifest("lib/scoped", &sha256(&b), OCI_MANIFEST, &b);
    // Another repository with the same subject bytes but no referrers.
    assert_eq!(api.oci_image("lib/elsewhere", 250), subject);
    api.push_manifest("lib/elsewhere", "v1", OCI_MANIFEST, &subject);
    let (_, found) = referrers(&api, "lib/elsewhere", &sd, "");
    assert!(
        found.is_empty(),
        "referrers leaked across repositories: {found:?}"
    );

    api.delete(&format!("/v2/lib/scoped/manifests/{da}"))
        .expect(202);
    let (_, found) = referrers(&api, "lib/scoped", &sd, "");
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        [&sha256(&b)],
        "deleted referrer still listed"
    );
}

#[test]
fn referrer_index_without_artifact_type_has_none_in_its_descriptor() {
    // Spec: "If the referenced index has no artifactType, the descriptor's
    // artifactType MUST be omitted."
    let api = Api::start();
    let (subject, sd) = api.push_oci_image("lib/idxref", "v1", 260);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": subject.len()},
        "annotations": {"k": "v"}
    }))
    .unwrap();
    let r = api.put_manifest("lib/idxref", &sha256(&index), OCI_INDEX, &index);
    r.expect(201);
    assert_eq!(r.must_header("oci-subject"), sd);
    let (_, found) = referrers(&api, "lib/idxref", &sd, "");
    assert_descriptor(&found, &index, OCI_INDEX, None, json!({"k": "v"}));
}
