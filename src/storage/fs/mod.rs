//! The filesystem store, in registry:2's layout (see [`layout`], the one
//! place a path is built), so a data dir stays readable by registry:2 and
//! vice versa.
//!
//! Every file appears atomically: written to a temporary file and renamed into
//! place. Blobs, tag links and referrer records are fsynced, then their
//! directory; a layer's or revision's `link` (whose path names its digest)
//! has only its directory fsynced and is read with [`io::links_to`], which
//! takes an empty link as the one its path names; a revision's media-type
//! record and a tag's index entry are not fsynced (derived again, or history
//! only). All synchronous I/O runs on the blocking pool, one closure per
//! operation.
//!
//! - [`layout`]: paths; [`io`]: file primitives; [`disk`]: links, blobs and the
//!   push-time refresh shared by serving and collecting;
//! - [`store`] and [`uploads`]: the [`Store`](crate::storage::Store) trait;
//! - [`collect`]: the [`GcStore`](crate::storage::GcStore) trait;
//! - [`lock`]: the data-dir lock and the push / GC guard.

mod collect;
mod disk;
mod index;
mod io;
mod layout;
mod lock;
mod quick;
mod read;
mod referrers;
mod store;
mod uploads;

pub use layout::notification_queues;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use disk::Disk;
use layout::Layout;
use lock::{DirLock, GcGuard};
use uploads::{HashStates, OpenUploads};

use super::{RepoIndex, Result, StoreError};

pub struct FsStore {
    disk: Disk,
    /// Held for the store's lifetime: shared by servers, exclusive by an
    /// offline `garbage-collect` (see [`lock`]).
    _dir_lock: Option<File>,
    hash_states: HashStates,
    /// The upload sessions open, and their limits (see [`FsStore::limit_uploads`]).
    open_uploads: OpenUploads,
    /// With online GC: a blob found by HEAD or GET that was last modified
    /// longer ago than this gets its mtime refreshed (see [`FsStore::refresh_reads`]).
    refresh_after: Option<std::time::Duration>,
    /// The catalog's index (see [`index`]): empty and not ready until
    /// [`FsStore::index_in_background`] has scanned the store once.
    index: Arc<RepoIndex>,
    /// Tags lists of repositories (see [`index::TagsCache`]).
    tags_cache: Arc<index::TagsCache>,
    /// Small manifests' bytes (see [`quick::ManifestBytes`]).
    manifest_bytes: quick::ManifestBytes,
}

/// Why [`FsStore::open_for_gc`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenForGcError {
    #[error("{} holds no registry data (no docker/registry/v2 directory)", .0.display())]
    NoRegistryData(PathBuf),
    #[error("cannot collect {}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] std::io::Error),
}

/// Runs synchronous storage work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

impl FsStore {
    /// A store rooted at `root` (registry:2's `storage.filesystem.rootdirectory`).
    /// Fails while an offline garbage collection holds the data dir.
    pub fn open(root: &Path) -> std::io::Result<FsStore> {
        FsStore::open_locked(root, DirLock::Shared)
    }

    /// Opens a store for an offline collection: takes the data-dir lock
    /// exclusively (fails while a server runs) unless `force`. A dry run
    /// creates nothing in the data dir (a registry:2 one stays untouched).
    /// A root that holds no registry data at all is refused rather than
    /// collected as an empty store (a mistyped root directory).
    pub fn open_for_gc(root: &Path, force: bool, dry_run: bool) -> Result<FsStore, OpenForGcError> {
        if !Layout::new(root).v2().is_dir() {
            return Err(OpenForGcError::NoRegistryData(root.to_path_buf()));
        }
        let mode = match (force, dry_run) {
            (true, _) => DirLock::None,
            (false, true) => DirLock::ExclusiveIfPresent,
            (false, false) => DirLock::Exclusive,
        };
        FsStore::open_locked(root, mode).map_err(|e| OpenForGcError::Io(root.to_path_buf(), e))
    }

    fn open_locked(root: &Path, lock: DirLock) -> std::io::Result<FsStore> {
        let layout = Layout::new(root);
        if lock != DirLock::ExclusiveIfPresent {
            fs::create_dir_all(layout.tmp_dir())?;
            fs::create_dir_all(layout.repositories())?;
            fs::create_dir_all(layout.blobs())?;
        }
        Ok(FsStore {
            _dir_lock: lock::lock_dir(&layout, lock)?,
            // Counted by a server, in the background (see
            // [`FsStore::index_in_background`]): a collection need not.
            open_uploads: OpenUploads::new(),
            disk: Disk {
                layout,
                guard: GcGuard::default(),
            },
            hash_states: HashStates::default(),
            refresh_after: None,
            index: Arc::new(RepoIndex::new()),
            tags_cache: Arc::default(),
            manifest_bytes: Default::default(),
        })
    }

    /// For online GC. docker and friends HEAD a blob, find it, skip the
    /// upload and later push a manifest naming it; if the blob was garbage
    /// and older than the grace period, a collection in between would sweep
    /// it and the manifest push would fail. So a blob that is looked up is
    /// treated as recently used: its mtime is refreshed (under the push
    /// guard, which the collector's re-check respects) when older than
    /// `after`, a fraction of the grace period, so a hot blob costs no write.
    pub fn refresh_reads(&mut self, after: std::time::Duration) {
        self.refresh_after = Some(after);
    }
}

/// For the debug listener: readiness and the start-up count of the blob store.
impl FsStore {
    /// Whether the data dir can be read and, unless `read_only`, written
    /// durably now: lists the root and writes, fsyncs and removes a probe
    /// file in Berth's area. Blocking: run it on the blocking pool.
    pub fn probe(&self, read_only: bool) -> std::io::Result<()> {
        use std::io::Write;
        let layout = &self.disk.layout;
        fs::read_dir(layout.v2())?;
        if read_only {
            return Ok(());
        }
        let path = layout.ready_probe();
        let written = File::create(&path).and_then(|mut f| {
            f.write_all(b"ready")?;
            f.sync_all()
        });
        let removed = fs::remove_file(&path);
        written.and(removed)
    }

    /// The blobs in the blob store and their bytes, by walking it.
    /// Blocking, and long on a big store: once, at start-up.
    pub fn count_blobs(&self) -> std::io::Result<(u64, u64)> {
        let (mut blobs, mut bytes) = (0, 0);
        for (_, path) in self.disk.layout.walk_blobs()? {
            if let Ok(m) = fs::metadata(&path) {
                blobs += 1;
                bytes += m.len();
            }
        }
        Ok((blobs, bytes))
    }
}
