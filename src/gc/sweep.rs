//! The sweep: what the mark left dead goes, links after what they point to,
//! each delete guarded by the store (see [`crate::storage::GcStore`]).

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, SystemTime};

use super::report::RemovedBlob;
use super::Run;
use crate::oci::Digest;

impl Run<'_> {
    /// Phase 3: unreachable revisions, then the tag-history and
    /// referrers-index entries of revisions that no longer exist.
    pub(super) fn sweep_revisions(&mut self) -> io::Result<()> {
        let cutoff = self.cutoff;
        for repo in &mut self.repos {
            let name = &repo.name;
            repo.remaining = repo.revisions.iter().map(|(d, _)| d.clone()).collect();
            for (d, _) in &repo.revisions {
                if repo.live.contains(d) {
                    continue;
                }
                if !self
                    .deleter
                    .delete_if(|store| store.gc_delete_revision(name, d, cutoff))?
                {
                    // Written or re-pushed after the cutoff: keep what it needs.
                    self.live_blobs.insert(d.clone());
                    self.live_blobs
                        .extend(self.manifests.get(d)?.blobs.iter().cloned());
                    continue;
                }
                repo.remaining.remove(d);
                repo.report.manifests_deleted.push(d.clone());
            }
            for tag in &repo.tags {
                for d in &tag.index {
                    if repo.remaining.contains(d) || tag.target.as_ref() == Some(d) {
                        continue;
                    }
                    if self
                        .deleter
                        .delete_if(|store| store.gc_delete_tag_index(name, &tag.name, d))?
                    {
                        repo.report.links_removed += 1;
                    }
                }
            }
            for (subject, referrer) in &repo.referrer_links {
                if repo.remaining.contains(referrer) {
                    continue;
                }
                if self
                    .deleter
                    .delete_if(|store| store.gc_delete_referrer_link(name, subject, referrer))?
                {
                    repo.report.links_removed += 1;
                }
            }
        }
        Ok(())
    }

    /// Phase 4: unreferenced blobs older than the cutoff. Returns the blobs
    /// still present afterwards.
    pub(super) fn sweep_blobs(&mut self) -> io::Result<HashSet<Digest>> {
        // Deleted blobs are reported under the first repository that linked them.
        let mut owner: HashMap<Digest, usize> = HashMap::new();
        for (i, repo) in self.repos.iter().enumerate() {
            for d in repo
                .layers
                .iter()
                .chain(repo.revisions.iter().map(|(d, _)| d))
            {
                owner.entry(d.clone()).or_insert(i);
            }
        }
        let blobs = self.store.gc_blobs()?;
        self.report.blobs_scanned = blobs.len();
        let mut present = HashSet::new();
        for blob in blobs {
            if self.live_blobs.contains(&blob.digest) {
                present.insert(blob.digest);
                continue;
            }
            if blob.modified >= self.cutoff {
                self.report.blobs_kept_recent += 1;
                present.insert(blob.digest);
                continue;
            }
            let cutoff = self.cutoff;
            let Some(size) = self.deleter.delete(blob.size, |store| {
                store.gc_delete_blob(&blob.digest, cutoff)
            })?
            else {
                self.report.blobs_kept_recent += 1;
                present.insert(blob.digest);
                continue;
            };
            self.report.blobs_deleted += 1;
            self.report.bytes_reclaimed += size;
            let removed = RemovedBlob {
                digest: blob.digest,
                size,
            };
            match owner.get(&removed.digest) {
                Some(&i) => {
                    self.repos[i].report.bytes_reclaimed += size;
                    self.repos[i].report.blobs_deleted.push(removed);
                }
                None => self.report.unlinked_blobs_deleted.push(removed),
            }
        }
        Ok(present)
    }

    /// Phase 5: layer links to blobs that no longer exist (`present` is what
    /// is left), and stale upload sessions.
    pub(super) fn sweep_links_and_uploads(&mut self, present: &HashSet<Digest>) -> io::Result<()> {
        let upload_cutoff = self
            .opts
            .purge_uploads_older_than
            .map(|max| self.now.checked_sub(max).unwrap_or(SystemTime::UNIX_EPOCH));
        for repo in &mut self.repos {
            let name = &repo.name;
            for d in &repo.layers {
                if present.contains(d) {
                    continue;
                }
                if self
                    .deleter
                    .delete_if(|store| store.gc_delete_layer_link(name, d))?
                {
                    repo.report.links_removed += 1;
                }
            }
            let Some(upload_cutoff) = upload_cutoff else {
                continue;
            };
            for upload in self.store.gc_uploads(name)? {
                if upload.last_active.is_some_and(|t| t < upload_cutoff) {
                    self.deleter.delete_if(|store| {
                        store.gc_delete_upload(name, &upload.id).map(|()| true)
                    })?;
                    repo.report.uploads_purged += 1;
                }
            }
        }
        Ok(())
    }

    /// Temporary files left by crashes, once older than the upload limit
    /// (at most a day) and the grace period. Not in a dry run.
    pub(super) fn purge_tmp(&mut self) -> io::Result<()> {
        if let (Some(max), false) = (self.opts.purge_uploads_older_than, self.opts.dry_run) {
            let tmp_cutoff = self
                .now
                .checked_sub(max.min(Duration::from_secs(24 * 3600)).max(self.opts.grace))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            self.report.temp_files_removed = self.store.gc_purge_tmp(tmp_cutoff)?;
        }
        Ok(())
    }
}
