//! The push fast path (a body written in batches while the next is read,
//! each batch written and hashed at once): odd chunk sizes and chunks that
//! end mid-hash-block or straddle a batch, monolithic pushes larger than a
//! batch, a resume after a 416, a wrong digest after a long push, a client
//! that goes away mid-chunk, and a kill -9 right after the 201.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::support;

use support::*;

const MIB: usize = 1 << 20;

/// Pulls `digest` from `repo` and checks every byte and the digest header.
fn assert_pulls(api: &Api, repo: &str, digest: &str, want: &[u8]) {
    let r = api.get(&format!("/v2/{repo}/blobs/{digest}"));
    r.expect(200);
    assert_eq!(r.must_header("docker-content-digest"), digest);
    assert_eq!(r.body.len(), want.len(), "pulled length");
    assert!(r.body == want, "pulled bytes differ from the pushed ones");
}

/// Sends `data` from `first` on to the upload at `loc`, closes it as `d`
/// and checks that the blob pulls back whole.
fn send_rest_and_pull(api: &Api, repo: &str, loc: &str, data: &[u8], first: usize, d: &str) {
    let r = api.patch(
        loc,
        &data[first..],
        Some((first as u64, data.len() as u64 - 1)),
    );
    r.expect(202);
    api.close_upload(&r.must_header("location"), d, &[])
        .expect(201);
    assert_pulls(api, repo, d, data);
}

#[test]
fn chunks_of_odd_sizes_across_batches_keep_every_byte() {
    let api = Api::start();
    // 1 byte; 65 (ends mid SHA-256 block); 8 MiB + 1 (many batches, the
    // last one a byte long); 3 MiB - 7; 1.
    let sizes = [1, 65, 8 * MIB + 1, 3 * MIB - 7, 1];
    let data = noise(sizes.iter().sum(), 41);
    let d = sha256(&data);
    let mut loc = api.start_upload("fast/odd");
    let mut at = 0usize;
    for n in sizes {
        let r = api.patch(
            &loc,
            &data[at..at + n],
            Some((at as u64, (at + n - 1) as u64)),
        );
        r.expect(202);
        at += n;
        assert_eq!(range_end(&r), at as u64 - 1, "after a {n}-byte chunk");
        loc = r.must_header("location");
    }
    api.close_upload(&loc, &d, &[]).expect(201);
    assert_pulls(&api, "fast/odd", &d, &data);
}

#[test]
fn a_monolithic_push_of_many_batches_is_stored_exactly_and_ranges_read_back() {
    let api = Api::start();
    let data = noise(5 * MIB + 13, 42);
    let d = sha256(&data);
    let loc = api.start_upload("fast/mono");
    let r = api.close_upload(&loc, &d, &data);
    r.expect(201);
    assert_eq!(r.must_header("docker-content-digest"), d);
    assert_pulls(&api, "fast/mono", &d, &data);
    // A range across the first batch boundary.
    let (a, b) = (MIB - 5, MIB + 9);
    let r = api.send(
        api.req(reqwest::Method::GET, &format!("/v2/fast/mono/blobs/{d}"))
            .header("Range", format!("bytes={a}-{b}")),
    );
    r.expect(206);
    assert_eq!(r.body, &data[a..=b]);
}

#[test]
fn an_empty_blob_pushed_monolithic_has_the_empty_digest() {
    let api = Api::start();
    let d = sha256(b"");
    let loc = api.start_upload("fast/empty");
    api.close_upload(&loc, &d, &[]).expect(201);
    assert_eq!(
        d,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_pulls(&api, "fast/empty", &d, b"");
}

#[test]
fn a_push_resumed_after_a_416_ends_with_the_right_bytes() {
    let api = Api::start();
    let data = noise(3 * MIB + 3, 43);
    let d = sha256(&data);
    let loc = api.start_upload("fast/resume");
    let first = 2 * MIB + 1;
    let r = api.patch(&loc, &data[..first], Some((0, first as u64 - 1)));
    r.expect(202);
    let loc = r.must_header("location");
    // A chunk sent to the wrong offset: 416 with where to resume.
    let r = api.patch(
        &loc,
        &data[first + 1..],
        Some((first as u64 + 1, data.len() as u64 - 1)),
    );
    r.expect(416);
    let loc = r.must_header("location");
    let st = api.get(&loc);
    st.expect(204);
    assert_eq!(range_end(&st), first as u64 - 1);
    send_rest_and_pull(&api, "fast/resume", &loc, &data, first, &d);
}

#[test]
fn a_wrong_digest_after_a_long_push_is_refused_and_nothing_is_served() {
    let api = Api::start();
    let data = noise(3 * MIB + 1, 44);
    let right = sha256(&data);
    let wrong = sha256(b"something else");
    let loc = api.start_upload("fast/wrong");
    api.close_upload(&loc, &wrong, &data)
        .expect_error(400, "DIGEST_INVALID");
    api.get(&format!("/v2/fast/wrong/blobs/{right}"))
        .expect_error(404, "BLOB_UNKNOWN");
    api.get(&format!("/v2/fast/wrong/blobs/{wrong}"))
        .expect_error(404, "BLOB_UNKNOWN");
}

/// Sends a PATCH announcing `announced` bytes but only `sent` of them,
/// then closes the socket.
fn abandoned_patch(reg: &Registry, location: &str, start: usize, body: &[u8], announced: usize) {
    let path = location
        .strip_prefix(&reg.base)
        .unwrap_or(location)
        .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {announced}\r\nContent-Range: {start}-{}\r\n\r\n",
        reg.host(),
        start + announced - 1
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("partial body");
    s.flush().unwrap();
    // Give the server time to read (and start writing) what was sent.
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
}

#[test]
fn a_client_gone_mid_chunk_leaves_the_upload_where_it_was() {
    let api = Api::start();
    let data = noise(6 * MIB, 45);
    let d = sha256(&data);
    let first = 10;
    let loc = api.start_upload("fast/gone");
    let r = api.patch(&loc, &data[..first], Some((0, first as u64 - 1)));
    r.expect(202);
    let loc = r.must_header("location");
    // More than two batches sent of a chunk announced whole, then gone.
    abandoned_patch(
        &api.reg,
        &loc,
        first,
        &data[first..first + 3 * MIB],
        data.len() - first,
    );
    // The rollback ends once the write in flight is done: the upload is
    // back where the client was last told it stood.
    let back = wait_until(Duration::from_secs(10), || {
        let st = api.get(&loc);
        st.status == 204 && range_end(&st) == first as u64 - 1
    });
    assert!(back, "the abandoned chunk's bytes were kept");
    send_rest_and_pull(&api, "fast/gone", &loc, &data, first, &d);
}

#[test]
fn a_blob_answered_201_survives_a_kill_right_after() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let data = noise(4 * MIB + 5, 46);
    let chunked = noise(2 * MIB + 1, 47);
    let (d, dc) = (sha256(&data), sha256(&chunked));
    {
        let mut api = Api::on(Registry::start_in(&root, &[], &[]));
        let loc = api.start_upload("fast/crash");
        api.close_upload(&loc, &d, &data).expect(201);
        let loc = api.start_upload("fast/crash");
        let r = api.patch(&loc, &chunked, None);
        r.expect(202);
        api.close_upload(&r.must_header("location"), &dc, &[])
            .expect(201);
        api.reg.kill();
    }
    let api = Api::on(Registry::start_in(&root, &[], &[]));
    assert_pulls(&api, "fast/crash", &d, &data);
    assert_pulls(&api, "fast/crash", &dc, &chunked);
    // And only once: nothing of either upload is left in flight.
    let mut leftover = Vec::new();
    if let Ok(dir) =
        std::fs::read_dir(root.join("docker/registry/v2/repositories/fast/crash/_uploads"))
    {
        for e in dir.flatten() {
            leftover.push(e.file_name());
        }
    }
    assert!(leftover.is_empty(), "uploads left behind: {leftover:?}");
}
