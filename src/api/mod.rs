//! The HTTP API (OCI Distribution Spec v1.1 / Docker Registry HTTP API V2).
//! Handlers are thin: parse the request into `oci` types, call the store,
//! build the response. Every failure is an [`ApiError`].
//!
//! The API knows nothing of authentication: a [`Gate`] given to
//! [`outer_layers`] (or a layer put between them and [`handlers`]) may
//! read the [`ParsedRequest`] and limit what the handlers do through the
//! extensions this module defines ([`PullAccess`]).

mod blobs;
mod error;
mod forwarded;
mod layers;
mod lists;
mod manifests;
mod metrics;
mod request;
pub mod route;
mod uploads;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use error::ApiError;
pub use forwarded::{client_info, ClientInfo, ProxyPolicy, Urls};
pub use layers::{outer_layers, Gate, ResponsePolicy};
pub use request::{ParsedRequest, PullAccess, Query};
pub use route::Route;

use crate::config::Limits;
use crate::oci::ErrorCode;
use crate::storage::{ByteStream, Store};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub delete_enabled: bool,
    /// `[limits]`: what one request may make the handlers spend (swapped
    /// by a reload; a request reads them once, see [`Live::get`]).
    pub limits: Arc<Live<Limits>>,
    /// `storage.maintenance.readonly.enabled`: every write answers 405
    /// UNSUPPORTED. Shared, so a reload can flip it while pulls go on.
    pub readonly: Arc<AtomicBool>,
    /// `http.headers` and `[cors]`, applied by [`outer_layers`] (swapped
    /// by a reload).
    pub responses: Arc<Live<ResponsePolicy>>,
    /// `http.trusted_proxies`, `http.host`, `http.prefix`, `http.relativeurls`.
    pub proxy: Arc<ProxyPolicy>,
    /// `[notifications]`: none when no endpoint is enabled.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

/// A setting that a configuration reload replaces whole while requests go
/// on: a reader takes the current value (an `Arc` clone under a read lock
/// held for no longer than that) and keeps it for the rest of its request,
/// so a request never sees half of an old and half of a new setting.
#[derive(Debug, Default)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live(RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        // A writer only swaps an Arc: a poisoned lock still holds a whole value.
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the value; requests that took the old one keep it.
    pub fn set(&self, value: T) {
        let value = Arc::new(value);
        match self.0.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

/// The message of every write refused in read-only mode.
pub const READONLY_MESSAGE: &str =
    "the registry is in read-only mode (storage.maintenance.readonly.enabled)";

pub type ApiResult = Result<Response, ApiError>;

pub const DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID_HEADER: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// The handlers: every path goes to [`dispatch`]. They expect the
/// [`ParsedRequest`] that [`outer_layers`] adds, so serve them wrapped in it.
pub fn handlers(state: AppState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// The routing table.
#[allow(clippy::too_many_arguments)] // axum extractors, one per argument
async fn dispatch(
    State(state): State<AppState>,
    parsed: Option<Extension<Arc<ParsedRequest>>>,
    access: Option<Extension<PullAccess>>,
    client: Option<Extension<Arc<ClientInfo>>>,
    request: Option<Extension<Arc<crate::notify::RequestContext>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(Extension(parsed)) = parsed else {
        tracing::error!("request reached the handlers without a parsed route");
        return ApiError::internal().into_response();
    };
    let route = match &parsed.route {
        Ok(route) => route,
        Err(e) => return e.clone().into_response(),
    };
    // A body that stalls for `body_idle_timeout` fails its reader, so the
    // handler returns (releasing an upload's lock) and answers 408.
    let body = Body::new(IdleBody::new(body, state.limits.get().body_idle_timeout));
    if state.readonly.load(Ordering::Relaxed)
        && matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    {
        return ApiError::new(ErrorCode::Unsupported)
            .message(READONLY_MESSAGE)
            .detail(serde_json::json!({ "method": method.as_str(), "path": uri.path() }))
            .into_response();
    }
    let client = client.map_or_else(
        || Arc::new(ClientInfo::direct(std::net::Ipv4Addr::UNSPECIFIED.into())),
        |Extension(c)| c,
    );
    let (s, q, h, u) = (&state, &parsed.query, &headers, &client.urls);
    let access = access.map(|Extension(a)| a);
    let request = request.map(|Extension(r)| r);
    let ev = &crate::notify::Hook::new(state.notifier.as_deref(), request.as_deref());
    let result = match (method, route) {
        (Method::GET | Method::HEAD, Route::Base) => Ok(json_response(StatusCode::OK, "{}")),
        (Method::GET, Route::Catalog) => lists::catalog(s, u, q, access.as_ref()).await,
        (Method::GET, Route::Tags(n)) => lists::tags(s, u, n, q).await,
        (Method::GET, Route::Referrers(n, d)) => lists::referrers(s, u, n, d, q).await,
        (m @ (Method::GET | Method::HEAD), Route::Manifest(n, r)) => {
            manifests::get(s, ev, n, r, h, m == Method::HEAD).await
        }
        (Method::PUT, Route::Manifest(n, r)) => manifests::put(s, u, ev, n, r, q, h, body).await,
        (Method::DELETE, Route::Manifest(n, r)) => manifests::delete(s, ev, n, r).await,
        (Method::PUT, Route::ManifestBadTag(_, why)) => Err(ApiError::tag_invalid(why.clone())),
        (Method::GET | Method::HEAD | Method::DELETE, Route::ManifestBadTag(..)) => {
            Err(ErrorCode::ManifestUnknown.into())
        }
        (m @ (Method::GET | Method::HEAD), Route::Blob(n, d)) => {
            blobs::get(s, ev, n, d, h, m == Method::HEAD).await
        }
        (Method::DELETE, Route::Blob(n, d)) => blobs::delete(s, ev, n, d).await,
        (Method::POST, Route::UploadStart(n)) => {
            uploads::start(s, u, ev, n, q, access.as_ref(), body).await
        }
        (Method::GET, Route::Upload(n, id)) => uploads::status(s, u, n, id).await,
        (Method::PATCH, Route::Upload(n, id)) => uploads::patch(s, u, n, id, h, body).await,
        (Method::PUT, Route::Upload(n, id)) => uploads::finish(s, u, ev, n, id, q, h, body).await,
        (Method::DELETE, Route::Upload(n, id)) => uploads::cancel(s, n, id).await,
        (m, _) => Err(ApiError::unsupported(format!(
            "method {m} is not allowed on {}",
            uri.path()
        ))),
    };
    result
        .map_err(|e| e.or_detail(route.detail()))
        .unwrap_or_else(IntoResponse::into_response)
}

pub fn json_response(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

/// A request body as a storage byte stream. A body cut for idling fails
/// with [`std::io::ErrorKind::TimedOut`] (see [`body_timed_out`]).
pub fn body_stream(body: Body) -> ByteStream {
    use futures_util::StreamExt;
    body.into_data_stream()
        .map(|r| {
            r.map_err(|e| {
                if is_body_idle(&e) {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, e)
                } else {
                    std::io::Error::other(e)
                }
            })
        })
        .boxed()
}

/// The request body sent nothing for `limits.body_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {}s (limits.body_idle_timeout)", .0.as_secs_f64())]
pub struct BodyIdle(Duration);

/// Whether `e` (or what caused it) is a [`BodyIdle`].
pub fn is_body_idle(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyIdle>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The 408 for a request whose body stalled, if `e` is that failure.
pub fn body_timed_out(e: &std::io::Error) -> Option<ApiError> {
    (e.kind() == std::io::ErrorKind::TimedOut).then(|| {
        tracing::info!("request body stalled: {e}");
        ApiError::new(ErrorCode::BlobUploadInvalid)
            .status(StatusCode::REQUEST_TIMEOUT)
            .message(e.to_string())
    })
}

/// A request body that fails with [`BodyIdle`] once it has kept its reader
/// waiting for `limit` (counted only while read, so a handler that waits
/// for a lock before reading is not held against the client).
struct IdleBody {
    inner: Body,
    limit: Duration,
    /// Made the first time the body waits: most requests (GET, HEAD)
    /// never read theirs, and a timer costs an allocation.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl IdleBody {
    fn new(inner: Body, limit: Duration) -> IdleBody {
        IdleBody {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if !this.armed {
                    timer.as_mut().reset(tokio::time::Instant::now() + limit);
                    this.armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(this.limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Sets a header from a string known to be a valid header value.
pub fn set_header(resp: &mut Response, name: HeaderName, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        resp.headers_mut().insert(name, v);
    }
}
