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

mod conn;
mod tls;

/// How long in-flight requests may run after the shutdown signal (container
/// runtimes should wait a little longer before SIGKILL: compose
/// `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The registry's HTTP application: the API's handlers, behind the auth
/// layer when `auth` is given, inside the API's outer layers (so a 401 is
/// logged and carries the version header too).
pub fn app(state: AppState, auth: Option<Arc<Auth>>) -> Router {
    app_with(state, auth, false)
}

/// [`app`], saying whether it is served over TLS (for the URLs in
/// notification events).
fn app_with(state: AppState, auth: Option<Arc<Auth>>, tls: bool) -> Router {
    let responses = state.responses.clone();
    let notifying = state.notifier.is_some();
    let mut routes = api::handlers(state);
    if notifying {
        // Inside the auth layer, so it sees the authenticated user.
        routes = routes.layer(middleware::from_fn_with_state(tls, notify_context));
    }
    if let Some(auth) = auth {
        routes = routes.layer(middleware::from_fn_with_state(auth, crate::auth::require));
    }
    api::outer_layers(routes, responses)
}

/// The client's address, as notification events report it (`request.addr`).
fn client_addr(req: &axum::extract::Request) -> Option<std::net::SocketAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// Adds what notification events say about the request (client address,
/// host, user agent, authenticated user) for the handlers.
async fn notify_context(
    axum::extract::State(tls): axum::extract::State<bool>,
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
        req.uri().authority().map(|a| a.as_str()),
        client_addr(&req),
        user.as_deref(),
        tls,
    );
    req.extensions_mut().insert(Arc::new(ctx));
    next.run(req).await
}

/// A registry built from its configuration, ready to serve.
pub struct Registry {
    router: Router,
    /// The online collector, stopped when the registry is dropped.
    gc: Option<tokio::task::JoinHandle<()>>,
    /// The certificate reloader, stopped when the registry is dropped.
    tls_reloader: Option<tokio::task::JoinHandle<()>>,
    tls: Option<Tls>,
    /// `[notifications]`: its dispatcher and workers stop with it (what
    /// they had queued stays on disk).
    notifier: Option<Arc<crate::notify::Notifier>>,
    http2: bool,
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
        let readonly = config.storage.maintenance.readonly.enabled;
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
            store,
            delete_enabled: config.storage.delete.enabled,
            limits: Arc::new(config.limits.clone()),
            readonly: Arc::new(readonly.into()),
            responses: Arc::new(
                api::ResponsePolicy::from_config(config).map_err(anyhow::Error::msg)?,
            ),
            notifier: notifier.clone(),
        };
        Ok(Registry {
            router: app_with(state, auth, tls.is_some()),
            gc,
            tls_reloader,
            tls,
            notifier,
            http2: !config.http.http2.disabled,
            summary,
            limits: config.limits.clone(),
        })
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
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let s = &self.summary;
        tracing::info!(
            root = s.root,
            delete = s.delete,
            auth = s.auth,
            tls = self.tls.is_some(),
            "listening on {}",
            listener.local_addr()?
        );
        if let Some(n) = &self.notifier {
            n.set_listen_port(listener.local_addr()?.port());
        }
        let limits = Arc::new(self.limits.clone());
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if !self.http2 {
            builder = builder.http1_only();
        }
        let acceptor = self
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
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
            let (builder, watcher, router) =
                (builder.clone(), graceful.watcher(), self.router.clone());
            let limits = limits.clone();
            match &acceptor {
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
