//! Upload sessions: `_uploads/<uuid>/{data,startedat}` on disk, plus an
//! in-memory cache of each session's running hash so that a chunked upload
//! is hashed once, not re-read at every chunk. The cache is only a shortcut:
//! a restarted server (or another replica) rebuilds the state from `data`.
//! A chunk is all or nothing: one that fails midway (full disk, broken body)
//! is truncated away and leaves the cached state as it was. The sessions
//! open are counted and bounded ([`FsStore::limit_uploads`]).

use std::fs::{self, File, OpenOptions};
use std::sync::Arc;
use std::time::Duration;

use super::io::{hash_file, not_found, remove_tree, rfc3339_now};
use super::{blocking, FsStore};
use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Digest, RepoName};
use crate::storage::{ByteStream, Result, StoreError};

mod slots;

/// When the upload limits are hit, a session idle this long (no byte
/// received, no status asked that touched it) is removed to free its slot.
pub const RECLAIM_IDLE: Duration = Duration::from_secs(3600);

/// How long since `dir` (an upload session) or its `data` last changed.
fn idle_for(dir: &std::path::Path, data: &std::path::Path) -> Result<Duration> {
    let last = [super::io::mtime(dir)?, super::io::mtime(data)?]
        .into_iter()
        .flatten()
        .max();
    Ok(last.map_or(Duration::ZERO, |t| t.elapsed().unwrap_or_default()))
}
mod sink;
mod states;
#[cfg(test)]
mod tests;

use sink::{Append, Sink};

pub(super) use slots::OpenUploads;
pub(super) use states::HashStates;

/// Hash state of an upload: the sha256 of its first `.0` bytes.
type UploadState = Option<(u64, Hasher)>;

/// The upload half of [`crate::storage::Store`] for [`FsStore`].
impl FsStore {
    /// Upload sessions open at once in the whole registry, by default.
    pub const DEFAULT_MAX_UPLOADS: usize = 4096;
    /// Upload sessions open at once in one repository, by default (a push
    /// opens a few at a time; sessions a client abandoned count until
    /// garbage collection purges them).
    pub const DEFAULT_MAX_UPLOADS_PER_REPOSITORY: usize = 512;

    /// Bounds the upload sessions open at once, in `total` and per
    /// repository; a start beyond either is refused with
    /// [`StoreError::TooManyUploads`]. Finishing or cancelling a session
    /// frees its slot, and so does its purge by garbage collection.
    pub fn limit_uploads(&self, total: usize, per_repository: usize) {
        self.open_uploads.limit(total, per_repository);
    }

    /// Takes a slot for a new session, checking the sessions counted
    /// against the disk first when a limit is hit.
    async fn reserve_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let refused = match self.open_uploads.reserve(repo, id) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(counted) = self.open_uploads.to_check() else {
            return Err(refused);
        };
        let layout = self.disk.layout.clone();
        let gone = blocking(move || {
            let mut gone = Vec::new();
            for (r, id) in counted {
                let Ok(repo) = RepoName::from_storage(&r) else {
                    continue;
                };
                let dir = layout.upload(&repo, &id);
                if !dir.is_dir() {
                    gone.push((r, id));
                } else if idle_for(&dir, &layout.upload_data(&repo, &id))? > RECLAIM_IDLE {
                    // Under pressure, a session nobody has touched for
                    // this long is abandoned: its slot goes to a new one,
                    // so a client cannot hold a repository's slots with
                    // sessions it never uses.
                    remove_tree(&dir)?;
                    tracing::info!(
                        repository = r,
                        upload = id,
                        "reclaimed an idle upload session"
                    );
                    gone.push((r, id));
                }
            }
            Ok(gone)
        })
        .await?;
        for (r, id) in &gone {
            self.open_uploads.release(r, id);
            self.hash_states.forget(id);
        }
        self.open_uploads.reserve(repo, id)
    }

    pub(super) async fn start_upload(&self, repo: &RepoName) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.reserve_upload(repo, &id).await?;
        let layout = &self.disk.layout;
        let (dir, data, started) = (
            layout.upload(repo, &id),
            layout.upload_data(repo, &id),
            layout.upload_started_at(repo, &id),
        );
        let created = blocking(move || {
            let result = (|| {
                fs::create_dir_all(&dir)?;
                File::create(data)?;
                fs::write(started, rfc3339_now())
            })();
            if result.is_err() {
                let _ = remove_tree(&dir);
            }
            Ok(result?)
        })
        .await;
        if created.is_err() {
            self.open_uploads.release(repo.as_str(), &id);
        }
        created.map(|()| id)
    }

    pub(super) async fn uploaded_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let path = self.disk.layout.upload_data(repo, id);
        blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if not_found(&e) => Err(StoreError::UploadUnknown),
            Err(e) => Err(e.into()),
        })
        .await
    }

    /// Appends `body`. The cached hash state is only replaced once the
    /// whole chunk is on disk: a chunk refused (416) or failed midway
    /// leaves it, and the data file, as they were.
    pub(super) async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let mut state = self.hash_states.lock(id).lock_owned().await;
        let cached = state.clone();
        let path = self.disk.layout.upload_data(repo, id);
        let data = path.clone();
        let opened = blocking(move || {
            let file = match OpenOptions::new().append(true).open(&data) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Err(StoreError::UploadUnknown),
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata()?.len();
            if offset.is_some_and(|o| o != size) {
                return Err(StoreError::UploadOffset { size });
            }
            let (hasher, rehashed) = match cached {
                Some((n, h)) if n == size => (h, false),
                _ => (hash_file(&data, Algorithm::Sha256, size)?, true),
            };
            let file = Arc::new(file);
            Ok((Sink { file, hasher, size }, rehashed))
        })
        .await;
        let sink = match opened {
            Ok((sink, rehashed)) => {
                if rehashed && sink.size > 0 {
                    tracing::debug!(
                        upload = id,
                        bytes = sink.size,
                        "upload hash state rebuilt from disk"
                    );
                    *state = Some((sink.size, sink.hasher.clone()));
                }
                sink
            }
            Err(e) => {
                if matches!(e, StoreError::UploadUnknown) {
                    drop(state);
                    self.hash_states.forget(id);
                }
                return Err(e);
            }
        };
        // Holds the lock; rolls the file back unless the chunk completes.
        let mut append = Append::new(state, path, sink.size);
        let sink = append.run(sink, body).await?;
        let size = sink.size;
        append.done(Some((size, sink.hasher)));
        Ok(size)
    }

    pub(super) async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        if let Some(body) = body {
            self.append_upload(repo, id, None, body).await?;
        }
        let lock = self.hash_states.lock(id);
        let mut state = lock.lock().await;
        let cached = state.clone();
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        let (dir, path) = (disk.layout.upload(&r, id), disk.layout.upload_data(&r, id));
        let size = blocking(move || {
            let _push = disk.push_guard();
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Err(StoreError::UploadUnknown),
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata()?.len();
            let computed = match cached {
                Some((n, h)) if n == size && d.algorithm() == Algorithm::Sha256 => h.finish(),
                _ => hash_file(&path, d.algorithm(), size)?.finish(),
            };
            if computed != d {
                return Err(StoreError::DigestMismatch {
                    expected: d,
                    computed,
                });
            }
            // Durable before the 201 that names it; the data (and the
            // size that reaches it) is all a new file needs.
            file.sync_data()?;
            disk.commit_blob(&path, &d)?;
            disk.write_link_named(&disk.layout.layer_link(&r, &d), &d)?;
            remove_tree(&dir)?;
            Ok(size)
        })
        .await;
        match &size {
            Ok(_) | Err(StoreError::UploadUnknown) => {
                *state = None;
                drop(state);
                self.hash_states.forget(id);
                self.open_uploads.release(repo.as_str(), id);
            }
            Err(_) => {}
        }
        size
    }

    pub(super) async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let lock = self.hash_states.lock(id);
        let state = lock.lock().await;
        let (dir, data) = (
            self.disk.layout.upload(repo, id),
            self.disk.layout.upload_data(repo, id),
        );
        let result = blocking(move || {
            if !data.is_file() {
                return Err(StoreError::UploadUnknown);
            }
            remove_tree(&dir)?;
            Ok(())
        })
        .await;
        if matches!(result, Ok(()) | Err(StoreError::UploadUnknown)) {
            drop(state);
            self.hash_states.forget(id);
            self.open_uploads.release(repo.as_str(), id);
        }
        result
    }
}
