//! Storage: the only code that touches disk. The [`Store`] trait is what the
//! API needs (blobs, repository links, tags, uploads, referrers); [`GcStore`]
//! is what the garbage collector needs (enumeration with modification times,
//! guarded deletes); [`FsStore`] implements both in registry:2's filesystem
//! layout. Storage never sees HTTP and knows nothing of the collector's logic.

mod fs;
mod gc_store;
pub mod index;

use std::io;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::oci::{Digest, Manifest, MediaType, Reference, RepoName, Tag};

pub use fs::{notification_queues, FsStore, OpenForGcError};
pub use gc_store::{GcBlob, GcStore, GcTag, GcUpload};
pub use index::RepoIndex;

/// A body streamed into or out of the store.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("repository name not known to registry")]
    NameUnknown,
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    #[error("upload is at offset {size}, the chunk starts elsewhere")]
    UploadOffset { size: u64 },
    #[error("content does not match digest {expected} (computed {computed})")]
    DigestMismatch { expected: Digest, computed: Digest },
    #[error("manifest references {0}, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    /// A push that would make the store do more work than it allows.
    #[error("{0}")]
    ManifestTooComplex(String),
    #[error("the request body could not be read: {0}")]
    Body(io::Error),
    /// Too many upload sessions open: in `repository` when it names one,
    /// else in the whole registry; `limit` is the bound that was hit.
    #[error("too many upload sessions open ({limit})")]
    TooManyUploads {
        repository: Option<String>,
        limit: usize,
    },
    /// The disk (or the quota) holding the data dir is full: a failed write
    /// frees what it wrote, so retrying once space is freed works.
    #[error("storage full: {0}")]
    StorageFull(io::Error),
    #[error("storage I/O error: {0}")]
    Io(io::Error),
}

impl StoreError {
    /// Is `e` a full disk or an exceeded quota (ENOSPC, EDQUOT)?
    pub fn is_storage_full(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) || matches!(e.raw_os_error(), Some(28 | 122))
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> StoreError {
        if StoreError::is_storage_full(&e) {
            StoreError::StorageFull(e)
        } else {
            StoreError::Io(e)
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A manifest as stored: exact bytes plus what is derived from them.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: Bytes,
}

/// Descriptors in one referrers response, unless the limits say otherwise
/// (`[limits] max_referrers_page`).
pub const DEFAULT_MAX_REFERRERS_PAGE: usize = 1_000;

/// Bytes of descriptors in one referrers response (annotations can be
/// large); a page always holds at least one descriptor.
pub const DEFAULT_MAX_REFERRERS_PAGE_BYTES: u64 = 4 << 20;

/// Which referrers to list, and how many at most.
#[derive(Clone, Debug)]
pub struct ReferrersQuery {
    /// Only those with a digest greater than this (the previous page's last).
    pub after: Option<Digest>,
    /// Only those with this artifactType.
    pub artifact_type: Option<String>,
    pub max_count: usize,
    pub max_bytes: u64,
}

impl ReferrersQuery {
    /// The first page, unfiltered, within the default limits.
    pub fn first() -> ReferrersQuery {
        ReferrersQuery {
            after: None,
            artifact_type: None,
            max_count: DEFAULT_MAX_REFERRERS_PAGE,
            max_bytes: DEFAULT_MAX_REFERRERS_PAGE_BYTES,
        }
    }
}

/// A page of referrers.
pub struct ReferrersPage {
    /// The descriptors as JSON objects separated by commas (the inside of
    /// the index's `manifests` array), streamed.
    pub descriptors: ByteStream,
    /// The last digest of this page when more follow.
    pub next: Option<Digest>,
}

/// What a manifest HEAD answers: no bytes.
#[derive(Clone, Debug)]
pub struct ManifestInfo {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Size of `digest` if it is linked into `repo` (and present).
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64>;
    /// Streams `range` (already clamped to the blob's size) of a linked blob.
    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<ByteStream>;
    /// Removes the blob's link from `repo` (the data goes at garbage collection).
    async fn blob_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<()>;
    /// Links a blob that `from` has into `repo`; false when `from` lacks it.
    async fn blob_mount(&self, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool>;

    /// Starts an upload session; returns its id.
    async fn upload_start(&self, repo: &RepoName) -> Result<String>;
    /// Bytes received so far.
    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64>;
    /// Appends `body`; when `offset` is given the upload must be exactly that
    /// long first. Returns the new size.
    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64>;
    /// Appends an optional last chunk, verifies `digest`, commits the blob
    /// and links it into `repo`. Returns its size.
    async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64>;
    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()>;

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest>;
    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest>;
    /// The digest, media type and size of a manifest, without reading it
    /// (from what was recorded at push).
    async fn manifest_info(&self, repo: &RepoName, reference: &Reference) -> Result<ManifestInfo>;
    /// Stores a parsed manifest, after checking that what it references is in
    /// `repo`, and points `tags` at it.
    async fn manifest_put(
        &self,
        repo: &RepoName,
        tags: &[Tag],
        bytes: Bytes,
        manifest: &Manifest,
        digest: &Digest,
    ) -> Result<()>;
    /// Deletes a manifest revision and every tag pointing at it.
    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;
    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<()>;
    /// All tags of `repo`, sorted.
    async fn tags(&self, repo: &RepoName) -> Result<Vec<String>>;
    /// One page of `repo`'s tags: those after `after`, at most `n` (all when
    /// `None`), sorted, and whether more follow. This default lists them all.
    async fn tags_page(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        n: Option<usize>,
    ) -> Result<index::Page> {
        let all = self.tags(repo).await?;
        Ok(index::page_list(all, after, n, &|_| true))
    }
    /// All repositories, sorted.
    async fn repositories(&self) -> Result<Vec<String>>;
    /// One catalog page: the repositories after `after` that `allow` admits,
    /// at most `n` (all when `None`), sorted, and whether more follow. A
    /// store with an index answers it in O(page); this default walks.
    async fn repositories_page(
        &self,
        after: Option<&str>,
        n: Option<usize>,
        allow: &index::Allow<'_>,
    ) -> Result<index::Page> {
        let all = self.repositories().await?;
        Ok(index::page_list(all, after, n, allow))
    }
    /// One page of the descriptors of the manifests in `repo` whose subject
    /// is `subject`, in digest order, from records written at push (no
    /// manifest is read to serve it, and none is held in memory).
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        query: &ReferrersQuery,
    ) -> Result<ReferrersPage>;
}
