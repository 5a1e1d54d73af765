//! The online collector: a background task of the server that collects on
//! an interval, with the `[gc]` section's options.

use std::sync::Arc;

use super::{collect, human_bytes, Options, Retention};
use crate::config::Gc as GcConfig;
use crate::storage::GcStore;

/// Options of the online collector, from the `[gc]` config section.
pub fn online_options(config: &GcConfig) -> Result<Options, regex::Error> {
    Ok(Options {
        dry_run: false,
        delete_untagged: config.delete_untagged,
        grace: config.grace_period,
        purge_uploads_older_than: Some(config.purge_uploads_older_than),
        retention: Retention::from_config(&config.retention)?,
        hooks: config.test_hooks.clone(),
    })
}

/// Runs the collector every `config.interval` on the blocking pool, logging
/// each run (and emitting a delete event for what it removed when
/// `notifier` is given), until the runtime shuts down.
pub fn spawn_online(
    store: Arc<dyn GcStore>,
    config: &GcConfig,
    notifier: Option<Arc<crate::notify::Notifier>>,
) -> Result<tokio::task::JoinHandle<()>, regex::Error> {
    let opts = online_options(config)?;
    let interval = config.interval;
    tracing::info!(
        interval = %humantime::format_duration(interval),
        grace = %humantime::format_duration(opts.grace),
        delete_untagged = opts.delete_untagged,
        retention_rules = opts.retention.len(),
        "online garbage collection enabled"
    );
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let (store, opts) = (store.clone(), opts.clone());
            match tokio::task::spawn_blocking(move || collect(store.as_ref(), &opts)).await {
                Ok(Ok(r)) => {
                    if let Some(n) = &notifier {
                        r.delete_events(&n.source())
                            .into_iter()
                            .for_each(|e| n.emit(e));
                    }
                    tracing::info!(
                    started_at = %r.started_at,
                    duration_ms = r.duration_ms,
                    blobs_deleted = r.blobs_deleted,
                    bytes_reclaimed = r.bytes_reclaimed,
                    manifests_deleted = r.manifests_deleted,
                    tags_deleted = r.tags_deleted,
                    links_removed = r.links_removed,
                    uploads_purged = r.uploads_purged,
                    blobs_scanned = r.blobs_scanned,
                    "garbage collection: reclaimed {} in {} ms",
                    human_bytes(r.bytes_reclaimed),
                    r.duration_ms
                    )
                }
                Ok(Err(e)) => {
                    crate::telemetry::gc_failed();
                    tracing::error!("garbage collection failed: {e}")
                }
                Err(e) => tracing::error!("garbage collection task failed: {e}"),
            }
        }
    }))
}
