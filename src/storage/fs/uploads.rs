//! Upload sessions: `_uploads/<uuid>/{data,startedat}` on disk, plus an
//! in-memory cache of each session's running hash so that a chunked upload
//! is hashed once, not re-read at every chunk. The cache is only a shortcut:
//! a restarted server (or another replica) rebuilds the state from `data`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;

use super::io::{hash_file, not_found, remove_tree, rfc3339_now, WRITE_BATCH};
use super::{blocking, FsStore};
use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Digest, RepoName};
use crate::storage::{ByteStream, Result, StoreError};

/// Upload sessions whose hash state is kept in memory; beyond this, idle
/// states are dropped and rebuilt from disk when needed.
const MAX_CACHED_UPLOADS: usize = 4096;

/// Hash state of an upload: the sha256 of its first `.0` bytes.
type UploadState = Option<(u64, Hasher)>;

/// Hash states by upload id, each behind its own lock (which also
/// serialises the requests of one session).
#[derive(Default)]
pub(super) struct HashStates(Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>);

impl HashStates {
    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_UPLOADS {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// An upload's data file being appended to while hashed.
struct Sink {
    file: File,
    hasher: Hasher,
    size: u64,
}

impl Sink {
    /// Writes a batch of chunks on the blocking pool.
    async fn write(mut self, batch: Vec<Bytes>) -> Result<Sink> {
        blocking(move || {
            for chunk in &batch {
                self.hasher.update(chunk);
                self.file.write_all(chunk)?;
                self.size += chunk.len() as u64;
            }
            Ok(self)
        })
        .await
    }
}

/// The upload half of [`crate::storage::Store`] for [`FsStore`].
impl FsStore {
    pub(super) async fn start_upload(&self, repo: &RepoName) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let layout = &self.disk.layout;
        let (dir, data, started) = (
            layout.upload(repo, &id),
            layout.upload_data(repo, &id),
            layout.upload_started_at(repo, &id),
        );
        blocking(move || {
            fs::create_dir_all(&dir)?;
            File::create(data)?;
            fs::write(started, rfc3339_now())?;
            Ok(())
        })
        .await?;
        Ok(id)
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

    pub(super) async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let lock = self.hash_states.lock(id);
        let mut state = lock.lock().await;
        let cached = state.take();
        let path = self.disk.layout.upload_data(repo, id);
        let mut sink = blocking(move || {
            let file = match OpenOptions::new().append(true).open(&path) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Err(StoreError::UploadUnknown),
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata()?.len();
            if offset.is_some_and(|o| o != size) {
                return Err(StoreError::UploadOffset { size });
            }
            let hasher = match cached {
                Some((n, h)) if n == size => h,
                _ => hash_file(&path, Algorithm::Sha256, size)?,
            };
            Ok(Sink { file, hasher, size })
        })
        .await?;
        let mut batch = Vec::new();
        let mut batched = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StoreError::Body)?;
            batched += chunk.len();
            batch.push(chunk);
            if batched >= WRITE_BATCH {
                sink = sink.write(std::mem::take(&mut batch)).await?;
                batched = 0;
            }
        }
        if !batch.is_empty() {
            sink = sink.write(batch).await?;
        }
        *state = Some((sink.size, sink.hasher));
        Ok(sink.size)
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
        let cached = state.take();
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
            file.sync_all()?;
            disk.commit_blob(&path, &d)?;
            disk.write_link(&disk.layout.layer_link(&r, &d), &d)?;
            remove_tree(&dir)?;
            Ok(size)
        })
        .await;
        drop(state);
        if size.is_ok() {
            self.hash_states.forget(id);
        }
        size
    }

    pub(super) async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let lock = self.hash_states.lock(id);
        let _state = lock.lock().await;
        let (dir, data) = (
            self.disk.layout.upload(repo, id),
            self.disk.layout.upload_data(repo, id),
        );
        blocking(move || {
            if !data.is_file() {
                return Err(StoreError::UploadUnknown);
            }
            remove_tree(&dir)?;
            Ok(())
        })
        .await?;
        self.hash_states.forget(id);
        Ok(())
    }
}
