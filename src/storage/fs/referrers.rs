//! The referrers of a subject, a page at a time: each referrer's
//! descriptor is a small record written at push
//! (`_berth/referrers/<subject>/<referrer>/descriptor`), so a page is
//! listed from the records and streamed without reading a manifest.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};

use super::io::{not_found, read_link};
use super::layout::list_digests;
use super::Disk;
use crate::oci::{Digest, Manifest, RepoName};
use crate::storage::{ByteStream, ReferrersQuery, Result, StoreError};

/// Read size when streaming a record out.
const READ_CHUNK: usize = 64 << 10;

/// One page of the referrers of `s` in `r`, in digest order after
/// `q.after`: the records to send and, when more follow, the last digest
/// of the page (what the next page starts after).
pub(super) fn page(
    disk: &Disk,
    r: &RepoName,
    s: &Digest,
    q: &ReferrersQuery,
) -> Result<(Vec<Record>, Option<Digest>)> {
    let layout = &disk.layout;
    let mut entries: Vec<(Digest, Record)> = Vec::new();
    let mut bytes = 0u64;
    let mut next = None;
    for d in list_digests(&layout.referrers_of(r, s))? {
        if q.after.as_ref().is_some_and(|a| d <= *a) {
            continue;
        }
        if !disk.has_revision(r, &d)? {
            continue;
        }
        let Some((record, size, artifact_type)) = referrer_record(disk, r, s, &d)? else {
            continue;
        };
        if q.artifact_type
            .as_ref()
            .is_some_and(|t| *t != artifact_type)
        {
            continue;
        }
        let full = entries.len() >= q.max_count.max(1)
            || (!entries.is_empty() && bytes.saturating_add(size) > q.max_bytes);
        if full {
            next = entries.last().map(|(d, _)| d.clone());
            break;
        }
        bytes += size;
        entries.push((d, record));
    }
    Ok((entries.into_iter().map(|(_, r)| r).collect(), next))
}

/// Where a referrer's descriptor is read from when the page is sent.
pub(super) enum Record {
    File(PathBuf),
    /// Made from the manifest just now (a read-only data dir).
    Bytes(Bytes),
}

/// The record of referrer `d` of `s`: where its descriptor is, its size and
/// its artifactType (empty: none). A referrer pushed before records existed
/// gets one made from its manifest, once. `None` when it is no manifest.
fn referrer_record(
    disk: &Disk,
    r: &RepoName,
    s: &Digest,
    d: &Digest,
) -> Result<Option<(Record, u64, String)>> {
    let layout = &disk.layout;
    let (desc_path, type_path) = (
        layout.referrer_descriptor(r, s, d),
        layout.referrer_artifact_type(r, s, d),
    );
    if let (Ok(meta), Ok(artifact_type)) =
        (fs::metadata(&desc_path), fs::read_to_string(&type_path))
    {
        return Ok(Some((Record::File(desc_path), meta.len(), artifact_type)));
    }
    let stored = match disk.read_manifest(r, d) {
        Ok(m) => m,
        Err(StoreError::ManifestUnknown) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(m) = Manifest::parse(&stored.bytes, None) else {
        return Ok(None);
    };
    let desc = m.referrer_descriptor(d.clone(), stored.bytes.len() as u64);
    let json = Bytes::from(serde_json::to_vec(&desc).map_err(std::io::Error::other)?);
    let artifact_type = desc.artifact_type.unwrap_or_default();
    let _push = disk.push_guard();
    let written = read_link(&layout.referrer_link(r, s, d))?.as_ref() == Some(d)
        && disk
            .write_atomic(&type_path, artifact_type.as_bytes())
            .is_ok()
        && disk.write_atomic(&desc_path, &json).is_ok();
    let size = json.len() as u64;
    let record = if written {
        Record::File(desc_path)
    } else {
        Record::Bytes(json)
    };
    Ok(Some((record, size, artifact_type)))
}

/// The records, comma-separated, read one at a time as the body is sent.
/// A record gone since the page was listed (its referrer deleted) is left
/// out.
pub(super) fn stream_records(records: Vec<Record>) -> ByteStream {
    let started = Arc::new(AtomicBool::new(false));
    stream::iter(records)
        .then(move |record| {
            let started = started.clone();
            async move {
                let body: ByteStream = match record {
                    Record::Bytes(b) => stream::iter([Ok(b)]).boxed(),
                    Record::File(p) => match tokio::fs::File::open(&p).await {
                        Ok(f) => tokio_util::io::ReaderStream::with_capacity(f, READ_CHUNK).boxed(),
                        Err(e) if not_found(&e) => return stream::empty().boxed(),
                        Err(e) => return stream::iter([Err(e)]).boxed(),
                    },
                };
                if started.swap(true, Ordering::Relaxed) {
                    stream::iter([Ok(Bytes::from_static(b","))])
                        .chain(body)
                        .boxed()
                } else {
                    body
                }
            }
        })
        .flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Algorithm;
    use crate::storage::fs::FsStore;
    use crate::storage::Store;

    /// Pushes `n` referrers of `subject` into `repo`; their digests, sorted.
    async fn push_referrers(
        store: &FsStore,
        repo: &RepoName,
        subject: &Digest,
        n: usize,
    ) -> Vec<Digest> {
        let empty = Digest::of(Algorithm::Sha256, b"{}");
        let id = store.upload_start(repo).await.unwrap();
        let body: ByteStream = stream::iter([Ok(Bytes::from_static(b"{}"))]).boxed();
        store
            .upload_finish(repo, &id, &empty, Some(body))
            .await
            .unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let bytes = Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"t{}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":2}},"annotations":{{"i":"{i}"}}}}"#,
                i % 2
            ));
            let m = Manifest::parse(&bytes, None).unwrap();
            let d = Digest::of(Algorithm::Sha256, &bytes);
            store.manifest_put(repo, &[], bytes, &m, &d).await.unwrap();
            out.push(d);
        }
        out.sort();
        out
    }

    async fn page(
        store: &FsStore,
        repo: &RepoName,
        subject: &Digest,
        q: &ReferrersQuery,
    ) -> (Vec<Digest>, Option<Digest>) {
        let p = store.referrers(repo, subject, q).await.unwrap();
        let body: Vec<u8> = p.descriptors.map(|c| c.unwrap().to_vec()).concat().await;
        let list: Vec<crate::oci::Descriptor> =
            serde_json::from_slice(&[b"[".as_slice(), &body, b"]"].concat()).unwrap();
        (list.into_iter().map(|d| d.digest).collect(), p.next)
    }

    #[tokio::test]
    async fn referrer_pages_are_bounded_by_count_and_bytes_and_filtered() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsStore::open(tmp.path()).unwrap();
        let repo: RepoName = "a/b".parse().unwrap();
        let subject = Digest::of(Algorithm::Sha256, b"subject");
        let all = push_referrers(&store, &repo, &subject, 5).await;

        let mut q = ReferrersQuery {
            max_count: 2,
            ..ReferrersQuery::first()
        };
        let mut seen = Vec::new();
        for want in [2, 2, 1] {
            let (got, next) = page(&store, &repo, &subject, &q).await;
            assert_eq!(got.len(), want);
            seen.extend(got.iter().cloned());
            assert_eq!(next.is_some(), want == 2 && seen.len() < 5);
            q.after = next;
            if q.after.is_none() {
                break;
            }
        }
        assert_eq!(seen, all);

        // One byte per page: still one descriptor each.
        let q = ReferrersQuery {
            max_bytes: 1,
            ..ReferrersQuery::first()
        };
        let (got, next) = page(&store, &repo, &subject, &q).await;
        assert_eq!((got.len(), next), (1, Some(all[0].clone())));

        let q = ReferrersQuery {
            artifact_type: Some("t1".into()),
            ..ReferrersQuery::first()
        };
        let (got, next) = page(&store, &repo, &subject, &q).await;
        assert_eq!((got.len(), next), (2, None));
    }
}
