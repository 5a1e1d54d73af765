//! The layers around the API's handlers that every request passes, whatever
//! sits between them and the handlers: the version header, one log line,
//! the configured headers (`http.headers`), CORS (`[cors]`),
//! `Connection: close` after a refused body, the parsing of the route, the
//! metrics, and the [`Gate`] (the auth layer) between them and the handlers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
use std::net::IpAddr;
use tracing::Instrument;

#[allow(unused_imports)] // named in the docs
use super::forwarded::ClientInfo;
use super::forwarded::{client_info, ProxyPolicy};
use super::request::ParsedRequest;
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

/// A check that runs inside the outer layers, once the route is parsed, and
/// just before the handlers: the auth layer. It may refuse a request with
/// an answer of its own (which is logged, measured and carries the
/// version, configured and CORS headers like any other), or let it go on,
/// adding what the handlers should know to its extensions.
///
/// A gate is part of the one outer middleware rather than a layer of its
/// own: a layer costs every request a boxed future and a clone of the
/// stack below it, which was most of what an authenticated request cost
/// beyond an anonymous one.
pub trait Gate: Send + Sync + 'static {
    /// `Err`: the answer that refuses the request.
    fn check(&self, req: &mut Request) -> impl Future<Output = Result<(), Response>> + Send;
}

/// Wraps `routes` (the handlers, with whatever layers were put around them)
/// in the API's outer layers. From the outside in: the version header, the
/// client's address and host ([`ClientInfo`], `http.trusted_proxies`), the
/// log line, `http.headers`, CORS (a preflight is answered here, before the
/// gate), `Connection: close`, the route parser, the metrics, the `gate`;
/// so a 401 from the gate is logged and carries the version, configured
/// and CORS headers too.
///
/// They run as one middleware, in that order: one boxed future and one
/// clone of the stack below per request, where a layer each cost eight
/// (a small request spent about a fifth of its instructions there).
///
/// `policy` is read once per request, so a reload that replaces it applies
/// from the next request on.
pub fn outer_layers<G: Gate>(
    routes: Router,
    policy: Arc<Live<ResponsePolicy>>,
    proxy: Arc<ProxyPolicy>,
    gate: Option<Arc<G>>,
) -> Router {
    routes.layer(middleware::from_fn_with_state(
        Arc::new(Outer {
            policy,
            proxy,
            gate,
        }),
        outer::<G>,
    ))
}

/// What the outer layers read.
struct Outer<G> {
    policy: Arc<Live<ResponsePolicy>>,
    proxy: Arc<ProxyPolicy>,
    gate: Option<Arc<G>>,
}

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

async fn outer<G: Gate>(
    State(outer): State<Arc<Outer<G>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = client_info(&outer.proxy, &mut req);
    let live = outer.policy.get();
    let (policy, proxy): (&ResponsePolicy, &ProxyPolicy) = (&live, &outer.proxy);
    let gate = outer.gate.as_deref();
    let mut resp = log_request(client, req, |req| async move {
        let mut resp = cors(policy, req, |req| closing(proxy, gate, req, next)).await;
        for (name, value) in &policy.headers {
            resp.headers_mut().append(name.clone(), value.clone());
        }
        resp
    })
    .await;
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    resp
}

/// `Connection: close` after a refused body, around the route parser, the
/// metrics and the gate (which pass to the handlers).
async fn closing<G: Gate>(
    proxy: &ProxyPolicy,
    gate: Option<&G>,
    mut req: Request,
    next: Next,
) -> Response {
    let has_body = sends_body(&req);
    let parsed = Arc::new(ParsedRequest::under(proxy.prefix(), req.uri()));
    req.extensions_mut().insert(parsed);
    let mut resp = super::metrics::instrument(req, |mut req| async move {
        if let Some(gate) = gate {
            if let Err(refusal) = gate.check(&mut req).await {
                return refusal;
            }
        }
        next.run(req).await
    })
    .await;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        // An error answering a request that sends a body (a refused chunk,
        // say) usually comes before the body was read; the rest of it
        // cannot be left on the connection, so say that the connection
        // ends here rather than have the client find out from a reset
        // while it is still sending.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn sends_body(req: &Request) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// CORS for the origins `[cors]` allows: a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here, without credentials;
/// every other response gets `Access-Control-Allow-Origin` and the exposed
/// headers. Requests from other origins pass untouched.
async fn cors<F, Fut>(policy: &ResponsePolicy, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(cors) = &policy.cors else {
        return inner(req).await;
    };
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| match &cors.origins {
            None => Some(HeaderValue::from_static("*")),
            Some(list) => list.contains(o).then(|| o.clone()),
        });
    let Some(origin) = allowed else {
        let mut resp = inner(req).await;
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
        let mut resp = inner(req).await;
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

/// One log line per request: client (see [`ClientInfo`]), method, path,
/// status, bytes, duration. The path is kept by a clone of the URI (a
/// reference count), not copied.
async fn log_request<F, Fut>(client: IpAddr, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    let span = tracing::info_span!("request", id);
    let resp = inner(req).instrument(span).await;
    if !tracing::enabled!(tracing::Level::INFO) {
        return resp;
    }
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
        client = %client,
        %method,
        path = uri.path(),
        status = resp.status().as_u16(),
        bytes,
        ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "request"
    );
    resp
}
