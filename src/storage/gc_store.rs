//! What a garbage collector needs from a store, in terms of the registry's
//! data model (repositories, tags, manifest revisions, layer links, blobs,
//! upload sessions), not of any one backend: the filesystem store implements
//! it over registry:2's directory layout, and an object store can implement
//! it over the same layout as keys, so one mark & sweep (`crate::gc`) runs
//! over either.

use std::io;
use std::time::SystemTime;

use crate::oci::{Digest, RepoName};

/// A tag as stored, for retention and marking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcTag {
    pub name: String,
    /// What the tag points at (`None` when its link is absent or malformed).
    pub target: Option<Digest>,
    /// Push time: when the tag's current link was last written.
    pub pushed: SystemTime,
    /// Digests in the tag's history (every manifest it ever pointed at).
    pub index: Vec<Digest>,
}

/// A blob in the global blob store.
#[derive(Clone, Debug)]
pub struct GcBlob {
    pub digest: Digest,
    pub size: u64,
    /// When its content was last written or refreshed (a re-push, or a push
    /// of a manifest referencing it, refreshes it; see [`GcStore`]).
    pub modified: SystemTime,
}

/// An upload session.
#[derive(Clone, Debug)]
pub struct GcUpload {
    pub id: String,
    /// Its last activity (start, or the last chunk received); `None` when
    /// the store cannot tell.
    pub last_active: Option<SystemTime>,
}

/// Enumeration and guarded deletion for mark & sweep.
///
/// **Enumeration** lists what the store holds, with the modification times
/// the collector compares to its cutoff: every repository (including ones
/// with only layer links or uploads, and ones whose names Berth would refuse
/// at push: see [`RepoName::from_storage`]; a repository left out would have
/// its blobs swept), its tags, manifest revisions, layer links, referrers
/// index entries and upload sessions, and every blob.
///
/// **Deletes are guarded**: every `gc_delete_*` re-checks, atomically with
/// respect to pushes (the filesystem store holds its GC lock exclusively,
/// pushes hold it shared), the condition that made the item garbage, and
/// returns whether it deleted. A push that made the item live again meanwhile
/// wins. For that, a push must refresh the modification time of every blob
/// its manifest references (and of child manifests' blobs) before linking it,
/// so the collector's "older than the cutoff" re-check sees it.
///
/// Synchronous: the collector runs on a blocking thread.
pub trait GcStore: Send + Sync + 'static {
    /// Every repository, sorted.
    fn gc_repositories(&self) -> io::Result<Vec<RepoName>>;
    /// Tags of `repo`, sorted by name.
    fn gc_tags(&self, repo: &RepoName) -> io::Result<Vec<GcTag>>;
    /// Manifest revisions linked into `repo`, with the link's modification time.
    fn gc_revisions(&self, repo: &RepoName) -> io::Result<Vec<(Digest, SystemTime)>>;
    /// Blobs linked into `repo` as layers (configs and layers).
    fn gc_layer_links(&self, repo: &RepoName) -> io::Result<Vec<Digest>>;
    /// Berth's referrers index: `(subject, referrer)` pairs.
    fn gc_referrer_links(&self, repo: &RepoName) -> io::Result<Vec<(Digest, Digest)>>;
    fn gc_uploads(&self, repo: &RepoName) -> io::Result<Vec<GcUpload>>;
    /// Every blob in the blob store.
    fn gc_blobs(&self) -> io::Result<Vec<GcBlob>>;
    /// The bytes of a blob that should be a manifest; `None` when absent or
    /// larger than [`crate::oci::MAX_MANIFEST_BYTES`].
    fn gc_read_manifest(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>>;

    /// Deletes a blob if it still exists and was last modified before
    /// `cutoff`. Returns the bytes freed (`None`: kept or absent).
    fn gc_delete_blob(&self, digest: &Digest, cutoff: SystemTime) -> io::Result<Option<u64>>;
    /// Removes a revision link if neither it nor the manifest blob was
    /// written at or after `cutoff`.
    fn gc_delete_revision(
        &self,
        repo: &RepoName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> io::Result<bool>;
    /// Removes a tag if it still is exactly `expected` (same target, same push time).
    fn gc_delete_tag(&self, repo: &RepoName, expected: &GcTag) -> io::Result<bool>;
    /// Removes `digest` from a tag's history if the tag does not currently point at it.
    fn gc_delete_tag_index(&self, repo: &RepoName, tag: &str, digest: &Digest) -> io::Result<bool>;
    /// Removes a layer link if its blob is absent from the blob store.
    fn gc_delete_layer_link(&self, repo: &RepoName, digest: &Digest) -> io::Result<bool>;
    /// Removes a referrers-index entry if the referrer revision is absent.
    fn gc_delete_referrer_link(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<bool>;
    fn gc_delete_upload(&self, repo: &RepoName, id: &str) -> io::Result<()>;
    /// Removes temporary files (left by crashes) older than `cutoff`;
    /// returns how many.
    fn gc_purge_tmp(&self, cutoff: SystemTime) -> io::Result<usize>;
}
