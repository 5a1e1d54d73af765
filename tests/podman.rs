//! Podman end to end against the real server: push in Docker and OCI
//! formats, pull back by tag and by digest, push a manifest list, search
//! (the catalog). Podman runs rootful with its own vfs store
//! under a temporary directory; skipped where podman is not installed.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{client, have, run, tar, Entry, Out, Registry, ACCEPT_ALL, OCI_MANIFEST};

const LIMIT: Duration = Duration::from_secs(120);

/// `podman` with a private store, so nothing touches the host's images.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--storage-driver=vfs")
            .arg(format!("--root={}", d.join("store").display()))
            .arg(format!("--runroot={}", d.join("run").display()))
            .arg("--cgroup-manager=cgroupfs")
            .args(args);
        run(&mut cmd, LIMIT)
    }

    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert!(
            out.ok(),
            "podman {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        out
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// The registry's answer to a manifest HEAD: (status, digest, content type).
fn head_manifest(reg: &Registry, repo: &str, reference: &str) -> (u16, String, String) {
    let resp = client()
        .head(reg.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("Accept", ACCEPT_ALL)
        .send()
        .expect("HEAD manifest");
    let header = |k: &str| {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    (
        resp.status().as_u16(),
        header("docker-content-digest"),
        header("content-type"),
    )
}

#[test]
fn podman_pushes_pulls_and_lists() {
    if !have("podman") || !Path::new("/etc/containers/policy.json").exists() {
        eprintln!("podman (with /etc/containers/policy.json) not installed: skipped");
        return;
    }
    let reg = Registry::start();
    let host = reg.host();
    let p = Podman::new();
    let image = format!("{host}/pod/hello:v1");
    let oci = format!("{host}/pod/hello:oci");

    let rootfs = p.path("rootfs.tar");
    std::fs::write(
        &rootfs,
        tar(&[
            Entry::Dir("etc"),
            Entry::File("etc/motd", b"hello from podman\n", 0o644),
        ]),
    )
    .unwrap();
    p.ok(&["import", rootfs.to_str().unwrap(), &image]);

    // Docker schema 2 and OCI.
    p.ok(&["push", "--tls-verify=false", "--format=v2s2", &image]);
    p.ok(&["push", "--tls-verify=false", "--format=oci", &image, &oci]);
    let (status, v1_digest, v1_type) = head_manifest(&reg, "pod/hello", "v1");
    assert_eq!(status, 200);
    assert_eq!(
        v1_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let (status, oci_digest, oci_type) = head_manifest(&reg, "pod/hello", "oci");
    assert_eq!(status, 200);
    assert_eq!(oci_type, OCI_MANIFEST);
    assert_ne!(v1_digest, oci_digest);

    // Pull back into an empty store, by tag and by digest.
    p.ok(&["rmi", "--all", "--force"]);
    p.ok(&["pull", "--tls-verify=false", &image]);
    let pulled = p.ok(&["image", "inspect", "--format", "{{.Digest}}", &image]);
    assert_eq!(pulled.stdout.trim(), v1_digest);
    let by_digest = format!("{host}/pod/hello@{oci_digest}");
    p.ok(&["pull", "--tls-verify=false", &by_digest]);
    // Same config and layer, so the same local image, now known by both.
    let out = p.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &by_digest,
    ]);
    assert!(out.stdout.contains(&by_digest), "{}", out.stdout);

    // A manifest list with the image in it.
    let list = format!("{host}/pod/list:1");
    p.ok(&["manifest", "create", &list]);
    p.ok(&["manifest", "add", "--tls-verify=false", &list, &image]);
    p.ok(&[
        "manifest",
        "push",
        "--tls-verify=false",
        &list,
        &format!("docker://{list}"),
    ]);
    let (status, _, list_type) = head_manifest(&reg, "pod/list", "1");
    assert_eq!(status, 200);
    assert!(
        list_type == "application/vnd.docker.distribution.manifest.list.v2+json"
            || list_type == "application/vnd.oci.image.index.v1+json",
        "{list_type}"
    );

    // podman search lists the registry's catalog.
    let out = p.ok(&["search", "--tls-verify=false", &format!("{host}/pod")]);
    assert!(
        out.stdout.contains(&format!("{host}/pod/hello")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{host}/pod/list")),
        "{}",
        out.stdout
    );
}
