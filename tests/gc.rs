//! Garbage collection, black-box: push over HTTP to the real server, run
//! `berth garbage-collect` as a process (or let the server collect online),
//! then check what still pulls and what answers 404.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, sha256, Registry};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

type R<T> = Result<T, String>;

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
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

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

/// Pushes a blob unless HEAD says the repository has it (as docker does).
fn push_blob(c: &reqwest::blocking::Client, base: &str, repo: &str, data: &[u8]) -> R<String> {
    let digest = sha256(data);
    let head = c
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .map_err(|e| e.to_string())?;
    if head.status().as_u16() == 200 {
        return Ok(digest);
    }
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 202 {
        return Err(format!("POST upload: {}", r.status()));
    }
    let loc = absolute(
        base,
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("no Location")?,
    );
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 201 {
        return Err(format!("PUT upload {digest}: {}", r.status()));
    }
    Ok(digest)
}

fn put_manifest(
    c: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> R<String> {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    if status != 201 {
        return Err(format!("PUT {repo}:{reference}: {status} {:?}", r.text()));
    }
    Ok(sha256(bytes))
}

/// An image: config + layers, pushed and tagged (or pushed by digest when
/// `tag` is None). Returns the manifest digest.
fn push_image(
    c: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    tag: Option<&str>,
    layers: &[Vec<u8>],
    label: &str,
    subject: Option<(&str, usize)>,
) -> R<String> {
    let config = json!({"architecture": "amd64", "os": "linux", "label": label}).to_string();
    let config_digest = push_blob(c, base, repo, config.as_bytes())?;
    let mut descs = Vec::new();
    for l in layers {
        let d = push_blob(c, base, repo, l)?;
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}));
    }
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descs,
    });
    if let Some((d, size)) = subject {
        m["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size});
        m["artifactType"] = json!("application/vnd.example.signature");
    }
    let bytes = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
    let digest = sha256(&bytes);
    put_manifest(c, base, repo, tag.unwrap_or(&digest), OCI_MANIFEST, &bytes)
}

fn push_index(
    c: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    tag: &str,
    children: &[String],
) -> R<String> {
    let mut descs = Vec::new();
    for d in children {
        let m = get_ok(c, &format!("{base}/v2/{repo}/manifests/{d}"))?;
        descs.push(json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()}));
    }
    let bytes = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}),
    )
    .map_err(|e| e.to_string())?;
    put_manifest(c, base, repo, tag, OCI_INDEX, &bytes)
}

fn get_ok(c: &reqwest::blocking::Client, url: &str) -> R<Vec<u8>> {
    let r = c
        .get(url)
        .header("accept", ACCEPT)
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 200 {
        return Err(format!("GET {url}: {}", r.status()));
    }
    Ok(r.bytes().map_err(|e| e.to_string())?.to_vec())
}

fn status(c: &reqwest::blocking::Client, url: &str) -> u16 {
    c.get(url)
        .header("accept", ACCEPT)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Pulls `reference` completely (manifest, children, config, layers), checking
/// every digest. Returns the manifest digest.
fn pull(c: &reqwest::blocking::Client, base: &str, repo: &str, reference: &str) -> R<String> {
    let bytes = get_ok(c, &format!("{base}/v2/{repo}/manifests/{reference}"))?;
    let digest = sha256(&bytes);
    if reference.starts_with("sha256:") && reference != digest {
        return Err(format!("{repo}@{reference}: body digest {digest}"));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if let Some(children) = v["manifests"].as_array() {
        for ch in children {
            let d = ch["digest"].as_str().ok_or("child digest")?;
            pull(c, base, repo, d)?;
        }
    }
    let mut blobs: Vec<&str> = v["layers"]
        .as_array()
        .map(|l| l.iter().filter_map(|d| d["digest"].as_str()).collect())
        .unwrap_or_default();
    if let Some(cfg) = v["config"]["digest"].as_str() {
        blobs.push(cfg);
    }
    for b in blobs {
        let data = get_ok(c, &format!("{base}/v2/{repo}/blobs/{b}"))?;
        if sha256(&data) != b {
            return Err(format!("{repo} blob {b} has wrong content"));
        }
    }
    Ok(digest)
}

/// Runs `berth garbage-collect` on `root`.
fn gc(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("garbage-collect")
        .args(args)
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
        .env_remove("BERTH_GC_FAULT_AFTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run berth garbage-collect");
    eprintln!(
        "[gc {args:?}] {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn gc_json(root: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = gc(root, &a, &[]);
    assert!(out.status.success(), "gc failed");
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// Every file under `dir` with its size.
fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if !p.ends_with("lock") {
                out.insert(p, m.len());
            }
        }
    }
    out
}

fn blob_on_disk(root: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
    .is_file()
}

fn deleted_blobs(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["blobs_deleted"].as_array().unwrap().clone())
        .chain(report["unlinked_blobs_deleted"].as_array().unwrap().clone())
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn tmp_root() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    (tmp, root)
}

const DELETE: &[(&str, &str)] = &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")];

/// A and B share a layer; A is deleted; GC removes A's own blobs only.
#[test]
fn shared_layer_survives_and_dry_run_deletes_nothing() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let shared = noise(300_000, 1);
    let (a_own, b_own) = (noise(200_000, 2), noise(100_000, 3));
    let (a, b);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        a = push_image(
            &c,
            &reg.base,
            "app/a",
            Some("v1"),
            &[shared.clone(), a_own.clone()],
            "a",
            None,
        )
        .unwrap();
        b = push_image(
            &c,
            &reg.base,
            "app/b",
            Some("v1"),
            &[shared.clone(), b_own.clone()],
            "b",
            None,
        )
        .unwrap();
        let r = c
            .delete(reg.url(&format!("/v2/app/a/manifests/{a}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }

    let before = files(&root);
    let dry = gc_json(&root, &["--dry-run"]);
    assert_eq!(files(&root), before, "--dry-run changed the data dir");
    assert_eq!(dry["dry_run"], true);
    let text = gc(&root, &["-d"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("would remove blob"));
    assert_eq!(files(&root), before);

    let report = gc_json(&root, &[]);
    let deleted = deleted_blobs(&report);
    assert_eq!(
        deleted,
        deleted_blobs(&dry),
        "dry run predicted the real run"
    );
    assert!(
        deleted.contains(&a) && deleted.contains(&sha256(&a_own)),
        "{deleted:?}"
    );
    assert_eq!(
        deleted.len(),
        3,
        "manifest, config and own layer of A: {deleted:?}"
    );
    assert!(!deleted.contains(&sha256(&shared)));
    assert!(report["bytes_reclaimed"].as_u64().unwrap() as usize >= a_own.len());
    let per_repo = &report["repositories"][0];
    assert_eq!(per_repo["name"], "app/a");

    let reg = Registry::start_in(&root, DELETE, &[]);
    assert_eq!(pull(&c, &reg.base, "app/b", "v1").unwrap(), b);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/app/a/blobs/{}", sha256(&a_own)))),
        404
    );
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/app/a/manifests/{a}"))),
        404
    );
    assert_eq!(
        status(
            &c,
            &reg.url(&format!("/v2/app/b/blobs/{}", sha256(&shared)))
        ),
        200
    );
    drop(reg);
    // A second run finds nothing.
    let again = gc_json(&root, &[]);
    assert_eq!(again["blobs_deleted"], 0);
    assert_eq!(again["links_removed"], 0);
}

/// Untagged manifests, indexes and referrers.
#[test]
fn untagged_indexes_and_referrers() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let reg = Registry::start_in(&root, DELETE, &[]);
    let base = reg.base.clone();
    let x = push_image(
        &c,
        &base,
        "r",
        Some("latest"),
        &[noise(1000, 10)],
        "x",
        None,
    )
    .unwrap();
    let x_size = get_ok(&c, &format!("{base}/v2/r/manifests/{x}"))
        .unwrap()
        .len();
    let y_layer = noise(1000, 11);
    let y = push_image(&c, &base, "r", Some("old"), &[y_layer.clone()], "y", None).unwrap();
    let y_size = get_ok(&c, &format!("{base}/v2/r/manifests/{y}"))
        .unwrap()
        .len();
    // "old" moves on: y is now untagged.
    let z = push_image(&c, &base, "r", Some("old"), &[noise(1000, 12)], "z", None).unwrap();
    // A signature of x (live subject) and one of y (dead subject), both untagged.
    let sig_x_layer = noise(500, 13);
    let sig_x = push_image(
        &c,
        &base,
        "r",
        None,
        &[sig_x_layer.clone()],
        "sig-x",
        Some((&x, x_size)),
    )
    .unwrap();
    let sig_y_layer = noise(500, 14);
    let sig_y = push_image(
        &c,
        &base,
        "r",
        None,
        &[sig_y_layer.clone()],
        "sig-y",
        Some((&y, y_size)),
    )
    .unwrap();
    // A signature of x whose referrers-index entry is missing (as if written
    // by another registry): kept because its `subject` is live.
    let sig_x2 = push_image(
        &c,
        &base,
        "r",
        None,
        &[noise(500, 15)],
        "sig-x2",
        Some((&x, x_size)),
    )
    .unwrap();
    // A multi-arch index whose children are pushed by digest only.
    let c1_layer = noise(800, 16);
    let c1 = push_image(&c, &base, "r", None, &[c1_layer.clone()], "c1", None).unwrap();
    let c2 = push_image(&c, &base, "r", None, &[noise(800, 17)], "c2", None).unwrap();
    let idx = push_index(&c, &base, "r", "multi", &[c1.clone(), c2.clone()]).unwrap();
    drop(reg);
    let refs = root
        .join("docker/registry/v2/repositories/r/_berth/referrers/sha256")
        .join(&x[7..])
        .join("sha256")
        .join(&sig_x2[7..]);
    std::fs::remove_dir_all(&refs).unwrap();

    // Without --delete-untagged every revision is live.
    let report = gc_json(&root, &[]);
    assert_eq!(report["blobs_deleted"], 0, "{report}");
    assert_eq!(report["manifests_deleted"], 0);

    let report = gc_json(&root, &["--delete-untagged"]);
    let mut deleted_manifests: Vec<String> = report["repositories"][0]["manifests_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    deleted_manifests.sort();
    let mut want = vec![y.clone(), sig_y.clone()];
    want.sort();
    assert_eq!(deleted_manifests, want, "{report}");
    let deleted = deleted_blobs(&report);
    for d in [&y, &sig_y, &sha256(&y_layer), &sha256(&sig_y_layer)] {
        assert!(deleted.contains(d), "{d} should be gone: {deleted:?}");
    }
    assert!(!deleted.contains(&sha256(&sig_x_layer)));
    assert!(!deleted.contains(&sha256(&c1_layer)));

    let reg = Registry::start_in(&root, DELETE, &[]);
    for (r, want) in [("latest", &x), ("old", &z), ("multi", &idx)] {
        assert_eq!(&pull(&c, &reg.base, "r", r).unwrap(), want);
    }
    for d in [&sig_x, &sig_x2, &c1, &c2] {
        pull(&c, &reg.base, "r", d).unwrap();
    }
    assert_eq!(status(&c, &reg.url(&format!("/v2/r/manifests/{y}"))), 404);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/r/manifests/{sig_y}"))),
        404
    );
    let referrers: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url(&format!("/v2/r/referrers/{x}"))).unwrap())
            .unwrap();
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&sig_x.as_str()), "{referrers}");
    let referrers_y: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url(&format!("/v2/r/referrers/{y}"))).unwrap())
            .unwrap();
    assert_eq!(
        referrers_y["manifests"].as_array().map(|a| a.len()),
        Some(0)
    );
    drop(reg);
    assert!(!root
        .join("docker/registry/v2/repositories/r/_berth/referrers/sha256")
        .join(&y[7..])
        .exists());
}

/// Retention rules from the config, dry run first.
#[test]
fn retention_rules() {
    let (tmp, root) = tmp_root();
    let c = client();
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        r#"
[[gc.retention]]
repositories = "ret/*"
keep_last = 2
keep_tags = '^v\d+\.\d+\.\d+$'
"#,
    )
    .unwrap();
    let shared = noise(5000, 20);
    let mut own = BTreeMap::new();
    let mut digests = BTreeMap::new();
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        for (i, t) in ["v1.0.0", "t1", "t2", "t3", "t4", "t5"].iter().enumerate() {
            let layer = noise(3000, 100 + i as u64);
            let d = push_image(
                &c,
                &reg.base,
                "ret/app",
                Some(t),
                &[shared.clone(), layer.clone()],
                t,
                None,
            )
            .unwrap();
            push_image(
                &c,
                &reg.base,
                "keep/app",
                Some(t),
                &[layer.clone()],
                t,
                None,
            )
            .unwrap();
            own.insert(t.to_string(), sha256(&layer));
            digests.insert(t.to_string(), d);
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let cfg = config.to_str().unwrap();
    let before = files(&root);
    let dry = gc_json(&root, &[cfg, "--apply-retention", "--dry-run"]);
    assert_eq!(files(&root), before);
    let mut tags: Vec<String> = dry["repositories"][0]["tags_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["t1", "t2", "t3"], "{dry}");
    assert_eq!(dry["repositories"][0]["name"], "ret/app");
    let text = gc(
        &root,
        &["--config", cfg, "--apply-retention", "--dry-run"],
        &[],
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("would remove tag t1"));

    // Without --apply-retention nothing happens.
    assert_eq!(gc_json(&root, &[cfg])["tags_deleted"], 0);

    let report = gc_json(&root, &[cfg, "--apply-retention"]);
    assert_eq!(report["tags_deleted"], 3);
    assert_eq!(deleted_blobs(&report), deleted_blobs(&dry));
    let reg = Registry::start_in(&root, DELETE, &[]);
    let listed: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url("/v2/ret/app/tags/list")).unwrap()).unwrap();
    assert_eq!(listed["tags"], json!(["t4", "t5", "v1.0.0"]));
    for t in ["t4", "t5", "v1.0.0"] {
        assert_eq!(pull(&c, &reg.base, "ret/app", t).unwrap(), digests[t]);
    }
    for t in ["t1", "t2", "t3"] {
        // Untagged by retention, so swept even without --delete-untagged;
        // the same layer stays in keep/app.
        assert_eq!(
            status(
                &c,
                &reg.url(&format!("/v2/ret/app/manifests/{}", digests[t]))
            ),
            404
        );
        assert!(blob_on_disk(&root, &own[t]));
    }
    let listed: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url("/v2/keep/app/tags/list")).unwrap()).unwrap();
    assert_eq!(listed["tags"].as_array().unwrap().len(), 6);
    assert!(blob_on_disk(&root, &sha256(&shared)));
}

/// Retention takes with a tag what only that tag reached: the children of
/// a retired index and the referrers of retired images, even without
/// --delete-untagged; a child another tag still reaches stays.
#[test]
fn retention_takes_index_children_and_referrers_along() {
    let (tmp, root) = tmp_root();
    let c = client();
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[gc.retention]]\nrepositories = \"r/*\"\nkeep_last = 1\n",
    )
    .unwrap();
    let (old_child, shared_child, old_sig, new);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let b = &reg.base;
        old_child = push_image(&c, b, "r/app", None, &[noise(900, 1)], "old", None).unwrap();
        shared_child = push_image(&c, b, "r/app", None, &[noise(900, 2)], "shared", None).unwrap();
        let size = get_ok(&c, &reg.url(&format!("/v2/r/app/manifests/{old_child}")))
            .unwrap()
            .len();
        old_sig = push_image(
            &c,
            b,
            "r/app",
            None,
            &[noise(90, 3)],
            "sig",
            Some((&old_child, size)),
        )
        .unwrap();
        push_index(
            &c,
            b,
            "r/app",
            "old",
            &[old_child.clone(), shared_child.clone()],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        new = push_index(&c, b, "r/app", "new", std::slice::from_ref(&shared_child)).unwrap();
    }
    let report = gc_json(&root, &[config.to_str().unwrap(), "--apply-retention"]);
    assert_eq!(report["tags_deleted"], 1, "{report}");
    let reg = Registry::start_in(&root, DELETE, &[]);
    for gone in [&old_child, &old_sig] {
        assert_eq!(
            status(&c, &reg.url(&format!("/v2/r/app/manifests/{gone}"))),
            404,
            "{gone}"
        );
    }
    assert_eq!(pull(&c, &reg.base, "r/app", "new").unwrap(), new);
    assert_eq!(
        pull(&c, &reg.base, "r/app", &shared_child).unwrap(),
        shared_child
    );
}

/// A manifest that is not strict JSON (accepted on push, or written by
/// registry:2, which is laxer) is never taken to reference nothing.
#[test]
fn manifests_that_are_not_strict_json_keep_their_blobs() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let layer = noise(4000, 40);
    let (ld, cd, odd_digest);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        ld = push_blob(&c, &reg.base, "odd/app", &layer).unwrap();
        cd = push_blob(&c, &reg.base, "odd/app", b"{}").unwrap();
        // A number no float holds, in a field nobody reads.
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","x":1e400,"config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cd}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{ld}","size":{}}}]}}"#,
            layer.len()
        );
        odd_digest =
            put_manifest(&c, &reg.base, "odd/app", "v1", OCI_MANIFEST, m.as_bytes()).unwrap();
    }
    let report = gc_json(&root, &["--delete-untagged"]);
    assert_eq!(report["blobs_deleted"], 0, "{report}");
    let reg = Registry::start_in(&root, DELETE, &[]);
    let m = get_ok(&c, &reg.url("/v2/odd/app/manifests/v1")).unwrap();
    assert_eq!(sha256(&m), odd_digest);
    for d in [&ld, &cd] {
        let data = get_ok(&c, &reg.url(&format!("/v2/odd/app/blobs/{d}"))).unwrap();
        assert_eq!(&sha256(&data), d);
    }
}

/// A first push that never got to its manifest leaves an upload session and
/// a layer link in a repository with no `_manifests`: both are collected.
#[test]
fn a_repository_without_manifests_is_collected_too() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let blob;
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        blob = push_blob(&c, &reg.base, "half/pushed", &noise(3000, 50)).unwrap();
        let r = c
            .post(reg.url("/v2/half/started/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let repos = root.join("docker/registry/v2/repositories");
    assert!(!repos.join("half/pushed/_manifests").exists());
    std::thread::sleep(Duration::from_millis(1100));
    let report = gc_json(&root, &["--purge-uploads-older-than", "1s"]);
    assert_eq!(report["blobs_deleted"], 1, "{report}");
    assert!(!blob_on_disk(&root, &blob));
    assert!(!repos
        .join("half/pushed/_layers/sha256")
        .join(&blob[7..])
        .exists());
    assert_eq!(
        std::fs::read_dir(repos.join("half/started/_uploads"))
            .unwrap()
            .count(),
        0,
        "the stale upload session is still there"
    );
}

/// The classic push race under online GC: a client HEADs a layer that is
/// garbage (and older than the grace period), finds it, skips the upload
/// and pushes its manifest a moment later. The lookup counts as a use, so
/// the collections in between keep the layer and the push succeeds.
#[test]
fn a_blob_found_by_head_survives_until_the_manifest_that_needs_it() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let layer = noise(8000, 60);
    let ld;
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let a = push_image(
            &c,
            &reg.base,
            "race/app",
            Some("a"),
            &[layer.clone()],
            "a",
            None,
        )
        .unwrap();
        ld = sha256(&layer);
        let r = c
            .delete(reg.url(&format!("/v2/race/app/manifests/{a}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    std::thread::sleep(Duration::from_millis(3500)); // older than the grace period
    let env = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "200ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "3s"),
        ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
    ];
    let reg = Registry::start_in(&root, &env, &[]);
    let head = c
        .head(reg.url(&format!("/v2/race/app/blobs/{ld}")))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    // Several collections run while the client "builds" its manifest.
    std::thread::sleep(Duration::from_millis(1500));
    let config = br#"{"architecture":"amd64","os":"linux","label":"b"}"#;
    let cd = push_blob(&c, &reg.base, "race/app", config).unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let b = put_manifest(&c, &reg.base, "race/app", "b", OCI_MANIFEST, &m)
        .expect("the manifest push failed: its layer was collected after the HEAD");
    assert_eq!(pull(&c, &reg.base, "race/app", "b").unwrap(), b);
}

/// A bad retention rule is a config error.
#[test]
fn retention_rule_needs_a_limit() {
    let (tmp, root) = tmp_root();
    let config = tmp.path().join("berth.toml");
    std::fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
    std::fs::write(
        &config,
        "[[gc.retention]]\nrepositories = \"*\"\nkeep_tags = \"^v\"\n",
    )
    .unwrap();
    let out = gc(&root, &[config.to_str().unwrap(), "--apply-retention"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep_last or delete_older_than"));
}

/// Offline GC refuses a data dir a server is using, unless --force.
#[test]
fn lock_refuses_while_server_runs() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let mut reg = Registry::start_in(&root, DELETE, &[]);
    push_image(&c, &reg.base, "l", Some("v1"), &[noise(100, 1)], "l", None).unwrap();
    let out = gc(&root, &[], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by a running berth server"), "{err}");
    assert!(gc(&root, &["--force", "--dry-run"], &[]).status.success());
    reg.kill();
    assert!(gc(&root, &[], &[]).status.success());
}

/// Builds a store with live images (sharing layers, an index, a referrer)
/// and plenty of garbage. Returns the live (repo, tag, digest) triples.
fn build_mixed_store(base: &str) -> Vec<(String, String, String)> {
    let c = client();
    let shared: Vec<Vec<u8>> = (0..3).map(|i| noise(20_000, 1000 + i)).collect();
    let mut live = Vec::new();
    for i in 0..6u64 {
        let repo = format!("proj/app{}", i % 3);
        let layers = vec![shared[(i % 3) as usize].clone(), noise(5_000, 2000 + i)];
        let tag = format!("keep{i}");
        let d = push_image(&c, base, &repo, Some(&tag), &layers, &tag, None).unwrap();
        live.push((repo.clone(), tag, d));
        // Garbage: an image whose tag is then moved, and a deleted one.
        let g = push_image(
            &c,
            base,
            &repo,
            Some("moving"),
            &[shared[0].clone(), noise(5_000, 3000 + i)],
            "g",
            None,
        )
        .unwrap();
        let _ = g;
        let del = push_image(
            &c,
            base,
            &repo,
            Some("gone"),
            &[noise(5_000, 4000 + i)],
            "del",
            None,
        )
        .unwrap();
        c.delete(format!("{base}/v2/{repo}/manifests/{del}"))
            .send()
            .unwrap();
    }
    let ch1 = push_image(
        &c,
        base,
        "proj/multi",
        None,
        &[shared[1].clone()],
        "c1",
        None,
    )
    .unwrap();
    let ch2 = push_image(
        &c,
        base,
        "proj/multi",
        None,
        &[noise(4000, 5000)],
        "c2",
        None,
    )
    .unwrap();
    let idx = push_index(&c, base, "proj/multi", "latest", &[ch1, ch2]).unwrap();
    live.push(("proj/multi".into(), "latest".into(), idx));
    let last = push_image(
        &c,
        base,
        "proj/app0",
        Some("moving"),
        &[noise(4000, 6000)],
        "m",
        None,
    )
    .unwrap();
    live.push(("proj/app0".into(), "moving".into(), last));
    live
}

fn check_live(base: &str, live: &[(String, String, String)]) -> R<()> {
    let c = client();
    for (repo, tag, d) in live {
        let got = pull(&c, base, repo, tag)?;
        if &got != d {
            return Err(format!("{repo}:{tag} is {got}, expected {d}"));
        }
    }
    Ok(())
}

/// A crash after every single deletion leaves every live image pullable,
/// and the next run finishes the job.
#[test]
fn crash_at_every_step_keeps_live_images() {
    let (_tmp, root) = tmp_root();
    let live = {
        let reg = Registry::start_in(&root, DELETE, &[]);
        build_mixed_store(&reg.base)
    };
    let dry = gc_json(&root, &["--delete-untagged"]);
    // (That was a real run; rebuild garbage is not needed: count its steps
    // from a fresh copy instead.) Start over with a fresh store.
    let steps = dry["blobs_deleted"].as_u64().unwrap()
        + dry["manifests_deleted"].as_u64().unwrap()
        + dry["links_removed"].as_u64().unwrap();
    assert!(steps > 20, "expected a real amount of garbage: {dry}");

    let (_tmp2, root) = tmp_root();
    let live = {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let l = build_mixed_store(&reg.base);
        assert_eq!(l.len(), live.len());
        l
    };
    let mut crashes = 0;
    loop {
        let out = gc(
            &root,
            &["--delete-untagged"],
            &[("BERTH_GC_FAULT_AFTER", "1")],
        );
        if out.status.success() {
            break; // nothing left to delete
        }
        crashes += 1;
        assert!(String::from_utf8_lossy(&out.stderr).contains("aborting"));
        let reg = Registry::start_in(&root, DELETE, &[]);
        check_live(&reg.base, &live).unwrap_or_else(|e| panic!("after crash {crashes}: {e}"));
        assert!(crashes < 1000);
    }
    assert!(
        crashes as u64 >= steps,
        "{crashes} crashes for {steps} steps"
    );
    let report = gc_json(&root, &["--delete-untagged"]);
    assert_eq!(report["blobs_deleted"], 0);
    let reg = Registry::start_in(&root, DELETE, &[]);
    check_live(&reg.base, &live).unwrap();
}

/// Clients push and pull without pause while the server collects every
/// 300 ms with a 2 s grace period; every still-tagged image pulls at the end.
#[test]
fn online_gc_under_concurrent_pushes() {
    let (_tmp, root) = tmp_root();
    let env = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "300ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "2s"),
        ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
        // Mark, then wait before sweeping: pushes land in between.
        ("BERTH_GC_TEST_PAUSE_MS", "700"),
    ];
    let c = client();
    let base_layer = noise(50_000, 7);
    let early_garbage;
    {
        // Old content: a base layer that later pushes find already present
        // (HEAD → skip upload), which is exactly what a collector could race.
        let reg = Registry::start_in(&root, &env, &[]);
        for w in 0..4 {
            push_image(
                &c,
                &reg.base,
                &format!("w{w}"),
                Some("seed"),
                &[base_layer.clone()],
                "seed",
                None,
            )
            .unwrap();
        }
        let g = noise(10_000, 8);
        push_image(&c, &reg.base, "w0", Some("tmp"), &[g.clone()], "tmp", None).unwrap();
        c.delete(reg.url("/v2/w0/manifests/tmp")).send().unwrap();
        early_garbage = sha256(&g);
    }
    std::thread::sleep(Duration::from_millis(2500)); // everything so far is older than the grace period

    let reg = Registry::start_in(&root, &env, &[]);
    let base = reg.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let tagged: Arc<Mutex<BTreeMap<(String, String), String>>> = Arc::default();
    let pushes = Arc::new(AtomicUsize::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut threads = Vec::new();
    for w in 0..4u64 {
        let (stop, tagged, pushes, errors, base, base_layer) = (
            stop.clone(),
            tagged.clone(),
            pushes.clone(),
            errors.clone(),
            base.clone(),
            base_layer.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let c = client();
            let repo = format!("w{w}");
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let tag = format!("t{}", i % 3); // tags move: older images become garbage
                                                 // A small pool: layers become garbage when tags move, then get
                                                 // re-referenced (HEAD finds them, upload skipped) after the grace period.
                let pick = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 40; // gaps of every length
                let own = noise(20_000, w * 100_000 + pick);
                std::thread::sleep(Duration::from_millis(100));
                let result = if i.is_multiple_of(5) {
                    let a = push_image(
                        &c,
                        &base,
                        &repo,
                        None,
                        &[base_layer.clone(), own.clone()],
                        "a",
                        None,
                    );
                    let b = push_image(
                        &c,
                        &base,
                        &repo,
                        None,
                        &[base_layer.clone()],
                        &format!("b{i}"),
                        None,
                    );
                    match (a, b) {
                        (Ok(a), Ok(b)) => push_index(&c, &base, &repo, &tag, &[a, b]),
                        (Err(e), _) | (_, Err(e)) => Err(e),
                    }
                } else {
                    push_image(
                        &c,
                        &base,
                        &repo,
                        Some(&tag),
                        &[base_layer.clone(), own],
                        &format!("{i}"),
                        None,
                    )
                };
                match result {
                    Ok(d) => {
                        tagged
                            .lock()
                            .unwrap()
                            .insert((repo.clone(), tag.clone()), d);
                        pushes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
                // Pull something pushed a while ago.
                let seen: Vec<_> = tagged
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(((r, t), _)) = seen.get(i as usize % seen.len().max(1)) {
                    if let Err(e) = pull(&c, &base, r, t) {
                        // The tag may have moved between GET manifest and GET blob.
                        if pull(&c, &base, r, t).is_err() {
                            errors.lock().unwrap().push(format!("pull {r}:{t}: {e}"));
                        }
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let seconds: u64 = std::env::var("BERTH_GC_TEST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(pushes.load(Ordering::SeqCst) > 20, "too few pushes");
    // Let a few more collections run over the final state, past the grace period.
    std::thread::sleep(Duration::from_millis(3000));
    let tagged = tagged.lock().unwrap().clone();
    for ((repo, tag), digest) in &tagged {
        assert_eq!(
            &pull(&c, &base, repo, tag).unwrap_or_else(|e| panic!("{e}")),
            digest
        );
    }
    for w in 0..4 {
        pull(&c, &base, &format!("w{w}"), "seed").unwrap();
    }
    assert!(
        !blob_on_disk(&root, &early_garbage),
        "online GC never collected"
    );
    eprintln!(
        "{} pushes, {} tags checked",
        pushes.load(Ordering::SeqCst),
        tagged.len()
    );
}

/// A data dir written by Debian's docker-registry (distribution 2.8.2).
#[test]
fn collects_a_docker_registry_data_dir() {
    let bin = "/usr/bin/docker-registry";
    if !Path::new(bin).exists() {
        eprintln!("skipping: {bin} is not installed");
        return;
    }
    let (tmp, root) = tmp_root();
    std::fs::create_dir_all(&root).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.display()
        ),
    )
    .unwrap();
    let c = client();
    let base = format!("http://127.0.0.1:{port}");
    let shared = noise(30_000, 31);
    let (a_own, b_own) = (noise(10_000, 32), noise(10_000, 33));
    let (a, b);
    {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&c, &format!("{base}/v2/")) != 200 {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        a = push_image(
            &c,
            &base,
            "lib/a",
            Some("v1"),
            &[shared.clone(), a_own.clone()],
            "a",
            None,
        )
        .unwrap();
        b = push_image(
            &c,
            &base,
            "lib/b",
            Some("v1"),
            &[shared.clone(), b_own.clone()],
            "b",
            None,
        )
        .unwrap();
        let r = c
            .delete(format!("{base}/v2/lib/a/manifests/{a}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let _ = child.kill();
        let _ = child.wait();
    }
    // A dry run leaves registry:2's data dir exactly as it was: not even
    // Berth's own directories appear.
    let before = files(&root);
    let dry = gc_json(&root, &["--dry-run"]);
    assert_eq!(files(&root), before);
    assert!(!root.join("docker/registry/v2/_berth").exists());
    let report = gc_json(&root, &[]);
    assert_eq!(deleted_blobs(&dry), deleted_blobs(&report));
    let deleted = deleted_blobs(&report);
    assert!(
        deleted.contains(&a) && deleted.contains(&sha256(&a_own)),
        "{report}"
    );
    assert!(!deleted.contains(&sha256(&shared)));
    let reg = Registry::start_in(&root, DELETE, &[]);
    assert_eq!(pull(&c, &reg.base, "lib/b", "v1").unwrap(), b);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/lib/a/blobs/{}", sha256(&a_own)))),
        404
    );
    assert_eq!(
        status(
            &c,
            &reg.url(&format!("/v2/lib/b/blobs/{}", sha256(&shared)))
        ),
        200
    );
}

/// Not a check: measures a realistic store for the closing note. Run with
/// `cargo test --release --test gc measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_gc_on_a_realistic_store() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let images: u64 = std::env::var("BERTH_GC_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let bases: Vec<Vec<u8>> = (0..5).map(|i| noise(2 << 20, 70 + i)).collect();
    let mut digests = Vec::new();
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        for i in 0..images {
            let repo = format!("team{}/svc{}", i % 10, i % 30);
            let layers = vec![
                bases[(i % 5) as usize].clone(),
                noise(200_000, 10_000 + i),
                noise(50_000, 20_000 + i),
            ];
            let d = push_image(
                &c,
                &reg.base,
                &repo,
                Some(&format!("build-{i}")),
                &layers,
                &format!("{i}"),
                None,
            )
            .unwrap();
            digests.push((repo, i, d));
        }
        // Delete two thirds of the builds.
        for (repo, i, d) in &digests {
            if i % 3 != 0 {
                c.delete(reg.url(&format!("/v2/{repo}/manifests/{d}")))
                    .send()
                    .unwrap();
            }
        }
    }
    let du = |p: &Path| -> u64 { files(p).values().sum() };
    let before = du(&root);
    let blobs_before = files(&root.join("docker/registry/v2/blobs")).len();
    let t = Instant::now();
    let report = gc_json(&root, &[]);
    let took = t.elapsed();
    let after = du(&root);
    eprintln!(
        "MEASURE images={images} blobs_before={blobs_before} bytes_before={before} bytes_after={after} \
         reclaimed={} blobs_deleted={} gc_ms={} (process wall {} ms)",
        report["bytes_reclaimed"],
        report["blobs_deleted"],
        report["duration_ms"],
        took.as_millis()
    );
    let reg = Registry::start_in(&root, DELETE, &[]);
    for (repo, i, d) in &digests {
        if i % 3 == 0 {
            assert_eq!(
                &pull(&c, &reg.base, repo, &format!("build-{i}")).unwrap(),
                d
            );
        }
    }
}
