//! Feeding the catalog's [`RepoIndex`] from the filesystem: a scan of the
//! repository tree that lists exactly what the catalog's walk lists (a
//! directory, not named `_…`, holding a `_manifests` directory), one
//! `readdir` per directory and no `stat` (the entry types come with the
//! listing), and the background task that repeats it.
//!
//! Berth's own writes keep the index current at once. Another process
//! writing the same data dir (registry:2, a second Berth) is caught by the
//! re-scan, every [`rescan_interval`]: max(2 s, 20 × the last scan's time),
//! so the scans cost at most 5% of one core whatever the store's size.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::io::not_found;
use super::layout::Layout;
use super::FsStore;

/// The shortest time between two scans.
const MIN_RESCAN: Duration = Duration::from_secs(2);
/// A scan every this many times its own duration, at most.
const RESCAN_FACTOR: u32 = 20;
/// Progress is published every this many repositories found.
const PROGRESS_EVERY: usize = 4096;

/// How long after a scan that took `took` the next one starts.
pub(super) fn rescan_interval(took: Duration) -> Duration {
    (took * RESCAN_FACTOR).max(MIN_RESCAN)
}

/// Every repository under the layout's repositories directory, as the
/// catalog's walk finds them; `progress` is told the count now and then.
pub(super) fn scan(
    layout: &Layout,
    progress: &mut dyn FnMut(usize),
) -> io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    visit(&layout.repositories(), None, &mut out, progress)?;
    Ok(out)
}

fn is_dir(entry: &fs::DirEntry) -> io::Result<bool> {
    let t = entry.file_type()?;
    // A symlink counts as what it points at, as `Path::is_dir` says.
    Ok(t.is_dir() || (t.is_symlink() && entry.path().is_dir()))
}

fn visit(
    dir: &Path,
    name: Option<&str>,
    out: &mut BTreeSet<String>,
    progress: &mut dyn FnMut(usize),
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(child) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(stripped) = child.strip_prefix('_') {
            if stripped == "manifests" && is_dir(&entry)? {
                if let Some(n) = name {
                    out.insert(n.to_string());
                    if out.len().is_multiple_of(PROGRESS_EVERY) {
                        progress(out.len());
                    }
                }
            }
            continue;
        }
        if !is_dir(&entry)? {
            continue;
        }
        let repo = match name {
            Some(n) => format!("{n}/{child}"),
            None => child,
        };
        visit(&entry.path(), Some(&repo), out, progress)?;
    }
    Ok(())
}

impl FsStore {
    /// Builds the catalog's index in the background, then re-scans on the
    /// bounded interval for other writers of the data dir; ends when the
    /// store is dropped. Until the first scan is done, the catalog is
    /// answered from a walk. Needs a Tokio runtime.
    pub fn index_in_background(self: &Arc<FsStore>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(keep_index(weak));
    }
}

async fn keep_index(weak: Weak<FsStore>) {
    let mut first = true;
    let mut warned = false;
    loop {
        let Some(store) = weak.upgrade() else {
            return;
        };
        let (index, layout) = (store.index.clone(), store.disk.layout.clone());
        drop(store);
        let started = Instant::now();
        index.begin_scan();
        let scanned = tokio::task::spawn_blocking(move || {
            let mut progress = |n: usize| {
                if first {
                    crate::telemetry::catalog_index_progress(n);
                }
            };
            scan(&layout, &mut progress)
        })
        .await;
        let took = started.elapsed();
        match scanned {
            Ok(Ok(found)) => {
                if index.finish_scan(found) {
                    crate::telemetry::catalog_indexed(index.len(), took);
                    if first {
                        tracing::info!(
                            repositories = index.len(),
                            ms = took.as_millis() as u64,
                            "indexed the catalog"
                        );
                        first = false;
                    }
                }
                warned = false;
            }
            Ok(Err(e)) => {
                index.abandon_scan();
                if !warned {
                    tracing::warn!(error = %e, "cannot scan the repositories for the catalog's index: the catalog walks the store until a scan succeeds");
                    warned = true;
                }
            }
            Err(_) => {
                index.abandon_scan();
                return;
            }
        }
        tokio::time::sleep(rescan_interval(took)).await;
    }
}
