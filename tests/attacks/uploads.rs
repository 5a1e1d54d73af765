//! Upload sessions: a refused chunk must not cost the upload its hash state
//! (else every later chunk rehashes the whole upload), and the sessions a
//! client may open are bounded.

use std::time::Duration;

use reqwest::Method;

use crate::support::api::Api;
use crate::support::content::{noise, sha256};
use crate::support::harness::{serve_command, Registry};

/// `berth`'s default bound on the upload sessions open in one repository
/// (`FsStore::DEFAULT_MAX_UPLOADS_PER_REPOSITORY`).
const MAX_PER_REPOSITORY: usize = 512;

#[test]
fn a_refused_chunk_keeps_the_uploads_hash_state() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let env = [("RUST_LOG", "info,berth::storage::fs::uploads=debug")];
    let api = Api::on(Registry::spawn(
        serve_command(&root, &env, &[]),
        &root,
        true,
    ));
    let first = noise(3 << 20, 1);
    let second = noise(1 << 20, 2);
    let loc = api.start_upload("hash/state");
    let r = api.patch(&loc, &first, Some((0, first.len() as u64 - 1)));
    r.expect(202);
    let loc = r.must_header("location");
    // A chunk that does not start where the upload stands: 416.
    let r = api.patch(&loc, b"stray", Some((7, 11)));
    r.expect_error(416, "BLOB_UPLOAD_INVALID");
    let end = first.len() as u64;
    let r = api.patch(&loc, &second, Some((end, end + second.len() as u64 - 1)));
    r.expect(202);
    let loc = r.must_header("location");
    let all = [first, second].concat();
    let digest = sha256(&all);
    api.close_upload(&loc, &digest, b"").expect(201);
    let got = api.get(&format!("/v2/hash/state/blobs/{digest}"));
    got.expect(200);
    assert!(got.body == all, "the blob's bytes differ");
    std::thread::sleep(Duration::from_millis(300));
    let logs = api.reg.logs();
    assert!(
        !logs.contains("rebuilt from disk"),
        "after a 416 the upload was rehashed from disk:\n{logs}"
    );
}

fn post(api: &Api, repo: &str) -> crate::support::api::Resp {
    api.send(
        api.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("Content-Length", "0"),
    )
}

#[test]
fn open_upload_sessions_are_bounded_and_a_finished_or_cancelled_one_frees_its_slot() {
    let api = Api::start();
    let mut open = Vec::new();
    let refused = loop {
        assert!(
            open.len() <= MAX_PER_REPOSITORY,
            "{} upload sessions open in one repository, no limit",
            open.len()
        );
        let r = post(&api, "many/uploads");
        if r.status != 202 {
            break r;
        }
        open.push(r.must_header("location"));
    };
    refused.expect_error(429, "TOOMANYREQUESTS");
    assert!(
        refused.text().contains(&MAX_PER_REPOSITORY.to_string()),
        "the answer names the limit: {refused}"
    );
    assert_eq!(open.len(), MAX_PER_REPOSITORY);
    // Another repository is not starved by this one.
    post(&api, "other/repo").expect(202);

    // Cancelling a session frees its slot.
    api.delete(&open.pop().unwrap()).expect(204);
    let r = post(&api, "many/uploads");
    r.expect(202);
    post(&api, "many/uploads").expect_error(429, "TOOMANYREQUESTS");

    // So does finishing one.
    let data = b"one small blob";
    let last = r.must_header("location");
    api.close_upload(&last, &sha256(data), data).expect(201);
    post(&api, "many/uploads").expect(202);
    post(&api, "many/uploads").expect_error(429, "TOOMANYREQUESTS");
}
