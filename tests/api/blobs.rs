//! Black-box tests of the blob endpoints (end-2, end-10): GET and HEAD with their headers
//! and ranges, 404s, per-repository visibility, digests (malformed, upper
//! case, sha512), and DELETE, against the real binary.

use crate::support;

use reqwest::Method;
use support::*;

#[test]
fn blob_get_and_head_carry_length_digest_etag_and_accept_ranges() {
    let api = Api::start();
    let data = noise(1000, 1);
    let d = api.push_blob("lib/blob", &data);

    let r = api.get(&format!("/v2/lib/blob/blobs/{d}"));
    r.expect(200).expect_api_version();
    assert_eq!(r.body, data, "blob body differs");
    assert_eq!(r.must_header("content-length"), "1000");
    assert_eq!(r.must_header("docker-content-digest"), d);
    assert_eq!(r.must_header("accept-ranges"), "bytes");
    let etag = r.must_header("etag");
    assert!(
        etag.contains(&d[7..]),
        "ETag {etag:?} does not name the digest {d}"
    );

    let h = api.head(&format!("/v2/lib/blob/blobs/{d}"));
    h.expect(200).expect_api_version();
    assert!(h.body.is_empty(), "HEAD has a body");
    assert_eq!(h.must_header("content-length"), "1000");
    assert_eq!(h.must_header("docker-content-digest"), d);
    assert_eq!(h.must_header("accept-ranges"), "bytes");
    assert!(h.header("etag").is_some(), "HEAD without ETag: {h}");
}

#[test]
fn blob_range_requests_answer_206_or_416() {
    let api = Api::start();
    let data = noise(1000, 2);
    let d = api.push_blob("lib/range", &data);
    let path = format!("/v2/lib/range/blobs/{d}");
    let ranged = |range: &str| api.send(api.req(Method::GET, &path).header("Range", range));

    let r = ranged("bytes=0-9");
    r.expect(206);
    assert_eq!(r.body, &data[0..10]);
    assert_eq!(r.must_header("content-range"), "bytes 0-9/1000");
    assert_eq!(r.must_header("content-length"), "10");

    let r = ranged("bytes=990-");
    r.expect(206);
    assert_eq!(r.body, &data[990..]);
    assert_eq!(r.must_header("content-range"), "bytes 990-999/1000");

    let r = ranged("bytes=-4");
    r.expect(206);
    assert_eq!(r.body, &data[996..]);
    assert_eq!(r.must_header("content-range"), "bytes 996-999/1000");

    // An end past the size is clamped (RFC 9110 §14.1.2).
    let r = ranged("bytes=500-5000");
    r.expect(206);
    assert_eq!(r.body, &data[500..]);
    assert_eq!(r.must_header("content-range"), "bytes 500-999/1000");

    for unsatisfiable in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let r = ranged(unsatisfiable);
        r.expect(416).expect_api_version();
        assert_eq!(
            r.must_header("content-range"),
            "bytes */1000",
            "{unsatisfiable}: 416 should name the size"
        );
    }
}

#[test]
fn unknown_blob_is_404_blob_unknown() {
    let api = Api::start();
    api.push_blob("lib/known", b"something");
    let missing = sha256(b"never pushed");
    api.get(&format!("/v2/lib/known/blobs/{missing}"))
        .expect_error(404, "BLOB_UNKNOWN");
    let h = api.head(&format!("/v2/lib/known/blobs/{missing}"));
    h.expect(404).expect_api_version();
    assert!(h.body.is_empty());
    // Unknown repository too.
    api.get(&format!("/v2/lib/nothing-here/blobs/{missing}"))
        .expect(404);
}

#[test]
fn blob_is_only_visible_in_the_repository_it_was_pushed_to() {
    let api = Api::start();
    let data = b"private layer".to_vec();
    let d = api.push_blob("team/a", &data);
    api.get(&format!("/v2/team/a/blobs/{d}")).expect(200);
    api.push_blob("team/b", b"something else");
    api.get(&format!("/v2/team/b/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    api.head(&format!("/v2/team/b/blobs/{d}")).expect(404);
}

#[test]
fn blob_with_malformed_digest_is_400_digest_invalid() {
    let api = Api::start();
    api.push_blob("lib/x", b"x");
    for bad in [
        "sha256:abc",
        "sha256:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "nonsense",
    ] {
        api.get(&format!("/v2/lib/x/blobs/{bad}"))
            .expect_error(400, "DIGEST_INVALID");
    }
}

#[test]
fn blob_delete_is_202_then_404() {
    let api = Api::start();
    let d = api.push_blob("lib/del", b"to be deleted");
    let keep = api.push_blob("lib/del", b"to be kept");
    api.delete(&format!("/v2/lib/del/blobs/{d}"))
        .expect(202)
        .expect_api_version();
    api.get(&format!("/v2/lib/del/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    api.head(&format!("/v2/lib/del/blobs/{d}")).expect(404);
    api.delete(&format!("/v2/lib/del/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    assert_eq!(
        api.get(&format!("/v2/lib/del/blobs/{keep}"))
            .expect(200)
            .body,
        b"to be kept"
    );
    // Pushing it again makes it readable again.
    api.push_blob("lib/del", b"to be deleted");
    assert_eq!(
        api.get(&format!("/v2/lib/del/blobs/{d}")).expect(200).body,
        b"to be deleted"
    );
}

#[test]
fn blob_delete_unknown_is_404_blob_unknown() {
    let api = Api::start();
    api.push_blob("lib/del", b"x");
    api.delete(&format!("/v2/lib/del/blobs/{}", sha256(b"nope")))
        .expect_error(404, "BLOB_UNKNOWN");
}

#[test]
fn blob_delete_when_disabled_is_405_unsupported() {
    let api = Api::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")]);
    let d = api.push_blob("lib/keep", b"undeletable");
    api.delete(&format!("/v2/lib/keep/blobs/{d}"))
        .expect_error(405, "UNSUPPORTED");
    assert_eq!(
        api.get(&format!("/v2/lib/keep/blobs/{d}")).expect(200).body,
        b"undeletable"
    );
    // Cancelling an upload is not a delete of content and still works.
    let loc = api.start_upload("lib/keep");
    api.delete(&loc).expect(204);
}

#[test]
fn sha512_digests_work_for_uploads_and_reads() {
    let api = Api::start();
    let data = noise(2048, 17);
    let d = sha512(&data);
    assert_eq!(d.len(), 7 + 128);

    let r = api.send(
        api.req(
            Method::POST,
            &format!("/v2/lib/sha512/blobs/uploads/?digest={d}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(data.clone()),
    );
    r.expect(201);
    assert_eq!(r.must_header("docker-content-digest"), d);
    let g = api.get(&format!("/v2/lib/sha512/blobs/{d}"));
    g.expect(200);
    assert_eq!(g.body, data);
    assert_eq!(g.must_header("docker-content-digest"), d);
    let h = api.head(&format!("/v2/lib/sha512/blobs/{d}"));
    h.expect(200);
    assert_eq!(h.must_header("content-length"), "2048");

    // Chunked, closed with a sha512 digest.
    let data2 = noise(1500, 18);
    let d2 = sha512(&data2);
    let loc = api.start_upload("lib/sha512");
    let r = api.patch(&loc, &data2[..1000], Some((0, 999)));
    r.expect(202);
    let r = api.close_upload(&r.must_header("location"), &d2, &data2[1000..]);
    r.expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/sha512/blobs/{d2}"))
            .expect(200)
            .body,
        data2
    );

    // A wrong sha512 is rejected.
    let loc = api.start_upload("lib/sha512");
    api.close_upload(&loc, &sha512(b"other"), &data2)
        .expect_error(400, "DIGEST_INVALID");
    api.get(&format!("/v2/lib/sha512/blobs/{}", sha512(b"other")))
        .expect(404);
}

#[test]
fn empty_blob_round_trips() {
    let api = Api::start();
    let d = sha256(b"");
    let loc = api.start_upload("lib/empty");
    let r = api.close_upload(&loc, &d, b"");
    r.expect(201);
    assert_eq!(r.must_header("docker-content-digest"), d);
    let g = api.get(&format!("/v2/lib/empty/blobs/{d}"));
    g.expect(200);
    assert!(g.body.is_empty());
    assert_eq!(g.must_header("content-length"), "0");
    let h = api.head(&format!("/v2/lib/empty/blobs/{d}"));
    h.expect(200);
    assert_eq!(h.must_header("content-length"), "0");
}

#[test]
fn one_byte_range_and_whole_range() {
    let api = Api::start();
    let data = noise(50, 23);
    let d = api.push_blob("lib/r1", &data);
    let path = format!("/v2/lib/r1/blobs/{d}");
    let r = api.send(api.req(Method::GET, &path).header("Range", "bytes=0-0"));
    r.expect(206);
    assert_eq!(r.body, &data[..1]);
    assert_eq!(r.must_header("content-range"), "bytes 0-0/50");
    let r = api.send(api.req(Method::GET, &path).header("Range", "bytes=0-49"));
    assert!(r.status == 206 || r.status == 200, "{r}");
    assert_eq!(r.body, data);
}

#[test]
fn upper_case_hex_digest_is_400_digest_invalid() {
    // OCI image-spec: the sha256 encoded part MUST match /[a-f0-9]{64}/.
    let api = Api::start();
    let data = b"case matters".to_vec();
    let d = api.push_blob("lib/case", &data);
    let upper = format!("sha256:{}", d[7..].to_ascii_uppercase());
    api.get(&format!("/v2/lib/case/blobs/{upper}"))
        .expect_error(400, "DIGEST_INVALID");
    let loc = api.start_upload("lib/case");
    api.close_upload(&loc, &upper, &data)
        .expect_error(400, "DIGEST_INVALID");
}
