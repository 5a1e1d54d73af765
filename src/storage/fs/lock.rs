//! The two locks that keep collection safe:
//! - the data-dir lock (`_berth/lock`, flock): every server holds it shared
//!   for its lifetime, an offline `berth garbage-collect` takes it
//!   exclusively, so the two never run on one data dir at the same time.
//! - the [`GcGuard`] (in-process RwLock): pushes hold it shared while they
//!   check and refresh (mtime) what a new manifest references and link it;
//!   the online collector holds it exclusively for each single delete, after
//!   re-checking the mtime. So a push either sees the blob gone (and fails
//!   cleanly, the client re-uploads) or refreshed it first (and the collector
//!   keeps it): a committed manifest never points at deleted content.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::layout::Layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DirLock {
    /// A server: many may share a data dir.
    Shared,
    /// An offline collector: alone.
    Exclusive,
    /// `--force`: take no lock.
    None,
    /// A dry run: exclusive if a Berth server ever used the data dir (so a
    /// running one is detected), and nothing created otherwise.
    ExclusiveIfPresent,
}

/// Opens the data-dir lock file and locks it as asked, without waiting.
/// `None` only for [`DirLock::ExclusiveIfPresent`] without a lock file.
pub(super) fn lock_dir(layout: &Layout, mode: DirLock) -> io::Result<Option<File>> {
    let path = layout.lock_file();
    let create = mode != DirLock::ExclusiveIfPresent;
    if create {
        fs::create_dir_all(layout.berth())?;
        OpenOptions::new().create(true).append(true).open(&path)?;
    }
    // Held open read-only (a lock needs no more), so the data dir's
    // filesystem can still be remounted read-only while Berth runs.
    let file = match OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let result = match mode {
        DirLock::Shared => file.try_lock_shared(),
        DirLock::Exclusive | DirLock::ExclusiveIfPresent => file.try_lock(),
        DirLock::None => return Ok(Some(file)),
    };
    match result {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            match mode {
                DirLock::Shared => format!(
                    "an offline `berth garbage-collect` is running on this data dir ({} is locked); \
                     wait for it to finish",
                    path.display()
                ),
                _ => format!(
                    "the data dir is in use by a running berth server or garbage-collect ({} is locked); stop it first, \
                     or let the server collect online ([gc] enabled = true), or pass --force \
                     if you are sure nothing writes to it",
                    path.display()
                ),
            },
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Pushes hold it shared, each collector delete exclusively (see the module
/// comment). Cheap to clone into blocking closures.
#[derive(Clone, Default)]
pub(super) struct GcGuard(Arc<RwLock<()>>);

impl GcGuard {
    /// Held by pushes while they check and link what they reference.
    pub fn push(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held by the collector for one re-check and delete.
    pub fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}
