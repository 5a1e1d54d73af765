//! The debug listener (`http.debug.addr`, as in registry:2): plain HTTP on
//! its own socket, for operators and their tools, never for clients.
//! It answers only its own paths and never shows registry data:
//!
//! - `/debug/health`: registry:2's health answer: `{}` and 200 when every
//!   check passes, else 503 and a JSON map check → error;
//! - `/healthz`: the process is up (always 200);
//! - `/readyz`: the data dir is readable and writable (200), or 503 with
//!   the reason;
//! - the Prometheus path (`http.debug.prometheus.path`, `/metrics`) when
//!   `http.debug.prometheus.enabled`;
//!
//! and 404 for everything else. It is bounded like the main listener (its
//! connections are watched by the same watchdog) with a small connection
//! cap of its own, and stopped with the main listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use super::conn::connection;
use crate::config::Limits;
use crate::storage::FsStore;

/// Connections served at once; beyond that a new one is closed at once
/// (a scraper and a few probes need a handful).
const MAX_CONNECTIONS: usize = 16;
/// A readiness answer is reused for this long, so a storm of probes or
/// scrapes costs the disk one probe a second.
const READY_CACHE: Duration = Duration::from_secs(1);
/// A storage probe that takes longer than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long in-flight debug requests may run after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// registry:2's name of its storage health check (`health.storagedriver`).
const STORAGE_CHECK: &str = "storagedriver_filesystem";

/// What the debug listener serves, built with the registry.
pub(super) struct Debug {
    pub addr: SocketAddr,
    endpoints: Arc<Endpoints>,
}

struct Endpoints {
    /// The Prometheus path and the recorder's handle, when enabled.
    metrics: Option<(String, PrometheusHandle)>,
    ready: Readiness,
}

impl Debug {
    pub fn new(
        addr: SocketAddr,
        metrics: Option<(String, PrometheusHandle)>,
        store: Arc<FsStore>,
        read_only: Arc<AtomicBool>,
    ) -> Debug {
        Debug {
            addr,
            endpoints: Arc::new(Endpoints {
                metrics,
                ready: Readiness {
                    store,
                    read_only,
                    last: tokio::sync::Mutex::new(None),
                    running: Arc::new(AtomicBool::new(false)),
                },
            }),
        }
    }

    /// Binds the address and serves until `stop` fires (or is dropped).
    pub async fn start(
        self,
        limits: &Limits,
    ) -> anyhow::Result<(tokio::task::JoinHandle<()>, oneshot::Sender<()>)> {
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot listen on {} (http.debug.addr)", self.addr))?;
        let local = listener.local_addr()?;
        let mut paths = vec!["/debug/health", "/healthz", "/readyz"];
        if let Some((path, _)) = &self.endpoints.metrics {
            paths.push(path);
        }
        tracing::info!("debug endpoints at http://{local}: {}", paths.join(", "));
        // The same watchdog as the main listener's, never more lenient
        // than a few seconds for a header or a minute idle.
        let mut limits = limits.clone();
        limits.header_read_timeout = limits.header_read_timeout.min(Duration::from_secs(10));
        limits.idle_timeout = limits.idle_timeout.min(Duration::from_secs(60));
        let router = Router::new()
            .fallback(answer)
            .with_state(self.endpoints.clone());
        let (tx, rx) = oneshot::channel();
        Ok((
            tokio::spawn(run(listener, router, Arc::new(limits), rx)),
            tx,
        ))
    }
}

async fn run(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = super::conn::accept(&listener, "debug listener") => accepted,
            _ = &mut stop => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "debug listener: {MAX_CONNECTIONS} connections open, closing this one");
            continue;
        };
        tokio::spawn(connection(
            builder.clone(),
            graceful.watcher(),
            router.clone(),
            limits.clone(),
            stream,
            peer,
            permit,
        ));
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {},
    }
}

/// Every request: GET (or HEAD) of one of the paths, else 404.
async fn answer(State(d): State<Arc<Endpoints>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    match uri.path() {
        "/debug/health" => {
            let (status, body) = match d.ready.check().await {
                Ok(()) => (StatusCode::OK, serde_json::json!({})),
                Err(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ STORAGE_CHECK: why }),
                ),
            };
            let mut resp = (status, body.to_string()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match d.ready.check().await {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        path => match &d.metrics {
            Some((p, handle)) if p == path => {
                let mut resp = handle.render().into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            _ => not_found(),
        },
    }
}

fn text(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

/// Whether the store can be used, probed at most once per
/// [`READY_CACHE`] and one probe at a time.
struct Readiness {
    store: Arc<FsStore>,
    /// `storage.maintenance.readonly.enabled` (switchable): then only
    /// reading is probed.
    read_only: Arc<AtomicBool>,
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// A probe runs on the blocking pool: one still stuck in a hung
    /// filesystem is not joined by another.
    running: Arc<AtomicBool>,
}

impl Readiness {
    async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last {
            if at.elapsed() < READY_CACHE {
                return answer.clone();
            }
        }
        let answer = self.probe().await;
        if let Err(why) = &answer {
            tracing::warn!("not ready: {why}");
        }
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn probe(&self) -> Result<(), String> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(
                "the previous storage probe has not finished: the data dir does not answer".into(),
            );
        }
        let (store, running) = (self.store.clone(), self.running.clone());
        let read_only = self.read_only.load(Ordering::Relaxed);
        let task = tokio::task::spawn_blocking(move || {
            let r = store.probe(read_only);
            running.store(false, Ordering::SeqCst);
            r
        });
        let what = if read_only {
            "readable"
        } else {
            "readable and writable"
        };
        match tokio::time::timeout(PROBE_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("storage is not {what}: {e}")),
            Ok(Err(e)) => {
                self.running.store(false, Ordering::SeqCst);
                Err(format!("storage probe failed: {e}"))
            }
            Err(_) => Err(format!(
                "storage did not answer within {}s",
                PROBE_TIMEOUT.as_secs()
            )),
        }
    }
}
