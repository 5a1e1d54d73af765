//! Manifest fetch, push and delete, by tag or digest.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{set_header, ApiError, ApiResult, AppState, Query, Urls, DIGEST_HEADER};
use crate::notify::{Action, Hook, ManifestRef};
use crate::oci::{Digest, ErrorCode, Manifest, Reference, RepoName, Tag, MAX_MANIFEST_BYTES};
use crate::storage::{ManifestInfo, StoredManifest};

const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");

async fn lookup(
    state: &AppState,
    repo: &RepoName,
    r: &Reference,
) -> Result<StoredManifest, ApiError> {
    Ok(match r {
        Reference::Tag(t) => state.store.manifest_by_tag(repo, t).await?,
        Reference::Digest(d) => state.store.manifest_by_digest(repo, d).await?,
    })
}

fn tag_of(r: &Reference) -> Option<&Tag> {
    match r {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    }
}

pub async fn get(
    state: &AppState,
    ev: &Hook<'_>,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    head_only: bool,
) -> ApiResult {
    // A HEAD reads no manifest: what it answers was recorded at push.
    let (info, bytes) = if head_only {
        (state.store.manifest_info(repo, reference).await?, None)
    } else {
        let m = lookup(state, repo, reference).await?;
        let info = ManifestInfo {
            digest: m.digest,
            media_type: m.media_type,
            size: m.bytes.len() as u64,
        };
        (info, Some(m.bytes))
    };
    let etag = format!("\"{}\"", info.digest);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut resp = match (not_modified, bytes) {
        (true, _) => StatusCode::NOT_MODIFIED.into_response(),
        (false, None) => (StatusCode::OK, Body::empty()).into_response(),
        (false, Some(b)) => (StatusCode::OK, Body::from(b)).into_response(),
    };
    if !not_modified {
        set_header(&mut resp, header::CONTENT_LENGTH, info.size.to_string());
        set_header(&mut resp, header::CONTENT_TYPE, info.media_type.as_str());
    }
    set_header(&mut resp, DIGEST_HEADER, info.digest.to_string());
    set_header(&mut resp, header::ETAG, etag);
    let pulled = ManifestRef {
        digest: &info.digest,
        media_type: info.media_type.as_str(),
        size: info.size,
        parsed: None,
    };
    ev.manifest(Action::Pull, repo, tag_of(reference), &pulled);
    Ok(resp)
}

// The request's parts, each a handler argument as in the other handlers.
#[allow(clippy::too_many_arguments)]
pub async fn put(
    state: &AppState,
    urls: &Urls,
    ev: &Hook<'_>,
    repo: &RepoName,
    reference: &Reference,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    // end-7b: `PUT /manifests/<digest>?tag=a&tag=b` tags the manifest in one go.
    let mut tags = q
        .get_all("tag")
        .map(|t| t.parse::<Tag>().map_err(ApiError::tag_invalid))
        .collect::<Result<Vec<Tag>, ApiError>>()?;
    if let Reference::Tag(t) = reference {
        tags.insert(0, t.clone());
    }
    let max_tags = state.limits.get().max_tags_per_put;
    if tags.len() > max_tags {
        tracing::info!(
            tags = tags.len(),
            max_tags,
            "manifest PUT refused: too many tags"
        );
        return Err(ApiError::tag_invalid(format!(
            "{} tags in one request; at most {max_tags} (limits.max_tags_per_put)",
            tags.len()
        )));
    }
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                ApiError::new(ErrorCode::SizeInvalid)
                    .status(StatusCode::PAYLOAD_TOO_LARGE)
                    .message(format!(
                        "manifest is larger than {MAX_MANIFEST_BYTES} bytes"
                    ))
            } else if super::is_body_idle(&e) {
                tracing::info!("request body stalled: {e}");
                ApiError::new(ErrorCode::ManifestInvalid)
                    .status(StatusCode::REQUEST_TIMEOUT)
                    .message(e.to_string())
            } else {
                ApiError::manifest_invalid(format!("the manifest could not be read: {e}"))
            }
        })?;
    let algorithm = match reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => crate::oci::Algorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &bytes);
    if let Reference::Digest(d) = reference {
        if *d != digest {
            return Err(ApiError::digest_invalid(format!(
                "manifest digest is {digest}, not {d}"
            )));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let manifest = Manifest::parse(&bytes, content_type)
        .map_err(|e| ApiError::manifest_invalid(e.to_string()))?;
    let size = bytes.len() as u64;
    state
        .store
        .manifest_put(repo, &tags, bytes, &manifest, &digest)
        .await?;
    emit_push(ev, repo, &digest, &manifest, size, &tags);
    let mut resp = StatusCode::CREATED.into_response();
    set_header(
        &mut resp,
        header::LOCATION,
        urls.v2(format_args!("{repo}/manifests/{digest}")),
    );
    set_header(&mut resp, DIGEST_HEADER, digest.to_string());
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    if matches!(reference, Reference::Digest(_)) {
        for t in &tags {
            if let Ok(v) = HeaderValue::from_str(t.as_str()) {
                resp.headers_mut().append(OCI_TAG, v);
            }
        }
    }
    if let Some(subject) = &manifest.subject {
        set_header(&mut resp, OCI_SUBJECT, subject.digest.to_string());
    }
    Ok(resp)
}

/// registry:2 emits one push event per tag named (the first, by reference,
/// or from `?tag=`), or one without a tag for a push by digest alone.
fn emit_push(
    ev: &Hook<'_>,
    repo: &RepoName,
    digest: &Digest,
    m: &Manifest,
    size: u64,
    tags: &[Tag],
) {
    let pushed = ManifestRef {
        digest,
        media_type: m.stored_media_type.as_str(),
        size,
        parsed: Some(m),
    };
    if tags.is_empty() {
        ev.manifest(Action::Push, repo, None, &pushed);
    }
    for t in tags {
        ev.manifest(Action::Push, repo, Some(t), &pushed);
    }
}

pub async fn delete(
    state: &AppState,
    ev: &Hook<'_>,
    repo: &RepoName,
    reference: &Reference,
) -> ApiResult {
    if !state.delete_enabled {
        return Err(ApiError::unsupported(
            "deletion is disabled (storage.delete.enabled)",
        ));
    }
    match reference {
        Reference::Tag(t) => {
            state.store.tag_delete(repo, t).await?;
            ev.tag_deleted(repo, t);
        }
        Reference::Digest(d) => {
            state.store.manifest_delete(repo, d).await?;
            ev.deleted(repo, d);
        }
    }
    let mut resp: Response = StatusCode::ACCEPTED.into_response();
    set_header(&mut resp, header::CONTENT_LENGTH, "0");
    Ok(resp)
}
