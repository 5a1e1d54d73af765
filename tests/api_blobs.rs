//! Black-box tests of the blob and blob-upload endpoints (end-2, end-4a/b,
//! end-5, end-6, end-10, end-11, end-13, end-14) against the real binary.

mod support;

use reqwest::Method;
use support::*;

const DELETE_ON: [(&str, &str); 1] = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];

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
fn post_starts_an_upload_session() {
    let api = Api::start();
    let r = api.send(
        api.req(Method::POST, "/v2/lib/up/blobs/uploads/")
            .header("Content-Length", "0"),
    );
    r.expect(202).expect_api_version();
    let loc = r.must_header("location");
    let uuid = r.must_header("docker-upload-uuid");
    assert!(!uuid.is_empty());
    assert!(
        loc.contains(&uuid),
        "Location {loc:?} does not contain the upload UUID {uuid}"
    );
    assert_eq!(r.must_header("range"), "0-0");

    // A second POST is a different session.
    let r2 = api.send(api.req(Method::POST, "/v2/lib/up/blobs/uploads/"));
    r2.expect(202);
    assert_ne!(r2.must_header("docker-upload-uuid"), uuid);

    let st = api.get(&loc);
    st.expect(204).expect_api_version();
    assert_eq!(st.must_header("range"), "0-0");
    assert_eq!(st.must_header("docker-upload-uuid"), uuid);
    assert!(
        st.header("location").is_some(),
        "upload status without Location: {st}"
    );
}

#[test]
fn monolithic_post_with_digest_is_201() {
    let api = Api::start();
    let data = noise(4096, 3);
    let d = sha256(&data);
    let r = api.send(
        api.req(
            Method::POST,
            &format!("/v2/lib/mono/blobs/uploads/?digest={d}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(data.clone()),
    );
    r.expect(201).expect_api_version();
    assert_eq!(r.must_header("docker-content-digest"), d);
    let loc = r.must_header("location");
    let got = api.get(&loc);
    got.expect(200);
    assert_eq!(
        got.body, data,
        "the Location of a finished upload must serve the blob"
    );
    assert_eq!(
        api.get(&format!("/v2/lib/mono/blobs/{d}")).expect(200).body,
        data
    );
}

#[test]
fn monolithic_post_with_wrong_digest_is_400_and_stores_nothing() {
    let api = Api::start();
    let data = noise(100, 4);
    let wrong = sha256(b"other content");
    api.send(
        api.req(
            Method::POST,
            &format!("/v2/lib/mono/blobs/uploads/?digest={wrong}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(data.clone()),
    )
    .expect_error(400, "DIGEST_INVALID");
    api.get(&format!("/v2/lib/mono/blobs/{wrong}")).expect(404);
    api.get(&format!("/v2/lib/mono/blobs/{}", sha256(&data)))
        .expect(404);
}

#[test]
fn post_then_put_monolithic_is_201_with_location_and_digest() {
    let api = Api::start();
    let data = noise(2000, 5);
    let d = sha256(&data);
    let loc = api.start_upload("lib/pp");
    let r = api.close_upload(&loc, &d, &data);
    r.expect(201).expect_api_version();
    assert_eq!(r.must_header("docker-content-digest"), d);
    assert_eq!(api.get(&r.must_header("location")).expect(200).body, data);
    // The session is finished.
    api.get(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn put_accepts_a_percent_encoded_digest_like_go_clients_send() {
    let api = Api::start();
    let data = noise(64, 6);
    let d = sha256(&data);
    let loc = api.start_upload("lib/enc");
    let url = with_query(&api.url(&loc), &format!("digest={}", d.replace(':', "%3A")));
    api.send(
        api.c
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(data.clone()),
    )
    .expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/enc/blobs/{d}")).expect(200).body,
        data
    );
}

#[test]
fn streamed_patch_without_content_range_appends() {
    let api = Api::start();
    let a = noise(3000, 7);
    let b = noise(5000, 8);
    let all = [a.clone(), b.clone()].concat();
    let d = sha256(&all);
    let loc = api.start_upload("lib/stream");

    let r = api.patch(&loc, &a, None);
    r.expect(202).expect_api_version();
    assert_eq!(range_end(&r), 2999);
    assert!(
        r.header("docker-upload-uuid").is_some(),
        "PATCH without Docker-Upload-UUID: {r}"
    );
    let loc = r.must_header("location");

    let r = api.patch(&loc, &b, None);
    r.expect(202);
    assert_eq!(range_end(&r), 7999);
    let loc = r.must_header("location");

    let st = api.get(&loc);
    st.expect(204);
    assert_eq!(range_end(&st), 7999);

    let r = api.close_upload(&loc, &d, &[]);
    r.expect(201);
    assert_eq!(r.must_header("docker-content-digest"), d);
    let got = api.get(&format!("/v2/lib/stream/blobs/{d}"));
    assert_eq!(sha256(&got.expect(200).body), d);
}

#[test]
fn chunked_patch_in_order_and_out_of_order_416() {
    let api = Api::start();
    let data = noise(30, 9);
    let d = sha256(&data);
    let loc = api.start_upload("lib/chunks");

    let r = api.patch(&loc, &data[0..10], Some((0, 9)));
    r.expect(202);
    assert_eq!(r.must_header("range"), "0-9");
    let loc = r.must_header("location");

    // A gap, an overlap, and a restart from 0 are all out of order.
    api.patch(&loc, &data[20..30], Some((20, 29)))
        .expect(416)
        .expect_api_version();
    let r = api.patch(&loc, &data[5..15], Some((5, 14)));
    r.expect(416);
    // The refused chunk is not read: the connection ends with the answer.
    assert_eq!(r.header("connection").as_deref(), Some("close"), "{r}");
    api.patch(&loc, &data[0..10], Some((0, 9))).expect(416);

    // The session survives a 416 and says where to continue.
    let st = api.get(&loc);
    st.expect(204);
    assert_eq!(st.must_header("range"), "0-9");
    let loc = st.must_header("location");

    let r = api.patch(&loc, &data[10..20], Some((10, 19)));
    r.expect(202);
    assert_eq!(r.must_header("range"), "0-19");
    let loc = r.must_header("location");

    // The last chunk comes with the closing PUT, with its Content-Range.
    let url = with_query(&api.url(&loc), &format!("digest={d}"));
    let r = api.send(
        api.c
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "20-29")
            .body(data[20..30].to_vec()),
    );
    r.expect(201);
    assert_eq!(r.must_header("docker-content-digest"), d);
    assert_eq!(
        api.get(&format!("/v2/lib/chunks/blobs/{d}"))
            .expect(200)
            .body,
        data
    );
}

#[test]
fn first_chunk_not_starting_at_zero_is_416() {
    let api = Api::start();
    let loc = api.start_upload("lib/chunks");
    api.patch(&loc, b"hello", Some((5, 9))).expect(416);
    let st = api.get(&loc);
    st.expect(204);
    assert_eq!(st.must_header("range"), "0-0");
}

#[test]
fn put_closes_with_a_final_chunk_after_patches() {
    let api = Api::start();
    let head = noise(700, 10);
    let tail = noise(300, 11);
    let all = [head.clone(), tail.clone()].concat();
    let d = sha256(&all);
    let loc = api.start_upload("lib/final");
    let r = api.patch(&loc, &head, None);
    r.expect(202);
    let r = api.close_upload(&r.must_header("location"), &d, &tail);
    r.expect(201);
    assert_eq!(api.get(&r.must_header("location")).expect(200).body, all);
}

#[test]
fn put_with_wrong_digest_is_400_digest_invalid_and_nothing_is_served() {
    let api = Api::start();
    let data = noise(500, 12);
    let wrong = sha256(b"not this");
    let loc = api.start_upload("lib/wrong");
    let r = api.patch(&loc, &data, None);
    r.expect(202);
    api.close_upload(&r.must_header("location"), &wrong, &[])
        .expect_error(400, "DIGEST_INVALID");
    api.get(&format!("/v2/lib/wrong/blobs/{wrong}"))
        .expect_error(404, "BLOB_UNKNOWN");

    // Same with the whole body in the PUT.
    let loc = api.start_upload("lib/wrong");
    api.close_upload(&loc, &wrong, &data)
        .expect_error(400, "DIGEST_INVALID");
    api.get(&format!("/v2/lib/wrong/blobs/{wrong}")).expect(404);
    api.head(&format!("/v2/lib/wrong/blobs/{}", sha256(&data)))
        .expect(404);
}

#[test]
fn put_with_malformed_or_missing_digest_is_400_digest_invalid() {
    let api = Api::start();
    let data = b"some data".to_vec();
    let hex64 = &sha256(&data)[7..];
    for bad in [
        "sha256:abc".to_string(),
        format!("sha256:{hex64}00"),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha512:{hex64}"),
        format!("nonsense{hex64}"),
        String::new(),
    ] {
        let loc = api.start_upload("lib/malformed");
        api.close_upload(&loc, &bad, &data)
            .expect_error(400, "DIGEST_INVALID");
    }
    // No digest parameter at all.
    let loc = api.start_upload("lib/malformed");
    api.send(
        api.req(Method::PUT, &loc)
            .header("Content-Type", "application/octet-stream")
            .body(data.clone()),
    )
    .expect_error(400, "DIGEST_INVALID");
    // Monolithic POST with a malformed digest.
    api.send(
        api.req(
            Method::POST,
            "/v2/lib/malformed/blobs/uploads/?digest=sha256:abc",
        )
        .body(data),
    )
    .expect_error(400, "DIGEST_INVALID");
}

#[test]
fn cancelled_upload_is_204_then_404_blob_upload_unknown() {
    let api = Api::start();
    let loc = api.start_upload("lib/cancel");
    let r = api.patch(&loc, b"partial", None);
    r.expect(202);
    let loc = r.must_header("location");
    api.delete(&loc).expect(204).expect_api_version();
    api.get(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.patch(&loc, b"more", None)
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.close_upload(&loc, &sha256(b"partialmore"), b"more")
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.delete(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn unknown_upload_uuid_is_404_blob_upload_unknown() {
    let api = Api::start();
    api.push_blob("lib/u", b"make the repo exist");
    let p = "/v2/lib/u/blobs/uploads/3f1c6a0e-6c1d-4b8e-9f51-2d7a3c9b0e11";
    api.get(p).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.patch(p, b"data", None)
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.patch(p, b"data", Some((0, 3)))
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.close_upload(p, &sha256(b"data"), b"data")
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.delete(p).expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // Something that is not a UUID at all is still a clean client error.
    for garbage in ["not-a-uuid", "....", "_state"] {
        let r = api.get(&format!("/v2/lib/u/blobs/uploads/{garbage}"));
        let codes = r.error_codes();
        assert!(
            (r.status == 404 && codes.contains(&"BLOB_UPLOAD_UNKNOWN".to_string()))
                || (r.status == 400 && codes.contains(&"BLOB_UPLOAD_INVALID".to_string())),
            "upload id {garbage:?}: want 404 BLOB_UPLOAD_UNKNOWN or 400 BLOB_UPLOAD_INVALID: {r}"
        );
    }
}

#[test]
fn upload_session_belongs_to_its_repository() {
    let api = Api::start();
    let loc = api.start_upload("team/one");
    let r = api.patch(&loc, b"abc", None);
    r.expect(202);
    let uuid = r.must_header("docker-upload-uuid");
    api.push_blob("team/two", b"exists");
    let other = format!("/v2/team/two/blobs/uploads/{uuid}");
    api.get(&other).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.close_upload(&other, &sha256(b"abc"), &[])
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.get(&format!("/v2/team/two/blobs/{}", sha256(b"abc")))
        .expect(404);
}

#[test]
fn pushing_the_same_blob_twice_is_fine() {
    let api = Api::start();
    let data = noise(123, 13);
    let d1 = api.push_blob("lib/twice", &data);
    let d2 = api.push_blob("lib/twice", &data);
    assert_eq!(d1, d2);
    let r = api.send(
        api.req(
            Method::POST,
            &format!("/v2/lib/twice/blobs/uploads/?digest={d1}"),
        )
        .body(data.clone()),
    );
    r.expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/twice/blobs/{d1}"))
            .expect(200)
            .body,
        data
    );
}

#[test]
fn mount_from_a_repository_holding_the_blob_is_201() {
    let api = Api::start();
    let data = noise(777, 14);
    let d = api.push_blob("src/repo", &data);

    let r = api.send(api.req(
        Method::POST,
        &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
    ));
    r.expect(201).expect_api_version();
    assert_eq!(r.must_header("docker-content-digest"), d);
    assert_eq!(api.get(&r.must_header("location")).expect(200).body, data);
    assert_eq!(
        api.get(&format!("/v2/dst/repo/blobs/{d}")).expect(200).body,
        data
    );

    // Go clients percent-encode the query values.
    let enc = format!(
        "/v2/dst/other/blobs/uploads/?mount={}&from=src%2Frepo",
        d.replace(':', "%3A")
    );
    api.send(api.req(Method::POST, &enc)).expect(201);
    assert_eq!(
        api.get(&format!("/v2/dst/other/blobs/{d}"))
            .expect(200)
            .body,
        data
    );
}

#[test]
fn mount_of_a_blob_not_in_from_is_202_and_a_normal_upload() {
    let api = Api::start();
    let data = noise(321, 15);
    let d = sha256(&data);
    // The blob exists in the registry, but not in the `from` repository.
    api.push_blob("third/party", &data);
    api.push_blob("src/repo", b"unrelated");

    let r = api.send(api.req(
        Method::POST,
        &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
    ));
    r.expect(202);
    let loc = r.must_header("location");
    assert!(
        r.header("docker-upload-uuid").is_some(),
        "no Docker-Upload-UUID: {r}"
    );
    api.get(&format!("/v2/dst/repo/blobs/{d}")).expect(404);
    api.close_upload(&loc, &d, &data).expect(201);
    assert_eq!(
        api.get(&format!("/v2/dst/repo/blobs/{d}")).expect(200).body,
        data
    );

    // An unknown `from` repository: also just an upload.
    let other = noise(10, 16);
    let r = api.send(api.req(
        Method::POST,
        &format!(
            "/v2/dst/repo/blobs/uploads/?mount={}&from=no/such/repo",
            sha256(&other)
        ),
    ));
    r.expect(202);
    api.close_upload(&r.must_header("location"), &sha256(&other), &other)
        .expect(201);
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
fn a_bigger_blob_in_many_chunks_reads_back_intact() {
    let api = Api::start();
    let data = noise(6 * 1024 * 1024 + 17, 19);
    let d = sha256(&data);
    let mut loc = api.start_upload("lib/big");
    let chunk = 1024 * 1024;
    for (i, part) in data.chunks(chunk).enumerate() {
        let start = (i * chunk) as u64;
        let r = api.patch(&loc, part, Some((start, start + part.len() as u64 - 1)));
        r.expect(202);
        assert_eq!(range_end(&r), start + part.len() as u64 - 1);
        loc = r.must_header("location");
    }
    api.close_upload(&loc, &d, &[]).expect(201);
    let g = api.get(&format!("/v2/lib/big/blobs/{d}"));
    g.expect(200);
    assert_eq!(g.body.len(), data.len());
    assert_eq!(sha256(&g.body), d);
}

#[test]
fn upload_survives_a_restart_or_fails_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("data");
    let mut api = Api::on(Registry::start_in(&root, &DELETE_ON, &[]));
    let data = noise(5000, 20);
    let d = sha256(&data);
    let loc = api.start_upload("lib/restart");
    let r = api.patch(&loc, &data[..2000], Some((0, 1999)));
    r.expect(202);
    let loc = path_of(&r.must_header("location"));
    // Something finished before the crash, to read back afterwards.
    let done = api.push_blob("lib/restart", b"finished before the restart");
    api.reg.kill();
    drop(api);

    let api = Api::on(Registry::start_in(&root, &DELETE_ON, &[]));
    assert_eq!(
        api.get(&format!("/v2/lib/restart/blobs/{done}"))
            .expect(200)
            .body,
        b"finished before the restart"
    );
    let st = api.get(&loc);
    match st.status {
        204 => {
            assert_eq!(st.must_header("range"), "0-1999");
            let loc = path_of(&st.must_header("location"));
            let r = api.patch(&loc, &data[2000..4000], Some((2000, 3999)));
            r.expect(202);
            let r = api.close_upload(&path_of(&r.must_header("location")), &d, &data[4000..]);
            r.expect(201);
            assert_eq!(
                api.get(&format!("/v2/lib/restart/blobs/{d}"))
                    .expect(200)
                    .body,
                data
            );
        }
        404 => {
            st.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
            api.patch(&loc, &data[2000..], Some((2000, 4999)))
                .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        }
        _ => panic!("upload status after restart: want 204 or 404 BLOB_UPLOAD_UNKNOWN: {st}"),
    }
}

/// A body of unknown length, sent with `Transfer-Encoding: chunked` (what
/// docker does for layer PATCHes).
fn chunked_body(data: &[u8]) -> reqwest::blocking::Body {
    reqwest::blocking::Body::new(std::io::Cursor::new(data.to_vec()))
}

#[test]
fn uploads_with_chunked_transfer_encoding() {
    let api = Api::start();
    let data = noise(300_000, 21);
    let d = sha256(&data);
    let loc = api.start_upload("lib/te");
    let r = api.send(
        api.req(Method::PATCH, &loc)
            .header("Content-Type", "application/octet-stream")
            .body(chunked_body(&data[..200_000])),
    );
    r.expect(202);
    assert_eq!(range_end(&r), 199_999);
    let url = with_query(&api.url(&r.must_header("location")), &format!("digest={d}"));
    let r = api.send(
        api.c
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(chunked_body(&data[200_000..])),
    );
    r.expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/te/blobs/{d}")).expect(200).body,
        data
    );

    // Monolithic POST with a chunked body.
    let other = noise(70_000, 22);
    let od = sha256(&other);
    api.send(
        api.req(
            Method::POST,
            &format!("/v2/lib/te/blobs/uploads/?digest={od}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(chunked_body(&other)),
    )
    .expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/te/blobs/{od}")).expect(200).body,
        other
    );
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
fn chunk_whose_content_range_disagrees_with_its_body_is_not_miscounted() {
    let api = Api::start();
    let data = noise(20, 24);
    let d = sha256(&data);
    let loc = api.start_upload("lib/liar");
    // Claims 10 bytes, sends 5.
    let r = api.patch(&loc, &data[..5], Some((0, 9)));
    let next = match r.status {
        202 => {
            assert_eq!(
                r.must_header("range"),
                "0-4",
                "the server counted bytes it did not receive"
            );
            5
        }
        400 | 416 => 0,
        _ => panic!("want 202 (counting what arrived) or 400/416: {r}"),
    };
    let st = api.get(&loc);
    st.expect(204);
    let loc = st.must_header("location");
    if next == 0 {
        assert_eq!(st.must_header("range"), "0-0");
    } else {
        assert_eq!(st.must_header("range"), "0-4");
    }
    let r = api.close_upload(&loc, &d, &data[next..]);
    r.expect(201);
    assert_eq!(
        api.get(&format!("/v2/lib/liar/blobs/{d}")).expect(200).body,
        data
    );
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

#[test]
fn closing_put_with_an_out_of_order_content_range_is_416() {
    // The last chunk may come with the PUT; chunks MUST be in order, else 416.
    let api = Api::start();
    let data = noise(30, 25);
    let d = sha256(&data);
    let loc = api.start_upload("lib/putrange");
    let r = api.patch(&loc, &data[..10], Some((0, 9)));
    r.expect(202);
    let loc = r.must_header("location");
    let url = with_query(&api.url(&loc), &format!("digest={d}"));
    let r = api.send(
        api.c
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "20-29")
            .body(data[20..].to_vec()),
    );
    r.expect(416);
    let st = api.get(&loc);
    st.expect(204);
    assert_eq!(
        st.must_header("range"),
        "0-9",
        "the rejected chunk was appended"
    );
    api.get(&format!("/v2/lib/putrange/blobs/{d}")).expect(404);
}

#[test]
fn concurrent_chunks_at_the_same_offset_apply_once() {
    let api = Api::start();
    for round in 0..5 {
        let chunk = noise(256 * 1024, 26 + round);
        let loc = api.start_upload("lib/samechunk");
        let barrier = std::sync::Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (api, chunk, loc, barrier) = (&api, &chunk, &loc, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        api.patch(loc, chunk, Some((0, chunk.len() as u64 - 1)))
                            .status
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, [202, 416], "round {round}: {statuses:?}");
        let st = api.get(&loc);
        st.expect(204);
        assert_eq!(range_end(&st), chunk.len() as u64 - 1, "round {round}");
        api.close_upload(&st.must_header("location"), &sha256(&chunk), &[])
            .expect(201);
    }
}

#[test]
fn a_closing_put_with_the_wrong_digest_ends_the_session() {
    let api = Api::start();
    let data = noise(2000, 30);
    let loc = api.start_upload("lib/retry");
    api.patch(&loc, &data[..1000], Some((0, 999))).expect(202);
    // The last chunk is sent with a digest that does not match: refused,
    // and the session (now holding the rejected chunk) is gone, so the
    // client starts again rather than retrying into the same error.
    api.close_upload(&loc, &sha256(b"something else"), &data[1000..])
        .expect_error(400, "DIGEST_INVALID");
    api.get(&loc).expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    api.close_upload(&loc, &sha256(&data), &data[1000..])
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    let d = sha256(&data);
    api.get(&format!("/v2/lib/retry/blobs/{d}"))
        .expect_error(404, "BLOB_UNKNOWN");
    assert_eq!(api.push_blob("lib/retry", &data), d);
    assert_eq!(api.get(&format!("/v2/lib/retry/blobs/{d}")).body, data);
}
