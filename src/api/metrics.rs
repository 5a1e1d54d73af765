//! The HTTP layer that measures every API request as registry:2 does (names in
//! [`crate::telemetry`]; docker/go-metrics' `InstrumentHandler`): requests by status code,
//! handler and method; latency; request and response sizes; requests in
//! flight. A request counts when its response body is done (sent, or given
//! up by the client), so the latency of a blob download includes the
//! download, as in registry:2.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use metrics::{counter, gauge, histogram, Counter, Gauge};

use super::{ParsedRequest, Route};
use crate::telemetry::*;

/// registry:2's handler names (its route names with `_` for `-`), and
/// `referrers` for the endpoint it lacks; `unknown` for a path that names
/// no endpoint.
pub fn handler_name(route: &Route) -> &'static str {
    match route {
        Route::Base => "base",
        Route::Catalog => "catalog",
        Route::Tags(_) => "tags",
        Route::Manifest(..) | Route::ManifestBadTag(..) => "manifest",
        Route::Blob(..) => "blob",
        Route::UploadStart(_) => "blob_upload",
        Route::Upload(..) => "blob_upload_chunk",
        Route::Referrers(..) => "referrers",
    }
}

/// The method as Prometheus' Go client labels it (lower case); any
/// other method is `other`, so a client cannot make up label values.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::PUT => "put",
        Method::POST => "post",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        _ => "other",
    }
}

/// The layer (inside the route parser, which it reads the route from);
/// it passes requests untouched while no Prometheus recorder is installed.
pub async fn instrument<F, Fut>(req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if !crate::telemetry::recording() {
        return inner(req).await;
    }
    let handler = req
        .extensions()
        .get::<Arc<ParsedRequest>>()
        .and_then(|p| p.route.as_ref().ok().map(handler_name))
        .unwrap_or("unknown");
    let mut measure = Measure {
        handler,
        method: method_label(req.method()),
        start: Instant::now(),
        code: None,
        received: Arc::new(AtomicU64::new(0)),
        sent: Arc::new(AtomicU64::new(0)),
        in_flight: gauge!(HTTP_IN_FLIGHT, "handler" => handler),
    };
    measure.in_flight.increment(1.0);
    let received = measure.received.clone();
    let req = req.map(|body| {
        Body::new(Counting {
            inner: body,
            bytes: counter!(RECEIVED_BYTES, "handler" => handler),
            total: received,
            measure: None,
        })
    });
    let resp = inner(req).await;
    measure.code = Some(resp.status().as_u16());
    let sent = measure.sent.clone();
    resp.map(|body| {
        Body::new(Counting {
            inner: body,
            bytes: counter!(SENT_BYTES, "handler" => handler),
            total: sent,
            measure: Some(measure),
        })
    })
}

/// One request's measurements, recorded when dropped: with the response
/// body (done or abandoned), or with the request when the client left
/// before there was a response (then it only leaves the in-flight gauge).
struct Measure {
    handler: &'static str,
    method: &'static str,
    start: Instant,
    code: Option<u16>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    in_flight: Gauge,
}

impl Drop for Measure {
    fn drop(&mut self) {
        self.in_flight.decrement(1.0);
        let Some(code) = self.code else {
            return;
        };
        let (handler, method) = (self.handler, self.method);
        counter!(HTTP_REQUESTS, "code" => code.to_string(), "handler" => handler, "method" => method)
            .increment(1);
        histogram!(HTTP_REQUEST_DURATION, "handler" => handler, "method" => method)
            .record(self.start.elapsed().as_secs_f64());
        histogram!(HTTP_REQUEST_SIZE, "handler" => handler)
            .record(self.received.load(Ordering::Relaxed) as f64);
        histogram!(HTTP_RESPONSE_SIZE, "handler" => handler)
            .record(self.sent.load(Ordering::Relaxed) as f64);
    }
}

/// A body that counts the data bytes that pass through it.
struct Counting {
    inner: Body,
    bytes: Counter,
    total: Arc<AtomicU64>,
    /// The response's: recorded once the body is done.
    measure: Option<Measure>,
}

impl HttpBody for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    self.bytes.increment(n);
                    self.total.fetch_add(n, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                self.measure = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
