//! Data-dir generators for the catalog and tags-list benchmarks: the
//! directories registry:2's layout needs, made directly (no push), so a
//! store of 100,000 repositories takes seconds to make. Both Berth and
//! registry:2 list what these make (Berth needs `_manifests`, registry:2's
//! catalog `_layers`; tags lists read `_manifests/tags/<tag>/current/link`).
//!
//! Reusable: `#[path = "common/datadir.rs"] mod datadir;` from any bench.

#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `<root>/docker/registry/v2/repositories`.
pub fn repositories_dir(root: &Path) -> PathBuf {
    root.join("docker/registry/v2/repositories")
}

/// The name of the `i`th generated repository: 1,000 per namespace, so
/// both one-level and nested directories are walked.
pub fn repo_name(i: usize) -> String {
    format!("team{:03}/app{:05}", i / 1000, i)
}

/// Makes `count` repositories (`repo_name(0..count)`) under `root`, each
/// with empty `_manifests/` and `_layers/` directories. Returns the names,
/// sorted.
pub fn make_repositories(root: &Path, count: usize) -> io::Result<Vec<String>> {
    let base = repositories_dir(root);
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let name = repo_name(i);
        let dir = base.join(&name);
        fs::create_dir_all(dir.join("_manifests"))?;
        fs::create_dir(dir.join("_layers")).or_else(exists_ok)?;
        names.push(name);
    }
    fs::create_dir_all(root.join("docker/registry/v2/blobs"))?;
    names.sort();
    Ok(names)
}

/// Makes `count` tags (`t00000`, `t00001`, ...) in `repo` under `root`, each
/// pointing at the same (absent) manifest digest: a tags list reads only
/// the tags' links.
pub fn make_tags(root: &Path, repo: &str, count: usize) -> io::Result<Vec<String>> {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let repo_dir = repositories_dir(root).join(repo);
    fs::create_dir_all(repo_dir.join("_layers"))?;
    let tags_dir = repo_dir.join("_manifests/tags");
    let mut tags = Vec::with_capacity(count);
    for i in 0..count {
        let tag = format!("t{i:05}");
        let current = tags_dir.join(&tag).join("current");
        fs::create_dir_all(&current)?;
        fs::write(current.join("link"), &digest)?;
        tags.push(tag);
    }
    fs::create_dir_all(root.join("docker/registry/v2/blobs"))?;
    Ok(tags)
}

fn exists_ok(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::AlreadyExists {
        Ok(())
    } else {
        Err(e)
    }
}
