//! The `[limits]` section (issue 16, findings 9 and 10): client numbers
//! that would overflow the server's arithmetic, a manifest PUT with
//! thousands of tags, and limits that are checked at start-up.

use std::time::Duration;

use reqwest::Method;

use crate::support::tools::run;
use crate::support::*;

#[test]
fn a_content_range_that_overflows_is_refused() {
    let api = Api::start();
    let location = api.start_upload("limits/range");
    // `b - a + 1` wraps to 0 for this range, which "matched" an empty body.
    let r = api.send(
        api.req(Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("0-{}", u64::MAX))
            .header("Content-Length", "0")
            .body(Vec::new()),
    );
    r.expect_error(416, "BLOB_UPLOAD_INVALID");
    let r = api.send(
        api.req(Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", u64::MAX, u64::MAX))
            .body(b"x".to_vec()),
    );
    assert_eq!(r.status, 416, "{r:?}");
    // The session is untouched and still usable.
    let status = api.get(&location);
    assert_eq!(status.must_header("range"), "0-0");
    let r = api.patch(&location, b"abc", Some((0, 2)));
    r.expect(202);
    assert_eq!(r.must_header("range"), "0-2");
}

#[test]
fn a_put_with_too_many_tags_is_refused_before_anything_is_written() {
    let api = Api::start_with(&[("REGISTRY_LIMITS_MAX_TAGS_PER_PUT", "3")]);
    let manifest = api.oci_image("limits/tags", 1);
    let digest = sha256(&manifest);
    let query = |n: usize| {
        (0..n)
            .map(|i| format!("tag=t{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let r = api.send(
        api.req(
            Method::PUT,
            &format!("/v2/limits/tags/manifests/{digest}?{}", query(4)),
        )
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone()),
    );
    r.expect_error(400, "TAG_INVALID");
    assert!(r.text().contains("max_tags_per_put"), "{r:?}");
    assert!(r.header("oci-tag").is_none(), "{r:?}");
    // Nothing was written: no manifest, no tag.
    assert_eq!(api.get_manifest("limits/tags", &digest).status, 404);
    assert_eq!(api.get_manifest("limits/tags", "t0").status, 404);
    // A tag in the path counts too.
    let r = api.send(
        api.req(
            Method::PUT,
            &format!("/v2/limits/tags/manifests/latest?{}", query(3)),
        )
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone()),
    );
    r.expect_error(400, "TAG_INVALID");
    // At the limit, all is well.
    let r = api.send(
        api.req(
            Method::PUT,
            &format!("/v2/limits/tags/manifests/{digest}?{}", query(3)),
        )
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest),
    );
    r.expect(201);
    assert_eq!(r.headers.get_all("oci-tag").iter().count(), 3);
    assert_eq!(api.get_manifest("limits/tags", "t2").status, 200);
}

#[test]
fn limits_from_the_environment_are_checked_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("REGISTRY_LIMITS_MAX_CONNECTIONS", "0"),
        ("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "soon"),
    ] {
        let out = run(
            &mut serve_command(&tmp.path().join("data"), &[(name, value)], &[]),
            Duration::from_secs(20),
        );
        assert!(!out.ok(), "{name}={value} was accepted:\n{}", out.all());
        let key = name.trim_start_matches("REGISTRY_LIMITS_").to_lowercase();
        assert!(
            out.all().contains(name) || out.all().contains(&key),
            "{}",
            out.all()
        );
    }
}
