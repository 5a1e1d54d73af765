//! The collector over a real filesystem store, on data dirs built by hand
//! the way registry:2 leaves them.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::{collect, Options};
use crate::storage::FsStore;

/// Writes `bytes` into the blob store; returns its digest.
fn blob(v2: &Path, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    let dir = v2.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("data"), bytes).unwrap();
    format!("sha256:{hex}")
}

fn link(path: &Path, digest: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, digest).unwrap();
}

/// A tagged image in repository `name`: its manifest, config and layer.
fn image(v2: &Path, name: &str, seed: &str) -> Vec<String> {
    let layer = blob(v2, format!("layer of {seed}").as_bytes());
    let config = blob(v2, format!("{{\"seed\":\"{seed}\"}}").as_bytes());
    let manifest = blob(
        v2,
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}"}},"layers":[{{"digest":"{layer}"}}]}}"#
        )
        .as_bytes(),
    );
    let repo = v2.join("repositories").join(name);
    for d in [&layer, &config] {
        link(&repo.join(format!("_layers/sha256/{}/link", &d[7..])), d);
    }
    let hex = &manifest[7..];
    link(
        &repo.join(format!("_manifests/revisions/sha256/{hex}/link")),
        &manifest,
    );
    let tag = repo.join("_manifests/tags/latest");
    link(&tag.join("current/link"), &manifest);
    link(&tag.join(format!("index/sha256/{hex}/link")), &manifest);
    vec![manifest, config, layer]
}

/// Sets every file under `dir` an hour back, beyond any grace period.
fn age(dir: &Path) {
    let then = SystemTime::now() - Duration::from_secs(3600);
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            age(&e.path());
        } else {
            fs::File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }
}

fn on_disk(v2: &Path, digest: &str) -> bool {
    let hex = &digest[7..];
    v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
        .is_file()
}

/// Repositories whose names a push would be refused (upper case, a space,
/// longer than 255 characters) are still marked: their blobs survive, and
/// garbage next to them does not.
#[test]
fn repositories_with_names_berth_refuses_keep_their_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let v2 = tmp.path().join("docker/registry/v2");
    let long = format!("{}/{}", "x".repeat(100), "y".repeat(200));
    let mut kept = image(&v2, "Team/Odd App", "odd");
    kept.extend(image(&v2, &long, "long"));
    let garbage = blob(&v2, b"referenced by nothing");
    age(&v2);

    let store = FsStore::open_for_gc(tmp.path(), false, false).unwrap();
    let opts = Options {
        delete_untagged: true,
        ..Options::default()
    };
    let report = collect(&store, &opts).unwrap();
    assert_eq!(report.repositories_scanned, 2, "{report:?}");
    assert_eq!(report.manifests_scanned, 2, "{report:?}");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(!on_disk(&v2, &garbage));
    for d in &kept {
        assert!(on_disk(&v2, d), "{d} was swept");
    }
}

/// A root without `docker/registry/v2` is refused, not collected as empty.
#[test]
fn a_root_without_registry_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Err(e) = FsStore::open_for_gc(tmp.path(), false, true) else {
        panic!("opened a root without registry data");
    };
    assert_eq!(
        e.to_string(),
        format!(
            "{} holds no registry data (no docker/registry/v2 directory)",
            tmp.path().display()
        )
    );
}
