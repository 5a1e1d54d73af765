//! Black-box tests of the base endpoint, tags/list and _catalog pagination,
//! referrers, name validation and path traversal, concurrency, and
//! multi-component names, against the real binary.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Barrier;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

fn string_list(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {v}"))
        .iter()
        .map(|t| t.as_str().expect("string").to_string())
        .collect()
}

/// The path part of a `Link` target must be `want_path` (relative or absolute).
fn assert_link_path(link_target: &str, want_path: &str) {
    let p = path_of(link_target);
    let path = p.split('?').next().unwrap();
    assert_eq!(path, want_path, "Link target {link_target:?}");
}

fn param(url: &str, key: &str) -> Option<String> {
    query_params(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------- base

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

// ---------------------------------------------------------------- tags/list

const TAGS: [&str; 7] = ["1.0", "10", "2", "alpha", "beta", "latest", "v1.2_rc-1"];

fn push_tags(api: &Api, repo: &str) {
    let m = api.oci_image(repo, 7);
    // Pushed out of order on purpose.
    for t in ["latest", "beta", "2", "v1.2_rc-1", "alpha", "10", "1.0"] {
        api.push_manifest(repo, t, OCI_MANIFEST, &m);
    }
}

#[test]
fn tags_list_is_lexical_and_complete() {
    let api = Api::start();
    push_tags(&api, "lib/tags");
    let r = api.get("/v2/lib/tags/tags/list");
    r.expect(200).expect_api_version();
    assert!(r.header("link").is_none(), "Link on a complete list: {r}");
    let v = r.json();
    assert_eq!(v["name"], "lib/tags");
    assert_eq!(string_list(&v, "tags"), TAGS);
}

#[test]
fn tags_list_paginates_with_n_last_and_link() {
    let api = Api::start();
    push_tags(&api, "lib/pages");
    let pages = api.pages("/v2/lib/pages/tags/list?n=2");
    let lists: Vec<Vec<String>> = pages.iter().map(|(v, _)| string_list(v, "tags")).collect();
    assert_eq!(
        lists,
        [
            vec!["1.0", "10"],
            vec!["2", "alpha"],
            vec!["beta", "latest"],
            vec!["v1.2_rc-1"]
        ]
    );
    for (i, (v, link)) in pages.iter().enumerate() {
        assert_eq!(v["name"], "lib/pages");
        if i + 1 < pages.len() {
            let target = parse_link_next(link.as_deref().expect("Link on a non-last page"));
            assert_link_path(&target, "/v2/lib/pages/tags/list");
            assert_eq!(param(&target, "n").as_deref(), Some("2"), "{target}");
            assert_eq!(param(&target, "last"), lists[i].last().cloned(), "{target}");
        } else {
            assert!(link.is_none(), "Link on the last page: {link:?}");
        }
    }

    let r = api.get("/v2/lib/pages/tags/list?last=beta");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), ["latest", "v1.2_rc-1"]);
    assert!(r.header("link").is_none(), "{r}");

    let r = api.get("/v2/lib/pages/tags/list?n=3&last=2");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), ["alpha", "beta", "latest"]);
    let target = parse_link_next(&r.must_header("link"));
    assert_eq!(param(&target, "last").as_deref(), Some("latest"));

    // Exactly n remain: this is the last page, nothing more exists.
    let r = api.get("/v2/lib/pages/tags/list?n=7");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), TAGS);
    assert!(
        r.header("link").is_none(),
        "Link although no more tags exist: {r}"
    );
    let r = api.get("/v2/lib/pages/tags/list?n=5&last=10");
    r.expect(200);
    assert_eq!(
        string_list(&r.json(), "tags"),
        ["2", "alpha", "beta", "latest", "v1.2_rc-1"]
    );
    assert!(
        r.header("link").is_none(),
        "Link although no more tags exist: {r}"
    );

    let r = api.get("/v2/lib/pages/tags/list?n=100");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), TAGS);
    assert!(r.header("link").is_none(), "{r}");

    let r = api.get("/v2/lib/pages/tags/list?n=2&last=v1.2_rc-1");
    r.expect(200);
    assert!(string_list(&r.json(), "tags").is_empty());
    assert!(r.header("link").is_none(), "{r}");
}

#[test]
fn tags_list_n_zero_is_empty_without_link() {
    // Spec: "If n is zero, this endpoint MUST return an empty list, and MUST
    // NOT include a Link header."
    let api = Api::start();
    push_tags(&api, "lib/zero");
    let r = api.get("/v2/lib/zero/tags/list?n=0");
    r.expect(200);
    assert!(string_list(&r.json(), "tags").is_empty(), "{r}");
    assert!(r.header("link").is_none(), "{r}");
}

#[test]
fn tags_list_of_unknown_repository_is_404_name_unknown() {
    let api = Api::start();
    api.get("/v2/lib/never/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
    api.get("/v2/lib/never/tags/list?n=2")
        .expect_error(404, "NAME_UNKNOWN");
}

// ---------------------------------------------------------------- catalog

#[test]
fn catalog_is_lexical_and_paginates() {
    let api = Api::start();
    let repos = ["alpha", "beta/one", "beta/two", "gamma", "team/app/web"];
    for (i, r) in ["gamma", "team/app/web", "alpha", "beta/two", "beta/one"]
        .iter()
        .enumerate()
    {
        api.push_oci_image(r, "v1", 100 + i as u64);
    }
    let r = api.get("/v2/_catalog");
    r.expect(200).expect_api_version();
    assert_eq!(string_list(&r.json(), "repositories"), repos);
    assert!(r.header("link").is_none(), "{r}");

    let pages = api.pages("/v2/_catalog?n=2");
    let lists: Vec<Vec<String>> = pages
        .iter()
        .map(|(v, _)| string_list(v, "repositories"))
        .collect();
    assert_eq!(
        lists,
        [
            vec!["alpha", "beta/one"],
            vec!["beta/two", "gamma"],
            vec!["team/app/web"]
        ]
    );
    for (i, (_, link)) in pages.iter().enumerate() {
        if i + 1 < pages.len() {
            let target = parse_link_next(link.as_deref().expect("Link on a non-last page"));
            assert_link_path(&target, "/v2/_catalog");
            assert_eq!(param(&target, "n").as_deref(), Some("2"));
            assert_eq!(param(&target, "last"), lists[i].last().cloned());
        } else {
            assert!(link.is_none(), "Link on the last page: {link:?}");
        }
    }

    let r = api.get("/v2/_catalog?n=5");
    assert_eq!(string_list(&r.expect(200).json(), "repositories"), repos);
    assert!(
        r.header("link").is_none(),
        "Link although no more repositories exist: {r}"
    );

    let r = api.get("/v2/_catalog?n=10&last=beta%2Fone");
    r.expect(200);
    assert_eq!(
        string_list(&r.json(), "repositories"),
        ["beta/two", "gamma", "team/app/web"]
    );
    let r = api.get("/v2/_catalog?last=gamma");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "repositories"), ["team/app/web"]);
}

// ---------------------------------------------------------------- referrers

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIG: &str = "application/vnd.example.signature.v1";
const EXAMPLE_CONFIG: &str = "application/vnd.example.config.v1+json";

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

fn referrers(api: &Api, repo: &str, digest: &str, query: &str) -> (Resp, BTreeMap<String, Value>) {
    let r = api.get(&format!("/v2/{repo}/referrers/{digest}{query}"));
    r.expect(200).expect_api_version();
    let ct = r.must_header("content-type");
    assert!(ct.starts_with(OCI_INDEX), "referrers Content-Type {ct:?}");
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2, "{v}");
    assert_eq!(v["mediaType"], OCI_INDEX, "{v}");
    let list = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("referrers without manifests array: {v}"));
    let by_digest = list
        .iter()
        .map(|d| (d["digest"].as_str().expect("digest").to_string(), d.clone()))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(by_digest.len(), list.len(), "duplicate descriptors: {v}");
    (r, by_digest)
}

fn assert_descriptor(
    found: &BTreeMap<String, Value>,
    body: &[u8],
    media_type: &str,
    artifact_type: Option<&str>,
    annotations: Value,
) {
    let d = sha256(body);
    let desc = found
        .get(&d)
        .unwrap_or_else(|| panic!("{d} not among referrers {found:?}"));
    assert_eq!(desc["mediaType"], media_type, "{desc}");
    assert_eq!(desc["size"], body.len(), "{desc}");
    match artifact_type {
        Some(t) => assert_eq!(desc["artifactType"], t, "{desc}"),
        None => assert!(desc.get("artifactType").is_none(), "{desc}"),
    }
    assert_eq!(desc["annotations"], annotations, "{desc}");
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

// ---------------------------------------------------------------- names

#[test]
fn invalid_repository_names_are_400_name_invalid() {
    let api = Api::start();
    let too_long = format!("{}/{}", "a".repeat(200), "b".repeat(55)); // 256
    let names = [
        "Upper",
        "lib/Upper",
        "lib/-dash",
        "lib/dash-",
        "lib/_under",
        "lib/a..b",
        "lib/.hidden",
        too_long.as_str(),
    ];
    for name in names {
        api.get(&format!("/v2/{name}/tags/list"))
            .expect_error(400, "NAME_INVALID");
        api.get_manifest(name, "latest")
            .expect_error(400, "NAME_INVALID");
        api.send(api.req(Method::POST, &format!("/v2/{name}/blobs/uploads/")))
            .expect_error(400, "NAME_INVALID");
        api.get(&format!("/v2/{name}/blobs/{}", sha256(b"x")))
            .expect_error(400, "NAME_INVALID");
    }
    // Paths an URL library would normalise are sent raw.
    for target in [
        "/v2/lib/../etc/tags/list",
        "/v2/../tags/list",
        "/v2/lib/%2e%2e/etc/tags/list",
        "/v2/lib/%2E%2E/etc/tags/list",
        "/v2/lib//etc/tags/list",
        "/v2//lib/tags/list",
        "/v2/lib/./etc/tags/list",
        "/v2/lib/%41bc/tags/list",
    ] {
        let r = raw(&api.reg, "GET", target, &[], b"");
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(
            r.error_codes().iter().any(|c| c == "NAME_INVALID"),
            "{target}: want NAME_INVALID: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
}

#[test]
fn valid_repository_names_at_the_edges_work() {
    let api = Api::start();
    let longest = format!("{}/{}", "a".repeat(200), "b".repeat(54)); // 255
    assert_eq!(longest.len(), 255);
    for name in [
        longest.as_str(),
        "a",
        "a--b",
        "a__b",
        "a.b_c-d/e0/9z",
        "0/1/2/3/4/5/6/7/8/9",
    ] {
        api.get(&format!("/v2/{name}/tags/list"))
            .expect_error(404, "NAME_UNKNOWN");
        let (m, _) = api.push_oci_image(name, "v1", 300);
        assert_eq!(api.get_manifest(name, "v1").expect(200).body, m, "{name}");
        let r = api.get(&format!("/v2/{name}/tags/list"));
        assert_eq!(r.expect(200).json()["name"], name);
    }
}

/// Every file under `dir` except those under `except`.
fn files_outside(dir: &Path, except: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.starts_with(except) {
            continue;
        }
        out.push(p.clone());
        if p.is_dir() {
            files_outside(&p, except, out);
        }
    }
}

#[test]
fn path_traversal_cannot_read_or_write_outside_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("data");
    let secret_path = tmp.path().join("secret");
    let secret = b"top secret, outside the data dir".to_vec();
    std::fs::write(&secret_path, &secret).unwrap();
    let sd = sha256(&secret);
    let hex = &sd[7..];
    let api = Api::on(Registry::start_in(
        &root,
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
        &[],
    ));
    api.push_oci_image("lib/x", "v1", 400);
    let loc = api.start_upload("lib/x");

    let up = "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..";
    let dots = "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e";
    let reads = [
        format!("/v2/lib/x/blobs/sha256:{up}%2Fsecret"),
        format!("/v2/lib/x/blobs/sha256:..%2F..%2F{hex}"),
        "/v2/lib/x/blobs/..%2F..%2F..%2F..%2Fsecret".to_string(),
        format!("/v2/{dots}/blobs/{sd}"),
        format!("/v2/../../../../../../../blobs/{sd}"),
        format!("/v2/lib/x/manifests/{up}%2Fsecret"),
        "/v2/lib/x/manifests/..".to_string(),
        format!("/v2/{dots}/manifests/v1"),
        format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
        "/v2/lib/x/blobs/uploads/../../../../../../secret".to_string(),
        format!("/v2/{dots}/tags/list"),
        format!("/v2/lib/x/referrers/sha256:{up}%2Fsecret"),
    ];
    for target in &reads {
        for method in ["GET", "HEAD"] {
            let r = raw(&api.reg, method, target, &[], b"");
            assert!(
                (400..500).contains(&r.status),
                "{method} {target}: want a 4xx, got {} {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            assert!(
                !String::from_utf8_lossy(&r.body).contains("top secret"),
                "{method} {target} leaked the secret"
            );
        }
    }

    let manifest = api.oci_image("lib/x", 401);
    let ct = ("Content-Type", OCI_MANIFEST);
    let oct = ("Content-Type", "application/octet-stream");
    type Write<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let writes: Vec<Write> = vec![
        (
            "POST",
            format!("/v2/{dots}/evil/blobs/uploads/"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/{dots}/evil/blobs/uploads/?digest={}", sha256(b"evil")),
            vec![oct],
            b"evil".to_vec(),
        ),
        (
            "PUT",
            format!("/v2/{dots}/evil/manifests/v1"),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            "/v2/../../../../../../evil/manifests/v1".into(),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            format!("/v2/lib/x/manifests/{up}%2Fevil"),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            "/v2/lib/x/manifests/..".into(),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PATCH",
            format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
            vec![oct],
            b"pwned".to_vec(),
        ),
        (
            "PUT",
            format!(
                "/v2/lib/x/blobs/uploads/{up}%2Fsecret?digest={}",
                sha256(b"pwned")
            ),
            vec![oct],
            b"pwned".to_vec(),
        ),
        (
            "DELETE",
            format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            format!("/v2/lib/x/blobs/sha256:{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            format!("/v2/lib/x/manifests/{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/lib/y/blobs/uploads/?mount={sd}&from={dots}"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/lib/y/blobs/uploads/?mount=sha256:{up}%2Fsecret&from=lib/x"),
            vec![],
            vec![],
        ),
    ];
    for (method, target, headers, body) in &writes {
        let r = raw(&api.reg, method, target, headers, body);
        let ok_mount_fallback = *method == "POST" && target.contains("mount=") && r.status == 202;
        assert!(
            (400..500).contains(&r.status) || ok_mount_fallback,
            "{method} {target}: want a 4xx, got {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    // An upload started normally cannot be finished into a traversal digest.
    let r = api.close_upload(&loc, &format!("sha256:{up}%2Fevil"), b"evil");
    assert!((400..500).contains(&r.status), "{r}");

    assert_eq!(
        std::fs::read(&secret_path).unwrap(),
        secret,
        "the secret was modified"
    );
    let mut outside = vec![];
    files_outside(tmp.path(), &root, &mut outside);
    assert_eq!(
        outside,
        [secret_path],
        "files appeared outside the data dir"
    );
    assert!(!tmp.path().parent().unwrap().join("evil").exists());
    // The mount-from-traversal fallback did not mount the secret.
    api.get(&format!("/v2/lib/y/blobs/{sd}")).expect(404);
}

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrent_pushes_of_the_same_blob_all_succeed() {
    let api = Api::start();
    let data = noise(2 * 1024 * 1024 + 3, 500);
    let d = sha256(&data);
    let threads = 6;
    for round in 0..3 {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (api, data, d, barrier) = (&api, &data, &d, &barrier);
                s.spawn(move || {
                    let repo = if t % 3 == 2 {
                        "race/other"
                    } else {
                        "race/blob"
                    };
                    if t % 2 == 0 {
                        let loc = api.start_upload(repo);
                        let r = api.patch(&loc, &data[..1024 * 1024], None);
                        r.expect(202);
                        let loc = r.must_header("location");
                        barrier.wait();
                        let r = api.close_upload(&loc, d, &data[1024 * 1024..]);
                        assert_eq!(r.status, 201, "round {round} thread {t}: {r}");
                    } else {
                        barrier.wait();
                        let r = api.send(
                            api.req(
                                Method::POST,
                                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                            )
                            .header("Content-Type", "application/octet-stream")
                            .body(data.clone()),
                        );
                        assert_eq!(r.status, 201, "round {round} thread {t}: {r}");
                    }
                });
            }
        });
        for repo in ["race/blob", "race/other"] {
            let g = api.get(&format!("/v2/{repo}/blobs/{d}"));
            g.expect(200);
            assert_eq!(g.body.len(), data.len());
            assert_eq!(sha256(&g.body), d, "round {round}: torn blob in {repo}");
        }
        if round < 2 {
            api.delete(&format!("/v2/race/blob/blobs/{d}")).expect(202);
            api.delete(&format!("/v2/race/other/blobs/{d}")).expect(202);
        }
    }
}

#[test]
fn concurrent_pushes_to_the_same_tag_leave_one_consistent_winner() {
    let api = Api::start();
    let threads = 8;
    let manifests: Vec<Vec<u8>> = (0..threads as u64)
        .map(|i| api.oci_image("race/tag", 600 + i))
        .collect();
    let digests: BTreeSet<String> = manifests.iter().map(|m| sha256(m)).collect();
    for round in 0..3 {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for m in &manifests {
                let (api, barrier) = (&api, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let r = api.put_manifest("race/tag", "latest", OCI_MANIFEST, m);
                    assert_eq!(r.status, 201, "round {round}: {r}");
                });
            }
        });
        let g = api.get_manifest("race/tag", "latest");
        g.expect(200);
        let d = g.must_header("docker-content-digest");
        assert!(
            digests.contains(&d),
            "round {round}: tag points to an unknown digest {d}"
        );
        assert_eq!(
            sha256(&g.body),
            d,
            "round {round}: body does not match its digest"
        );
        for _ in 0..3 {
            let again = api.get_manifest("race/tag", "latest");
            assert_eq!(again.expect(200).body, g.body, "round {round}: tag flaps");
            assert_eq!(
                api.head_manifest("race/tag", "latest")
                    .must_header("docker-content-digest"),
                d
            );
        }
        let r = api.get("/v2/race/tag/tags/list");
        assert_eq!(string_list(&r.expect(200).json(), "tags"), ["latest"]);
        for m in &manifests {
            assert_eq!(
                api.get_manifest("race/tag", &sha256(m)).expect(200).body,
                *m
            );
        }
    }
}

// ---------------------------------------------------------------- names with many components

#[test]
fn multi_component_names_work_end_to_end() {
    let api = Api::start();
    let repo = "team/app/web";
    // Chunked blob upload.
    let layer = noise(5000, 700);
    let ld = sha256(&layer);
    let loc = api.start_upload(repo);
    let r = api.patch(&loc, &layer[..2500], Some((0, 2499)));
    r.expect(202);
    api.close_upload(&r.must_header("location"), &ld, &layer[2500..])
        .expect(201);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = api.push_blob(repo, config);
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": ld, "size": layer.len()}]
    }))
    .unwrap();
    let md = api.push_manifest(repo, "v1", OCI_MANIFEST, &m);
    assert_eq!(api.get_manifest(repo, "v1").expect(200).body, m);
    assert_eq!(api.get_manifest(repo, &md).expect(200).body, m);
    assert_eq!(
        api.get(&format!("/v2/{repo}/blobs/{ld}")).expect(200).body,
        layer
    );
    let t = api.get(&format!("/v2/{repo}/tags/list"));
    let v = t.expect(200).json();
    assert_eq!(v["name"], repo);
    assert_eq!(string_list(&v, "tags"), ["v1"]);

    // Mount into a sibling, then push the same manifest there.
    for d in [&ld, &cd] {
        api.send(api.req(
            Method::POST,
            &format!("/v2/team/app/api/blobs/uploads/?mount={d}&from={repo}"),
        ))
        .expect(201);
    }
    api.push_manifest("team/app/api", "v1", OCI_MANIFEST, &m);

    let cat = api.get("/v2/_catalog");
    assert_eq!(
        string_list(&cat.expect(200).json(), "repositories"),
        ["team/app/api", "team/app/web"]
    );

    // Referrers on a deep name.
    let sig = api.artifact(repo, SIG, Some((&md, m.len())), json!({"deep": "yes"}));
    api.push_manifest(repo, &sha256(&sig), OCI_MANIFEST, &sig);
    let (_, found) = referrers(&api, repo, &md, "");
    assert_descriptor(
        &found,
        &sig,
        OCI_MANIFEST,
        Some(SIG),
        json!({"deep": "yes"}),
    );

    // Delete.
    api.delete(&format!("/v2/{repo}/manifests/{md}"))
        .expect(202);
    api.get_manifest(repo, "v1")
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(api.get_manifest("team/app/api", "v1").expect(200).body, m);
    api.delete(&format!("/v2/{repo}/blobs/{ld}")).expect(202);
    api.get(&format!("/v2/{repo}/blobs/{ld}"))
        .expect_error(404, "BLOB_UNKNOWN");
    assert_eq!(
        api.get(&format!("/v2/team/app/api/blobs/{ld}"))
            .expect(200)
            .body,
        layer
    );
}

#[test]
fn repository_names_that_look_like_endpoints_route_correctly() {
    let api = Api::start();
    let names = [
        "lib/blobs",
        "lib/blobs/uploads",
        "lib/manifests",
        "lib/manifests/latest",
        "lib/tags",
        "lib/tags/list",
        "lib/referrers",
        "v2",
    ];
    for (i, name) in names.iter().enumerate() {
        let (m, d) = api.push_oci_image(name, "latest", 800 + i as u64);
        assert_eq!(
            api.get_manifest(name, "latest").expect(200).body,
            m,
            "{name}"
        );
        assert_eq!(api.get_manifest(name, &d).expect(200).body, m, "{name}");
        let v: Value = serde_json::from_slice(&m).unwrap();
        let layer = v["layers"][0]["digest"].as_str().unwrap();
        api.get(&format!("/v2/{name}/blobs/{layer}")).expect(200);
        let t = api.get(&format!("/v2/{name}/tags/list"));
        let tv = t.expect(200).json();
        assert_eq!(tv["name"], *name);
        assert_eq!(string_list(&tv, "tags"), ["latest"]);
        let (_, found) = referrers(&api, name, &d, "");
        assert!(found.is_empty());
    }
    let cat = api.get("/v2/_catalog");
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    assert_eq!(string_list(&cat.expect(200).json(), "repositories"), want);
    // "lib" itself was never pushed: it is only a prefix of other names.
    api.get("/v2/lib/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
}

#[test]
fn empty_catalog_is_an_empty_list() {
    let api = Api::start();
    let r = api.get("/v2/_catalog");
    r.expect(200);
    assert!(string_list(&r.json(), "repositories").is_empty(), "{r}");
    assert!(r.header("link").is_none());
}

#[test]
fn tags_list_last_need_not_be_an_existing_tag() {
    let api = Api::start();
    push_tags(&api, "lib/gap");
    let r = api.get("/v2/lib/gap/tags/list?last=b");
    assert_eq!(
        string_list(&r.expect(200).json(), "tags"),
        ["beta", "latest", "v1.2_rc-1"]
    );
    // '.' sorts before '0': 1.0 < 1.5 < 10.
    let r = api.get("/v2/lib/gap/tags/list?n=1&last=1.5");
    assert_eq!(string_list(&r.expect(200).json(), "tags"), ["10"]);
    assert!(r.header("link").is_some(), "more remain: {r}");
}

/// registry:2 orders the catalog by path component; a byte-wise sort is
/// also lexical. Either way, pages must add up to the whole list.
#[test]
fn catalog_pages_add_up_with_tricky_names() {
    let api = Api::start();
    let names = [
        "a", "a-b", "a.c", "a/b", "a/b/c", "a0", "ab", "a/b-c", "a/b.d",
    ];
    let mut m = None;
    for name in names {
        let body = m.get_or_insert_with(|| api.oci_image(name, 900)).clone();
        // Same blobs in every repository: mount them, then push the manifest.
        let v: Value = serde_json::from_slice(&body).unwrap();
        for d in [&v["config"]["digest"], &v["layers"][0]["digest"]] {
            let d = d.as_str().unwrap();
            if name != "a" {
                api.send(api.req(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?mount={d}&from=a"),
                ))
                .expect(201);
            }
        }
        api.push_manifest(name, "v1", OCI_MANIFEST, &body);
    }
    let full = string_list(&api.get("/v2/_catalog").expect(200).json(), "repositories");
    let mut bytewise: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    bytewise.sort();
    let mut by_component = bytewise.clone();
    by_component.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    assert!(
        full == bytewise || full == by_component,
        "catalog not in lexical order: {full:?}"
    );
    for n in [1, 2, 4] {
        let pages = api.pages(&format!("/v2/_catalog?n={n}"));
        let joined: Vec<String> = pages
            .iter()
            .flat_map(|(v, _)| string_list(v, "repositories"))
            .collect();
        assert_eq!(joined, full, "n={n}: pages do not add up");
    }
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
fn bad_pagination_numbers_are_400() {
    let api = Api::start();
    push_tags(&api, "lib/badn");
    for q in ["n=abc", "n=-1"] {
        let r = api.get(&format!("/v2/lib/badn/tags/list?{q}"));
        r.expect(400).expect_api_version();
        assert!(!r.error_codes().is_empty(), "{r}");
        let r = api.get(&format!("/v2/_catalog?{q}"));
        r.expect(400);
        assert!(!r.error_codes().is_empty(), "{r}");
    }
}

#[test]
fn head_on_the_base_endpoint_is_200() {
    let api = Api::start();
    let r = api.head("/v2/");
    r.expect(200).expect_api_version();
    assert!(r.body.is_empty());
}
