//! The work a manifest PUT makes the server do: what it references is
//! checked against the repository's own links before anything is read,
//! parsed or touched, so a small index cannot make the server read
//! gigabytes, and a PUT tells nothing about (nor keeps alive) content of
//! other repositories. Serving a manifest reads no JSON.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::support::*;

/// An old mtime, so that any touch shows.
fn age(path: &PathBuf) -> SystemTime {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .set_modified(old)
        .unwrap();
    old
}

fn mtime(path: &PathBuf) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn blob_data(reg: &Registry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
}

/// A blob that looks like a big image manifest: `n` layer digests.
fn manifest_like_blob(n: usize, seed: u64) -> Vec<u8> {
    let layers: Vec<_> = (0..n as u64)
        .map(|i| {
            let d = sha256(&(seed * 1_000_000 + i).to_le_bytes());
            json!({"mediaType": OCI_LAYER_GZIP, "digest": d, "size": 1})
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": EMPTY_DIGEST, "size": 2},
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn an_index_naming_children_that_are_not_manifests_of_the_repository_touches_none() {
    let api = Api::start();
    let repo = "work/index";
    // Children as blobs: layers of this repository and of another one,
    // each a manifest's worth of digests, but no revision of `repo`.
    let mut children = Vec::new();
    for (i, owner) in ["work/index", "work/other", "work/other"]
        .iter()
        .enumerate()
    {
        let body = manifest_like_blob(10_000, i as u64);
        let d = api.push_blob(owner, &body);
        children.push((d, body.len()));
    }
    let paths: Vec<PathBuf> = children
        .iter()
        .map(|(d, _)| blob_data(&api.reg, d))
        .collect();
    let old: Vec<SystemTime> = paths.iter().map(age).collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(d, size)| json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": size
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    for _ in 0..3 {
        api.put_manifest(repo, "v1", OCI_INDEX, &index)
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    }
    for (p, t) in paths.iter().zip(&old) {
        assert_eq!(mtime(p), *t, "{} was touched by a refused PUT", p.display());
    }
}

#[test]
fn a_manifest_naming_a_blob_of_another_repository_is_refused_and_leaves_it_untouched() {
    let api = Api::start();
    let secret = api.push_blob("hidden/secret", b"the secret layer");
    let config = api.push_blob("mine/app", br#"{"os":"linux"}"#);
    let path = blob_data(&api.reg, &secret);
    let old = age(&path);
    let absent = sha256(b"never pushed anywhere");
    let manifest = |layer: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 14},
            "layers": (0..2000).map(|_| json!({
                "mediaType": OCI_LAYER_GZIP, "digest": layer, "size": 16
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    // Elsewhere or nowhere: the same answer.
    for layer in [&secret, &absent] {
        let r = api.put_manifest("mine/app", "v1", OCI_MANIFEST, &manifest(layer));
        r.expect_error(400, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(
            r.json()["errors"][0]["detail"]["digest"],
            layer.as_str(),
            "{r}"
        );
    }
    assert_eq!(mtime(&path), old, "the other repository's blob was touched");
    // Once linked here (mounted), the same manifest is accepted.
    api.send(api.req(
        reqwest::Method::POST,
        &format!("/v2/mine/app/blobs/uploads/?mount={secret}&from=hidden/secret"),
    ))
    .expect(201);
    api.put_manifest("mine/app", "v1", OCI_MANIFEST, &manifest(&secret))
        .expect(201);
}

/// The server's user + system CPU time (from `/proc/<pid>/stat`), in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_name = &stat[stat.rfind(')').expect("stat name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn heads_of_a_large_manifest_parse_nothing() {
    let api = Api::start();
    let repo = "work/heavy";
    let config = api.push_blob(repo, b"{}");
    // ~3.5 MB of small annotations: costly to parse, cheap to serve.
    let annotations: serde_json::Map<String, serde_json::Value> = (0..150_000)
        .map(|i| (format!("org.example.a{i:07}"), json!("v")))
        .collect();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
        "layers": [],
        "annotations": annotations,
    }))
    .unwrap();
    let d = api.push_manifest(repo, "v1", OCI_MANIFEST, &m);
    let pid = api.reg.pid();
    let before = cpu_ticks(pid);
    for _ in 0..20 {
        let r = api.head_manifest(repo, "v1");
        r.expect(200);
        assert_eq!(r.header("content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(d.as_str())
        );
    }
    let r = api.get_manifest(repo, &d);
    r.expect(200);
    assert_eq!(r.body, m);
    let spent = cpu_ticks(pid) - before;
    eprintln!(
        "21 requests for a {} byte manifest: {spent} ticks of server CPU",
        m.len()
    );
    // 100 ticks a second: well under a second for all of them.
    assert!(spent < 60, "{spent} ticks of CPU for 21 requests");
}

#[test]
fn manifests_and_referrers_stored_without_berth_records_are_still_served() {
    let api = Api::start();
    let repo = "work/legacy";
    let (subject, sd) = api.push_oci_image(repo, "v1", 3);
    let docker = api.docker_image(repo, 4);
    api.push_manifest(repo, "d", DOCKER_MANIFEST, &docker);
    let sbom = api.artifact(repo, SBOM, Some((&sd, subject.len())), json!({"k": "v"}));
    let sbom_d = api.push_manifest(repo, &sha256(&sbom), OCI_MANIFEST, &sbom);
    let before = referrers(&api, repo, &sd, "").1;
    // As registry:2 (or an older Berth) would have left it: no records.
    let berth = api
        .reg
        .root
        .join(format!("docker/registry/v2/repositories/{repo}/_berth"));
    std::fs::remove_dir_all(berth.join("revisions")).unwrap();
    let hex = sd.strip_prefix("sha256:").unwrap();
    let sbom_dir = berth.join(format!(
        "referrers/sha256/{hex}/sha256/{}",
        sbom_d.strip_prefix("sha256:").unwrap()
    ));
    std::fs::remove_file(sbom_dir.join("descriptor")).unwrap();
    std::fs::remove_file(sbom_dir.join("artifact-type")).unwrap();
    for _ in 0..2 {
        let r = api.get_manifest(repo, "d");
        r.expect(200);
        assert_eq!(r.header("content-type").as_deref(), Some(DOCKER_MANIFEST));
        let r = api.head_manifest(repo, "v1");
        assert_eq!(r.header("content-type").as_deref(), Some(OCI_MANIFEST));
        let (_, after) = referrers(&api, repo, &sd, &format!("?artifactType={SBOM}"));
        assert_eq!(after, before);
    }
}

#[test]
fn collection_leaves_no_record_of_a_revision_it_removes() {
    use crate::support::gc::{gc_json, tmp_root};
    let (_tmp, root) = tmp_root();
    let api = Api::on(Registry::start_in(
        &root,
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
        &[],
    ));
    let repo = "work/gc";
    let (_, old) = api.push_oci_image(repo, "v1", 5);
    let (subject, live) = api.push_oci_image(repo, "v1", 6);
    let sig = api.artifact(repo, SIG, Some((&live, subject.len())), json!({"k": "v"}));
    let sig_d = api.push_manifest(repo, &sha256(&sig), OCI_MANIFEST, &sig);
    drop(api);
    let berth = root.join(format!("docker/registry/v2/repositories/{repo}/_berth"));
    let record = |d: &str| berth.join(format!("revisions/sha256/{}", &d[7..]));
    assert!(record(&old).is_dir() && record(&live).is_dir() && record(&sig_d).is_dir());
    let report = gc_json(&root, &["--delete-untagged"]);
    assert!(
        !record(&old).exists(),
        "a record outlived its revision: {report}"
    );
    assert!(
        record(&live).is_dir() && record(&sig_d).is_dir(),
        "{report}"
    );
}
