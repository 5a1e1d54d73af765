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
//!
//! The bytes of small manifests are kept in memory ([`ManifestBytes`]):
//! a blob's content never changes under its digest, so only the links
//! that say whether a repository has it (the tag, the revision link, its
//! media type) are read from the disk for each request, whoever wrote them.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::Read;
use std::sync::RwLock;

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

    /// Revision `d` of `r`, as [`Disk::read_manifest`] reads it; its bytes
    /// from `cache` when they are there, else read and kept there.
    pub(super) fn quick_manifest(
        &self,
        r: &RepoName,
        d: &Digest,
        cache: &ManifestBytes,
    ) -> Quick<StoredManifest> {
        if !links_to(&self.layout.revision_link(r, d), d)? {
            return Err(StoreError::ManifestUnknown);
        }
        let bytes = match cache.get(d) {
            Some(bytes) => bytes,
            None => {
                let mut file = match File::open(self.layout.blob_data(d)) {
                    Ok(f) => f,
                    Err(e) if not_found(&e) => return Err(StoreError::ManifestUnknown),
                    Err(e) => return Err(e.into()),
                };
                let len = file.metadata()?.len();
                if len > QUICK_MAX {
                    return Ok(None);
                }
                // Blob files are never rewritten: one read of the size the
                // open file has (where `read_to_end` would look for its end,
                // twice).
                let mut bytes = vec![0; len as usize];
                file.read_exact(&mut bytes)?;
                let bytes = Bytes::from(bytes);
                cache.put(d, &bytes);
                bytes
            }
        };
        let Some(media_type) = self.recorded_media_type(r, d)? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest: d.clone(),
            media_type,
            bytes,
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

/// The bytes of recently read manifests up to [`QUICK_MAX`], by digest:
/// at most [`ManifestBytes::CAPACITY`] bytes in all (each entry counted
/// with [`ENTRY_COST`] for its keys, so tiny manifests cannot make the
/// bookkeeping outgrow it), the oldest entries dropped first. Only the bytes: whether a repository has a manifest is
/// read from its links every time.
#[derive(Default)]
pub(super) struct ManifestBytes(RwLock<Held>);

#[derive(Default)]
struct Held {
    map: HashMap<Digest, Bytes>,
    /// Insertion order, oldest first.
    order: VecDeque<Digest>,
    /// What the entries are charged in all.
    charged: usize,
}

/// What an entry costs beside its bytes: its digest twice (map and queue),
/// the map's slot, the `Bytes` handle.
const ENTRY_COST: usize = 256;

impl ManifestBytes {
    pub(super) const CAPACITY: usize = 8 << 20;

    fn get(&self, d: &Digest) -> Option<Bytes> {
        let held = self.0.read().unwrap_or_else(|p| p.into_inner());
        held.map.get(d).cloned()
    }

    fn put(&self, d: &Digest, bytes: &Bytes) {
        let mut held = self.0.write().unwrap_or_else(|p| p.into_inner());
        let held = &mut *held;
        if held.map.contains_key(d) {
            return;
        }
        let cost = bytes.len() + ENTRY_COST;
        while held.charged + cost > Self::CAPACITY {
            let Some(old) = held.order.pop_front() else {
                break;
            };
            if let Some(b) = held.map.remove(&old) {
                held.charged -= b.len() + ENTRY_COST;
            }
        }
        held.map.insert(d.clone(), bytes.clone());
        held.order.push_back(d.clone());
        held.charged += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bytes_stay_within_their_capacity_oldest_out_first() {
        let cache = ManifestBytes::default();
        let digest = |i: usize| -> Digest { format!("sha256:{i:064x}").parse().unwrap() };
        let size = QUICK_MAX as usize;
        let n = ManifestBytes::CAPACITY / size;
        for i in 0..n + 3 {
            cache.put(&digest(i), &Bytes::from(vec![i as u8; size]));
        }
        let charged = |c: &ManifestBytes| -> usize {
            let held = c.0.read().unwrap();
            held.map.values().map(|b| b.len() + ENTRY_COST).sum()
        };
        let held = charged(&cache);
        assert!(held <= ManifestBytes::CAPACITY, "{held}");
        assert_eq!(cache.0.read().unwrap().charged, held);
        for i in 0..4 {
            assert!(cache.get(&digest(i)).is_none(), "{i} should be gone");
        }
        let last = cache.get(&digest(n + 2)).expect("the newest is kept");
        assert_eq!(last, Bytes::from(vec![(n + 2) as u8; size]));
        // The same digest twice is held once.
        cache.put(&digest(n + 2), &last);
        assert_eq!(charged(&cache), held);
        // Tiny manifests: their number is bounded too.
        for i in 0..100_000 {
            cache.put(&digest(1_000_000 + i), &Bytes::from_static(b"{}"));
        }
        let held = cache.0.read().unwrap();
        let entries = held.map.len();
        assert!(entries <= ManifestBytes::CAPACITY / ENTRY_COST, "{entries}");
        assert_eq!(held.order.len(), entries);
    }
}
