//! The layers around the API's handlers that every request passes, whatever
//! sits between them and the handlers: the version header, one log line,
//! the configured headers (`http.headers`), CORS (`[cors]`),
//! `Connection: close` after a refused body, and the parsing of the route.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use super::forwarded::{client_info, ClientInfo, ProxyPolicy};
use super::request::parse_request;
use super::Live;

/// What the outer layers add to responses: `http.headers` and `[cors]`.
#[derive(Debug, Default)]
pub struct ResponsePolicy {
    /// `http.headers`, one entry per header line.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `[cors]`, when some origin is allowed.
    pub cors: Option<Cors>,
}

/// `[cors]` as header values, ready to send.
#[derive(Debug)]
pub struct Cors {
    /// `None`: any origin (`*`).
    origins: Option<Vec<HeaderValue>>,
    methods: HeaderValue,
    headers: HeaderValue,
    expose: HeaderValue,
    credentials: bool,
    max_age: HeaderValue,
}

impl ResponsePolicy {
    /// From a validated configuration (an invalid one is refused here too).
    pub fn from_config(config: &crate::config::Config) -> Result<ResponsePolicy, String> {
        let headers = config.http.header_lines().map_err(|e| e.to_string())?;
        let c = &config.cors;
        let cors = if c.enabled() {
            let join = |key: &str, list: &[String]| {
                HeaderValue::try_from(list.join(", "))
                    .map_err(|_| format!("cors.{key} is not a header value"))
            };
            let origins = if c.any_origin() {
                None
            } else {
                let values = c.allowed_origins.iter().map(|o| {
                    HeaderValue::try_from(o.as_str())
                        .map_err(|_| format!("cors.allowed_origins: {o:?} is not an origin"))
                });
                Some(values.collect::<Result<Vec<_>, _>>()?)
            };
            Some(Cors {
                origins,
                methods: join("allowed_methods", &c.allowed_methods)?,
                headers: join("allowed_headers", &c.allowed_headers)?,
                expose: join("expose_headers", &c.expose_headers)?,
                credentials: c.allow_credentials,
                max_age: HeaderValue::from(c.max_age.as_secs()),
            })
        } else {
            None
        };
        Ok(ResponsePolicy { headers, cors })
    }
}

/// Wraps `routes` (the handlers, with whatever layers were put around them)
/// in the API's outer layers. From the outside in: the version header, the
/// client's address and host ([`ClientInfo`], `http.trusted_proxies`), the
/// log line, `http.headers`, CORS (a preflight is answered here, before any
/// auth layer inside), `Connection: close`, the route parser; so a 401 from
/// an inner layer is logged and carries the version, configured and CORS
/// headers too.
///
/// `policy` is read once per request by each of the layers that use it, so
/// a reload that replaces it applies from the next request on.
pub fn outer_layers(
    routes: Router,
    policy: Arc<Live<ResponsePolicy>>,
    proxy: Arc<ProxyPolicy>,
) -> Router {
    routes
        .layer(middleware::from_fn(super::metrics::instrument))
        .layer(middleware::from_fn_with_state(proxy.clone(), parse_request))
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(middleware::from_fn_with_state(policy.clone(), cors))
        .layer(middleware::from_fn_with_state(policy, configured_headers))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(proxy, client_info))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
}

/// `http.headers` on every response.
async fn configured_headers(
    State(policy): State<Arc<Live<ResponsePolicy>>>,
    req: Request,
    next: Next,
) -> Response {
    let policy = policy.get();
    let mut resp = next.run(req).await;
    for (name, value) in &policy.headers {
        resp.headers_mut().append(name.clone(), value.clone());
    }
    resp
}

/// CORS for the origins `[cors]` allows: a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here, without credentials;
/// every other response gets `Access-Control-Allow-Origin` and the exposed
/// headers. Requests from other origins pass untouched.
async fn cors(
    State(policy): State<Arc<Live<ResponsePolicy>>>,
    req: Request,
    next: Next,
) -> Response {
    let policy = policy.get();
    let Some(cors) = &policy.cors else {
        return next.run(req).await;
    };
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| match &cors.origins {
            None => Some(HeaderValue::from_static("*")),
            Some(list) => list.contains(o).then(|| o.clone()),
        });
    let Some(origin) = allowed else {
        let mut resp = next.run(req).await;
        if cors.origins.is_some() {
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        return resp;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
        h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
        resp
    } else {
        let mut resp = next.run(req).await;
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, cors.expose.clone());
        resp
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if cors.origins.is_some() {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
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

/// One log line per request: client (see [`ClientInfo`]), method, path,
/// status, bytes, duration.
async fn log_request(req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = req
        .extensions()
        .get::<Arc<ClientInfo>>()
        .map(|c| tracing::field::display(c.client));
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
        client,
        %method,
        path,
        status = resp.status().as_u16(),
        bytes,
        ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "request"
    );
    resp
}
