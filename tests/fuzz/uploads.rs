//! PATCH `Content-Range` on an upload session, through the real
//! application in-process: random ranges never get a 5xx, a 4xx is the
//! spec's JSON error and leaves the session as it was, the session's
//! reported `Range` always matches what was accepted, and the blob it
//! makes is exactly the accepted chunks.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use sha2::Digest as _;
use tower::ServiceExt;

use crate::support::inprocess::{Answer, App};
use crate::{cases, is_spec_error, runtime};

/// One PATCH: its body length and how its Content-Range is written.
#[derive(Debug, Clone)]
enum ChunkRange {
    /// None at all (the chunk is appended).
    Absent,
    /// The right one: `<size>-<size+len-1>`, in one of the accepted spellings.
    Right(u8),
    /// `<a>-<b>` with offsets relative to where the upload stands.
    Off(i64, i64),
    /// Anything.
    Raw(Vec<u8>),
}

fn chunk() -> impl Strategy<Value = (usize, ChunkRange)> {
    let range = prop_oneof![
        2 => Just(ChunkRange::Absent),
        4 => (0..4u8).prop_map(ChunkRange::Right),
        3 => (-3..4i64, -3..40i64).prop_map(|(a, b)| ChunkRange::Off(a, b)),
        1 => prop_oneof![
            "[0-9 /*a-z-]{0,16}".prop_map(String::into_bytes),
            Just(format!("0-{}", u64::MAX).into_bytes()),
            Just(b"18446744073709551615-18446744073709551615".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ].prop_map(ChunkRange::Raw),
    ];
    (0..40usize, range)
}

async fn send(
    app: &App,
    method: Method,
    uri: &str,
    range: Option<HeaderValue>,
    body: Vec<u8>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(r) = range {
        req = req.header(header::CONTENT_RANGE, r);
    }
    let req = req
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// The `Range` a session of `size` bytes reports (registry:2's form).
fn reported(size: usize) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[test]
fn random_content_ranges_keep_an_upload_session_consistent() {
    let rt = runtime();
    let _in_rt = rt.enter();
    let app = App::open();
    let mut runner =
        proptest::test_runner::TestRunner::new(cases(300, "proptest-regressions/fuzz/uploads.txt"));
    let strategy = (proptest::collection::vec(chunk(), 1..6), any::<u8>());
    let result = runner.run(&strategy, |(chunks, seed)| {
        rt.block_on(async {
            let a = send(
                &app,
                Method::POST,
                "/v2/fuzz/up/blobs/uploads/",
                None,
                Vec::new(),
            )
            .await;
            prop_assert_eq!(a.status, StatusCode::ACCEPTED);
            let mut location = a.header("location").unwrap().to_string();
            let mut accepted: Vec<u8> = Vec::new();
            for (i, (len, range)) in chunks.iter().enumerate() {
                let data: Vec<u8> = (0..*len)
                    .map(|j| seed.wrapping_add((i * 40 + j) as u8))
                    .collect();
                let size = accepted.len() as i64;
                let last = size + *len as i64 - 1;
                let header = match range {
                    ChunkRange::Absent => None,
                    ChunkRange::Right(0) => Some(format!("{size}-{last}")),
                    ChunkRange::Right(1) => Some(format!("bytes {size}-{last}")),
                    ChunkRange::Right(2) => Some(format!("bytes {size}-{last}/*")),
                    ChunkRange::Right(_) => Some(format!("bytes={size}-{last}")),
                    ChunkRange::Off(a, b) => Some(format!("{}-{}", size + a, size + b)),
                    ChunkRange::Raw(r) => Some(String::from_utf8_lossy(r).into_owned()),
                };
                let value = match (&header, range) {
                    (_, ChunkRange::Raw(r)) => match HeaderValue::from_bytes(r) {
                        Ok(v) => Some(v),
                        Err(_) => continue,
                    },
                    (Some(h), _) => Some(HeaderValue::from_str(h).unwrap()),
                    (None, _) => None,
                };
                // What must happen: the chunk lands where the upload
                // stands (with a length to match) or is refused.
                let must_accept = match range {
                    ChunkRange::Absent => true,
                    ChunkRange::Right(3) => false, // `bytes=` is no Content-Range form Berth knows
                    ChunkRange::Right(_) => *len > 0,
                    ChunkRange::Off(a, b) => *a == 0 && size + b == last && *len > 0,
                    ChunkRange::Raw(_) => false,
                };
                let a = send(&app, Method::PATCH, &location, value, data.clone()).await;
                let shown = format!("chunk {i} of {len} bytes at {size}, Content-Range {header:?}");
                prop_assert!(!a.status.is_server_error(), "{}: {}", shown, a.status);
                if a.status == StatusCode::ACCEPTED {
                    accepted.extend_from_slice(&data);
                    prop_assert_eq!(
                        a.header("range").map(str::to_string),
                        Some(reported(accepted.len())),
                        "{}",
                        shown
                    );
                    location = a.header("location").unwrap().to_string();
                } else {
                    prop_assert!(a.status.is_client_error(), "{}: {}", shown, a.status);
                    prop_assert!(
                        is_spec_error(&a.body),
                        "{}: {} {:?}",
                        shown,
                        a.status,
                        a.body
                    );
                    prop_assert!(
                        !must_accept,
                        "{}: refused with {} {:?}",
                        shown,
                        a.status,
                        a.json()
                    );
                    if a.status == StatusCode::RANGE_NOT_SATISFIABLE
                        && a.header("location").is_some()
                    {
                        prop_assert_eq!(a.header("location"), Some(location.as_str()));
                    }
                }
                if must_accept {
                    prop_assert_eq!(a.status, StatusCode::ACCEPTED, "{}", shown);
                }
                // The session says what it holds.
                let s = send(&app, Method::GET, &location, None, Vec::new()).await;
                prop_assert_eq!(s.status, StatusCode::NO_CONTENT, "{}", shown);
                prop_assert_eq!(
                    s.header("range").map(str::to_string),
                    Some(reported(accepted.len())),
                    "{}",
                    shown
                );
            }
            // The blob is exactly the accepted chunks.
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&accepted)));
            let sep = if location.contains('?') { '&' } else { '?' };
            let a = send(
                &app,
                Method::PUT,
                &format!("{location}{sep}digest={digest}"),
                None,
                Vec::new(),
            )
            .await;
            prop_assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
            let b = app.get(&format!("/v2/fuzz/up/blobs/{digest}"), None).await;
            prop_assert_eq!(b.status, StatusCode::OK);
            prop_assert!(b.body == accepted);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

#[test]
fn a_content_range_of_the_whole_u64_space_is_refused_not_a_panic() {
    let rt = runtime();
    let _in_rt = rt.enter();
    let app = App::open();
    rt.block_on(async {
        let a = send(
            &app,
            Method::POST,
            "/v2/fuzz/up/blobs/uploads/",
            None,
            Vec::new(),
        )
        .await;
        let location = a.header("location").unwrap().to_string();
        let range = HeaderValue::from_static("0-18446744073709551615");
        let a = send(&app, Method::PATCH, &location, Some(range), Vec::new()).await;
        assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(is_spec_error(&a.body));
    });
}
