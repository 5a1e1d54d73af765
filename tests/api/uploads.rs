//! Black-box tests of blob upload sessions (end-4a/b, end-6, end-11,
//! end-13, end-14): POST, monolithic uploads, the closing PUT and its
//! digest, cancelling, unknown sessions, cross-repository mounts, and a
//! restart mid-upload, against the real binary.

use crate::support;

use reqwest::Method;
use support::*;

const DELETE_ON: [(&str, &str); 1] = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];

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
