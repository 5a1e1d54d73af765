//! Content by hand: media types, digests, seeded incompressible bytes,
//! deterministic tar archives and gzip.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The digest of the two bytes `{}` (the OCI empty descriptor).
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Artifact and config types of the examples pushed as referrers.
pub const SBOM: &str = "application/vnd.example.sbom.v1";
pub const SIG: &str = "application/vnd.example.signature.v1";
pub const EXAMPLE_CONFIG: &str = "application/vnd.example.config.v1+json";

/// Every manifest media type a modern client (docker, skopeo) accepts when
/// pulling a manifest.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub fn sha512(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// `len` deterministic pseudo-random bytes (xorshift) that gzip cannot
/// shrink: the same every run, different for every seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One member of a tar archive.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

fn octal(field: &mut [u8], value: u64) {
    // N-1 octal digits followed by NUL, as GNU tar and Go's archive/tar write.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    assert!(s.len() == digits, "value {value} too large for tar field");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

fn tar_header(name: &str, mode: u32, size: u64, kind: u8, link: &str) -> [u8; 512] {
    assert!(name.len() < 100 && link.len() < 100, "tar name too long");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A deterministic ustar archive of `entries` (owner root, fixed mtime).
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(name) => {
                let name = if name.ends_with('/') {
                    name.to_string()
                } else {
                    format!("{name}/")
                };
                out.extend_from_slice(&tar_header(&name, 0o755, 0, b'5', ""));
            }
            Entry::File(name, data, mode) => {
                out.extend_from_slice(&tar_header(name, *mode, data.len() as u64, b'0', ""));
                out.extend_from_slice(data);
                let pad = (512 - data.len() % 512) % 512;
                out.extend(std::iter::repeat_n(0u8, pad));
            }
            Entry::Symlink(name, target) => {
                out.extend_from_slice(&tar_header(name, 0o777, 0, b'2', target));
            }
        }
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// `data` compressed with the `gzip` command (`-n`: no name or time, so the
/// output is the same every run).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new("gzip");
    cmd.args(["-n", "-c"]);
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn gzip");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    w.join().unwrap().expect("write to gzip");
    assert!(child.wait().unwrap().success(), "{shown} failed");
    out
}
