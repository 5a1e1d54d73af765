//! Reading a whole registry back as a client sees it: the catalog page by
//! page, and a snapshot of every tag, manifest and blob, digests checked.

use std::collections::BTreeMap;

use serde_json::Value;

use super::content::{sha256, ACCEPT_ALL};
use super::http::{absolute, client, header};

/// The whole catalog, read `n` names at a time by following `Link` headers.
pub fn catalog_paged(base: &str, n: usize) -> Vec<String> {
    let c = client();
    let mut url = format!("{base}/v2/_catalog?n={n}");
    let mut all = Vec::new();
    for _ in 0..1000 {
        let r = c.get(&url).send().expect("catalog page");
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        let link = header(&r, "link");
        let v: Value = r.json().expect("catalog json");
        let page = v["repositories"].as_array().expect("repositories");
        assert!(page.len() <= n, "{url} returned {} names", page.len());
        all.extend(page.iter().map(|s| s.as_str().unwrap().to_string()));
        if link.is_empty() {
            return all;
        }
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(u, rest)| {
                assert!(rest.contains("rel=\"next\""), "Link: {link}");
                u
            })
            .unwrap_or_else(|| panic!("malformed Link: {link}"));
        url = absolute(base, target);
    }
    panic!("catalog pagination does not end");
}

/// What a registry serves, as far as a client can see it: enough to show
/// that two servers serve the same content from the same directory.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub catalog: Vec<String>,
    pub tags: BTreeMap<String, Vec<String>>,
    /// (repo, reference) -> (Content-Type, Docker-Content-Digest, sha256 of body)
    pub manifests: BTreeMap<(String, String), (String, String, String)>,
    /// (repo, digest) -> size, from GET (body verified) and HEAD (Content-Length).
    pub blobs: BTreeMap<(String, String), u64>,
}

/// Reads catalog, tags, every tagged manifest (by tag and by digest), every
/// child manifest and every blob, checking digests on the way.
pub fn snapshot(base: &str) -> Snapshot {
    let c = client();
    let r = c
        .get(format!("{base}/v2/_catalog"))
        .send()
        .expect("catalog");
    assert_eq!(r.status().as_u16(), 200, "catalog");
    let v: Value = r.json().expect("catalog json");
    let catalog: Vec<String> = v["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let mut snap = Snapshot {
        catalog: catalog.clone(),
        tags: BTreeMap::new(),
        manifests: BTreeMap::new(),
        blobs: BTreeMap::new(),
    };
    for repo in &catalog {
        let r = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .expect("tags");
        assert_eq!(r.status().as_u16(), 200, "tags/list of {repo}");
        let v: Value = r.json().expect("tags json");
        assert_eq!(v["name"], repo.as_str());
        // The reference registry lists tags in directory order: compare sets.
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        tags.sort();
        let mut pending: Vec<String> = tags.clone();
        snap.tags.insert(repo.clone(), tags);
        while let Some(reference) = pending.pop() {
            if snap
                .manifests
                .contains_key(&(repo.clone(), reference.clone()))
            {
                continue;
            }
            let r = c
                .get(format!("{base}/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL)
                .send()
                .expect("manifest");
            assert_eq!(r.status().as_u16(), 200, "GET {repo}:{reference}");
            let ctype = header(&r, "content-type");
            let dcd = header(&r, "docker-content-digest");
            let body = r.bytes().expect("manifest body").to_vec();
            let digest = sha256(&body);
            assert_eq!(dcd, digest, "Docker-Content-Digest of {repo}:{reference}");
            if reference.contains(':') {
                assert_eq!(reference, digest, "manifest {repo}@{reference} content");
            }
            let head = c
                .head(format!("{base}/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL)
                .send()
                .expect("HEAD manifest");
            assert_eq!(head.status().as_u16(), 200, "HEAD {repo}:{reference}");
            assert_eq!(header(&head, "docker-content-digest"), digest);
            assert_eq!(header(&head, "content-length"), body.len().to_string());
            snap.manifests.insert(
                (repo.clone(), reference.clone()),
                (ctype, dcd, digest.clone()),
            );
            pending.push(digest);
            let v: Value = serde_json::from_slice(&body).expect("manifest json");
            let mut blob_refs = Vec::new();
            if v["config"].is_object() {
                blob_refs.push(v["config"].clone());
            }
            for l in v["layers"].as_array().into_iter().flatten() {
                blob_refs.push(l.clone());
            }
            for m in v["manifests"].as_array().into_iter().flatten() {
                pending.push(m["digest"].as_str().unwrap().to_string());
            }
            for d in blob_refs {
                let digest = d["digest"].as_str().unwrap().to_string();
                let size = d["size"].as_u64().unwrap();
                let r = c
                    .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                    .send()
                    .expect("blob");
                assert_eq!(r.status().as_u16(), 200, "GET blob {repo}@{digest}");
                let body = r.bytes().expect("blob body");
                assert_eq!(sha256(&body), digest, "content of blob {repo}@{digest}");
                assert_eq!(body.len() as u64, size, "size of blob {repo}@{digest}");
                let h = c
                    .head(format!("{base}/v2/{repo}/blobs/{digest}"))
                    .send()
                    .expect("HEAD blob");
                assert_eq!(h.status().as_u16(), 200, "HEAD blob {repo}@{digest}");
                assert_eq!(header(&h, "content-length"), size.to_string());
                assert_eq!(header(&h, "docker-content-digest"), digest);
                snap.blobs.insert((repo.clone(), digest), size);
            }
        }
    }
    snap
}
