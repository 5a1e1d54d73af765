//! The HTTP API (OCI Distribution Spec v1.1 / Docker Registry HTTP API V2).
//! Handlers are thin: parse the request into `oci` types, call the store,
//! build the response. Every failure is an [`ApiError`].

mod blobs;
mod error;
mod lists;
mod manifests;
pub(crate) mod route;
mod uploads;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

pub use error::ApiError;
use route::Route;

use crate::storage::{ByteStream, Store};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub delete_enabled: bool,
}

pub type ApiResult = Result<Response, ApiError>;

pub const DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID_HEADER: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// The registry's router: every `/v2` path goes through [`dispatch`].
pub fn router(state: AppState) -> Router {
    router_with_auth(state, None)
}

/// [`router`] behind the authentication layer when `auth` is given
/// (inside the logging and version-header layers, so 401s get both).
pub fn router_with_auth(state: AppState, auth: Option<Arc<crate::auth::Auth>>) -> Router {
    let mut routes = Router::new().fallback(dispatch).with_state(state);
    if let Some(auth) = auth {
        routes = routes.layer(middleware::from_fn_with_state(auth, crate::auth::require));
    }
    routes
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(middleware::from_fn(log_request))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
}

/// The routing table.
async fn dispatch(
    State(state): State<AppState>,
    catalog_filter: Option<axum::Extension<crate::auth::CatalogFilter>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match Route::parse(uri.path()) {
        Err(e) => Err(e),
        Ok(route) => {
            let detail = route.detail();
            let q = Query::of(&uri);
            let s = &state;
            let h = &headers;
            match (method, route) {
                (Method::GET | Method::HEAD, Route::Base) => {
                    Ok(json_response(StatusCode::OK, "{}"))
                }
                (Method::GET, Route::Catalog) => {
                    lists::catalog(s, &q, catalog_filter.map(|f| f.0)).await
                }
                (Method::GET, Route::Tags(n)) => lists::tags(s, &n, &q).await,
                (Method::GET, Route::Referrers(n, d)) => lists::referrers(s, &n, &d, &q).await,
                (m @ (Method::GET | Method::HEAD), Route::Manifest(n, r)) => {
                    manifests::get(s, &n, &r, h, m == Method::HEAD).await
                }
                (Method::PUT, Route::Manifest(n, r)) => {
                    manifests::put(s, &n, &r, &q, h, body).await
                }
                (Method::DELETE, Route::Manifest(n, r)) => manifests::delete(s, &n, &r).await,
                (Method::PUT, Route::ManifestBadTag(_, why)) => Err(ApiError::tag_invalid(why)),
                (Method::GET | Method::HEAD | Method::DELETE, Route::ManifestBadTag(..)) => {
                    Err(crate::storage::StoreError::ManifestUnknown.into())
                }
                (m @ (Method::GET | Method::HEAD), Route::Blob(n, d)) => {
                    blobs::get(s, &n, &d, h, m == Method::HEAD).await
                }
                (Method::DELETE, Route::Blob(n, d)) => blobs::delete(s, &n, &d).await,
                (Method::POST, Route::UploadStart(n)) => uploads::start(s, &n, &q, body).await,
                (Method::GET, Route::Upload(n, id)) => uploads::status(s, &n, &id).await,
                (Method::PATCH, Route::Upload(n, id)) => uploads::patch(s, &n, &id, h, body).await,
                (Method::PUT, Route::Upload(n, id)) => {
                    uploads::finish(s, &n, &id, &q, h, body).await
                }
                (Method::DELETE, Route::Upload(n, id)) => uploads::cancel(s, &n, &id).await,
                (m, _) => Err(ApiError::unsupported(format!(
                    "method {m} is not allowed on {}",
                    uri.path()
                ))),
            }
            .map_err(|e| e.or_detail(detail))
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Query parameters of a request.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn of(uri: &Uri) -> Query {
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

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn json_response(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

/// A request body as a storage byte stream.
pub fn body_stream(body: Body) -> ByteStream {
    use futures_util::StreamExt;
    body.into_data_stream()
        .map(|r| r.map_err(std::io::Error::other))
        .boxed()
}

/// Sets a header from a string known to be a valid header value.
pub fn set_header(resp: &mut Response, name: HeaderName, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        resp.headers_mut().insert(name, v);
    }
}

/// An error answering a request that sends a body (a refused chunk, say)
/// usually comes before the body was read; the rest of it cannot be left
/// on the connection, so say that the connection ends here rather than
/// have the client find out from a reset while it is still sending.
async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut resp = next.run(req).await;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// One log line per request: method, path, status, bytes, duration.
async fn log_request(req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let span = tracing::info_span!("request", id);
    let resp = next.run(req).instrument(span).await;
    // Body bytes sent: none for HEAD, the exact size of a buffered body
    // (error bodies carry no Content-Length header), else Content-Length.
    let bytes = if method == Method::HEAD {
        0
    } else {
        axum::body::HttpBody::size_hint(resp.body())
            .exact()
            .or_else(|| {
                resp.headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    tracing::info!(
        id,
        %method,
        path,
        status = resp.status().as_u16(),
        bytes,
        ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "request"
    );
    resp
}
