//! Composing the registry from its parts and serving it: the store, the
//! online collector, the auth layer between the API's outer layers and its
//! handlers. Reads no environment and installs no signal handler: the
//! caller hands in the configuration, the listener and the shutdown signal,
//! so the whole server runs in-process in tests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::middleware;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::{self, AppState};
use crate::auth::Auth;
use crate::config::{Config, Limits};
use crate::storage::FsStore;
use conn::connection;
use tls::Tls;

pub use reload::{Reloaded, Reloader};

mod conn;
mod debug;
mod reload;
mod tls;

/// How long in-flight requests may run after the shutdown signal (container
/// runtimes should wait a little longer before SIGKILL: compose
/// `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The registry's HTTP application: the API's handlers inside the API's
/// outer layers, with the auth layer as their gate when `auth` is given
/// (so a 401 is logged and carries the version header too).
pub fn app(state: AppState, auth: Option<Arc<Auth>>) -> Router {
    let (responses, proxy) = (state.responses.clone(), state.proxy.clone());
    let notifying = state.notifier.is_some();
    let mut routes = api::handlers(state);
    if notifying {
        // After the auth gate, so it sees the authenticated user.
        routes = routes.layer(middleware::from_fn(notify_context));
    }
    api::outer_layers(routes, responses, proxy, auth)
}

/// The client's address, as notification events report it (`request.addr`):
/// the TCP peer with its port, or the client a trusted proxy forwarded for.
fn client_addr(req: &axum::extract::Request) -> Option<String> {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    match (req.extensions().get::<Arc<api::ClientInfo>>(), peer) {
        (Some(info), Some(peer)) if info.client != peer.ip() => Some(info.client.to_string()),
        (Some(info), None) => Some(info.client.to_string()),
        (_, peer) => peer.map(|p| p.to_string()),
    }
}

/// Adds what notification events say about the request (client address,
/// host, user agent, authenticated user) for the handlers.
async fn notify_context(
    mut req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let user = req
        .extensions()
        .get::<crate::auth::AuthenticatedUser>()
        .map(|u| u.0.clone());
    let ctx = crate::notify::RequestContext::new(
        req.method(),
        req.headers(),
        req.extensions()
            .get::<Arc<api::ClientInfo>>()
            .and_then(|i| i.absolute_root.clone()),
        client_addr(&req),
        user.as_deref(),
    );
    req.extensions_mut().insert(Arc::new(ctx));
    next.run(req).await
}

/// A registry built from its configuration, ready to serve.
pub struct Registry {
    router: Router,
    /// The certificate reloader, stopped when the registry is dropped.
    tls_reloader: Option<tokio::task::JoinHandle<()>>,
    tls: Option<Tls>,
    /// `[notifications]`: its dispatcher and workers stop with it (what
    /// they had queued stays on disk).
    notifier: Option<Arc<crate::notify::Notifier>>,
    http2: bool,
    summary: Summary,
    /// The debug listener (`http.debug.addr`), started by [`Registry::serve`].
    debug: Option<debug::Debug>,
    /// `[limits]` as a reload leaves them (a connection reads its timeouts
    /// when it opens); `max_connections` stays as started.
    limits: Arc<api::Live<Limits>>,
    reloader: Reloader,
}

/// What the start-up log line says.
struct Summary {
    root: String,
    delete: bool,
    auth: bool,
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The online collector is the reloader's to start and stop.
        self.reloader.stop_collector();
        if let Some(r) = &self.tls_reloader {
            r.abort();
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
        let debug_addr = config.http.debug.listen_addr()?;
        let prometheus = &config.http.debug.prometheus;
        // Installed before the store opens, so its first counts are kept.
        let metrics = match (debug_addr, prometheus.enabled) {
            (Some(_), true) => crate::telemetry::prometheus().map(|h| (prometheus.path.clone(), h)),
            (None, true) => {
                tracing::warn!("http.debug.prometheus.enabled needs http.debug.addr: no metrics");
                None
            }
            _ => None,
        };
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
        store.limit_uploads(
            config.limits.max_uploads,
            config.limits.max_uploads_per_repository,
        );
        let store = Arc::new(store);
        // The catalog answers from a walk until this is done.
        store.index_in_background();
        let readonly = config.storage.maintenance.readonly.enabled;
        let readonly_flag = Arc::new(std::sync::atomic::AtomicBool::new(readonly));
        if metrics.is_some() {
            count_blobs(store.clone());
        }
        let debug = debug_addr
            .map(|addr| debug::Debug::new(addr, metrics, store.clone(), readonly_flag.clone()));
        if readonly && config.gc.enabled {
            tracing::warn!("read-only mode (storage.maintenance.readonly.enabled): the online collector does not run");
        }
        let notifier = crate::notify::Notifier::start(
            &config.notifications,
            root,
            crate::notify::source(config.listen_addr()?.port()),
        )?;
        let gc = if config.gc.enabled && !readonly {
            Some(crate::gc::spawn_online(
                store.clone(),
                &config.gc,
                notifier.clone(),
            )?)
        } else {
            None
        };
        let tls = Tls::from_config(&config.http)?;
        let tls_reloader = tls.as_ref().map(Tls::spawn_reloader);
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
            store: store.clone(),
            delete_enabled: config.storage.delete.enabled,
            limits: Arc::new(api::Live::new(config.limits.clone())),
            readonly: readonly_flag,
            responses: Arc::new(api::Live::new(
                api::ResponsePolicy::from_config(config).map_err(anyhow::Error::msg)?,
            )),
            proxy: Arc::new(
                api::ProxyPolicy::from_config(&config.http).map_err(anyhow::Error::msg)?,
            ),
            notifier: notifier.clone(),
        };
        let reloader = Reloader::new(
            config,
            reload::Parts {
                store,
                limits: state.limits.clone(),
                readonly: state.readonly.clone(),
                responses: state.responses.clone(),
                auth: auth.clone(),
                collector: gc,
                notifier: notifier.clone(),
            },
        );
        Ok(Registry {
            limits: state.limits.clone(),
            router: app(state, auth),
            tls_reloader,
            tls,
            notifier,
            http2: !config.http.http2.disabled,
            summary,
            debug,
            reloader,
        })
    }

    /// The handle that applies a new configuration while this registry
    /// serves (see [`Reloader::reload`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The notifier, when an endpoint is enabled (for a reload to
    /// [`crate::notify::Notifier::reconfigure`]).
    pub fn notifier(&self) -> Option<Arc<crate::notify::Notifier>> {
        self.notifier.clone()
    }

    /// The application, for serving it some other way (`oneshot` in tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight
    /// requests finish for up to [`SHUTDOWN_GRACE`]; the rest are dropped
    /// (an interrupted upload leaves only its session, never a blob or tag).
    ///
    /// HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS when
    /// `http.tls` is set; HTTP/1.1 only with `http.http2.disabled`) on each
    /// connection, at most
    /// `limits.max_connections` at once: beyond that, new connections wait
    /// in the listen backlog until one closes. Each connection is closed
    /// when it takes longer than `limits.header_read_timeout` to send a
    /// request header, or sits idle for `limits.idle_timeout`.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let local = listener.local_addr()?;
        let debug = match self.debug.take() {
            Some(d) => Some(d.start(&self.limits.get()).await?),
            None => None,
        };
        let s = &self.summary;
        tracing::info!(
            root = s.root,
            delete = s.delete,
            auth = s.auth,
            tls = self.tls.is_some(),
            "listening on {local}"
        );
        if let Some(n) = &self.notifier {
            n.set_listen_port(listener.local_addr()?.port());
        }
        let max_connections = self.limits.get().max_connections;
        let slots = Arc::new(Semaphore::new(max_connections));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if !self.http2 {
            builder = builder.http1_only();
        }
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
                            max_connections,
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
            if slots.available_permits() > max_connections / 2 {
                full_logged = false;
            }
            let (stream, peer) = tokio::select! {
                accepted = conn::accept(&listener, "registry listener") => accepted,
                _ = &mut shutdown => break,
            };
            let (builder, watcher, router) =
                (builder.clone(), graceful.watcher(), self.router.clone());
            let limits = self.limits.get();
            match self.tls.as_ref().map(Tls::acceptor) {
                None => {
                    tokio::spawn(connection(
                        builder, watcher, router, limits, stream, peer, permit,
                    ));
                }
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    tokio::spawn(async move {
                        // A handshake gets the time a request header gets:
                        // a client that never finishes it gives its slot back.
                        match tokio::time::timeout(limits.header_read_timeout, accept).await {
                            Ok(Ok(stream)) => {
                                connection(builder, watcher, router, limits, stream, peer, permit)
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::info!(
                                %peer,
                                "closing the connection: no TLS handshake within {}s \
                                 (limits.header_read_timeout)",
                                limits.header_read_timeout.as_secs_f64()
                            ),
                        }
                    });
                }
            }
        }
        drop(listener);
        if let Some((task, stop)) = debug {
            let _ = stop.send(());
            let _ = task.await;
        }
        tracing::info!("shutting down: finishing in-flight requests");
        tokio::select! {
            _ = graceful.shutdown() => {},
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(
                "in-flight requests still running after {}s: stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            ),
        }
        if let Some(n) = &self.notifier {
            // Onto disk, not delivered: the next start delivers them.
            n.settle(Duration::from_secs(5)).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Counts the blob store in the background for the storage gauges (once:
/// commits and garbage collection keep them current afterwards).
fn count_blobs(store: Arc<FsStore>) {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match store.count_blobs() {
            Ok((blobs, bytes)) => {
                crate::telemetry::blobs_counted(blobs, bytes);
                tracing::info!(
                    blobs,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "counted the blob store for the storage metrics"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the blob store: storage metrics count from zero")
            }
        }
    });
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

/// Reads and checks the TLS files of `http` as [`Registry::new`] does
/// (for `berth check-config`); errors name the key.
pub fn check_tls(http: &crate::config::Http) -> anyhow::Result<()> {
    Tls::from_config(http).map(|_| ())
}

/// Binds `http.addr`.
pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let addr = config.listen_addr()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
