//! Garbage-collection support for [`FsStore`]: the data-dir lock, the push
//! guard, enumeration of the layout, and deletes that re-check their reason.
//!
//! Two locks keep collection safe:
//! - `_berth/lock` (flock): every server holds it shared for its lifetime, an
//!   offline `berth garbage-collect` takes it exclusively, so the two never
//!   run on one data dir at the same time.
//! - `gc_guard` (in-process RwLock): pushes hold it shared while they check
//!   and refresh (mtime) what a new manifest references and link it; the
//!   online collector holds it exclusively for each single delete, after
//!   re-checking the mtime. So a push either sees the blob gone (and fails
//!   cleanly, the client re-uploads) or refreshed it first (and the collector
//!   keeps it): a committed manifest never points at deleted content.

use std::collections::HashSet;
use std::sync::{RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use super::{list_digests, list_dir, read_link, remove_tree, walk_repository_dirs, FsStore, Paths};
use crate::gc::references;
use crate::oci::Digest;
use crate::storage::{GcBlob, GcStore, GcTag, GcUpload};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Largest blob read as a manifest (registry:2 and Berth limit manifests to 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// How deep manifests nest (index → index → manifest) before we stop following.
const MAX_DEPTH: usize = 8;

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

/// Opens `<v2>/_berth/lock` and locks it as asked, without waiting.
/// `None` only for [`DirLock::ExclusiveIfPresent`] without a lock file.
pub(super) fn lock_dir(v2: &Path, mode: DirLock) -> io::Result<Option<File>> {
    let dir = v2.join("_berth");
    let path = dir.join("lock");
    let create = mode != DirLock::ExclusiveIfPresent;
    if create {
        fs::create_dir_all(&dir)?;
    }
    let file = match OpenOptions::new()
        .create(create)
        .read(true)
        .write(create)
        .truncate(false)
        .open(&path)
    {
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

impl FsStore {
    /// Opens a store for an offline collection: takes the data-dir lock
    /// exclusively (fails while a server runs) unless `force`. A dry run
    /// creates nothing in the data dir (a registry:2 one stays untouched).
    pub fn open_for_gc(root: &Path, force: bool, dry_run: bool) -> io::Result<FsStore> {
        let mode = match (force, dry_run) {
            (true, _) => DirLock::None,
            (false, true) => DirLock::ExclusiveIfPresent,
            (false, false) => DirLock::Exclusive,
        };
        FsStore::open_locked(root, mode)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.v2.join("repositories").join(repo)
    }

    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gc_guard.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn mtime(path: &Path) -> io::Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.modified()?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn digest_dir(base: &Path, d: &Digest) -> PathBuf {
    base.join(d.algorithm().as_str()).join(d.hex())
}

impl Paths {
    /// Held by pushes while they check and link what they reference.
    pub(super) fn push_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.gc_guard.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a blob's mtime to now (absent is fine: the caller's check reports it).
    pub(super) fn touch_blob(&self, d: &Digest) -> io::Result<()> {
        match OpenOptions::new().write(true).open(self.blob_data(d)) {
            Ok(f) => f.set_modified(SystemTime::now()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Refreshes the mtime of everything a manifest being pushed depends on:
    /// the manifest itself (if already stored), its blobs, and, through child
    /// manifests, their blobs, so that a collection that started before this
    /// push cannot sweep them (see the module comment).
    pub(super) fn protect_references(
        &self,
        _repo: &crate::oci::RepoName,
        manifest: &Digest,
        blobs: &[Digest],
        children: &[Digest],
    ) -> io::Result<()> {
        self.touch_blob(manifest)?;
        for b in blobs {
            self.touch_blob(b)?;
        }
        let mut seen = HashSet::new();
        for c in children {
            self.protect_closure(c, 0, &mut seen)?;
        }
        Ok(())
    }

    fn protect_closure(
        &self,
        d: &Digest,
        depth: usize,
        seen: &mut HashSet<Digest>,
    ) -> io::Result<()> {
        if depth > MAX_DEPTH || !seen.insert(d.clone()) {
            return Ok(());
        }
        self.touch_blob(d)?;
        let Some(bytes) = read_manifest_bytes(&self.blob_data(d))? else {
            return Ok(());
        };
        let refs = references(&bytes);
        for b in &refs.blobs {
            self.touch_blob(b)?;
        }
        for m in &refs.manifests {
            self.protect_closure(m, depth + 1, seen)?;
        }
        Ok(())
    }
}

fn read_manifest_bytes(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_MANIFEST => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn blob_entry(path: &Path, digest: &Digest) -> io::Result<Option<GcBlob>> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(GcBlob {
            digest: digest.clone(),
            size: m.len(),
            modified: m.modified()?,
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl GcStore for FsStore {
    fn gc_repositories(&self) -> io::Result<Vec<String>> {
        // Also a first push that never got to its manifest: its uploads and
        // layer links are garbage like any other.
        let mut repos = Vec::new();
        walk_repository_dirs(
            &self.v2.join("repositories"),
            "",
            &["_manifests", "_layers", "_uploads"],
            &mut repos,
        )?;
        repos.sort();
        Ok(repos)
    }

    fn gc_tags(&self, repo: &str) -> io::Result<Vec<GcTag>> {
        let tags = self.repo_dir(repo).join("_manifests/tags");
        let mut out = Vec::new();
        for name in list_dir(&tags)? {
            let dir = tags.join(&name);
            let link = dir.join("current/link");
            out.push(GcTag {
                target: read_link(&link)?,
                pushed: mtime(&link)?.unwrap_or(SystemTime::UNIX_EPOCH),
                index: list_digests(&dir.join("index"))?,
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn gc_revisions(&self, repo: &str) -> io::Result<Vec<(Digest, SystemTime)>> {
        let base = self.repo_dir(repo).join("_manifests/revisions");
        let mut out = Vec::new();
        for d in list_digests(&base)? {
            let link = digest_dir(&base, &d).join("link");
            if let Some(t) = mtime(&link)? {
                out.push((d, t));
            }
        }
        Ok(out)
    }

    fn gc_layer_links(&self, repo: &str) -> io::Result<Vec<Digest>> {
        list_digests(&self.repo_dir(repo).join("_layers"))
    }

    fn gc_referrer_links(&self, repo: &str) -> io::Result<Vec<(Digest, Digest)>> {
        let base = self.repo_dir(repo).join("_berth/referrers");
        let mut out = Vec::new();
        for subject in list_digests(&base)? {
            for referrer in list_digests(&digest_dir(&base, &subject))? {
                out.push((subject.clone(), referrer));
            }
        }
        Ok(out)
    }

    fn gc_uploads(&self, repo: &str) -> io::Result<Vec<GcUpload>> {
        let base = self.repo_dir(repo).join("_uploads");
        let mut out = Vec::new();
        for id in list_dir(&base)? {
            let dir = base.join(&id);
            let started = fs::read_to_string(dir.join("startedat"))
                .ok()
                .and_then(|s| humantime::parse_rfc3339_weak(s.trim()).ok());
            // The latest sign of life: an upload that is still receiving
            // chunks is not stale, however long ago it started.
            let last_active = [started, mtime(&dir)?, mtime(&dir.join("data"))?]
                .into_iter()
                .flatten()
                .max();
            out.push(GcUpload { id, last_active });
        }
        Ok(out)
    }

    fn gc_blobs(&self) -> io::Result<Vec<GcBlob>> {
        let base = self.v2.join("blobs");
        let mut out = Vec::new();
        for alg in list_dir(&base)? {
            for prefix in list_dir(&base.join(&alg))? {
                for hex in list_dir(&base.join(&alg).join(&prefix))? {
                    let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
                        continue;
                    };
                    let path = base.join(&alg).join(&prefix).join(&hex).join("data");
                    if let Some(b) = blob_entry(&path, &digest)? {
                        out.push(b);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn gc_blob(&self, digest: &Digest) -> io::Result<Option<GcBlob>> {
        blob_entry(&self.paths().blob_data(digest), digest)
    }

    fn gc_read_manifest(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        read_manifest_bytes(&self.paths().blob_data(digest))
    }

    fn gc_delete_blob(&self, digest: &Digest, cutoff: SystemTime) -> io::Result<Option<u64>> {
        let path = self.paths().blob_data(digest);
        let _gc = self.exclusive();
        let Some(blob) = blob_entry(&path, digest)? else {
            return Ok(None);
        };
        if blob.modified >= cutoff {
            return Ok(None);
        }
        fs::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            let _ = fs::remove_dir(dir);
        }
        Ok(Some(blob.size))
    }

    fn gc_delete_revision(
        &self,
        repo: &str,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> io::Result<bool> {
        let dir = digest_dir(&self.repo_dir(repo).join("_manifests/revisions"), digest);
        let _gc = self.exclusive();
        let fresh = |t: Option<SystemTime>| t.is_some_and(|t| t >= cutoff);
        if fresh(mtime(&dir.join("link"))?) || fresh(mtime(&self.paths().blob_data(digest))?) {
            return Ok(false);
        }
        remove_tree(&dir)?;
        Ok(true)
    }

    fn gc_delete_tag(&self, repo: &str, expected: &GcTag) -> io::Result<bool> {
        let dir = self
            .repo_dir(repo)
            .join("_manifests/tags")
            .join(&expected.name);
        let _gc = self.exclusive();
        let link = dir.join("current/link");
        if read_link(&link)? != expected.target || mtime(&link)? != Some(expected.pushed) {
            return Ok(false);
        }
        // The current link first: a crash then leaves a tag that is simply gone.
        match fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        remove_tree(&dir)?;
        Ok(true)
    }

    fn gc_delete_tag_index(&self, repo: &str, tag: &str, digest: &Digest) -> io::Result<bool> {
        let dir = self.repo_dir(repo).join("_manifests/tags").join(tag);
        let _gc = self.exclusive();
        if read_link(&dir.join("current/link"))?.as_ref() == Some(digest) {
            return Ok(false);
        }
        remove_tree(&digest_dir(&dir.join("index"), digest))?;
        Ok(true)
    }

    fn gc_delete_layer_link(&self, repo: &str, digest: &Digest) -> io::Result<bool> {
        let dir = digest_dir(&self.repo_dir(repo).join("_layers"), digest);
        let _gc = self.exclusive();
        if self.paths().blob_data(digest).exists() {
            return Ok(false);
        }
        remove_tree(&dir)?;
        Ok(true)
    }

    fn gc_delete_referrer_link(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<bool> {
        let repo_dir = self.repo_dir(repo);
        let revision = digest_dir(&repo_dir.join("_manifests/revisions"), referrer);
        let subject_dir = digest_dir(&repo_dir.join("_berth/referrers"), subject);
        let _gc = self.exclusive();
        if revision.join("link").exists() {
            return Ok(false);
        }
        remove_tree(&digest_dir(&subject_dir, referrer))?;
        let _ = fs::remove_dir(subject_dir.join(referrer.algorithm().as_str()));
        let _ = fs::remove_dir(&subject_dir);
        Ok(true)
    }

    fn gc_delete_upload(&self, repo: &str, id: &str) -> io::Result<()> {
        remove_tree(&self.repo_dir(repo).join("_uploads").join(id))
    }

    fn gc_purge_tmp(&self, cutoff: SystemTime) -> io::Result<usize> {
        let dir = self.v2.join("_berth/tmp");
        let mut n = 0;
        for name in list_dir(&dir)? {
            let path = dir.join(name);
            if mtime(&path)?.is_some_and(|t| t < cutoff) && fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
