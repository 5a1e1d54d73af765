//! [`GcStore`] for [`FsStore`]: enumeration of the layout, and deletes that
//! re-check their reason under the GC guard (see [`super::lock`]).

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::io::{list_dir, mtime, not_found, read_link, remove_tree};
use super::layout::{list_digests, Holding};
use super::FsStore;
use crate::oci::{Digest, RepoName};
use crate::storage::{GcBlob, GcStore, GcTag, GcUpload};

fn blob_entry(path: &Path, digest: &Digest) -> io::Result<Option<GcBlob>> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(GcBlob {
            digest: digest.clone(),
            size: m.len(),
            modified: m.modified()?,
        })),
        Ok(_) => Ok(None),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

impl GcStore for FsStore {
    fn gc_repositories(&self) -> io::Result<Vec<RepoName>> {
        // Also a first push that never got to its manifest: its uploads and
        // layer links are garbage like any other. And names a push would be
        // refused (registry:2 is laxer): leaving one out would sweep its blobs.
        self.disk
            .layout
            .walk_repositories(Holding::Anything)?
            .iter()
            .map(|name| RepoName::from_storage(name).map_err(io::Error::other))
            .collect()
    }

    fn gc_tags(&self, repo: &RepoName) -> io::Result<Vec<GcTag>> {
        let layout = &self.disk.layout;
        let mut out = Vec::new();
        for name in list_dir(&layout.tags(repo))? {
            let link = layout.tag_current_link(repo, &name);
            out.push(GcTag {
                target: read_link(&link)?,
                pushed: mtime(&link)?.unwrap_or(SystemTime::UNIX_EPOCH),
                index: list_digests(&layout.tag_index(repo, &name))?,
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn gc_revisions(&self, repo: &RepoName) -> io::Result<Vec<(Digest, SystemTime)>> {
        let layout = &self.disk.layout;
        let mut out = Vec::new();
        for d in list_digests(&layout.revisions(repo))? {
            if let Some(t) = mtime(&layout.revision_link(repo, &d))? {
                out.push((d, t));
            }
        }
        Ok(out)
    }

    fn gc_layer_links(&self, repo: &RepoName) -> io::Result<Vec<Digest>> {
        list_digests(&self.disk.layout.layers(repo))
    }

    fn gc_referrer_links(&self, repo: &RepoName) -> io::Result<Vec<(Digest, Digest)>> {
        let layout = &self.disk.layout;
        let mut out = Vec::new();
        for subject in list_digests(&layout.referrers(repo))? {
            for referrer in list_digests(&layout.referrers_of(repo, &subject))? {
                out.push((subject.clone(), referrer));
            }
        }
        Ok(out)
    }

    fn gc_uploads(&self, repo: &RepoName) -> io::Result<Vec<GcUpload>> {
        let layout = &self.disk.layout;
        let mut out = Vec::new();
        for id in list_dir(&layout.uploads(repo))? {
            let started = fs::read_to_string(layout.upload_started_at(repo, &id))
                .ok()
                .and_then(|s| humantime::parse_rfc3339_weak(s.trim()).ok());
            // The latest sign of life: an upload that is still receiving
            // chunks is not stale, however long ago it started.
            let last_active = [
                started,
                mtime(&layout.upload(repo, &id))?,
                mtime(&layout.upload_data(repo, &id))?,
            ]
            .into_iter()
            .flatten()
            .max();
            out.push(GcUpload { id, last_active });
        }
        Ok(out)
    }

    fn gc_blobs(&self) -> io::Result<Vec<GcBlob>> {
        let mut out = Vec::new();
        for (digest, path) in self.disk.layout.walk_blobs()? {
            if let Some(b) = blob_entry(&path, &digest)? {
                out.push(b);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn gc_read_manifest(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        self.disk.read_manifest_bytes(digest)
    }

    fn gc_delete_blob(&self, digest: &Digest, cutoff: SystemTime) -> io::Result<Option<u64>> {
        let path = self.disk.layout.blob_data(digest);
        let _gc = self.disk.guard.exclusive();
        let Some(blob) = blob_entry(&path, digest)? else {
            return Ok(None);
        };
        if blob.modified >= cutoff {
            return Ok(None);
        }
        fs::remove_file(&path)?;
        crate::telemetry::blob_removed(blob.size);
        if let Some(dir) = path.parent() {
            let _ = fs::remove_dir(dir);
        }
        Ok(Some(blob.size))
    }

    fn gc_delete_revision(
        &self,
        repo: &RepoName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> io::Result<bool> {
        let layout = &self.disk.layout;
        let _gc = self.disk.guard.exclusive();
        let fresh = |t: Option<SystemTime>| t.is_some_and(|t| t >= cutoff);
        if fresh(mtime(&layout.revision_link(repo, digest))?)
            || fresh(mtime(&layout.blob_data(digest))?)
        {
            return Ok(false);
        }
        remove_tree(&layout.revision(repo, digest))?;
        remove_tree(&layout.revision_meta(repo, digest))?;
        Ok(true)
    }

    fn gc_delete_tag(&self, repo: &RepoName, expected: &GcTag) -> io::Result<bool> {
        let layout = &self.disk.layout;
        let link = layout.tag_current_link(repo, &expected.name);
        let _gc = self.disk.guard.exclusive();
        if read_link(&link)? != expected.target || mtime(&link)? != Some(expected.pushed) {
            return Ok(false);
        }
        // The current link first: a crash then leaves a tag that is simply gone.
        match fs::remove_file(&link) {
            Err(e) if !not_found(&e) => return Err(e),
            _ => {}
        }
        remove_tree(&layout.tag(repo, &expected.name))?;
        Ok(true)
    }

    fn gc_delete_tag_index(&self, repo: &RepoName, tag: &str, digest: &Digest) -> io::Result<bool> {
        let layout = &self.disk.layout;
        let _gc = self.disk.guard.exclusive();
        if read_link(&layout.tag_current_link(repo, tag))?.as_ref() == Some(digest) {
            return Ok(false);
        }
        remove_tree(&layout.tag_index_entry(repo, tag, digest))?;
        Ok(true)
    }

    fn gc_delete_layer_link(&self, repo: &RepoName, digest: &Digest) -> io::Result<bool> {
        let layout = &self.disk.layout;
        let _gc = self.disk.guard.exclusive();
        if layout.blob_data(digest).exists() {
            return Ok(false);
        }
        remove_tree(&layout.layer(repo, digest))?;
        Ok(true)
    }

    fn gc_delete_referrer_link(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<bool> {
        let layout = &self.disk.layout;
        let _gc = self.disk.guard.exclusive();
        if layout.revision_link(repo, referrer).exists() {
            return Ok(false);
        }
        remove_tree(&layout.referrer(repo, subject, referrer))?;
        let _ = fs::remove_dir(layout.referrer_alg(repo, subject, referrer.algorithm()));
        let _ = fs::remove_dir(layout.referrers_of(repo, subject));
        Ok(true)
    }

    fn gc_delete_upload(&self, repo: &RepoName, id: &str) -> io::Result<()> {
        remove_tree(&self.disk.layout.upload(repo, id))
    }

    fn gc_purge_tmp(&self, cutoff: SystemTime) -> io::Result<usize> {
        let layout = &self.disk.layout;
        let mut n = 0;
        for name in list_dir(&layout.tmp_dir())? {
            let path = layout.tmp_entry(&name);
            if mtime(&path)?.is_some_and(|t| t < cutoff) && fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
