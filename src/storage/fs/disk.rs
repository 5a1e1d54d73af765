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

use super::io::{links_to, not_found, read_link, read_record, sync_dir, write_atomic, Durable};
use super::layout::Layout;
use super::lock::GcGuard;
use crate::oci::{references, Digest, Manifest, MediaType, RepoName, MAX_MANIFEST_BYTES};
use crate::storage::{Result, StoreError, StoredManifest};

/// How deep manifests nest (index → index → manifest) before we stop following.
const MAX_DEPTH: usize = 8;

/// Descriptors one manifest push may make the store follow through its
/// children (the manifest's own included); a push needing more is refused.
pub(super) const MAX_FOLLOWED_DESCRIPTORS: usize = 100_000;

/// Bytes of child manifests one push may make the store read.
pub(super) const MAX_FOLLOWED_BYTES: u64 = 64 << 20;

/// What a push's walk through its children has cost so far.
struct Walk {
    seen: HashSet<Digest>,
    descriptors: usize,
    bytes: u64,
}

impl Walk {
    fn check(&self) -> Result<()> {
        if self.descriptors > MAX_FOLLOWED_DESCRIPTORS || self.bytes > MAX_FOLLOWED_BYTES {
            return Err(StoreError::ManifestTooComplex(format!(
                "the manifest and its children reference more than {MAX_FOLLOWED_DESCRIPTORS} \
                 descriptors or {MAX_FOLLOWED_BYTES} bytes of manifests"
            )));
        }
        Ok(())
    }
}

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
        write_atomic(path, bytes, &self.layout.tmp_file(), Durable::All)
    }

    /// Writes `bytes` to `path` atomically, not durably: for records derived
    /// again when a crash loses them.
    pub fn write_lazy(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        write_atomic(path, bytes, &self.layout.tmp_file(), Durable::Lazy)
    }

    /// Writes a `link` file naming `d`, content and name durable (a tag's
    /// `current` link, a referrer's link: their path does not name `d`).
    pub fn write_link(&self, link: &Path, d: &Digest) -> io::Result<()> {
        self.write_atomic(link, d.to_string().as_bytes())
    }

    /// Writes a `link` file naming `d` in `d`'s own directory (a layer or a
    /// revision): its name is made durable, its bytes are left to the
    /// kernel, and it is read with [`links_to`], which takes a link a crash
    /// left empty as the link its path names. One fsync instead of two.
    pub fn write_link_named(&self, link: &Path, d: &Digest) -> io::Result<()> {
        write_atomic(
            link,
            d.to_string().as_bytes(),
            &self.layout.tmp_file(),
            Durable::Name,
        )
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
        let size = fs::metadata(src)?.len();
        fs::rename(src, &dst)?;
        crate::telemetry::blob_stored(size);
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
        Ok(self.is_layer(r, d)? || links_to(&self.layout.revision_link(r, d), d)?)
    }

    /// Is `d` linked into `r` as a layer?
    pub fn is_layer(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        links_to(&self.layout.layer_link(r, d), d)
    }

    pub fn has_revision(&self, r: &RepoName, d: &Digest) -> io::Result<bool> {
        Ok(links_to(&self.layout.revision_link(r, d), d)? && self.blob_len(d)?.is_some())
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
        let media_type = match self.recorded_media_type(r, d)? {
            Some(mt) => mt,
            None => {
                // Written by registry:2 or an older Berth: detect once.
                let mt = Manifest::detect_stored(&bytes);
                self.record_media_type_if_linked(r, d, mt);
                mt
            }
        };
        Ok(StoredManifest {
            digest: d.clone(),
            media_type,
            bytes,
        })
    }

    /// The media type recorded for revision `d` of `r` at push.
    pub fn recorded_media_type(&self, r: &RepoName, d: &Digest) -> io::Result<Option<MediaType>> {
        // Not fsynced when written: a crash may leave it empty or garbled,
        // which reads as no record (derived again from the manifest).
        read_record(&self.layout.revision_media_type(r, d), MediaType::parse)
    }

    /// Records the media type of a revision written without one, if the
    /// revision is still there (under the push guard, so a collection that
    /// removes it cannot leave the record behind). Best effort: a read-only
    /// data dir is served without it.
    fn record_media_type_if_linked(&self, r: &RepoName, d: &Digest, mt: MediaType) {
        let _push = self.push_guard();
        if let Ok(true) = links_to(&self.layout.revision_link(r, d), d) {
            let _ = self.write_lazy(
                &self.layout.revision_media_type(r, d),
                mt.as_str().as_bytes(),
            );
        }
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

    /// Refreshes the mtime of everything a manifest being pushed to `r`
    /// depends on: the manifest itself (if already stored), its blobs, and,
    /// through child manifests, their blobs, so that a collection that
    /// started before this push cannot sweep them (see [`super::lock`]).
    ///
    /// The caller has checked that `blobs` and `children` are linked into
    /// `r`; below the children only what `r` links is followed or touched
    /// (content of other repositories is neither revealed nor kept alive),
    /// and the walk is bounded by [`MAX_FOLLOWED_DESCRIPTORS`] and
    /// [`MAX_FOLLOWED_BYTES`]: past them the push is refused.
    pub fn protect_references(
        &self,
        r: &RepoName,
        manifest: &Digest,
        blobs: &[Digest],
        children: &[Digest],
    ) -> Result<()> {
        self.touch_blob(manifest)?;
        for b in blobs {
            self.touch_blob(b)?;
        }
        let mut walk = Walk {
            seen: HashSet::new(),
            descriptors: blobs.len() + children.len(),
            bytes: 0,
        };
        walk.check()?;
        for c in children {
            self.protect_closure(r, c, 0, &mut walk)?;
        }
        Ok(())
    }

    fn protect_closure(
        &self,
        r: &RepoName,
        d: &Digest,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<()> {
        if depth > MAX_DEPTH || !walk.seen.insert(d.clone()) {
            return Ok(());
        }
        self.touch_blob(d)?;
        let Some(bytes) = self.read_manifest_bytes(d)? else {
            return Ok(());
        };
        walk.bytes += bytes.len() as u64;
        walk.check()?;
        let refs = references(&bytes);
        drop(bytes);
        walk.descriptors += refs.blobs.len() + refs.manifests.len();
        walk.check()?;
        for b in &refs.blobs {
            if self.is_linked(r, b)? {
                self.touch_blob(b)?;
            }
        }
        for m in &refs.manifests {
            if links_to(&self.layout.revision_link(r, m), m)? {
                self.protect_closure(r, m, depth + 1, walk)?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Algorithm;

    #[test]
    fn a_push_whose_children_name_too_many_descriptors_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk {
            layout: Layout::new(tmp.path()),
            guard: GcGuard::default(),
        };
        std::fs::create_dir_all(disk.layout.tmp_dir()).unwrap();
        let r: RepoName = "a/b".parse().unwrap();
        // Each digest counts twice (as a blob and as a manifest to follow).
        let per_child = MAX_FOLLOWED_DESCRIPTORS / 4 + 1;
        let mut children = Vec::new();
        for c in 0..2u64 {
            // Not JSON: every digest it spells is followed.
            let bytes: String = (0..per_child as u64)
                .map(|i| {
                    format!(
                        "{} ",
                        Digest::of(Algorithm::Sha256, &(c << 32 | i).to_le_bytes())
                    )
                })
                .collect();
            let bytes = Bytes::from(bytes);
            let d = Digest::of(Algorithm::Sha256, &bytes);
            disk.write_blob(&bytes, &d).unwrap();
            disk.write_link(&disk.layout.revision_link(&r, &d), &d)
                .unwrap();
            children.push(d);
        }
        let m = Digest::of(Algorithm::Sha256, b"index");
        assert!(disk.protect_references(&r, &m, &[], &children[..1]).is_ok());
        assert!(matches!(
            disk.protect_references(&r, &m, &[], &children),
            Err(StoreError::ManifestTooComplex(_))
        ));
    }
}
