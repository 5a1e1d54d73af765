//! Blob upload sessions: start (or mount, or monolithic), chunks, status,
//! finish and cancel.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    body_stream, set_header, ApiError, ApiResult, AppState, Query, DIGEST_HEADER,
    UPLOAD_UUID_HEADER,
};
use crate::oci::{Digest, RepoName};

fn query_digest(q: &Query) -> Result<Option<Digest>, ApiError> {
    q.get("digest")
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| ApiError::digest_invalid(e.to_string()))
        })
        .transpose()
}

/// 201 for a blob now in `repo`.
fn created(repo: &RepoName, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    set_header(
        &mut resp,
        header::LOCATION,
        format!("/v2/{repo}/blobs/{digest}"),
    );
    set_header(&mut resp, DIGEST_HEADER, digest.to_string());
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    resp
}

/// A response describing an open session of `size` bytes.
fn session(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response {
    let mut resp = status.into_response();
    set_header(
        &mut resp,
        header::LOCATION,
        format!("/v2/{repo}/blobs/uploads/{id}"),
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

pub async fn start(state: &AppState, repo: &RepoName, q: &Query, body: Body) -> ApiResult {
    // A mount with a malformed digest or source falls back to a normal
    // upload, as the spec asks.
    let mount = q.get("mount").and_then(|d| d.parse::<Digest>().ok());
    let from = q.get("from").and_then(|f| f.parse::<RepoName>().ok());
    if let (Some(digest), Some(from)) = (mount, from) {
        if state.store.blob_mount(repo, &from, &digest).await? {
            return Ok(created(repo, &digest));
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
            result?;
            Ok(created(repo, &digest))
        }
        None => Ok(session(StatusCode::ACCEPTED, repo, &id, 0)),
    }
}

pub async fn status(state: &AppState, repo: &RepoName, id: &str) -> ApiResult {
    let size = state.store.upload_size(repo, id).await?;
    Ok(session(StatusCode::NO_CONTENT, repo, id, size))
}

/// Parses `Content-Range: <start>-<end>` (a `bytes ` prefix is tolerated).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            "Content-Range must be <start>-<end>",
        )
    };
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

/// The chunk's `Content-Range`, checked against its `Content-Length`.
fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let range = content_range(headers)?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some((a, b)), Some(len)) = (range, len) {
        if b - a + 1 != len {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                "Content-Range and Content-Length disagree",
            ));
        }
    }
    Ok(range)
}

pub async fn patch(
    state: &AppState,
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
        .map_err(|e| with_location(e.into(), repo, id))?;
    Ok(session(StatusCode::ACCEPTED, repo, id, size))
}

/// Adds the session's Location and id to an error (e.g. a 416), so a client
/// can ask for the status and resume.
fn with_location(e: ApiError, repo: &RepoName, id: &str) -> ApiError {
    if e.status == StatusCode::RANGE_NOT_SATISFIABLE {
        e.header(header::LOCATION, format!("/v2/{repo}/blobs/uploads/{id}"))
            .header(UPLOAD_UUID_HEADER, id.to_string())
    } else {
        e
    }
}

pub async fn finish(
    state: &AppState,
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
                .map_err(|e| with_location(e.into(), repo, id))?;
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
    result?;
    Ok(created(repo, &digest))
}

pub async fn cancel(state: &AppState, repo: &RepoName, id: &str) -> ApiResult {
    state.store.upload_cancel(repo, id).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    Ok(resp)
}
