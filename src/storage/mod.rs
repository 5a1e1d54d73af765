//! Storage: the only code that touches disk. The [`Store`] trait is what the
//! API needs (blobs, repository links, tags, uploads, referrers); [`FsStore`]
//! implements it in registry:2's filesystem layout. Storage never sees HTTP.

mod fs;

use std::io;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::oci::{Descriptor, Digest, Manifest, MediaType, RepoName, Tag};

pub use fs::FsStore;

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
    #[error("the request body could not be read: {0}")]
    Body(io::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A manifest as stored: exact bytes plus what is derived from them.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: Bytes,
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
    /// All repositories, sorted.
    async fn repositories(&self) -> Result<Vec<String>>;
    /// Descriptors of the manifests in `repo` whose subject is `subject`.
    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>>;
}

// ---------------------------------------------------------------------------
// Garbage collection: what `crate::gc` needs from a store beyond serving.
// ---------------------------------------------------------------------------

/// A tag as found on disk, for retention and marking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcTag {
    pub name: String,
    /// What `current/link` points at (`None` when absent or malformed).
    pub target: Option<Digest>,
    /// Push time: modification time of `current/link`.
    pub pushed: std::time::SystemTime,
    /// Digests listed in the tag's history (`index/<alg>/<hex>/link`).
    pub index: Vec<Digest>,
}

/// A blob in the global blob store.
#[derive(Clone, Debug)]
pub struct GcBlob {
    pub digest: Digest,
    pub size: u64,
    /// Modification time of its `data` file (refreshed when it is re-pushed
    /// or referenced by a new manifest).
    pub modified: std::time::SystemTime,
}

/// An upload session.
#[derive(Clone, Debug)]
pub struct GcUpload {
    pub id: String,
    /// Its last activity: the latest of `startedat` and the modification
    /// times of the session directory and its data.
    pub last_active: Option<std::time::SystemTime>,
}

/// Enumeration and guarded deletion for mark & sweep. Synchronous: the
/// collector runs on a blocking thread. Every `delete_*` re-checks, under the
/// store's GC lock, the condition that made the item garbage, so a concurrent
/// push that made it live again wins.
pub trait GcStore: Send + Sync + 'static {
    /// Repository names (registry:2's walk: a directory holding `_manifests`).
    fn gc_repositories(&self) -> io::Result<Vec<String>>;
    fn gc_tags(&self, repo: &str) -> io::Result<Vec<GcTag>>;
    /// Manifest revisions linked into `repo`, with the link's modification time.
    fn gc_revisions(&self, repo: &str) -> io::Result<Vec<(Digest, std::time::SystemTime)>>;
    /// Blobs linked into `repo` as layers (configs and layers).
    fn gc_layer_links(&self, repo: &str) -> io::Result<Vec<Digest>>;
    /// Berth's referrers index: `(subject, referrer)` pairs.
    fn gc_referrer_links(&self, repo: &str) -> io::Result<Vec<(Digest, Digest)>>;
    fn gc_uploads(&self, repo: &str) -> io::Result<Vec<GcUpload>>;
    /// Every blob in the blob store.
    fn gc_blobs(&self) -> io::Result<Vec<GcBlob>>;
    fn gc_blob(&self, digest: &Digest) -> io::Result<Option<GcBlob>>;
    /// The bytes of a blob that should be a manifest; `None` when absent or
    /// too large to be one.
    fn gc_read_manifest(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>>;

    /// Deletes a blob if it still exists and was last modified before
    /// `cutoff`. Returns the bytes freed (`None`: kept or absent).
    fn gc_delete_blob(
        &self,
        digest: &Digest,
        cutoff: std::time::SystemTime,
    ) -> io::Result<Option<u64>>;
    /// Removes a revision link if neither it nor the manifest blob was
    /// written at or after `cutoff`.
    fn gc_delete_revision(
        &self,
        repo: &str,
        digest: &Digest,
        cutoff: std::time::SystemTime,
    ) -> io::Result<bool>;
    /// Removes a tag if it still is exactly `expected` (same target, same push time).
    fn gc_delete_tag(&self, repo: &str, expected: &GcTag) -> io::Result<bool>;
    /// Removes `digest` from a tag's history if the tag does not currently point at it.
    fn gc_delete_tag_index(&self, repo: &str, tag: &str, digest: &Digest) -> io::Result<bool>;
    /// Removes a layer link if its blob is absent from the blob store.
    fn gc_delete_layer_link(&self, repo: &str, digest: &Digest) -> io::Result<bool>;
    /// Removes a referrers-index entry if the referrer revision is absent.
    fn gc_delete_referrer_link(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<bool>;
    fn gc_delete_upload(&self, repo: &str, id: &str) -> io::Result<()>;
    /// Removes temporary files (left by crashes) older than `cutoff`.
    fn gc_purge_tmp(&self, cutoff: std::time::SystemTime) -> io::Result<usize>;
}
