//! Blob upload sessions: start (or mount, or monolithic), chunks, status,
//! finish and cancel.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    body_stream, body_timed_out, set_header, ApiError, ApiResult, AppState, PullAccess, Query,
    Urls, DIGEST_HEADER, UPLOAD_UUID_HEADER,
};
use crate::notify::{Action, Hook};
use crate::oci::{Digest, ErrorCode, RepoName};
use crate::storage::StoreError;

/// A storage failure as the client sees it: a body that stalled is a 408.
fn store_error(e: StoreError) -> ApiError {
    match &e {
        StoreError::Body(io) => body_timed_out(io).unwrap_or_else(|| e.into()),
        _ => e.into(),
    }
}

fn query_digest(q: &Query) -> Result<Option<Digest>, ApiError> {
    q.get("digest")
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| ApiError::digest_invalid(e.to_string()))
        })
        .transpose()
}

/// 201 for a blob now in `repo`.
fn created(urls: &Urls, repo: &RepoName, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    set_header(
        &mut resp,
        header::LOCATION,
        urls.v2(format_args!("{repo}/blobs/{digest}")),
    );
    set_header(&mut resp, DIGEST_HEADER, digest.to_string());
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    resp
}

/// A response describing an open session of `size` bytes.
fn session(status: StatusCode, urls: &Urls, repo: &RepoName, id: &str, size: u64) -> Response {
    let mut resp = status.into_response();
    set_header(
        &mut resp,
        header::LOCATION,
        urls.v2(format_args!("{repo}/blobs/uploads/{id}")),
    );
    set_header(
        &mut resp,
        header::RANGE,
        format!("0-{}", size.saturating_sub(1)),
    );
    set_header(&mut resp, UPLOAD_UUID_HEADER, id);
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    resp
}

/// Starts an upload: a cross-repository mount when `?mount=&from=` name a
/// blob the source has and the caller may pull from it (`access`), else a
/// monolithic upload with `?digest=`, else a session.
pub async fn start(
    state: &AppState,
    urls: &Urls,
    ev: &Hook<'_>,
    repo: &RepoName,
    q: &Query,
    access: Option<&PullAccess>,
    body: Body,
) -> ApiResult {
    // A mount with a malformed digest or source, or from a repository the
    // caller may not pull, falls back to a normal upload, as the spec
    // allows: the answer is the same whether the blob is there or not.
    let mount = q.get("mount").and_then(|d| d.parse::<Digest>().ok());
    let from = q
        .get("from")
        .and_then(|f| f.parse::<RepoName>().ok())
        .filter(|f| access.is_none_or(|a| a.allows(f.as_str())));
    if let (Some(digest), Some(from)) = (mount, from) {
        if state.store.blob_mount(repo, &from, &digest).await? {
            emit_blob(state, ev, Action::Mount, repo, &digest, Some(&from)).await;
            return Ok(created(urls, repo, &digest));
        }
    }
    let digest = query_digest(q)?;
    let id = state.store.upload_start(repo).await?;
    match digest {
        Some(digest) => {
            let result = state
                .store
                .upload_finish(repo, &id, &digest, Some(body_stream(body)))
                .await;
            if result.is_err() {
                let _ = state.store.upload_cancel(repo, &id).await;
            }
            result.map_err(store_error)?;
            emit_blob(state, ev, Action::Push, repo, &digest, None).await;
            Ok(created(urls, repo, &digest))
        }
        None => Ok(session(StatusCode::ACCEPTED, urls, repo, &id, 0)),
    }
}

pub async fn status(state: &AppState, urls: &Urls, repo: &RepoName, id: &str) -> ApiResult {
    let size = state.store.upload_size(repo, id).await?;
    Ok(session(StatusCode::NO_CONTENT, urls, repo, id, size))
}

/// A chunk whose `Content-Range` cannot be applied (416).
fn range_invalid(why: &str) -> ApiError {
    ApiError::new(ErrorCode::BlobUploadInvalid)
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .message(why)
}

/// Parses `Content-Range: <start>-<end>` (a `bytes ` prefix is tolerated).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || range_invalid("Content-Range must be <start>-<end>");
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes").map(str::trim).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b) = (
        a.trim().parse::<u64>().map_err(|_| bad())?,
        b.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// The length of the inclusive range `a-b` (`b >= a`), if it fits a u64.
fn range_len(a: u64, b: u64) -> Option<u64> {
    b.checked_sub(a)?.checked_add(1)
}

/// The chunk's `Content-Range`, checked against its `Content-Length`.
fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let range = content_range(headers)?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some((a, b)), Some(len)) = (range, len) {
        // `b - a + 1` overflows for `0-18446744073709551615`: no body is that long.
        if range_len(a, b) != Some(len) {
            return Err(range_invalid("Content-Range and Content-Length disagree"));
        }
    }
    Ok(range)
}

pub async fn patch(
    state: &AppState,
    urls: &Urls,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let range = chunk_range(headers)?;
    let size = state
        .store
        .upload_append(repo, id, range.map(|r| r.0), body_stream(body))
        .await
        .map_err(|e| with_location(store_error(e), urls, repo, id))?;
    Ok(session(StatusCode::ACCEPTED, urls, repo, id, size))
}

/// Adds the session's Location and id to an error (e.g. a 416), so a client
/// can ask for the status and resume.
fn with_location(e: ApiError, urls: &Urls, repo: &RepoName, id: &str) -> ApiError {
    if e.status == StatusCode::RANGE_NOT_SATISFIABLE {
        e.header(
            header::LOCATION,
            urls.v2(format_args!("{repo}/blobs/uploads/{id}")),
        )
        .header(UPLOAD_UUID_HEADER, id.to_string())
    } else {
        e
    }
}

// The request's parts, each a handler argument as in the other handlers.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    state: &AppState,
    urls: &Urls,
    ev: &Hook<'_>,
    repo: &RepoName,
    id: &str,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let digest = query_digest(q)?
        .ok_or_else(|| ApiError::digest_invalid("the digest query parameter is required"))?;
    // A last chunk sent with a Content-Range must land where the upload
    // stands, like a PATCH; without one it is simply appended. An empty
    // body has no range to check, whatever header came with it.
    let empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    let range = if empty { None } else { chunk_range(headers)? };
    let body = match range {
        Some((offset, _)) => {
            state
                .store
                .upload_append(repo, id, Some(offset), body_stream(body))
                .await
                .map_err(|e| with_location(store_error(e), urls, repo, id))?;
            None
        }
        None => Some(body_stream(body)),
    };
    let result = state.store.upload_finish(repo, id, &digest, body).await;
    if let Err(crate::storage::StoreError::DigestMismatch { .. }) = &result {
        // The session now holds content that is not the blob the client
        // meant (the rejected last chunk included): end it, as registry:2
        // does, so a retry starts a clean upload instead of failing again.
        let _ = state.store.upload_cancel(repo, id).await;
    }
    result.map_err(store_error)?;
    emit_blob(state, ev, Action::Push, repo, &digest, None).await;
    Ok(created(urls, repo, &digest))
}

/// A blob event, with the blob's size (one stat, only when notifications are on).
async fn emit_blob(
    state: &AppState,
    ev: &Hook<'_>,
    action: Action,
    repo: &RepoName,
    digest: &Digest,
    from: Option<&RepoName>,
) {
    if ev.enabled() {
        let size = state.store.blob_size(repo, digest).await.unwrap_or(0);
        ev.blob(action, repo, digest, size, from);
    }
}

pub async fn cancel(state: &AppState, repo: &RepoName, id: &str) -> ApiResult {
    state.store.upload_cancel(repo, id).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(range: &str, len: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, range.parse().unwrap());
        h.insert(header::CONTENT_LENGTH, len.parse().unwrap());
        h
    }

    #[test]
    fn range_lengths_at_the_edges() {
        assert_eq!(range_len(0, 0), Some(1));
        assert_eq!(range_len(5, 9), Some(5));
        assert_eq!(range_len(0, u64::MAX), None);
        assert_eq!(range_len(1, u64::MAX), Some(u64::MAX));
        assert_eq!(range_len(u64::MAX, u64::MAX), Some(1));
        assert_eq!(range_len(3, 2), None);
    }

    #[test]
    fn chunk_ranges_that_overflow_are_refused() {
        let max = u64::MAX;
        for (range, len) in [
            (format!("0-{max}"), "0"),
            (format!("0-{max}"), "1"),
            (format!("bytes 0-{max}/*"), "0"),
            (format!("{max}-{max}"), "0"),
        ] {
            let e = chunk_range(&headers(&range, len)).unwrap_err();
            assert_eq!(e.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        }
        assert_eq!(
            chunk_range(&headers(&format!("{max}-{max}"), "1")).unwrap(),
            Some((max, max))
        );
        // A number past u64 is no range at all.
        let e = chunk_range(&headers("0-18446744073709551616", "0")).unwrap_err();
        assert_eq!(e.status, StatusCode::RANGE_NOT_SATISFIABLE);
    }
}
