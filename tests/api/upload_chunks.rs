//! Black-box tests of chunked blob uploads (end-5, end-6): streamed and
//! ranged PATCH, `Content-Range` order and mismatches, chunked transfer
//! encoding, many chunks, and concurrent chunks at one offset, against the
//! real binary.

use crate::support;

use reqwest::Method;
use support::*;

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
