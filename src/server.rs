//! Starting and stopping the HTTP server.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{router, AppState};
use crate::config::Config;
use crate::storage::FsStore;

/// Serves the registry until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let root = &config.storage.filesystem.rootdirectory;
    let store = FsStore::open(root)
        .with_context(|| format!("cannot open storage at {}", root.display()))?;
    let state = AppState {
        store: Arc::new(store),
        delete_enabled: config.storage.delete.enabled,
    };
    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        root = %root.display(),
        delete = config.storage.delete.enabled,
        "listening on {local}"
    );
    axum::serve(listener, router(state))
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
