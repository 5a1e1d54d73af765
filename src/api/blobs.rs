//! Blob download (with ranges) and deletion.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{set_header, ApiError, ApiResult, AppState, DIGEST_HEADER};
use crate::notify::{Action, Hook};
use crate::oci::{Digest, ErrorCode, RepoName};

/// A `Range: bytes=...` request resolved against a blob's size.
#[derive(Debug, PartialEq)]
enum ByteRange {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(value: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    // One range only; multipart ranges are served whole, which RFC 9110 allows.
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Some((start, end.min(size.saturating_sub(1)))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, size.saturating_sub(1))),
        // A zero-length suffix selects nothing (RFC 9110 14.1.3).
        (Err(_), Ok(0)) if a.is_empty() => None,
        (Err(_), Ok(suffix)) if a.is_empty() => {
            Some((size.saturating_sub(suffix), size.saturating_sub(1)))
        }
        _ => return ByteRange::Whole,
    };
    match parsed {
        Some((start, end)) if start < size && start <= end => ByteRange::Part(start, end),
        _ => ByteRange::Unsatisfiable,
    }
}

pub async fn get(
    state: &AppState,
    ev: &Hook<'_>,
    repo: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    head_only: bool,
) -> ApiResult {
    let size = state.store.blob_size(repo, digest).await?;
    let etag = format!("\"{digest}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        set_header(&mut resp, header::ETAG, &etag);
        set_header(&mut resp, DIGEST_HEADER, digest.to_string());
        return Ok(resp);
    }
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, end) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        // `e < size`, so `e + 1` fits; saturating all the same.
        ByteRange::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e.saturating_add(1)),
        ByteRange::Unsatisfiable => {
            return Err(ApiError::new(ErrorCode::RangeInvalid)
                .header(header::CONTENT_RANGE, format!("bytes */{size}")))
        }
    };
    let body = if head_only || start == end {
        Body::empty()
    } else {
        Body::from_stream(state.store.blob_read(repo, digest, start..end).await?)
    };
    let mut resp = (status, body).into_response();
    set_header(
        &mut resp,
        header::CONTENT_LENGTH,
        end.saturating_sub(start).to_string(),
    );
    set_header(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set_header(&mut resp, DIGEST_HEADER, digest.to_string());
    set_header(&mut resp, header::ETAG, &etag);
    set_header(&mut resp, header::ACCEPT_RANGES, "bytes");
    set_header(&mut resp, header::CACHE_CONTROL, "max-age=31536000");
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(
            &mut resp,
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        );
    }
    ev.blob(Action::Pull, repo, digest, size, None);
    Ok(resp)
}

pub async fn delete(
    state: &AppState,
    ev: &Hook<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> ApiResult {
    if !state.delete_enabled {
        return Err(ApiError::unsupported(
            "deletion is disabled (storage.delete.enabled)",
        ));
    }
    state.store.blob_unlink(repo, digest).await?;
    ev.deleted(repo, digest);
    let mut resp = StatusCode::ACCEPTED.into_response();
    set_header(&mut resp, DIGEST_HEADER, digest.to_string());
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), ByteRange::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), ByteRange::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=5-"), 10), ByteRange::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), ByteRange::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), ByteRange::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=3-1"), 10), ByteRange::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), ByteRange::Whole);
    }

    #[test]
    fn ranges_at_the_edges_of_u64() {
        let max = u64::MAX;
        let r = |s: String, size| parse_range(Some(&s), size);
        assert_eq!(r(format!("bytes=0-{max}"), 10), ByteRange::Part(0, 9));
        assert_eq!(
            r(format!("bytes={max}-{max}"), 10),
            ByteRange::Unsatisfiable
        );
        assert_eq!(r(format!("bytes={max}-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(r(format!("bytes=-{max}"), 10), ByteRange::Part(0, 9));
        assert_eq!(
            r(format!("bytes=0-{max}"), max),
            ByteRange::Part(0, max - 1)
        );
        assert_eq!(r(format!("bytes=-{max}"), 0), ByteRange::Unsatisfiable);
        assert_eq!(
            r("bytes=0-18446744073709551616".into(), 10),
            ByteRange::Whole
        );
    }
}
