//! Composing the registry from its parts and serving it: the store, the
//! online collector, the auth layer between the API's outer layers and its
//! handlers. Reads no environment and installs no signal handler: the
//! caller hands in the configuration, the listener and the shutdown signal,
//! so the whole server runs in-process in tests.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::middleware;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{self, AppState};
use crate::auth::Auth;
use crate::config::{Config, Limits};
use crate::storage::FsStore;

/// How long in-flight requests may run after the shutdown signal (container
/// runtimes should wait a little longer before SIGKILL: compose
/// `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The registry's HTTP application: the API's handlers, behind the auth
/// layer when `auth` is given, inside the API's outer layers (so a 401 is
/// logged and carries the version header too).
pub fn app(state: AppState, auth: Option<Arc<Auth>>) -> Router {
    let mut routes = api::handlers(state);
    if let Some(auth) = auth {
        routes = routes.layer(middleware::from_fn_with_state(auth, crate::auth::require));
    }
    api::outer_layers(routes)
}

/// A registry built from its configuration, ready to serve.
pub struct Registry {
    router: Router,
    /// The online collector, stopped when the registry is dropped.
    gc: Option<tokio::task::JoinHandle<()>>,
    summary: Summary,
    limits: Limits,
}

/// What the start-up log line says.
struct Summary {
    root: String,
    delete: bool,
    auth: bool,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(gc) = &self.gc {
            gc.abort();
        }
    }
}

impl Registry {
    /// Opens the store, starts the online collector and the htpasswd
    /// reloader (so it needs a Tokio runtime), and builds the application.
    pub fn new(config: &Config) -> anyhow::Result<Registry> {
        for name in &config.ignored_env {
            tracing::warn!("ignoring {name}: Berth has no such setting");
        }
        let root = &config.storage.filesystem.rootdirectory;
        let mut store = FsStore::open(root)
            .with_context(|| format!("cannot open storage at {}", root.display()))?;
        if config.gc.enabled {
            store.refresh_reads((config.gc.grace_period / 4).min(Duration::from_secs(60)));
            if config.gc.grace_period < Duration::from_secs(600) {
                tracing::warn!(
                    grace_period = %humantime::format_duration(config.gc.grace_period),
                    "gc.grace_period is short: a push whose manifest comes later than that after \
                     its blobs can fail with MANIFEST_BLOB_UNKNOWN (1h is the default)"
                );
            }
        }
        let store = Arc::new(store);
        let gc = if config.gc.enabled {
            Some(crate::gc::spawn_online(store.clone(), &config.gc)?)
        } else {
            None
        };
        let auth = Auth::from_config(&config.auth, &config.access, &config.initial_user)?;
        if let Some(a) = &auth {
            a.spawn_reloader();
        }
        let summary = Summary {
            root: root.display().to_string(),
            delete: config.storage.delete.enabled,
            auth: auth.is_some(),
        };
        let state = AppState {
            store,
            delete_enabled: config.storage.delete.enabled,
            limits: Arc::new(config.limits.clone()),
        };
        Ok(Registry {
            router: app(state, auth),
            gc,
            summary,
            limits: config.limits.clone(),
        })
    }

    /// The application, for serving it some other way (`oneshot` in tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight
    /// requests finish for up to [`SHUTDOWN_GRACE`]; the rest are dropped
    /// (an interrupted upload leaves only its session, never a blob or tag).
    ///
    /// HTTP/1.1 and HTTP/2 (prior knowledge) on each connection, at most
    /// `limits.max_connections` at once: beyond that, new connections wait
    /// in the listen backlog until one closes. Each connection is closed
    /// when it takes longer than `limits.header_read_timeout` to send a
    /// request header, or sits idle for `limits.idle_timeout`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let s = &self.summary;
        tracing::info!(
            root = s.root,
            delete = s.delete,
            auth = s.auth,
            "listening on {}",
            listener.local_addr()?
        );
        let limits = Arc::new(self.limits.clone());
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The header and idle timeouts are the watchdog's (see `connection`):
        // hyper's own header timeout also runs while a kept-alive connection
        // waits for its next request, which would make idle = header timeout.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut full_logged = false;
        loop {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if !full_logged {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "connection limit reached: new connections wait until one closes \
                             (limits.max_connections)"
                        );
                        full_logged = true;
                    }
                    tokio::select! {
                        p = slots.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                        _ = &mut shutdown => break,
                    }
                }
            };
            if slots.available_permits() > limits.max_connections / 2 {
                full_logged = false;
            }
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            tokio::spawn(connection(
                builder.clone(),
                graceful.watcher(),
                self.router.clone(),
                limits.clone(),
                stream,
                peer,
                permit,
            ));
        }
        drop(listener);
        tracing::info!("shutting down: finishing in-flight requests");
        tokio::select! {
            _ = graceful.shutdown() => {},
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(
                "in-flight requests still running after {}s: stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves one connection until it ends, the watchdog closes it or, after
/// the shutdown signal, its request in flight is done. Holds `_permit`
/// (its slot under `limits.max_connections`) until then.
async fn connection(
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    router: Router,
    limits: Arc<Limits>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
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
    let conn = watcher.watch(builder.serve_connection_with_upgrades(io, service));
    tokio::select! {
        done = conn => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        why = activity.watchdog(&limits) => {
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

/// A connection's socket, telling its [`Activity`] about every byte.
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
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

impl AsyncWrite for Tracked {
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

/// Builds the registry from `config` and serves it on `listener` until
/// `shutdown` completes (see [`Registry::serve`]).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Registry::new(&config)?.serve(listener, shutdown).await
}

/// Binds `http.addr`.
pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let addr = config.listen_addr()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
