//! Listings: the catalog, a repository's tags and a manifest's referrers.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::json;

use super::{json_response, set_header, ApiError, ApiResult, AppState, PullAccess, Query, Urls};
use crate::oci::{Digest, ErrorCode, MediaType, RepoName};
use crate::storage::ReferrersQuery;

/// `Link: <url>; rel="next"` for the page after this one.
fn link_next(url: &str, params: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    format!("<{url}?{q}>; rel=\"next\"")
}

/// `n`, when given: a count, else `PAGINATION_NUMBER_INVALID`.
fn parse_n(q: &Query) -> Result<Option<usize>, ApiError> {
    q.get("n")
        .map(|n| n.parse::<usize>())
        .transpose()
        .map_err(|_| ApiError::new(ErrorCode::PaginationNumberInvalid))
}

/// The response for one page; `Link` names the next when `more`.
fn page_of(
    key: &str,
    extra: Option<(&str, String)>,
    url: &str,
    page: Vec<String>,
    more: bool,
    q: &Query,
) -> axum::response::Response {
    let mut body = json!({ key: page });
    if let Some((k, v)) = extra {
        body[k] = json!(v);
    }
    let mut resp = json_response(StatusCode::OK, body.to_string());
    if let (true, Some(last), Some(n)) = (more, page.last(), q.get("n")) {
        set_header(
            &mut resp,
            header::LINK,
            link_next(url, &[("n", n), ("last", last)]),
        );
    }
    resp
}

/// Lists the repositories the caller may pull (all without `access`).
pub async fn catalog(
    state: &AppState,
    urls: &Urls,
    q: &Query,
    access: Option<&PullAccess>,
) -> ApiResult {
    let n = parse_n(q);
    // A bad `n` lists nothing: only the store's errors come first.
    let count = n.as_ref().map_or(Some(0), |c| *c);
    let allow = |r: &str| access.is_none_or(|a| a.allows(r));
    let (page, more) = state
        .store
        .repositories_page(q.get("last"), count, &allow)
        .await?;
    n?;
    Ok(page_of(
        "repositories",
        None,
        &urls.v2("_catalog"),
        page,
        more,
        q,
    ))
}

pub async fn tags(state: &AppState, urls: &Urls, repo: &RepoName, q: &Query) -> ApiResult {
    // The store's errors first (an unknown repository is NAME_UNKNOWN
    // whatever `n` says), then the count.
    let n = parse_n(q);
    // A bad `n` lists nothing: only the store's errors come first.
    let count = n.as_ref().map_or(Some(0), |c| *c);
    let (page, more) = state.store.tags_page(repo, q.get("last"), count).await?;
    n?;
    let url = urls.v2(format_args!("{repo}/tags/list"));
    let extra = Some(("name", repo.to_string()));
    Ok(page_of("tags", extra, &url, page, more, q))
}

/// One page of a subject's referrers, in digest order, within the page
/// limits (count and bytes); `Link: <...>; rel="next"` names the next page
/// (the spec lets a registry paginate referrers). The body is streamed from
/// the records written at push.
pub async fn referrers(
    state: &AppState,
    urls: &Urls,
    repo: &RepoName,
    subject: &Digest,
    q: &Query,
) -> ApiResult {
    // `?artifactType=` with no value filters nothing.
    let filter = q.get("artifactType").filter(|t| !t.is_empty());
    let after = match q.get("last") {
        None => None,
        Some(last) => Some(last.parse::<Digest>().map_err(|_| {
            ApiError::new(ErrorCode::PaginationNumberInvalid)
                .message("`last` must be the digest a previous page's Link named")
        })?),
    };
    let query = ReferrersQuery {
        after,
        artifact_type: filter.map(str::to_string),
        max_count: state.limits.get().max_referrers_page,
        ..ReferrersQuery::first()
    };
    let page = state.store.referrers(repo, subject, &query).await?;
    let head = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":["#,
        MediaType::OCI_INDEX
    );
    let body = stream::iter([Ok(Bytes::from(head))])
        .chain(page.descriptors)
        .chain(stream::iter([Ok(Bytes::from_static(b"]}"))]));
    let mut resp = (StatusCode::OK, Body::from_stream(body)).into_response();
    set_header(&mut resp, header::CONTENT_TYPE, MediaType::OCI_INDEX);
    if let Some(next) = &page.next {
        let next = next.to_string();
        let mut params = vec![("last", next.as_str())];
        if let Some(t) = filter {
            params.push(("artifactType", t));
        }
        let url = urls.v2(format_args!("{repo}/referrers/{subject}"));
        set_header(&mut resp, header::LINK, link_next(&url, &params));
    }
    if filter.is_some() {
        set_header(
            &mut resp,
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType",
        );
    }
    Ok(resp)
}
