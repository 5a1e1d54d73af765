//! `Range` on blob GET/HEAD, through the real application in-process:
//! random header values never get a 5xx, a 4xx is the spec's JSON error,
//! and a single satisfiable range is answered with exactly those bytes.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

use crate::support::inprocess::App;
use crate::{cases, is_spec_error, runtime};

/// The blob pushed first: `SIZE` bytes, each its index mod 251.
const SIZE: u64 = 1000;

fn range_header() -> impl Strategy<Value = Vec<u8>> {
    let num = || {
        prop_oneof![
            4 => (0..SIZE + 20).prop_map(|n| n.to_string()),
            1 => Just(String::new()),
            1 => Just(u64::MAX.to_string()),
            1 => Just("18446744073709551616".to_string()),
            1 => "[0-9 +-]{1,4}",
        ]
    };
    prop_oneof![
        6 => (num(), num()).prop_map(|(a, b)| format!("bytes={a}-{b}").into_bytes()),
        2 => (num(), num(), "(bytes|BYTES|bits|bytes |)", "(=|==| = |)", "(,|, |)", num())
            .prop_map(|(a, b, u, eq, comma, c)| format!(" {u}{eq}{a}-{b}{comma}{c}- ").into_bytes()),
        1 => "[ -~\\t]{0,24}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

/// A `bytes=a-b` or `bytes=-n` header the model can answer, resolved
/// against a blob of `size`: `Some(Some((start, end)))` for 206,
/// `Some(None)` for 416, `None` when the model does not say.
fn model(h: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = h.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
        if a > b {
            return None; // invalid: served whole
        }
        return Some((a < size).then(|| (a, b.min(size - 1))));
    }
    if digits(a) && b.is_empty() {
        let a = a.parse::<u64>().ok()?;
        return Some((a < size).then(|| (a, size - 1)));
    }
    if a.is_empty() && digits(b) {
        let n = b.parse::<u64>().ok()?;
        return Some((n > 0 && size > 0).then(|| (size - n.min(size), size - 1)));
    }
    None
}

#[test]
fn any_range_header_gets_the_right_bytes_or_the_spec_error() {
    let rt = runtime();
    let _in_rt = rt.enter();
    let app = App::open();
    let blob: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let digest = rt.block_on(app.push_blob("fuzz/range", &blob, None));
    let uri = format!("/v2/fuzz/range/blobs/{digest}");
    let mut runner =
        proptest::test_runner::TestRunner::new(cases(2000, "proptest-regressions/fuzz/ranges.txt"));
    let strategy = (range_header(), any::<bool>());
    let result = runner.run(&strategy, |(raw, head)| {
        let Ok(value) = HeaderValue::from_bytes(&raw) else {
            return Ok(());
        };
        let method = if head { Method::HEAD } else { Method::GET };
        let req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::RANGE, value)
            .body(Body::empty())
            .unwrap();
        let (parts, body) = rt.block_on(async {
            let resp = app.router.clone().oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            (parts, body.collect().await.unwrap().to_bytes().to_vec())
        });
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let status = parts.status;
        prop_assert!(!status.is_server_error(), "{:?}: {}", shown, status);
        let hdr = |n: header::HeaderName| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if status.is_client_error() && !head {
            prop_assert!(is_spec_error(&body), "{:?}: {} {:?}", shown, status, body);
        }
        match status {
            StatusCode::OK => {
                if !head {
                    prop_assert!(body == blob, "{:?}: 200 with other bytes", shown);
                }
            }
            StatusCode::PARTIAL_CONTENT => {
                let cr = hdr(header::CONTENT_RANGE).unwrap_or_default();
                let (s, e) = cr
                    .strip_prefix("bytes ")
                    .and_then(|r| r.strip_suffix(&format!("/{SIZE}")))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(s, e)| Some((s.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
                    .unwrap_or((1, 0));
                prop_assert!(s <= e && e < SIZE, "{:?}: Content-Range {:?}", shown, cr);
                prop_assert_eq!(hdr(header::CONTENT_LENGTH), Some((e - s + 1).to_string()));
                if !head {
                    prop_assert!(
                        body == blob[s as usize..=e as usize],
                        "{:?}: wrong bytes",
                        shown
                    );
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                prop_assert_eq!(hdr(header::CONTENT_RANGE), Some(format!("bytes */{SIZE}")));
                if !head {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    prop_assert_eq!(v["errors"][0]["code"].as_str(), Some("RANGE_INVALID"));
                }
            }
            other => prop_assert!(false, "{:?}: {}", shown, other),
        }
        if let Some(want) = std::str::from_utf8(&raw).ok().and_then(|h| model(h, SIZE)) {
            match want {
                Some((s, e)) => {
                    prop_assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{:?}", shown);
                    prop_assert_eq!(
                        hdr(header::CONTENT_RANGE),
                        Some(format!("bytes {s}-{e}/{SIZE}"))
                    );
                }
                None => prop_assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{:?}", shown),
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}
