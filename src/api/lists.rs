//! Listings: the catalog, a repository's tags and a manifest's referrers.

use axum::http::{header, StatusCode};
use serde_json::json;

use super::{json_response, set_header, ApiError, ApiResult, AppState, PullAccess, Query};
use crate::oci::{Digest, ErrorCode, MediaType, RepoName};

/// Applies `n`/`last` pagination to a sorted list; returns the page and
/// whether more entries follow.
fn paginate(all: Vec<String>, q: &Query) -> Result<(Vec<String>, bool), ApiError> {
    let after: Vec<String> = match q.get("last") {
        Some(last) => all.into_iter().filter(|x| x.as_str() > last).collect(),
        None => all,
    };
    let n = match q.get("n") {
        None => return Ok((after, false)),
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ApiError::new(ErrorCode::PaginationNumberInvalid))?,
    };
    let more = after.len() > n;
    Ok((after.into_iter().take(n).collect(), more))
}

fn link_next(path: &str, n: &str, last: &str) -> String {
    let q = serde_urlencoded::to_string([("n", n), ("last", last)]).unwrap_or_default();
    format!("<{path}?{q}>; rel=\"next\"")
}

fn page_response(
    key: &str,
    extra: Option<(&str, String)>,
    path: &str,
    all: Vec<String>,
    q: &Query,
) -> ApiResult {
    let (page, more) = paginate(all, q)?;
    let mut body = json!({ key: page });
    if let Some((k, v)) = extra {
        body[k] = json!(v);
    }
    let mut resp = json_response(StatusCode::OK, body.to_string());
    if let (true, Some(last), Some(n)) = (more, page.last(), q.get("n")) {
        set_header(&mut resp, header::LINK, link_next(path, n, last));
    }
    Ok(resp)
}

/// Lists the repositories the caller may pull (all without `access`).
pub async fn catalog(state: &AppState, q: &Query, access: Option<&PullAccess>) -> ApiResult {
    let mut repos = state.store.repositories().await?;
    if let Some(a) = access {
        repos.retain(|r| a.allows(r));
    }
    page_response("repositories", None, "/v2/_catalog", repos, q)
}

pub async fn tags(state: &AppState, repo: &RepoName, q: &Query) -> ApiResult {
    let tags = state.store.tags(repo).await?;
    let path = format!("/v2/{repo}/tags/list");
    page_response("tags", Some(("name", repo.to_string())), &path, tags, q)
}

pub async fn referrers(
    state: &AppState,
    repo: &RepoName,
    subject: &Digest,
    q: &Query,
) -> ApiResult {
    let mut list = state.store.referrers(repo, subject).await?;
    // `?artifactType=` with no value filters nothing.
    let filter = q.get("artifactType").filter(|t| !t.is_empty());
    if let Some(t) = filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(t));
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_INDEX,
        "manifests": list,
    });
    let mut resp = json_response(StatusCode::OK, body.to_string());
    set_header(&mut resp, header::CONTENT_TYPE, MediaType::OCI_INDEX);
    if filter.is_some() {
        set_header(
            &mut resp,
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType",
        );
    }
    Ok(resp)
}
