//! What the benchmark sends and serves: generated blobs (never held whole in
//! memory, digests computed once up front) and data directories in the
//! registry:2 layout written directly (repositories and tags without pushing
//! them), so both servers serve copies of the same tree.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

/// Bytes every blob is cut from: pseudo-random, so nothing compresses.
pub fn base(len: usize) -> Arc<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Arc::new(v)
}

/// A blob of `len` bytes: `seed` (8 bytes, little endian) then the base
/// repeated from its offset 8; distinct seeds give distinct digests.
pub struct Blob {
    pub len: u64,
    pub digest: String,
    seed: [u8; 8],
    base: Arc<Vec<u8>>,
}

struct HashW(sha2::Sha256);

impl Write for HashW {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Blob {
    pub fn new(base: &Arc<Vec<u8>>, seed: u64, len: u64) -> Blob {
        let mut b = Blob {
            len,
            digest: String::new(),
            seed: seed.to_le_bytes(),
            base: base.clone(),
        };
        let mut h = HashW(sha2::Sha256::new());
        b.write_range(0, len, &mut h).expect("hashing");
        b.digest = format!("sha256:{}", hex::encode(h.0.finalize()));
        b
    }

    /// Writes bytes `start..end` of the blob to `w`.
    pub fn write_range(&self, start: u64, end: u64, w: &mut impl Write) -> io::Result<()> {
        let base = &self.base[..];
        let n = base.len() as u64;
        let mut at = start;
        if at < 8 {
            let stop = end.min(8);
            w.write_all(&self.seed[at as usize..stop as usize])?;
            at = stop;
        }
        while at < end {
            let off = (at % n) as usize;
            let take = ((n - off as u64).min(end - at)) as usize;
            w.write_all(&base[off..off + take])?;
            at += take as u64;
        }
        Ok(())
    }
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// An OCI image manifest for `config` and `layers` (digest, size).
pub fn manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": d, "size": s})
        })
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config.0, "size": config.1},
        "layers": layers,
    })
    .to_string()
    .into_bytes()
}

fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, data)
}

fn put_blob(root: &Path, data: &[u8]) -> io::Result<String> {
    let d = sha256(data);
    let hex = &d[7..];
    write(
        &root.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        )),
        data,
    )?;
    Ok(d)
}

/// A registry:2 data directory holding `repos` repositories (`nsNN/repoNNNNN`,
/// each with tag `latest` on one shared image) and, when `tags > 0`, the
/// repository `bench/tags` with that many tags (`tNNNNN`) on the same image.
pub fn catalog_tree(root: &Path, repos: usize, tags: usize) -> io::Result<()> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = put_blob(root, config)?;
    let m = manifest((&cd, config.len()), &[]);
    let md = put_blob(root, &m)?;
    let (ch, mh) = (&cd[7..], &md[7..]);
    let repo_dir = |name: &str, tags: &[String]| -> io::Result<()> {
        let r = root.join("docker/registry/v2/repositories").join(name);
        write(&r.join(format!("_layers/sha256/{ch}/link")), cd.as_bytes())?;
        write(
            &r.join(format!("_manifests/revisions/sha256/{mh}/link")),
            md.as_bytes(),
        )?;
        for t in tags {
            let t = r.join("_manifests/tags").join(t);
            write(&t.join("current/link"), md.as_bytes())?;
            write(&t.join(format!("index/sha256/{mh}/link")), md.as_bytes())?;
        }
        Ok(())
    };
    let latest = ["latest".to_string()];
    for i in 0..repos {
        repo_dir(&format!("ns{:02}/repo{i:05}", i % 100), &latest)?;
    }
    if tags > 0 {
        let names: Vec<String> = (0..tags).map(|i| format!("t{i:05}")).collect();
        repo_dir("bench/tags", &names)?;
    }
    Ok(())
}

/// `cp -a FROM TO`: a fresh copy of a generated tree.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()?;
    if ok.success() {
        Ok(())
    } else {
        Err(io::Error::other("cp -a failed"))
    }
}
