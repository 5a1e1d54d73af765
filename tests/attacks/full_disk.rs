//! A full disk: the data dir on a small tmpfs. A push that does not fit
//! fails with a clear 5xx JSON error and a log line naming the cause,
//! leaves nothing behind (the space comes back at once, no purge needed),
//! nothing half-written is served, pulls keep working, online garbage
//! collection keeps running, and once space is freed pushes work again.
//! Needs root (to mount the tmpfs): skipped otherwise, failed in CI.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;

use crate::support::api::{Api, Resp};
use crate::support::content::{noise, sha256, OCI_MANIFEST};
use crate::support::harness::{serve_command, Registry};

const DISK: &str = "32m";
const MIB: usize = 1 << 20;

/// A tmpfs mounted for the test, unmounted when dropped (also on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one at `dir`; `None` (with the reason printed) when this
    /// process may not mount, unless in CI (CI=true), where that fails.
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(!in_ci, "mounting a tmpfs is required in CI: {why}");
                eprintln!("skipping: cannot mount a tmpfs (needs root): {why}");
                None
            }
        }
    }

    /// Bytes free on the tmpfs.
    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default().trim().to_string();
        last.parse()
            .unwrap_or_else(|_| panic!("df output: {text:?}"))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Bytes of upload data (`_uploads/<id>/data`) under `root`.
fn upload_bytes(root: &Path) -> u64 {
    fn walk(dir: &Path, in_uploads: bool, total: &mut u64) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let uploads = in_uploads || e.file_name() == "_uploads";
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(&path, uploads, total),
                Ok(m) if uploads && e.file_name() == "data" => *total += m.len(),
                _ => {}
            }
        }
    }
    let mut total = 0;
    walk(root, false, &mut total);
    total
}

/// A 5xx JSON error saying the storage is full.
fn assert_storage_full(r: &Resp) {
    assert!(r.status >= 500, "want a 5xx for a full disk: {r}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{r}"
    );
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("storage is full"), "{r}");
}

/// The image `tag` of `repo` pulls: manifest and every blob.
fn assert_pulls(api: &Api, repo: &str, tag: &str, manifest: &[u8]) {
    let r = api.get_manifest(repo, tag);
    r.expect(200);
    assert!(r.body == manifest, "the manifest's bytes differ");
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in blobs {
        let r = api.get(&format!("/v2/{repo}/blobs/{d}"));
        r.expect(200);
        assert_eq!(sha256(&r.body), d);
    }
}

/// Fills the tmpfs with a file outside the data dir, to its last byte.
fn fill(path: &Path) {
    let mut f = File::create(path).expect("create filler");
    let big = vec![0u8; MIB];
    while f.write_all(&big).is_ok() {}
    let small = vec![0u8; 4096];
    while f.write_all(&small).is_ok() {}
    let _ = f.flush();
}

#[test]
fn a_push_that_does_not_fit_frees_what_it_wrote_and_pushes_work_once_space_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("disk");
    fs::create_dir(&mnt).unwrap();
    let Some(disk) = Tmpfs::mount(&mnt) else {
        return;
    };
    let root = mnt.join("data");
    let env = [
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "300ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "1h"),
    ];
    let api = Api::on(Registry::spawn(
        serve_command(&root, &env, &[]),
        &root,
        true,
    ));
    let small = api.oci_image("full/disk", 1);
    api.push_manifest("full/disk", "small", OCI_MANIFEST, &small);
    let free = disk.available();

    // A monolithic blob bigger than the disk (its digest is never reached).
    let big = vec![0x5a; 40 * MIB];
    let big_digest = sha256(b"a blob bigger than the disk");
    let r = api.send(
        api.req(
            Method::POST,
            &format!("/v2/full/disk/blobs/uploads/?digest={big_digest}"),
        )
        .body(big.clone()),
    );
    assert_storage_full(&r);
    assert_eq!(upload_bytes(&root), 0, "the failed push left data behind");
    assert!(
        disk.available() + MIB as u64 >= free,
        "the space is not back"
    );
    assert_pulls(&api, "full/disk", "small", &small);
    let r = api.head(&format!("/v2/full/disk/blobs/{big_digest}"));
    r.expect(404);

    // Chunked: a first chunk fits, the next one does not.
    let first = noise(4 * MIB, 8);
    let loc = api.start_upload("full/disk");
    let r = api.patch(&loc, &first, Some((0, first.len() as u64 - 1)));
    r.expect(202);
    let loc = r.must_header("location");
    let end = first.len() as u64;
    let r = api.patch(&loc, &big, Some((end, end + big.len() as u64 - 1)));
    assert_storage_full(&r);
    assert_eq!(
        upload_bytes(&root),
        first.len() as u64,
        "the failed chunk left data behind"
    );
    let status = api.get(&loc);
    status.expect(204);
    assert_eq!(status.header("range").as_deref(), Some("0-4194303"));
    // The session goes on from where it stood, with a correct hash.
    let last = b"and a last small chunk";
    let r = api.patch(&loc, last, Some((end, end + last.len() as u64 - 1)));
    r.expect(202);
    let whole = [&first[..], &last[..]].concat();
    api.close_upload(&r.must_header("location"), &sha256(&whole), b"")
        .expect(201);

    // A disk that is full before a manifest PUT and a blob push.
    let filler = mnt.join("filler");
    fill(&filler);
    let config = br#"{"architecture":"amd64","os":"linux","full":true}"#;
    let r = api.send(
        api.req(
            Method::POST,
            &format!("/v2/full/disk/blobs/uploads/?digest={}", sha256(config)),
        )
        .body(config.to_vec()),
    );
    assert_storage_full(&r);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&whole), "size": whole.len()},
        "layers": [],
    }))
    .unwrap();
    let r = api.put_manifest("full/disk", "full", OCI_MANIFEST, &manifest);
    assert_storage_full(&r);
    api.get_manifest("full/disk", "full").expect(404);
    api.get_manifest("full/disk", &sha256(&manifest))
        .expect(404);
    // Garbage collection runs on a full disk, and pulls keep working.
    std::thread::sleep(Duration::from_millis(800));
    assert_pulls(&api, "full/disk", "small", &small);
    assert_eq!(upload_bytes(&root), 0, "a failed push left data behind");

    // Space freed: pushes work at once, no purge needed.
    fs::remove_file(&filler).unwrap();
    let again = api.oci_image("full/disk", 2);
    api.push_manifest("full/disk", "again", OCI_MANIFEST, &again);
    assert_pulls(&api, "full/disk", "again", &again);
    api.push_manifest("full/disk", "full", OCI_MANIFEST, &manifest);
    assert_pulls(&api, "full/disk", "small", &small);

    let logs = api.reg.logs();
    assert!(
        logs.contains("storage full"),
        "no log line names the full disk:\n{logs}"
    );
    drop(api);
    drop(disk);
}
