//! One connection: served by hyper (HTTP/1.1 or HTTP/2, over TLS or not), watched for a
//! header that takes too long and for idleness, and told about every byte.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use crate::config::Limits;

/// Serves one connection until it ends, the watchdog closes it or, after
/// the shutdown signal, its request in flight is done. Holds `_permit`
/// (its slot under `limits.max_connections`) until then.
pub(super) async fn connection<S>(
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    router: Router,
    limits: Arc<Limits>,
    stream: S,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let act = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // The peer address feeds the auth layer's per-client lockout.
        req.extensions_mut().insert(ConnectInfo(peer));
        let guard = act.request_started(req.version() == axum::http::Version::HTTP_2);
        let mut router = router.clone();
        async move {
            let resp = tower::Service::call(&mut router, req.map(Body::new)).await;
            drop(guard);
            resp
        }
    });
    if builder.is_http2_available() {
        let conn = watcher.watch(builder.serve_connection_with_upgrades(io, service));
        drive(conn, &activity, &limits, peer).await;
    } else {
        // `http.http2.disabled`: `serve_connection_with_upgrades` does not
        // honour `http1_only` (hyper-util 0.1.21), `serve_connection` does.
        let conn = watcher.watch(builder.serve_connection(io, service));
        drive(conn, &activity, &limits, peer).await;
    }
}

/// Runs `conn` until it ends or the watchdog closes it.
async fn drive<E: std::fmt::Display>(
    conn: impl std::future::Future<Output = Result<(), E>>,
    activity: &Activity,
    limits: &Limits,
    peer: SocketAddr,
) {
    tokio::select! {
        done = conn => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        why = activity.watchdog(limits) => {
            tracing::info!(%peer, "closing the connection: {why}");
        }
    }
}

/// What a connection did last, for its watchdog: times are milliseconds
/// since the connection was accepted.
struct Activity {
    start: Instant,
    /// The last byte read or written.
    last: AtomicU64,
    /// When the request header now being read began (`u64::MAX`: none);
    /// from the accept for the first request.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// HTTP/2: requests have no header phase the watchdog can see.
    h2: AtomicBool,
}

const NO_HEAD: u64 = u64::MAX;

/// Ends a request's time in flight when its response is ready (its body
/// streams as connection activity).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last.store(self.now(), Ordering::SeqCst);
    }

    /// Bytes came in: the start of a request header if none is in flight.
    fn read(&self) {
        self.touch();
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let _ = self.head_since.compare_exchange(
                NO_HEAD,
                self.now(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    fn request_started(self: &Arc<Self>, h2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_since.store(NO_HEAD, Ordering::SeqCst);
        if h2 {
            self.h2.store(true, Ordering::SeqCst);
        }
        self.touch();
        InFlight(self.clone())
    }

    /// Completes when the connection should be closed, saying why: a
    /// request header not complete within `header_read_timeout`, or
    /// nothing sent or received for `idle_timeout` while no request is in
    /// flight (a request in flight is bounded by `body_idle_timeout`).
    async fn watchdog(&self, limits: &Limits) -> String {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
        let (header, idle) = (ms(limits.header_read_timeout), ms(limits.idle_timeout));
        loop {
            let now = self.now();
            let mut next = now.saturating_add(idle);
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                let head = self.head_since.load(Ordering::SeqCst);
                if head != NO_HEAD && !self.h2.load(Ordering::SeqCst) {
                    let due = head.saturating_add(header);
                    if now >= due {
                        return format!(
                            "no complete request header within {}s (limits.header_read_timeout)",
                            limits.header_read_timeout.as_secs_f64()
                        );
                    }
                    next = next.min(due);
                }
                let due = self.last.load(Ordering::SeqCst).saturating_add(idle);
                if now >= due {
                    return format!(
                        "idle for {}s (limits.idle_timeout)",
                        limits.idle_timeout.as_secs_f64()
                    );
                }
                next = next.min(due);
            }
            let wait = next.saturating_sub(now).max(20);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// A connection's socket (or its TLS stream), telling its [`Activity`]
/// about every byte.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
