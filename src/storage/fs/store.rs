//! [`Store`] for [`FsStore`]: blobs, manifests, tags, the catalog and
//! referrers (uploads are in [`super::uploads`]). Each operation is one
//! closure on the blocking pool.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use super::index::TagsCache;
use super::io::{links_to, list_dir, not_found, remove_tree};
use super::layout::Holding;
use super::{blocking, read, referrers, FsStore};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};
use crate::storage::index::{self, page_list, Page};
use crate::storage::{
    ByteStream, ManifestInfo, ReferrersPage, ReferrersQuery, Result, Store, StoreError,
    StoredManifest,
};

/// Forgets `repo`'s cached tags when dropped: after a delete, whatever it
/// got through.
struct ForgetTags<'a>(&'a TagsCache, &'a RepoName);

impl Drop for ForgetTags<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1.as_str());
    }
}

/// How long a catalog request waits for the start-up scan, at most.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl Store for FsStore {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        if let Some(size) = self
            .disk
            .quick_blob_size(repo, digest, self.refresh_after)?
        {
            return Ok(size);
        }
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        let refresh_after = self.refresh_after;
        blocking(move || {
            let Some(after) = refresh_after else {
                return disk.linked_len(&r, &d)?.ok_or(StoreError::BlobUnknown);
            };
            let _push = disk.push_guard();
            if !disk.is_linked(&r, &d)? {
                return Err(StoreError::BlobUnknown);
            }
            let meta = match fs::metadata(disk.layout.blob_data(&d)) {
                Ok(m) => m,
                Err(e) if not_found(&e) => return Err(StoreError::BlobUnknown),
                Err(e) => return Err(e.into()),
            };
            let stale = meta
                .modified()
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > after));
            if stale {
                // A read-only data dir can serve without it.
                let _ = disk.touch_blob(&d);
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
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        blocking(move || {
            if disk.linked_len(&r, &d)?.is_none() {
                return Err(StoreError::BlobUnknown);
            }
            let file = match File::open(disk.layout.blob_data(&d)) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Err(StoreError::BlobUnknown),
                Err(e) => return Err(e.into()),
            };
            if range.end - range.start <= read::SMALL {
                return Ok(read::small(&file, range)?);
            }
            Ok(read::stream(file, range))
        })
        .await
    }

    async fn blob_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (dir, link, d) = (
            self.disk.layout.layer(repo, digest),
            self.disk.layout.layer_link(repo, digest),
            digest.clone(),
        );
        blocking(move || {
            if !links_to(&link, &d)? {
                return Err(StoreError::BlobUnknown);
            }
            remove_tree(&dir)?;
            Ok(())
        })
        .await
    }

    async fn blob_mount(&self, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool> {
        let (disk, r, f, d) = (
            self.disk.clone(),
            repo.clone(),
            from.clone(),
            digest.clone(),
        );
        blocking(move || {
            let _push = disk.push_guard();
            let present = disk.is_layer(&f, &d)? && disk.blob_len(&d)?.is_some();
            if present {
                disk.touch_blob(&d)?;
                disk.write_link_named(&disk.layout.layer_link(&r, &d), &d)?;
            }
            Ok(present)
        })
        .await
    }

    async fn upload_start(&self, repo: &RepoName) -> Result<String> {
        self.start_upload(repo).await
    }

    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        self.uploaded_size(repo, id).await
    }

    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.append_upload(repo, id, offset, body).await
    }

    async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        self.finish_upload(repo, id, digest, body).await
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        self.cancel_upload(repo, id).await
    }

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest> {
        let d = self.disk.quick_tag(repo, tag.as_str())?;
        self.manifest_by_digest(repo, &d).await
    }

    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest> {
        if let Some(m) = self
            .disk
            .quick_manifest(repo, digest, &self.manifest_bytes)?
        {
            return Ok(m);
        }
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        blocking(move || disk.read_manifest(&r, &d)).await
    }

    async fn manifest_info(&self, repo: &RepoName, reference: &Reference) -> Result<ManifestInfo> {
        let d = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => self.disk.quick_tag(repo, t.as_str())?,
        };
        if let Some(info) = self.disk.quick_manifest_info(repo, d)? {
            return Ok(info);
        }
        let (disk, r, reference) = (self.disk.clone(), repo.clone(), reference.clone());
        blocking(move || {
            let d = match reference {
                Reference::Digest(d) => d,
                Reference::Tag(t) => disk
                    .tag_target(&r, t.as_str())?
                    .ok_or(StoreError::ManifestUnknown)?,
            };
            if !disk.has_revision(&r, &d)? {
                return Err(StoreError::ManifestUnknown);
            }
            let size = disk.blob_len(&d)?.ok_or(StoreError::ManifestUnknown)?;
            let media_type = match disk.recorded_media_type(&r, &d)? {
                Some(mt) => mt,
                // Pushed without a record: read (and record) it once.
                None => disk.read_manifest(&r, &d)?.media_type,
            };
            Ok(ManifestInfo {
                digest: d,
                media_type,
                size,
            })
        })
        .await
    }

    async fn manifest_put(
        &self,
        repo: &RepoName,
        tags: &[Tag],
        bytes: Bytes,
        manifest: &Manifest,
        digest: &Digest,
    ) -> Result<()> {
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        let tags = tags.to_vec();
        // Each digest once, however often the manifest names it.
        let blobs: Vec<Digest> = manifest
            .blob_references()
            .map(|b| b.digest.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let children: Vec<Digest> = manifest
            .manifests
            .iter()
            .map(|m| m.digest.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        let media_type = manifest.stored_media_type;
        let referrer = match &subject {
            Some(_) => {
                let desc = manifest.referrer_descriptor(d.clone(), bytes.len() as u64);
                let json = serde_json::to_vec(&desc).map_err(std::io::Error::other)?;
                Some((json, desc.artifact_type.unwrap_or_default()))
            }
            None => None,
        };
        let index = self.index.clone();
        let tags_cache = self.tags_cache.clone();
        blocking(move || {
            let put = || -> Result<()> {
                let _push = disk.push_guard();
                // Membership first, from this repository's own links only:
                // nothing is read, parsed or touched for a push that names
                // content the repository does not hold (which would also tell
                // what other repositories hold, and keep it alive).
                for b in &blobs {
                    if disk.linked_len(&r, b)?.is_none() {
                        return Err(StoreError::ManifestBlobUnknown(b.clone()));
                    }
                }
                for c in &children {
                    if !disk.has_revision(&r, c)? {
                        return Err(StoreError::ManifestBlobUnknown(c.clone()));
                    }
                }
                disk.protect_references(&r, &d, &blobs, &children)?;
                if disk.blob_len(&d)?.is_none() {
                    disk.write_blob(&bytes, &d)?;
                }
                let layout = &disk.layout;
                // The media-type record is derived again from the bytes
                // when a crash loses it; the revision link is what commits.
                disk.write_lazy(
                    &layout.revision_media_type(&r, &d),
                    media_type.as_str().as_bytes(),
                )?;
                disk.write_link_named(&layout.revision_link(&r, &d), &d)?;
                if let (Some(s), Some((json, artifact_type))) = (&subject, &referrer) {
                    disk.write_atomic(
                        &layout.referrer_artifact_type(&r, s, &d),
                        artifact_type.as_bytes(),
                    )?;
                    disk.write_atomic(&layout.referrer_descriptor(&r, s, &d), json)?;
                    disk.write_link(&layout.referrer_link(&r, s, &d), &d)?;
                }
                for t in &tags {
                    // The tag's index is history (the collector's clean-up
                    // reads it); its `current` link is what readers follow.
                    let index = layout.tag_index_link(&r, t.as_str(), &d);
                    disk.write_lazy(&index, d.to_string().as_bytes())?;
                    disk.write_link(&layout.tag_current_link(&r, t.as_str()), &d)?;
                }
                Ok(())
            };
            let result = put();
            if !tags.is_empty() {
                tags_cache.forget(r.as_str());
            }
            // Listed as the walk would list it, whether the push got through
            // or not (a failed one may have made `_manifests`).
            if disk.layout.manifests(&r).is_dir() {
                index.note_present(r.as_str());
            }
            result
        })
        .await
    }

    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (disk, r, d) = (self.disk.clone(), repo.clone(), digest.clone());
        let tags_cache = self.tags_cache.clone();
        blocking(move || {
            let _forget = ForgetTags(&tags_cache, &r);
            let stored = disk.read_manifest(&r, &d)?;
            let layout = &disk.layout;
            for t in list_dir(&layout.tags(&r))? {
                if disk.tag_target(&r, &t)?.as_ref() == Some(&d) {
                    remove_tree(&layout.tag(&r, &t))?;
                } else {
                    remove_tree(&layout.tag_index_entry(&r, &t, &d))?;
                }
            }
            if let Ok(m) = Manifest::parse(&stored.bytes, None) {
                if let Some(s) = m.subject {
                    remove_tree(&layout.referrer(&r, &s.digest, &d))?;
                }
            }
            remove_tree(&layout.revision(&r, &d))?;
            remove_tree(&layout.revision_meta(&r, &d))?;
            Ok(())
        })
        .await
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let (disk, r, t) = (self.disk.clone(), repo.clone(), tag.clone());
        let tags_cache = self.tags_cache.clone();
        blocking(move || {
            let _forget = ForgetTags(&tags_cache, &r);
            if disk.tag_target(&r, t.as_str())?.is_none() {
                return Err(StoreError::ManifestUnknown);
            }
            remove_tree(&disk.layout.tag(&r, t.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn tags(&self, repo: &RepoName) -> Result<Vec<String>> {
        let (layout, r) = (self.disk.layout.clone(), repo.clone());
        blocking(move || {
            // As in the catalog, a repository is a directory with
            // `_manifests`; a bare prefix of other names is not one.
            if !layout.manifests(&r).is_dir() {
                return Err(StoreError::NameUnknown);
            }
            let mut tags: Vec<String> = list_dir(&layout.tags(&r))?
                .into_iter()
                .filter(|t| layout.tag_current_link(&r, t).is_file())
                .collect();
            tags.sort();
            Ok(tags)
        })
        .await
    }

    async fn tags_page(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        n: Option<usize>,
    ) -> Result<Page> {
        if let Some(page) =
            super::index::cached_tags_page(&self.tags_cache, &self.disk.layout, repo, after, n)?
        {
            return Ok(page);
        }
        let (layout, r) = (self.disk.layout.clone(), repo.clone());
        let after = after.map(str::to_string);
        let tags_cache = self.tags_cache.clone();
        blocking(move || {
            if !layout.manifests(&r).is_dir() {
                tags_cache.forget(r.as_str());
                return Err(StoreError::NameUnknown);
            }
            Ok(super::index::tags_page(
                &tags_cache,
                &layout,
                &r,
                after.as_deref(),
                n,
            )?)
        })
        .await
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let layout = self.disk.layout.clone();
        blocking(move || Ok(layout.walk_repositories(Holding::Manifests)?)).await
    }

    async fn repositories_page(
        &self,
        after: Option<&str>,
        n: Option<usize>,
        allow: &index::Allow<'_>,
    ) -> Result<Page> {
        if let Some(page) = self.index.page(after, n, allow) {
            return Ok(page);
        }
        // The start-up scan is the same walk: wait for it, within a bound.
        if self.index.wait_ready(INDEX_WAIT).await {
            if let Some(page) = self.index.page(after, n, allow) {
                return Ok(page);
            }
        }
        // Not indexed yet (no scan running, or it failed or is slow): walk,
        // as before there was an index.
        let all = self.repositories().await?;
        Ok(page_list(all, after, n, allow))
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        query: &ReferrersQuery,
    ) -> Result<ReferrersPage> {
        let (disk, r, s, q) = (
            self.disk.clone(),
            repo.clone(),
            subject.clone(),
            query.clone(),
        );
        let (records, next) = blocking(move || referrers::page(&disk, &r, &s, &q)).await?;
        Ok(ReferrersPage {
            descriptors: referrers::stream_records(records),
            next,
        })
    }
}
