//! Operations on the layout shared by serving and collecting: links, blob
//! commits and lookups, and the mtime refresh a push does so that a
//! concurrent collection keeps what it relies on.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::RwLockReadGuard;
use std::time::SystemTime;

use bytes::Bytes;

use super::io::{not_found, read_link, sync_dir, write_atomic};
use super::layout::Layout;
use super::lock::GcGuard;
use crate::oci::{references, Digest, Manifest, RepoName, MAX_MANIFEST_BYTES};
use crate::storage::{Result, StoreError, StoredManifest};

/// How deep manifests nest (index → index → manifest) before we stop following.
const MAX_DEPTH: usize = 8;

/// The layout plus the GC guard; cheap to clone into blocking closures.
#[derive(Clone)]
pub(super) struct Disk {
    pub layout: Layout,
    pub guard: GcGuard,
}

impl Disk {
    /// Held by pushes while they check and link what they reference.
    pub fn push_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.guard.push()
    }

    /// Writes `bytes` to `path` atomically and durably.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        write_atomic(path, bytes, &self.layout.tmp_file())
    }

    /// Writes a `link` file naming `d`.
    pub fn write_link(&self, link: &Path, d: &Digest) -> io::Result<()> {
        self.write_atomic(link, d.to_string().as_bytes())
    }

    /// Writes `bytes`, verified to hash to `d`, into the blob store.
    pub fn write_blob(&self, bytes: &Bytes, d: &Digest) -> io::Result<()> {
        let tmp = self.layout.tmp_file();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            self.commit_blob(&tmp, d)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Moves a verified, fsynced file into the blob store under `d`.
    pub fn commit_blob(&self, src: &Path, d: &Digest) -> io::Result<()> {
        let dst = self.layout.blob_data(d);
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

    pub fn blob_len(&self, d: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.layout.blob_data(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Is `d` linked into `r` as a layer (or a manifest) and present?
    pub fn linked_len(&self, r: &RepoName, d: &Digest) -> io::Result<Option<u64>> {
        if self.is_linked(r, d)? {
            self.blob_len(d)
        } else {
            Ok(None)
        }
    }

    /// Is `d` linked into `r` as a layer (or a manifest)?
    pub fn is_linked(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(
            self.is_layer(r, d)?
                || read_link(&self.layout.revision_link(r, d))?.as_ref() == Some(d),
        )
    }

    /// Is `d` linked into `r` as a layer?
    pub fn is_layer(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(read_link(&self.layout.layer_link(r, d))?.as_ref() == Some(d))
    }

    pub fn has_revision(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(
            read_link(&self.layout.revision_link(r, d))?.as_ref() == Some(d)
                && self.blob_len(d)?.is_some(),
        )
    }

    pub fn read_manifest(&self, r: &RepoName, d: &Digest) -> Result<StoredManifest> {
        if !self.has_revision(r, d)? {
            return Err(StoreError::ManifestUnknown);
        }
        let bytes = match fs::read(self.layout.blob_data(d)) {
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

    pub fn tag_target(&self, r: &RepoName, t: &str) -> io::Result<Option<Digest>> {
        read_link(&self.layout.tag_current_link(r, t))
    }

    /// Sets a blob's mtime to now (absent is fine: the caller's check reports it).
    pub fn touch_blob(&self, d: &Digest) -> io::Result<()> {
        match OpenOptions::new()
            .write(true)
            .open(self.layout.blob_data(d))
        {
            Ok(f) => f.set_modified(SystemTime::now()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Refreshes the mtime of everything a manifest being pushed depends on:
    /// the manifest itself (if already stored), its blobs, and, through child
    /// manifests, their blobs, so that a collection that started before this
    /// push cannot sweep them (see [`super::lock`]).
    pub fn protect_references(
        &self,
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
        let Some(bytes) = self.read_manifest_bytes(d)? else {
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

    /// The bytes of blob `d` if it may be a manifest; `None` when absent or
    /// larger than any manifest.
    pub fn read_manifest_bytes(&self, d: &Digest) -> io::Result<Option<Vec<u8>>> {
        let path = self.layout.blob_data(d);
        match fs::metadata(&path) {
            Ok(m) if m.len() > MAX_MANIFEST_BYTES as u64 => return Ok(None),
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
