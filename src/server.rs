//! Composing the registry from its parts and serving it: the store, the
//! online collector, the auth layer between the API's outer layers and its
//! handlers. Reads no environment and installs no signal handler: the
//! caller hands in the configuration, the listener and the shutdown signal,
//! so the whole server runs in-process in tests.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::middleware;
use axum::Router;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::Auth;
use crate::config::Config;
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
        };
        Ok(Registry {
            router: app(state, auth),
            gc,
            summary,
        })
    }

    /// The application, for serving it some other way (`oneshot` in tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight
    /// requests finish for up to [`SHUTDOWN_GRACE`]; the rest are dropped
    /// (an interrupted upload leaves only its session, never a blob or tag).
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
        let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
        let server = axum::serve(
            listener,
            // The peer address feeds the auth layer's per-client lockout.
            self.router
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        });
        let deadline = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            done = server.into_future() => done?,
            _ = deadline => tracing::warn!(
                "in-flight requests still running after {}s: stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            ),
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

/// Binds `http.addr`.
pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let addr = config.listen_addr()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
