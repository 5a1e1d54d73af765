//! Pushing over plain HTTP: blobs (POST then PUT), unfinished uploads,
//! manifests and whole manifest trees. The `try_` forms report a failure
//! as `Err` (for tests that push from many threads and count failures);
//! the others panic.

use reqwest::blocking::Client;

use super::content::sha256;
use super::http::{absolute, client, header};
use super::image::Manifest;

/// A failure, described for the test log.
pub type R<T> = Result<T, String>;

/// Pushes one blob with a monolithic POST-then-PUT upload; its digest.
pub fn try_push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> R<String> {
    let digest = sha256(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .map_err(|e| format!("POST upload in {repo}: {e}"))?;
    if r.status().as_u16() != 202 {
        return Err(format!("start upload in {repo}: {r:?}"));
    }
    let loc = header(&r, "location");
    if loc.is_empty() {
        return Err(format!("start upload in {repo}: no Location: {r:?}"));
    }
    let loc = absolute(base, &loc);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .map_err(|e| format!("PUT upload of {digest} in {repo}: {e}"))?;
    let status = r.status();
    if status.as_u16() != 201 {
        return Err(format!(
            "finish upload of {digest} in {repo}: {status} {:?}",
            r.text()
        ));
    }
    Ok(digest)
}

/// Pushes one blob (see [`try_push_blob`]), panicking if that fails.
pub fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    try_push_blob(&client(), base, repo, data).unwrap_or_else(|e| panic!("{e}"))
}

/// Pushes a blob unless HEAD says the repository has it (as docker does).
pub fn ensure_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> R<String> {
    let digest = sha256(data);
    let head = c
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .map_err(|e| e.to_string())?;
    if head.status().as_u16() == 200 {
        return Ok(digest);
    }
    try_push_blob(c, base, repo, data)
}

/// Starts an upload in `repo` and sends `data` as its first chunk, leaving
/// it unfinished. Returns the upload's URL.
pub fn start_upload(base: &str, repo: &str, data: &[u8]) -> String {
    let c = client();
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST upload");
    assert_eq!(r.status().as_u16(), 202, "start upload in {repo}");
    let loc = absolute(base, r.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("0-{}", data.len() - 1))
        .body(data.to_vec())
        .send()
        .expect("PATCH upload");
    assert_eq!(r.status().as_u16(), 202, "first chunk in {repo}");
    absolute(base, r.headers()["location"].to_str().unwrap())
}

/// PUTs manifest bytes under `reference` with `media_type` as Content-Type;
/// on 201, the Docker-Content-Digest header.
fn send_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> R<Option<String>> {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .map_err(|e| format!("PUT {repo}:{reference}: {e}"))?;
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    if status != 201 {
        return Err(format!("PUT {repo}:{reference}: {status} {:?}", r.text()));
    }
    Ok(digest)
}

/// PUTs a manifest (see [`put_manifest`]); the digest of its bytes on 201.
pub fn try_put_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> R<String> {
    send_manifest(c, base, repo, reference, media_type, bytes).map(|_| sha256(bytes))
}

/// PUTs manifest bytes under `reference` with `media_type` as Content-Type;
/// asserts 201 and a Docker-Content-Digest of those bytes.
pub fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let digest = send_manifest(&client(), base, repo, reference, media_type, bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(digest.as_deref(), Some(sha256(bytes).as_str()));
}

/// Pushes `m`, its blobs and (by digest) its children, then tags it `tag`.
pub fn push_tree(base: &str, repo: &str, m: &Manifest, tag: &str) {
    for b in &m.blobs {
        push_blob(base, repo, &b.data);
    }
    for c in &m.children {
        push_tree(base, repo, c, &c.digest);
    }
    put_manifest(base, repo, tag, &m.media_type, &m.bytes);
}
