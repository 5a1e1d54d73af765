//! The reads behind the small, hot requests (manifest GET and HEAD, blob
//! HEAD), answered on the calling thread instead of the blocking pool.
//!
//! Each of them reads two to four small files (links of 71 bytes, a
//! manifest of a few KiB) that live in the page cache: a few microseconds
//! of work, where the hop to the blocking pool and back (a queued task, a
//! thread woken, two context switches, a task woken) cost several times
//! that and was most of the CPU of a manifest GET. What is not small or
//! not a plain read goes to the blocking pool as before: a manifest over
//! [`QUICK_MAX`], one pushed without a recorded media type (recording it
//! writes and fsyncs a file), a blob whose mtime must be refreshed for the
//! collector (a write, under the collector's guard), and every write.
//!
//! The price: a data dir on a disk that stalls (a hung network mount)
//! stalls the runtime's threads on these reads rather than only the
//! blocking pool's; every pull would stall on it either way.

use std::fs::{self, File};
use std::io::Read;

use bytes::Bytes;

use super::disk::Disk;
use super::io::{links_to, not_found};
use crate::oci::{Digest, RepoName};
use crate::storage::{ManifestInfo, Result, StoreError, StoredManifest};

/// Manifests up to this size are read on the calling thread.
pub(super) const QUICK_MAX: u64 = 64 << 10;

/// `Ok(None)`: answer from the blocking pool instead.
pub(super) type Quick<T> = Result<Option<T>>;

impl Disk {
    /// The digest tag `t` of `r` points at.
    pub(super) fn quick_tag(&self, r: &RepoName, t: &str) -> Result<Digest> {
        self.tag_target(r, t)?.ok_or(StoreError::ManifestUnknown)
    }

    /// Revision `d` of `r`, as [`Disk::read_manifest`] reads it.
    pub(super) fn quick_manifest(&self, r: &RepoName, d: &Digest) -> Quick<StoredManifest> {
        if !links_to(&self.layout.revision_link(r, d), d)? {
            return Err(StoreError::ManifestUnknown);
        }
        let mut file = match File::open(self.layout.blob_data(d)) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Err(StoreError::ManifestUnknown),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len();
        if len > QUICK_MAX {
            return Ok(None);
        }
        let Some(media_type) = self.recorded_media_type(r, d)? else {
            return Ok(None);
        };
        // Blob files are never rewritten: one read of the size the open
        // file has (where `read_to_end` would look for its end, twice).
        let mut bytes = vec![0; len as usize];
        file.read_exact(&mut bytes)?;
        Ok(Some(StoredManifest {
            digest: d.clone(),
            media_type,
            bytes: Bytes::from(bytes),
        }))
    }

    /// What a manifest HEAD answers for revision `d` of `r`.
    pub(super) fn quick_manifest_info(&self, r: &RepoName, d: Digest) -> Quick<ManifestInfo> {
        // As `has_revision`, with the blob's size from the same `stat`.
        if !links_to(&self.layout.revision_link(r, &d), &d)? {
            return Err(StoreError::ManifestUnknown);
        }
        let size = self.blob_len(&d)?.ok_or(StoreError::ManifestUnknown)?;
        Ok(self
            .recorded_media_type(r, &d)?
            .map(|media_type| ManifestInfo {
                digest: d,
                media_type,
                size,
            }))
    }

    /// The size of blob `d` linked into `r`; `refresh_after`: the age past
    /// which a looked-up blob's mtime is refreshed (by the blocking pool).
    pub(super) fn quick_blob_size(
        &self,
        r: &RepoName,
        d: &Digest,
        refresh_after: Option<std::time::Duration>,
    ) -> Quick<u64> {
        if !self.is_linked(r, d)? {
            return Err(StoreError::BlobUnknown);
        }
        let meta = match fs::metadata(self.layout.blob_data(d)) {
            Ok(m) => m,
            Err(e) if not_found(&e) => return Err(StoreError::BlobUnknown),
            Err(e) => return Err(e.into()),
        };
        let stale = refresh_after.is_some_and(|after| {
            meta.modified()
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > after))
        });
        Ok((!stale).then_some(meta.len()))
    }
}
