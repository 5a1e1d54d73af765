//! Starting and stopping the HTTP server.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{router_with_auth, AppState};
use crate::config::Config;
use crate::storage::FsStore;

/// Serves the registry until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let root = &config.storage.filesystem.rootdirectory;
    let store = FsStore::open(root)
        .with_context(|| format!("cannot open storage at {}", root.display()))?;
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
        (
            std::env::var("BERTH_INITIAL_USER").ok(),
            std::env::var("BERTH_INITIAL_PASSWORD").ok(),
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
    axum::serve(
        listener,
        // The peer address feeds the auth layer's per-client lockout.
        router_with_auth(state, auth).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("stopped");
    Ok(())
}

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
