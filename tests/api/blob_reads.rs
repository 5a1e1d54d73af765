//! Blob GET bodies, served from memory-mapped windows of the blob file
//! (4 MiB each): exact bytes and digests at page and window boundaries,
//! Range at the edges, concurrent readers, and a blob removed while a
//! reader streams it (the reader gets the whole right bytes or a cut
//! connection, never wrong bytes).

use crate::support;

use std::io::Read;

use reqwest::Method;
use support::*;

const WINDOW: usize = 4 << 20;
const PAGE: usize = 4096;

#[test]
fn blob_bodies_are_exact_at_page_and_window_boundaries() {
    let api = Api::start();
    let sizes = [
        0,
        1,
        PAGE - 1,
        PAGE,
        PAGE + 1,
        WINDOW - 1,
        WINDOW,
        WINDOW + 1,
        (16 << 20) + 3,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let data = noise(size, 100 + i as u64);
        let d = api.push_blob("reads/sizes", &data);
        let r = api.get(&format!("/v2/reads/sizes/blobs/{d}"));
        r.expect(200);
        assert_eq!(r.must_header("content-length"), size.to_string());
        assert_eq!(r.body.len(), size, "size {size}: length");
        assert_eq!(sha256(&r.body), d, "size {size}: digest of the body");
        assert!(r.body == data, "size {size}: bytes differ");
    }
}

#[test]
fn ranges_across_page_and_window_edges_are_exact() {
    let api = Api::start();
    let size = 2 * WINDOW + 5;
    let data = noise(size, 7);
    let d = api.push_blob("reads/ranges", &data);
    let path = format!("/v2/reads/ranges/blobs/{d}");
    let w = WINDOW;
    let last = size - 1;
    let cases: Vec<(String, usize, usize)> = vec![
        (format!("bytes={}-{}", PAGE - 1, PAGE), PAGE - 1, PAGE),
        (format!("bytes={}-{}", w - 1, w), w - 1, w),
        (format!("bytes={w}-"), w, last),
        (format!("bytes={}-{}", w + 1, 2 * w), w + 1, 2 * w),
        (format!("bytes={last}-{last}"), last, last),
        ("bytes=-1".to_string(), last, last),
        (format!("bytes=-{}", w + 1), size - w - 1, last),
        (format!("bytes=1-{}", size * 2), 1, last),
        (format!("bytes=3-{}", w + 3), 3, w + 3),
    ];
    for (range, start, end) in cases {
        let r = api.send(api.req(Method::GET, &path).header("Range", &range));
        r.expect(206);
        assert_eq!(
            r.must_header("content-range"),
            format!("bytes {start}-{end}/{size}"),
            "{range}"
        );
        assert_eq!(
            r.must_header("content-length"),
            (end - start + 1).to_string(),
            "{range}"
        );
        assert!(r.body == data[start..=end], "{range}: bytes differ");
    }
    let r = api.send(
        api.req(Method::GET, &path)
            .header("Range", format!("bytes={size}-")),
    );
    r.expect_error(416, "RANGE_INVALID");
    assert_eq!(r.must_header("content-range"), format!("bytes */{size}"));
    // HEAD with a range sends no body and the same headers.
    let r = api.send(api.req(Method::HEAD, &path).header("Range", "bytes=0-9"));
    r.expect(206);
    assert!(r.body.is_empty());
    assert_eq!(r.must_header("content-range"), format!("bytes 0-9/{size}"));
}

#[test]
fn concurrent_readers_of_one_blob_all_get_its_bytes() {
    let api = Api::start();
    let data = noise((16 << 20) + 3, 11);
    let d = api.push_blob("reads/shared", &data);
    let url = api.url(&format!("/v2/reads/shared/blobs/{d}"));
    let ranged = format!("bytes={}-", WINDOW - 1);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..8)
            .map(|i| {
                let (c, url, ranged) = (api.c.clone(), url.clone(), ranged.clone());
                s.spawn(move || {
                    let mut rb = c.get(&url);
                    if i % 2 == 1 {
                        rb = rb.header("Range", ranged);
                    }
                    let r = rb.send().expect("get");
                    (r.status().as_u16(), r.bytes().expect("body").to_vec())
                })
            })
            .collect();
        for (i, reader) in readers.into_iter().enumerate() {
            let (status, body) = reader.join().expect("reader");
            if i % 2 == 1 {
                assert_eq!(status, 206);
                assert!(body == data[WINDOW - 1..], "reader {i}: bytes differ");
            } else {
                assert_eq!(status, 200);
                assert_eq!(sha256(&body), d, "reader {i}: digest differs");
            }
        }
    });
}

/// Reads a response to its end: the whole body, or how far it got
/// before the connection was cut.
fn read_to_end_or_cut(mut r: reqwest::blocking::Response, first: &[u8]) -> (Vec<u8>, bool) {
    let mut body = first.to_vec();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (body, true),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(_) => return (body, false),
        }
    }
}

#[test]
fn a_blob_removed_while_a_reader_streams_it_is_whole_or_cut_never_wrong() {
    let api = Api::start();
    let size = 6 * WINDOW + 17;
    let data = noise(size, 21);
    let d = api.push_blob("reads/gone", &data);
    let path = format!("/v2/reads/gone/blobs/{d}");
    let blob_dir = api
        .reg
        .root
        .join("docker/registry/v2/blobs/sha256")
        .join(&d[7..9])
        .join(&d[7..]);
    assert!(
        blob_dir.join("data").is_file(),
        "blob not where registry:2 keeps it"
    );

    // One reader started before the DELETE and the removal of the file
    // (what GC does), reading slowly; then both are removed.
    let mut r = api.c.get(api.url(&path)).send().expect("get");
    assert_eq!(r.status(), 200);
    let mut first = vec![0u8; 1 << 20];
    r.read_exact(&mut first).expect("first MiB");
    api.delete(&path).expect(202);
    std::fs::remove_dir_all(&blob_dir).expect("unlink the blob as GC does");

    let (body, whole) = read_to_end_or_cut(r, &first);
    if whole {
        assert_eq!(body.len(), size, "a body that ended cleanly is whole");
        assert_eq!(sha256(&body), d, "a whole body has the blob's digest");
    } else {
        assert!(body.len() < size);
    }
    assert!(
        body == data[..body.len()],
        "bytes served differ from the blob"
    );

    // Once deleted it is never served again.
    api.get(&path).expect_error(404, "BLOB_UNKNOWN");
    api.head(&path).expect(404);
}

#[test]
fn a_blob_file_shorter_than_its_range_cuts_the_body_instead_of_padding_it() {
    let api = Api::start();
    let size = 3 * WINDOW;
    let data = noise(size, 31);
    let d = api.push_blob("reads/short", &data);
    let file = api
        .reg
        .root
        .join("docker/registry/v2/blobs/sha256")
        .join(&d[7..9])
        .join(&d[7..])
        .join("data");
    // A damaged data dir: the file lost its tail (replaced by a shorter
    // copy, as a careless restore would; never truncated in place).
    let tmp = file.with_extension("short");
    std::fs::write(&tmp, &data[..WINDOW + 10]).unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    let r = api
        .c
        .get(api.url(&format!("/v2/reads/short/blobs/{d}")))
        .send();
    let Ok(r) = r else { return };
    let (body, whole) = read_to_end_or_cut(r, &[]);
    assert!(
        !whole || body.len() != size || body == data,
        "wrong bytes served whole"
    );
    assert!(
        body.len() <= WINDOW + 10,
        "served past the file's end: {}",
        body.len()
    );
    assert!(body == data[..body.len()], "bytes differ");
    // The server is still up.
    api.get("/v2/").expect(200);
}

#[test]
fn a_multi_window_blob_and_its_ranges_are_exact_over_h2c() {
    if !support::tools::have("curl") {
        return;
    }
    let api = Api::start();
    let size = 2 * WINDOW + 9;
    let data = noise(size, 41);
    let d = api.push_blob("reads/h2c", &data);
    let url = api.url(&format!("/v2/reads/h2c/blobs/{d}"));
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got");
    for (range, want) in [
        (None, &data[..]),
        (Some("4194300-8388610"), &data[4194300..=8388610]),
    ] {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "--http2-prior-knowledge", "-o"])
            .arg(&got)
            .args(["-w", "%{http_version} %{http_code}"]);
        if let Some(r) = range {
            cmd.args(["-r", r]);
        }
        let out = support::tools::run_ok(cmd.arg(&url), std::time::Duration::from_secs(30));
        let status = if range.is_some() { "2 206" } else { "2 200" };
        assert_eq!(out.stdout.trim(), status, "{range:?}: {}", out.all());
        let body = std::fs::read(&got).unwrap();
        assert_eq!(body.len(), want.len(), "{range:?}");
        assert!(body == want, "{range:?}: bytes differ");
    }
}
