//! Upload sessions: `_uploads/<uuid>/{data,startedat}` on disk, plus an
//! in-memory cache of each session's running hash so that a chunked upload
//! is hashed once, not re-read at every chunk. The cache is only a shortcut:
//! a restarted server (or another replica) rebuilds the state from `data`.
//! A chunk is all or nothing: one that fails midway (full disk, broken body)
//! is truncated away and leaves the cached state as it was. The sessions
//! open are counted and bounded ([`FsStore::limit_uploads`]).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use super::io::{hash_file, list_dir, not_found, remove_tree, rfc3339_now, WRITE_BATCH};
use super::layout::{Holding, Layout};
use super::{blocking, FsStore};
use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Digest, RepoName};
use crate::storage::{ByteStream, Result, StoreError};

/// Upload sessions whose hash state is kept in memory; beyond this, the
/// least recently used idle state is dropped (rebuilt from disk if needed).
const MAX_CACHED_UPLOADS: usize = 4096;

/// Hash state of an upload: the sha256 of its first `.0` bytes.
type UploadState = Option<(u64, Hasher)>;

/// One upload's hash state, behind its own lock (which also serialises the
/// requests of one session), and when it was last used.
struct Cached {
    state: Arc<tokio::sync::Mutex<UploadState>>,
    used: Instant,
}

/// Hash states by upload id.
#[derive(Default)]
pub(super) struct HashStates(Mutex<HashMap<String, Cached>>);

impl HashStates {
    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(c) = map.get_mut(id) {
            c.used = now;
            return c.state.clone();
        }
        if map.len() >= MAX_CACHED_UPLOADS {
            // Evict by age, one at a time: the idle state unused the longest.
            let oldest = map
                .iter()
                .filter(|(_, c)| Arc::strong_count(&c.state) == 1)
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let state = Arc::new(tokio::sync::Mutex::new(None));
        map.insert(
            id.to_string(),
            Cached {
                state: state.clone(),
                used: now,
            },
        );
        state
    }

    fn forget(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    #[cfg(test)]
    fn cached(&self, id: &str) -> Option<u64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let state = map.get(id)?.state.try_lock().ok()?;
        state.as_ref().map(|(n, _)| *n)
    }
}

/// How often, at most, the sessions counted are checked against the disk
/// when a limit is hit (a session finished by another replica, or purged).
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The upload sessions open, counted in memory: initialised at open from
/// the `_uploads` directories, kept current by start, finish and cancel.
/// A session that leaves the disk otherwise (purged by garbage collection,
/// finished by another replica) is noticed when a limit is hit: the
/// sessions counted are then checked against the disk (at most once per
/// [`RECHECK_EVERY`]) before a start is refused.
pub(super) struct OpenUploads(Mutex<Open>);

struct Open {
    by_repo: HashMap<String, HashSet<String>>,
    total: usize,
    max_total: usize,
    max_per_repository: usize,
    checked: Option<Instant>,
}

impl OpenUploads {
    /// Counts the sessions under `layout` (none when `scan` is false).
    pub(super) fn new(layout: &Layout, scan: bool) -> OpenUploads {
        let mut open = Open {
            by_repo: HashMap::new(),
            total: 0,
            max_total: FsStore::DEFAULT_MAX_UPLOADS,
            max_per_repository: FsStore::DEFAULT_MAX_UPLOADS_PER_REPOSITORY,
            checked: None,
        };
        if scan {
            if let Err(e) = open.scan(layout) {
                tracing::warn!(error = %e, "cannot count the open upload sessions; counting from zero");
            }
        }
        OpenUploads(Mutex::new(open))
    }

    fn get(&self) -> std::sync::MutexGuard<'_, Open> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn limit(&self, total: usize, per_repository: usize) {
        let mut open = self.get();
        open.max_total = total;
        open.max_per_repository = per_repository;
    }

    /// Takes a slot for `id` in `repo`, or says which limit is hit.
    fn reserve(&self, repo: &RepoName, id: &str) -> Result<(), StoreError> {
        let mut open = self.get();
        let in_repo = open.by_repo.get(repo.as_str()).map_or(0, HashSet::len);
        if in_repo >= open.max_per_repository {
            return Err(StoreError::TooManyUploads {
                repository: Some(repo.to_string()),
                limit: open.max_per_repository,
            });
        }
        if open.total >= open.max_total {
            return Err(StoreError::TooManyUploads {
                repository: None,
                limit: open.max_total,
            });
        }
        if open
            .by_repo
            .entry(repo.to_string())
            .or_default()
            .insert(id.to_string())
        {
            open.total += 1;
        }
        Ok(())
    }

    /// Frees `id`'s slot (no-op when it holds none).
    fn release(&self, repo: &str, id: &str) {
        let mut open = self.get();
        open.release(repo, id);
    }

    /// The sessions counted, to check against the disk; `None` when checked
    /// too recently.
    fn to_check(&self) -> Option<Vec<(String, String)>> {
        let mut open = self.get();
        if open.checked.is_some_and(|t| t.elapsed() < RECHECK_EVERY) {
            return None;
        }
        open.checked = Some(Instant::now());
        Some(
            open.by_repo
                .iter()
                .flat_map(|(r, ids)| ids.iter().map(move |id| (r.clone(), id.clone())))
                .collect(),
        )
    }
}

impl Open {
    fn release(&mut self, repo: &str, id: &str) {
        if let Some(ids) = self.by_repo.get_mut(repo) {
            if ids.remove(id) {
                self.total -= 1;
            }
            if ids.is_empty() {
                self.by_repo.remove(repo);
            }
        }
    }

    fn scan(&mut self, layout: &Layout) -> std::io::Result<()> {
        for name in layout.walk_repositories(Holding::Anything)? {
            let Ok(repo) = RepoName::from_storage(&name) else {
                continue;
            };
            for id in list_dir(&layout.uploads(&repo))? {
                if self.by_repo.entry(name.clone()).or_default().insert(id) {
                    self.total += 1;
                }
            }
        }
        Ok(())
    }
}

/// Truncates an upload's data file back to `size` unless disarmed: a chunk
/// that fails midway (full disk, broken body, dropped request) leaves no
/// bytes behind that the client was never told were received.
struct Rollback {
    path: Option<PathBuf>,
    size: u64,
}

impl Rollback {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let result = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(self.size));
            if let Err(e) = result {
                tracing::warn!(error = %e, path = %path.display(), "cannot truncate a failed chunk");
            }
        }
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
                self.file.write_all(chunk)?;
                self.hasher.update(chunk);
                self.size += chunk.len() as u64;
            }
            Ok(self)
        })
        .await
    }
}

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
            Ok(counted
                .into_iter()
                .filter(|(r, id)| {
                    RepoName::from_storage(r).is_ok_and(|repo| !layout.upload(&repo, id).is_dir())
                })
                .collect::<Vec<_>>())
        })
        .await?;
        for (r, id) in &gone {
            self.open_uploads.release(r, id);
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
        mut body: ByteStream,
    ) -> Result<u64> {
        let lock = self.hash_states.lock(id);
        let mut state = lock.lock().await;
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
            Ok((Sink { file, hasher, size }, rehashed))
        })
        .await;
        let mut sink = match opened {
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
        // Declared after `state`, so dropped (truncating) before it unlocks.
        let mut rollback = Rollback {
            path: Some(path),
            size: sink.size,
        };
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
        rollback.disarm();
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
            file.sync_all()?;
            disk.commit_blob(&path, &d)?;
            disk.write_link(&disk.layout.layer_link(&r, &d), &d)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: Vec<std::io::Result<Bytes>>) -> ByteStream {
        futures_util::stream::iter(parts).boxed()
    }

    fn chunk(b: &'static [u8]) -> ByteStream {
        body(vec![Ok(Bytes::from_static(b))])
    }

    #[tokio::test]
    async fn a_refused_chunk_keeps_the_hash_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let repo: RepoName = "a/b".parse().unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        assert_eq!(
            store
                .append_upload(&repo, &id, Some(0), chunk(b"abc"))
                .await
                .unwrap(),
            3
        );
        assert_eq!(store.hash_states.cached(&id), Some(3));
        let e = store.append_upload(&repo, &id, Some(7), chunk(b"zz")).await;
        assert!(
            matches!(e, Err(StoreError::UploadOffset { size: 3 })),
            "{e:?}"
        );
        assert_eq!(
            store.hash_states.cached(&id),
            Some(3),
            "a 416 dropped the state"
        );
        assert_eq!(
            store
                .append_upload(&repo, &id, Some(3), chunk(b"def"))
                .await
                .unwrap(),
            6
        );
        let d = Digest::of(Algorithm::Sha256, b"abcdef");
        assert_eq!(store.finish_upload(&repo, &id, &d, None).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn a_chunk_failing_midway_leaves_no_bytes_and_a_correct_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let repo: RepoName = "r".parse().unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        store
            .append_upload(&repo, &id, None, chunk(b"abc"))
            .await
            .unwrap();
        let broken = body(vec![
            Ok(Bytes::from_static(b"xyz")),
            Err(std::io::Error::other("client went away")),
        ]);
        let e = store.append_upload(&repo, &id, None, broken).await;
        assert!(matches!(e, Err(StoreError::Body(_))), "{e:?}");
        assert_eq!(store.uploaded_size(&repo, &id).await.unwrap(), 3);
        assert_eq!(store.hash_states.cached(&id), Some(3));
        store
            .append_upload(&repo, &id, Some(3), chunk(b"def"))
            .await
            .unwrap();
        let d = Digest::of(Algorithm::Sha256, b"abcdef");
        assert_eq!(store.finish_upload(&repo, &id, &d, None).await.unwrap(), 6);
    }

    #[test]
    fn states_are_evicted_oldest_first_and_only_when_idle() {
        let states = HashStates::default();
        let busy = states.lock("busy");
        for i in 0..MAX_CACHED_UPLOADS - 1 {
            drop(states.lock(&format!("u{i}")));
        }
        drop(states.lock("u0")); // used again: now the most recent
        drop(states.lock("new"));
        let map = states.0.lock().unwrap();
        assert_eq!(map.len(), MAX_CACHED_UPLOADS);
        assert!(map.contains_key("busy") && map.contains_key("u0") && map.contains_key("new"));
        assert!(!map.contains_key("u1"), "the oldest idle state goes first");
        drop(busy);
    }

    #[tokio::test]
    async fn sessions_are_bounded_and_finish_cancel_and_purge_free_slots() {
        let dir = tempfile::tempdir().unwrap();
        let leftover = {
            let store = FsStore::open(dir.path()).unwrap();
            store.start_upload(&"a".parse().unwrap()).await.unwrap()
        };
        let store = FsStore::open(dir.path()).unwrap();
        store.limit_uploads(4, 2);
        let (a, b): (RepoName, RepoName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let a2 = store.start_upload(&a).await.unwrap(); // with the leftover: 2 in a
        let e = store.start_upload(&a).await;
        assert!(
            matches!(&e, Err(StoreError::TooManyUploads { repository: Some(r), limit: 2 }) if r == "a"),
            "{e:?}"
        );
        store.cancel_upload(&a, &a2).await.unwrap();
        let a3 = store.start_upload(&a).await.unwrap();
        let b1 = store.start_upload(&b).await.unwrap();
        store.start_upload(&b).await.unwrap();
        let e = store.start_upload(&b).await;
        assert!(
            matches!(&e, Err(StoreError::TooManyUploads { .. })),
            "{e:?}"
        );
        // Finishing frees a slot.
        let d = Digest::of(Algorithm::Sha256, b"x");
        store
            .finish_upload(&b, &b1, &d, Some(chunk(b"x")))
            .await
            .unwrap();
        store.start_upload(&b).await.unwrap();
        // A session removed behind the store's back (a purge) frees its slot.
        let e = store.start_upload(&a).await;
        assert!(
            matches!(&e, Err(StoreError::TooManyUploads { .. })),
            "{e:?}"
        );
        remove_tree(&store.disk.layout.upload(&a, &leftover)).unwrap();
        std::thread::sleep(RECHECK_EVERY);
        store.start_upload(&a).await.unwrap();
        let _ = a3;
    }
}
