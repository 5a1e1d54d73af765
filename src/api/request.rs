//! What a request asks for, parsed once at the edge: its [`Route`] and its
//! query, and the extensions a layer in front of the API (authorization)
//! fills in to limit what the handlers do.

use std::sync::Arc;

use axum::http::Uri;

use super::route::Route;
use super::ApiError;

/// A request's route and query, parsed once by the outer layers and
/// handed on as a request extension (`Arc<ParsedRequest>`), so that every
/// layer and the handler see the same reading of the URI.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The endpoint, or why the path names none.
    pub route: Result<Route, ApiError>,
    pub query: Query,
}

impl ParsedRequest {
    pub fn of(uri: &Uri) -> ParsedRequest {
        ParsedRequest::under("", uri)
    }

    /// The route of a request to a registry served under `prefix`
    /// (`http.prefix`, normalised as `/registry`). The prefix is compared
    /// byte for byte with the path as sent, before any decoding and with
    /// no `.`/`..` resolution (nothing in the request path is resolved,
    /// ever), so `/registry/../v2/`, `/registry%2Fv2/` or `/v2/` are no
    /// API path: they answer 404 NOT_FOUND, as registry:2 does outside its
    /// prefix.
    pub fn under(prefix: &str, uri: &Uri) -> ParsedRequest {
        let route = match uri.path().strip_prefix(prefix) {
            Some(rest) if prefix.is_empty() || rest.starts_with('/') => Route::parse(rest),
            _ => Err(ApiError::not_found()),
        };
        ParsedRequest {
            route,
            query: Query::of(uri),
        }
    }
}

/// Query parameters of a request, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// A query that is not `application/x-www-form-urlencoded` counts as none.
    pub fn of(uri: &Uri) -> Query {
        Query(
            uri.query()
                .and_then(|q| serde_urlencoded::from_str(q).ok())
                .unwrap_or_default(),
        )
    }

    /// Every value of a repeated parameter (`?tag=a&tag=b`).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Which repositories the caller may pull, as a request extension that an
/// authorization layer inserts. The catalog lists only these, and a
/// cross-repository mount from any other repository becomes a plain upload
/// (as the spec allows), so a mount is never a way to read what the caller
/// may not. Without it (an open registry) every repository may be pulled.
#[derive(Clone)]
pub struct PullAccess(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl PullAccess {
    pub fn new(allows: impl Fn(&str) -> bool + Send + Sync + 'static) -> PullAccess {
        PullAccess(Arc::new(allows))
    }

    pub fn allows(&self, repo: &str) -> bool {
        (self.0)(repo)
    }
}

impl std::fmt::Debug for PullAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullAccess(..)")
    }
}
