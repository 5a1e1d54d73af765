//! The layers around the API's handlers that every request passes, whatever
//! sits between them and the handlers: the version header, one log line,
//! `Connection: close` after a refused body, and the parsing of the route.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use super::request::parse_request;

/// Wraps `routes` (the handlers, with whatever layers were put around them)
/// in the API's outer layers. From the outside in: the version header, the
/// log line, `Connection: close`, the route parser; so a 401 from an inner
/// layer is logged and carries the version header too.
pub fn outer_layers(routes: Router) -> Router {
    routes
        .layer(middleware::from_fn(parse_request))
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(middleware::from_fn(log_request))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
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
