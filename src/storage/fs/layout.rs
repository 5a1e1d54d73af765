//! registry:2's layout under `<root>/docker/registry/v2/`, the one place a
//! path is built (as registry:2's `registry/storage/paths.go`): a method per
//! kind of path, plus the enumerations that read the layout's shape back
//! (repositories, digest directories, blobs).
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>/data                          content, by digest
//! repositories/<name>/_layers/<alg>/<hex>/link               blobs linked into a repo
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link  manifests of a repo
//! repositories/<name>/_manifests/tags/<tag>/current/link     what a tag points at
//! repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! repositories/<name>/_uploads/<uuid>/{data,startedat}       upload sessions
//! repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>/<hex>/link   Berth only:
//!                                              subject -> manifests referring to it
//! repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>/<hex>/{descriptor,artifact-type}
//!                                              Berth only: the referrer's descriptor
//!                                              (JSON) and its artifactType, written at push
//! repositories/<name>/_berth/revisions/<alg>/<hex>/media-type  Berth only: the
//!                                              media type a revision is served with
//! _berth/tmp/                                  Berth only: files being written
//! _berth/lock                                  Berth only: the data-dir lock
//! _berth/ready-probe                           Berth only: written and removed by /readyz
//! _berth/notifications/<endpoint>/<seq>.json   Berth only: events queued for a
//!                                              notification endpoint
//! ```
//!
//! registry:2 skips directories starting with `_` when it walks repositories and
//! never looks at `_berth`, so a data dir stays readable by it and vice versa.

use std::io;
use std::path::{Path, PathBuf};

use super::io::list_dir;
use crate::oci::{Algorithm, Digest, RepoName};

/// `_berth/notifications` of the data dir at `root`: one directory per
/// endpoint, one file per queued event (see `crate::notify`).
pub fn notification_queues(root: &Path) -> PathBuf {
    Layout::new(root).notification_queues()
}

/// Marks a repository directory: one holding any of these is a repository.
const MANIFESTS: &str = "_manifests";
const LAYERS: &str = "_layers";
const UPLOADS: &str = "_uploads";

/// Which directories count as repositories in a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holding {
    /// Those with manifests: what the catalog lists. (registry:2's catalog
    /// also lists a directory that holds only `_layers`, a push that never
    /// got to its manifest; Berth lists only repositories whose tags list
    /// answers.)
    Manifests,
    /// Those with anything at all (manifests, layer links or uploads): what
    /// the collector must see.
    Anything,
}

/// Paths of one data dir; cheap to clone into blocking closures.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    v2: PathBuf,
}

impl Layout {
    /// The layout of `root` (registry:2's `storage.filesystem.rootdirectory`).
    pub fn new(root: &Path) -> Layout {
        Layout {
            v2: root.join("docker/registry/v2"),
        }
    }

    /// `docker/registry/v2`: present when the root holds registry data.
    pub fn v2(&self) -> &Path {
        &self.v2
    }

    pub fn repositories(&self) -> PathBuf {
        self.v2.join("repositories")
    }
    pub fn blobs(&self) -> PathBuf {
        self.v2.join("blobs")
    }
    pub fn berth(&self) -> PathBuf {
        self.v2.join("_berth")
    }
    /// Where the events queued for notification endpoints wait.
    pub fn notification_queues(&self) -> PathBuf {
        self.berth().join("notifications")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.berth().join("lock")
    }
    /// The file a readiness probe writes, fsyncs and removes.
    pub fn ready_probe(&self) -> PathBuf {
        self.berth().join("ready-probe")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.berth().join("tmp")
    }
    /// The temporary file `name` (as listed in [`Layout::tmp_dir`]).
    pub fn tmp_entry(&self, name: &str) -> PathBuf {
        self.tmp_dir().join(name)
    }
    /// A fresh temporary file name.
    pub fn tmp_file(&self) -> PathBuf {
        self.tmp_entry(&uuid::Uuid::new_v4().to_string())
    }

    pub fn blob_data(&self, d: &Digest) -> PathBuf {
        let alg = d.algorithm().as_str();
        let hex = d.hex();
        self.v2
            .join(format!("blobs/{alg}/{}/{hex}/data", &hex[..2]))
    }

    pub fn repo(&self, r: &RepoName) -> PathBuf {
        self.repositories().join(r.as_str())
    }
    pub fn manifests(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join(MANIFESTS)
    }

    pub fn layers(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join(LAYERS)
    }
    pub fn layer(&self, r: &RepoName, d: &Digest) -> PathBuf {
        digest_dir(&self.layers(r), d)
    }
    pub fn layer_link(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.layer(r, d).join("link")
    }

    pub fn revisions(&self, r: &RepoName) -> PathBuf {
        self.manifests(r).join("revisions")
    }
    pub fn revision(&self, r: &RepoName, d: &Digest) -> PathBuf {
        digest_dir(&self.revisions(r), d)
    }
    pub fn revision_link(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.revision(r, d).join("link")
    }

    pub fn tags(&self, r: &RepoName) -> PathBuf {
        self.manifests(r).join("tags")
    }
    pub fn tag(&self, r: &RepoName, t: &str) -> PathBuf {
        self.tags(r).join(t)
    }
    pub fn tag_current_link(&self, r: &RepoName, t: &str) -> PathBuf {
        self.tag(r, t).join("current/link")
    }
    pub fn tag_index(&self, r: &RepoName, t: &str) -> PathBuf {
        self.tag(r, t).join("index")
    }
    pub fn tag_index_entry(&self, r: &RepoName, t: &str, d: &Digest) -> PathBuf {
        digest_dir(&self.tag_index(r, t), d)
    }
    pub fn tag_index_link(&self, r: &RepoName, t: &str, d: &Digest) -> PathBuf {
        self.tag_index_entry(r, t, d).join("link")
    }

    pub fn uploads(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join(UPLOADS)
    }
    pub fn upload(&self, r: &RepoName, id: &str) -> PathBuf {
        self.uploads(r).join(id)
    }
    pub fn upload_data(&self, r: &RepoName, id: &str) -> PathBuf {
        self.upload(r, id).join("data")
    }
    pub fn upload_started_at(&self, r: &RepoName, id: &str) -> PathBuf {
        self.upload(r, id).join("startedat")
    }

    pub fn referrers(&self, r: &RepoName) -> PathBuf {
        self.repo(r).join("_berth/referrers")
    }
    /// The referrers of `subject`: `<alg>/<hex>` directories.
    pub fn referrers_of(&self, r: &RepoName, subject: &Digest) -> PathBuf {
        digest_dir(&self.referrers(r), subject)
    }
    pub fn referrer(&self, r: &RepoName, subject: &Digest, referrer: &Digest) -> PathBuf {
        digest_dir(&self.referrers_of(r, subject), referrer)
    }
    pub fn referrer_link(&self, r: &RepoName, subject: &Digest, referrer: &Digest) -> PathBuf {
        self.referrer(r, subject, referrer).join("link")
    }
    /// The referrer's descriptor, serialized as served in a referrers list.
    pub fn referrer_descriptor(
        &self,
        r: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> PathBuf {
        self.referrer(r, subject, referrer).join("descriptor")
    }
    /// The referrer's artifactType (empty: none), read to filter a list.
    pub fn referrer_artifact_type(
        &self,
        r: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> PathBuf {
        self.referrer(r, subject, referrer).join("artifact-type")
    }
    /// Berth's record of a revision (beside registry:2's `_manifests`).
    pub fn revision_meta(&self, r: &RepoName, d: &Digest) -> PathBuf {
        digest_dir(&self.repo(r).join("_berth/revisions"), d)
    }
    /// The media type revision `d` is served with.
    pub fn revision_media_type(&self, r: &RepoName, d: &Digest) -> PathBuf {
        self.revision_meta(r, d).join("media-type")
    }
    /// The `<alg>` directory above `referrer`'s entry, to tidy up after it.
    pub fn referrer_alg(&self, r: &RepoName, subject: &Digest, alg: Algorithm) -> PathBuf {
        self.referrers_of(r, subject).join(alg.as_str())
    }

    /// Repository names found by walking `repositories/`, sorted. Directories
    /// starting with `_` are not names.
    pub fn walk_repositories(&self, holding: Holding) -> io::Result<Vec<String>> {
        let marks: &[&str] = match holding {
            Holding::Manifests => &[MANIFESTS],
            Holding::Anything => &[MANIFESTS, LAYERS, UPLOADS],
        };
        let mut out = Vec::new();
        walk(&self.repositories(), "", marks, &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Every `blobs/<alg>/<prefix>/<hex>/data` path with its digest (present
    /// or not: the directory may hold no `data`).
    pub fn walk_blobs(&self) -> io::Result<Vec<(Digest, PathBuf)>> {
        let base = self.blobs();
        let mut out = Vec::new();
        for alg in list_dir(&base)? {
            for prefix in list_dir(&base.join(&alg))? {
                for hex in list_dir(&base.join(&alg).join(&prefix))? {
                    let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
                        continue;
                    };
                    let path = base.join(&alg).join(&prefix).join(&hex).join("data");
                    out.push((digest, path));
                }
            }
        }
        Ok(out)
    }
}

fn digest_dir(base: &Path, d: &Digest) -> PathBuf {
    base.join(d.algorithm().as_str()).join(d.hex())
}

/// Digests stored as `<dir>/<alg>/<hex>/` directories, sorted.
pub(super) fn list_digests(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for alg in list_dir(dir)? {
        for hex in list_dir(&dir.join(&alg))? {
            if let Ok(d) = format!("{alg}:{hex}").parse() {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Walks the repository tree; a directory holding any of `marks` counts.
fn walk(dir: &Path, prefix: &str, marks: &[&str], out: &mut Vec<String>) -> io::Result<()> {
    let mut names = list_dir(dir)?;
    names.sort();
    for name in names {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        let repo = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if marks.iter().any(|m| path.join(m).is_dir()) {
            out.push(repo.clone());
        }
        walk(&path, &repo, marks, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_registry2() {
        let l = Layout::new(Path::new("/data"));
        let r: RepoName = "team/app".parse().unwrap();
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let hex = d.hex().to_string();
        let v2 = "/data/docker/registry/v2";
        let repo = format!("{v2}/repositories/team/app");
        let cases = [
            (l.blob_data(&d), format!("{v2}/blobs/sha256/ab/{hex}/data")),
            (
                l.layer_link(&r, &d),
                format!("{repo}/_layers/sha256/{hex}/link"),
            ),
            (
                l.revision_link(&r, &d),
                format!("{repo}/_manifests/revisions/sha256/{hex}/link"),
            ),
            (
                l.tag_current_link(&r, "v1"),
                format!("{repo}/_manifests/tags/v1/current/link"),
            ),
            (
                l.tag_index_link(&r, "v1", &d),
                format!("{repo}/_manifests/tags/v1/index/sha256/{hex}/link"),
            ),
            (l.upload_data(&r, "u"), format!("{repo}/_uploads/u/data")),
            (
                l.upload_started_at(&r, "u"),
                format!("{repo}/_uploads/u/startedat"),
            ),
            (
                l.referrer_link(&r, &d, &d),
                format!("{repo}/_berth/referrers/sha256/{hex}/sha256/{hex}/link"),
            ),
            (
                l.revision_media_type(&r, &d),
                format!("{repo}/_berth/revisions/sha256/{hex}/media-type"),
            ),
            (l.lock_file(), format!("{v2}/_berth/lock")),
        ];
        for (got, want) in cases {
            assert_eq!(got, PathBuf::from(want));
        }
        assert!(l.tmp_file().starts_with(format!("{v2}/_berth/tmp")));
    }
}
