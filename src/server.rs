//! Starting and stopping the HTTP server.

use std::future::IntoFuture;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{router_with_auth, AppState};
use crate::config::Config;
use crate::storage::FsStore;

/// Serves the registry until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    for name in &config.ignored_env {
        tracing::warn!("ignoring {name}: Berth has no such setting");
    }
    let root = &config.storage.filesystem.rootdirectory;
    let mut store = FsStore::open(root)
        .with_context(|| format!("cannot open storage at {}", root.display()))?;
    if config.gc.enabled {
        store.refresh_reads((config.gc.grace_period / 4).min(std::time::Duration::from_secs(60)));
        if config.gc.grace_period < std::time::Duration::from_secs(600) {
            tracing::warn!(
                grace_period = %humantime::format_duration(config.gc.grace_period),
                "gc.grace_period is short: a push whose manifest comes later than that after \
                 its blobs can fail with MANIFEST_BLOB_UNKNOWN (1h is the default)"
            );
        }
    }
    let store = Arc::new(store);
    let _gc = if config.gc.enabled {
        Some(crate::gc::spawn_online(store.clone(), &config.gc)?)
    } else {
        None
    };
    let state = AppState {
        store,
        delete_enabled: config.storage.delete.enabled,
    };
    let auth = crate::auth::Auth::from_config(
        &config.auth,
        &config.access,
        // An empty value is no value: never a user with an empty password.
        (
            std::env::var("BERTH_INITIAL_USER")
                .ok()
                .filter(|v| !v.is_empty()),
            std::env::var("BERTH_INITIAL_PASSWORD")
                .ok()
                .filter(|v| !v.is_empty()),
        ),
    )?;
    if let Some(a) = &auth {
        a.spawn_reloader();
    }
    let auth_on = auth.is_some();
    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        root = %root.display(),
        delete = config.storage.delete.enabled,
        auth = auth_on,
        "listening on {local}"
    );
    // After the signal, in-flight requests get SHUTDOWN_GRACE to finish;
    // then the rest are dropped (an interrupted upload leaves only its
    // session under _uploads, never a blob or tag).
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        // The peer address feeds the auth layer's per-client lockout.
        router_with_auth(state, auth).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
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

/// How long in-flight requests may run after SIGTERM (container runtimes
/// should wait a little longer before SIGKILL: compose `stop_grace_period`,
/// Kubernetes `terminationGracePeriodSeconds`).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
