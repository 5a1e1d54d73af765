//! For the garbage collection tests: images and indexes pushed the way
//! docker does (fallibly, for tests that push from many threads), complete
//! pulls that check every digest, `berth garbage-collect` as a process,
//! and what is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::blocking::Client;
use serde_json::{json, Value};

use super::content::{sha256, ACCEPT_ALL, OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST};
use super::push::{ensure_blob, try_put_manifest, R};

/// Delete enabled, as every GC test serves its data.
pub const DELETE: &[(&str, &str)] = &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")];

/// An image: config + layers, pushed and tagged (or pushed by digest when
/// `tag` is None). Returns the manifest digest.
pub fn push_image(
    c: &Client,
    base: &str,
    repo: &str,
    tag: Option<&str>,
    layers: &[Vec<u8>],
    label: &str,
    subject: Option<(&str, usize)>,
) -> R<String> {
    let config = json!({"architecture": "amd64", "os": "linux", "label": label}).to_string();
    let config_digest = ensure_blob(c, base, repo, config.as_bytes())?;
    let mut descs = Vec::new();
    for l in layers {
        let d = ensure_blob(c, base, repo, l)?;
        descs.push(json!({"mediaType": OCI_LAYER_TAR, "digest": d, "size": l.len()}));
    }
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": descs,
    });
    if let Some((d, size)) = subject {
        m["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size});
        m["artifactType"] = json!("application/vnd.example.signature");
    }
    let bytes = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
    let digest = sha256(&bytes);
    try_put_manifest(c, base, repo, tag.unwrap_or(&digest), OCI_MANIFEST, &bytes)
}

pub fn push_index(c: &Client, base: &str, repo: &str, tag: &str, children: &[String]) -> R<String> {
    let mut descs = Vec::new();
    for d in children {
        let m = get_ok(c, &format!("{base}/v2/{repo}/manifests/{d}"))?;
        descs.push(json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()}));
    }
    let bytes = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}),
    )
    .map_err(|e| e.to_string())?;
    try_put_manifest(c, base, repo, tag, OCI_INDEX, &bytes)
}

pub fn get_ok(c: &Client, url: &str) -> R<Vec<u8>> {
    let r = c
        .get(url)
        .header("accept", ACCEPT_ALL)
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 200 {
        return Err(format!("GET {url}: {}", r.status()));
    }
    Ok(r.bytes().map_err(|e| e.to_string())?.to_vec())
}

pub fn status(c: &Client, url: &str) -> u16 {
    c.get(url)
        .header("accept", ACCEPT_ALL)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Pulls `reference` completely (manifest, children, config, layers), checking
/// every digest. Returns the manifest digest.
pub fn pull(c: &Client, base: &str, repo: &str, reference: &str) -> R<String> {
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
pub fn gc(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
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

pub fn gc_json(root: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = gc(root, &a, &[]);
    assert!(out.status.success(), "gc failed");
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// Every file under `dir` with its size.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
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

pub fn blob_on_disk(root: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
    .is_file()
}

pub fn deleted_blobs(report: &Value) -> Vec<String> {
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

pub fn tmp_root() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    (tmp, root)
}
