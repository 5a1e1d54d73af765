//! The filesystem store, in registry:2's layout under `<root>/docker/registry/v2/`:
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>/data                          content, by digest
//! repositories/<name>/_layers/<alg>/<hex>/link               blobs linked into a repo
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link  manifests of a repo
//! repositories/<name>/_manifests/tags/<tag>/current/link     what a tag points at
//! repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! repositories/<name>/_uploads/<uuid>/{data,startedat}       upload sessions
//! repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>/<hex>/link   Berth only:
//!                                              subject -> manifests referring to it
//! _berth/tmp/                                  Berth only: files being written
//! ```
//!
//! registry:2 skips directories starting with `_` when it walks repositories and
//! never looks at `_berth`, so a data dir stays readable by it and vice versa.
//!
//! Every file appears atomically: written to a temporary file, fsynced, renamed
//! into place, then the directory is fsynced. All synchronous I/O runs on the
//! blocking pool, one closure per operation.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{ByteStream, Result, Store, StoreError, StoredManifest};
use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Descriptor, Digest, Manifest, RepoName, Tag};

/// Garbage-collection support (enumeration, guarded deletes, the data-dir lock).
mod gc;

/// Bytes gathered from a request body before one write to disk.
const WRITE_BATCH: usize = 1 << 20;
/// Read size when streaming a blob out.
const READ_CHUNK: usize = 256 << 10;
/// Upload sessions whose hash state is kept in memory; beyond this, idle
/// states are dropped and rebuilt from disk when needed.
const MAX_CACHED_UPLOADS: usize = 4096;

/// Hash state of an upload: the sha256 of its first `.0` bytes.
type UploadState = Option<(u64, Hasher)>;

pub struct FsStore {
    v2: PathBuf,
    /// Held for the store's lifetime: shared by servers, exclusive by an
    /// offline `garbage-collect` (see `gc.rs`).
    _dir_lock: Option<File>,
    /// Pushes hold it shared; GC deletes hold it exclusively (see `gc.rs`).
    gc_guard: Arc<std::sync::RwLock<()>>,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
    /// With online GC: a blob found by HEAD or GET that was last modified
    /// longer ago than this gets its mtime refreshed (see [`FsStore::refresh_reads`]).
    refresh_after: Option<std::time::Duration>,
}

/// Runs synchronous storage work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e)))?
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Reads a `link` file; `None` when absent or not a valid digest.
fn read_link(path: &Path) -> io::Result<Option<Digest>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a directory tree; absent is fine.
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if !not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Directory entries' names; empty when the directory is absent.
fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Digests stored as `<dir>/<alg>/<hex>/` directories.
fn list_digests(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for alg in list_dir(dir)? {
        for hex in list_dir(&dir.join(&alg))? {
            if let Ok(d) = format!("{alg}:{hex}").parse() {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash_file(path: &Path, algorithm: Algorithm, len: u64) -> io::Result<Hasher> {
    let mut hasher = algorithm.hasher();
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; WRITE_BATCH];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buf[..n]);
    }
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl FsStore {
    /// A store rooted at `root` (registry:2's `storage.filesystem.rootdirectory`).
    /// Fails while an offline garbage collection holds the data dir.
    pub fn open(root: &Path) -> io::Result<FsStore> {
        FsStore::open_locked(root, gc::DirLock::Shared)
    }

    fn open_locked(root: &Path, lock: gc::DirLock) -> io::Result<FsStore> {
        let v2 = root.join("docker/registry/v2");
        if lock != gc::DirLock::ExclusiveIfPresent {
            fs::create_dir_all(v2.join("_berth/tmp"))?;
            fs::create_dir_all(v2.join("repositories"))?;
            fs::create_dir_all(v2.join("blobs"))?;
        }
        Ok(FsStore {
            _dir_lock: gc::lock_dir(&v2, lock)?,
            gc_guard: Arc::default(),
            v2,
            uploads: Mutex::new(HashMap::new()),
            refresh_after: None,
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

    fn paths(&self) -> Paths {
        Paths {
            v2: self.v2.clone(),
            gc_guard: self.gc_guard.clone(),
        }
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_UPLOADS {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget_upload(&self, id: &str) {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// Path arithmetic for the layout; cheap to clone into blocking closures.
#[derive(Clone)]
struct Paths {
    v2: PathBuf,
    gc_guard: Arc<std::sync::RwLock<()>>,
}

impl Paths {
    fn blob_data(&self, d: &Digest) -> PathBuf {
        let alg = d.algorithm().as_str();
        let hex = d.hex();
        self.v2
            .join(format!("blobs/{alg}/{}/{hex}/data", &hex[..2]))
    }
    fn repo(&self, r: &RepoName) -> PathBuf {
        self.v2.join("repositories").join(r.as_str())
    }
    fn digest_dir(base: PathBuf, d: &Digest) -> PathBuf {
        base.join(d.algorithm().as_str()).join(d.hex())
    }
    fn layer(&self, r: &RepoName, d: &Digest) -> PathBuf {
        Self::digest_dir(self.repo(r).join("_layers"), d)
    }
    fn revisions(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join("_manifests/revisions")
    }
    fn revision(&self, r: &RepoName, d: &Digest) -> PathBuf {
        Self::digest_dir(self.revisions(r), d)
    }
    fn tags(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join("_manifests/tags")
    }
    fn tag(&self, r: &RepoName, t: &str) -> PathBuf {
        self.tags(r).join(t)
    }
    fn upload(&self, r: &RepoName, id: &str) -> PathBuf {
        self.repo(r).join("_uploads").join(id)
    }
    fn referrers(&self, r: &RepoName, subject: &Digest) -> PathBuf {
        Self::digest_dir(self.repo(r).join("_berth/referrers"), subject)
    }
    fn tmp(&self) -> PathBuf {
        self.v2
            .join("_berth/tmp")
            .join(uuid::Uuid::new_v4().to_string())
    }

    /// Writes `bytes` to `path` atomically and durably.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
        fs::create_dir_all(dir)?;
        let tmp = self.tmp();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_link(&self, dir: PathBuf, d: &Digest) -> io::Result<()> {
        self.write_atomic(&dir.join("link"), d.to_string().as_bytes())
    }

    /// Moves a verified, fsynced file into the blob store under `d`.
    fn commit_blob(&self, src: &Path, d: &Digest) -> io::Result<()> {
        let dst = self.blob_data(d);
        if dst.is_file() {
            // Same digest, same bytes: keep the one already served, and mark
            // it as recently pushed so garbage collection's grace period covers it.
            self.touch_blob(d)?;
            return fs::remove_file(src);
        }
        let dir = dst.parent().ok_or_else(|| io::Error::other("no parent"))?;
        fs::create_dir_all(dir)?;
        fs::rename(src, &dst)?;
        sync_dir(dir)
    }

    fn blob_len(&self, d: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_data(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Is `d` linked into `r` as a layer (or a manifest) and present?
    fn linked_len(&self, r: &RepoName, d: &Digest) -> io::Result<Option<u64>> {
        if self.is_linked(r, d)? {
            self.blob_len(d)
        } else {
            Ok(None)
        }
    }

    /// Is `d` linked into `r` as a layer (or a manifest)?
    fn is_linked(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(
            read_link(&self.layer(r, d).join("link"))?.as_ref() == Some(d)
                || read_link(&self.revision(r, d).join("link"))?.as_ref() == Some(d),
        )
    }

    fn has_revision(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(
            read_link(&self.revision(r, d).join("link"))?.as_ref() == Some(d)
                && self.blob_len(d)?.is_some(),
        )
    }

    fn read_manifest(&self, r: &RepoName, d: &Digest) -> Result<StoredManifest> {
        if !self.has_revision(r, d)? {
            return Err(StoreError::ManifestUnknown);
        }
        let bytes = match fs::read(self.blob_data(d)) {
            Ok(b) => Bytes::from(b),
            Err(e) if not_found(&e) => return Err(StoreError::ManifestUnknown),
            Err(e) => return Err(e.into()),
        };
        Ok(StoredManifest {
            digest: d.clone(),
            media_type: Manifest::detect_stored(&bytes),
            bytes,
        })
    }

    fn tag_target(&self, r: &RepoName, t: &str) -> io::Result<Option<Digest>> {
        read_link(&self.tag(r, t).join("current/link"))
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

#[async_trait]
impl Store for FsStore {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        let refresh_after = self.refresh_after;
        blocking(move || {
            let Some(after) = refresh_after else {
                return p.linked_len(&r, &d)?.ok_or(StoreError::BlobUnknown);
            };
            let _push = p.push_guard();
            if !p.is_linked(&r, &d)? {
                return Err(StoreError::BlobUnknown);
            }
            let meta = match fs::metadata(p.blob_data(&d)) {
                Ok(m) => m,
                Err(e) if not_found(&e) => return Err(StoreError::BlobUnknown),
                Err(e) => return Err(e.into()),
            };
            let stale = meta
                .modified()
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > after));
            if stale {
                // A read-only data dir can serve without it.
                let _ = p.touch_blob(&d);
            }
            Ok(meta.len())
        })
        .await
    }

    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<ByteStream> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        let start = range.start;
        let file = blocking(move || {
            if p.linked_len(&r, &d)?.is_none() {
                return Err(StoreError::BlobUnknown);
            }
            let mut f = match File::open(p.blob_data(&d)) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Err(StoreError::BlobUnknown),
                Err(e) => return Err(e.into()),
            };
            f.seek(SeekFrom::Start(start))?;
            Ok(f)
        })
        .await?;
        let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
        Ok(tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK).boxed())
    }

    async fn blob_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        blocking(move || {
            let dir = p.layer(&r, &d);
            if read_link(&dir.join("link"))?.is_none() {
                return Err(StoreError::BlobUnknown);
            }
            remove_tree(&dir)?;
            Ok(())
        })
        .await
    }

    async fn blob_mount(&self, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool> {
        let (p, r, f, d) = (self.paths(), repo.clone(), from.clone(), digest.clone());
        blocking(move || {
            let _push = p.push_guard();
            let present = read_link(&p.layer(&f, &d).join("link"))?.as_ref() == Some(&d)
                && p.blob_len(&d)?.is_some();
            if present {
                p.touch_blob(&d)?;
                p.write_link(p.layer(&r, &d), &d)?;
            }
            Ok(present)
        })
        .await
    }

    async fn upload_start(&self, repo: &RepoName) -> Result<String> {
        let (p, r) = (self.paths(), repo.clone());
        let id = uuid::Uuid::new_v4().to_string();
        let dir = p.upload(&r, &id);
        blocking(move || {
            fs::create_dir_all(&dir)?;
            File::create(dir.join("data"))?;
            fs::write(dir.join("startedat"), rfc3339_now())?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let path = self.paths().upload(repo, id).join("data");
        blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if not_found(&e) => Err(StoreError::UploadUnknown),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let lock = self.upload_lock(id);
        let mut state = lock.lock().await;
        let cached = state.take();
        let path = self.paths().upload(repo, id).join("data");
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

    async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        if let Some(body) = body {
            self.upload_append(repo, id, None, body).await?;
        }
        let lock = self.upload_lock(id);
        let mut state = lock.lock().await;
        let cached = state.take();
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        let dir = p.upload(&r, id);
        let size = blocking(move || {
            let _push = p.push_guard();
            let path = dir.join("data");
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
            p.commit_blob(&path, &d)?;
            p.write_link(p.layer(&r, &d), &d)?;
            remove_tree(&dir)?;
            Ok(size)
        })
        .await;
        drop(state);
        if size.is_ok() {
            self.forget_upload(id);
        }
        size
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let lock = self.upload_lock(id);
        let _state = lock.lock().await;
        let dir = self.paths().upload(repo, id);
        blocking(move || {
            if !dir.join("data").is_file() {
                return Err(StoreError::UploadUnknown);
            }
            remove_tree(&dir)?;
            Ok(())
        })
        .await?;
        self.forget_upload(id);
        Ok(())
    }

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest> {
        let (p, r, t) = (self.paths(), repo.clone(), tag.clone());
        blocking(move || {
            let d = p
                .tag_target(&r, t.as_str())?
                .ok_or(StoreError::ManifestUnknown)?;
            p.read_manifest(&r, &d)
        })
        .await
    }

    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        blocking(move || p.read_manifest(&r, &d)).await
    }

    async fn manifest_put(
        &self,
        repo: &RepoName,
        tags: &[Tag],
        bytes: Bytes,
        manifest: &Manifest,
        digest: &Digest,
    ) -> Result<()> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        let tags = tags.to_vec();
        let blobs: Vec<Digest> = manifest
            .blob_references()
            .map(|b| b.digest.clone())
            .collect();
        let children: Vec<Digest> = manifest
            .manifests
            .iter()
            .map(|m| m.digest.clone())
            .collect();
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        blocking(move || {
            let _push = p.push_guard();
            p.protect_references(&r, &d, &blobs, &children)?;
            for b in &blobs {
                if p.linked_len(&r, b)?.is_none() {
                    return Err(StoreError::ManifestBlobUnknown(b.clone()));
                }
            }
            for c in &children {
                if !p.has_revision(&r, c)? {
                    return Err(StoreError::ManifestBlobUnknown(c.clone()));
                }
            }
            if p.blob_len(&d)?.is_none() {
                let tmp = p.tmp();
                let result = (|| {
                    let mut f = File::create(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    p.commit_blob(&tmp, &d)
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result?;
            }
            p.write_link(p.revision(&r, &d), &d)?;
            if let Some(s) = &subject {
                p.write_link(Paths::digest_dir(p.referrers(&r, s), &d), &d)?;
            }
            for t in &tags {
                let tag_dir = p.tag(&r, t.as_str());
                p.write_link(Paths::digest_dir(tag_dir.join("index"), &d), &d)?;
                p.write_link(tag_dir.join("current"), &d)?;
            }
            Ok(())
        })
        .await
    }

    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (p, r, d) = (self.paths(), repo.clone(), digest.clone());
        blocking(move || {
            let stored = p.read_manifest(&r, &d)?;
            for t in list_dir(&p.tags(&r))? {
                let tag_dir = p.tag(&r, &t);
                if p.tag_target(&r, &t)?.as_ref() == Some(&d) {
                    remove_tree(&tag_dir)?;
                } else {
                    remove_tree(&Paths::digest_dir(tag_dir.join("index"), &d))?;
                }
            }
            if let Ok(m) = Manifest::parse(&stored.bytes, None) {
                if let Some(s) = m.subject {
                    remove_tree(&Paths::digest_dir(p.referrers(&r, &s.digest), &d))?;
                }
            }
            remove_tree(&p.revision(&r, &d))?;
            Ok(())
        })
        .await
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let (p, r, t) = (self.paths(), repo.clone(), tag.clone());
        blocking(move || {
            if p.tag_target(&r, t.as_str())?.is_none() {
                return Err(StoreError::ManifestUnknown);
            }
            remove_tree(&p.tag(&r, t.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn tags(&self, repo: &RepoName) -> Result<Vec<String>> {
        let (p, r) = (self.paths(), repo.clone());
        blocking(move || {
            // As in the catalog, a repository is a directory with
            // `_manifests`; a bare prefix of other names is not one.
            if !p.repo(&r).join("_manifests").is_dir() {
                return Err(StoreError::NameUnknown);
            }
            let mut tags: Vec<String> = list_dir(&p.tags(&r))?
                .into_iter()
                .filter(|t| p.tag(&r, t).join("current/link").is_file())
                .collect();
            tags.sort();
            Ok(tags)
        })
        .await
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let root = self.v2.join("repositories");
        blocking(move || {
            let mut repos = Vec::new();
            walk_repositories(&root, "", &mut repos)?;
            repos.sort();
            Ok(repos)
        })
        .await
    }

    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let (p, r, s) = (self.paths(), repo.clone(), subject.clone());
        blocking(move || {
            let mut out = Vec::new();
            for d in list_digests(&p.referrers(&r, &s))? {
                let stored = match p.read_manifest(&r, &d) {
                    Ok(m) => m,
                    Err(StoreError::ManifestUnknown) => continue,
                    Err(e) => return Err(e),
                };
                let Ok(m) = Manifest::parse(&stored.bytes, None) else {
                    continue;
                };
                out.push(Descriptor {
                    media_type: m.media_type.as_str().to_string(),
                    digest: d,
                    size: stored.bytes.len() as u64,
                    artifact_type: m.effective_artifact_type(),
                    annotations: m.annotations,
                    urls: Vec::new(),
                });
            }
            Ok(out)
        })
        .await
    }
}

/// Finds repositories: a directory holding `_manifests` is one; directories
/// starting with `_` are not names. (registry:2's catalog also lists a
/// directory that holds only `_layers`, a push that never got to its
/// manifest; Berth lists only repositories with manifests, whose tags list
/// answers.)
fn walk_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    walk_repository_dirs(dir, prefix, &["_manifests"], out)
}

/// Walks the repository tree; a directory holding any of `marks` counts.
fn walk_repository_dirs(
    dir: &Path,
    prefix: &str,
    marks: &[&str],
    out: &mut Vec<String>,
) -> io::Result<()> {
    let mut names = list_dir(dir)?;
    names.sort();
    for name in names {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        let repo = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if marks.iter().any(|m| path.join(m).is_dir()) {
            out.push(repo.clone());
        }
        walk_repository_dirs(&path, &repo, marks, out)?;
    }
    Ok(())
}
