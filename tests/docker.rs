//! The real Docker Engine end to end: a private `dockerd` (vfs storage, its
//! own socket and directories) builds two tiny images that share a busybox
//! base layer, pushes them, forgets them, pulls them back by tag and by
//! digest and runs them; the registry's catalog and tag lists show them.
//!
//! Set `BERTH_TEST_AGAINST=docker-registry` to run the same steps against
//! Debian's `docker-registry` instead of Berth (to check the test).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::dockerd::Dockerd;
use support::{run, run_input, tar, Entry, Flavour, Out, Target, ACCEPT_ALL, DOCKER_MANIFEST};

const LIMIT: Duration = Duration::from_secs(120);

/// `docker` against the test's private daemon, through the shared runner.
trait Docker {
    fn docker(&self, args: &[&str]) -> Out;
    fn docker_ok(&self, args: &[&str]) -> Out;
}

impl Docker for Dockerd {
    fn docker(&self, args: &[&str]) -> Out {
        run(&mut self.cmd("docker", args), LIMIT)
    }

    fn docker_ok(&self, args: &[&str]) -> Out {
        let out = self.docker(args);
        assert!(
            out.ok(),
            "docker {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        out
    }
}

/// A root filesystem with the static busybox and a few applet links.
fn busybox_rootfs() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("etc"),
        Entry::Dir("tmp"),
        Entry::File("bin/busybox", &busybox, 0o755),
    ];
    let links: Vec<String> = ["sh", "cat", "echo", "ls", "true"]
        .iter()
        .map(|a| format!("bin/{a}"))
        .collect();
    for l in &links {
        entries.push(Entry::Symlink(l, "busybox"));
    }
    tar(&entries)
}

/// `sha256:...` from a push's `TAG: digest: sha256:... size: N` line.
fn pushed_digest(out: &Out) -> String {
    out.stdout
        .lines()
        .find_map(|l| {
            let rest = &l[l.find("digest: ")? + "digest: ".len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no digest in push output:\n{}", out.stdout))
}

fn get_json(url: &str) -> Value {
    let r = support::client().get(url).send().expect("GET");
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.json().expect("JSON body")
}

/// A manifest's digest, parsed JSON and bytes, read over HTTP.
fn manifest(t: &Target, repo: &str, reference: &str) -> (String, Value, Vec<u8>) {
    let r = support::client()
        .get(t.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", ACCEPT_ALL)
        .send()
        .expect("GET manifest");
    assert_eq!(r.status().as_u16(), 200, "GET {repo}:{reference}");
    let body = r.bytes().unwrap().to_vec();
    (
        support::sha256(&body),
        serde_json::from_slice(&body).expect("manifest JSON"),
        body,
    )
}

fn layer_digests(m: &Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn docker_pushes_pulls_and_runs_images_sharing_a_base_layer() {
    if !support::have("docker") || !support::have("dockerd") {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: install busybox-static"
    );
    let t = Target::start();
    let d = Dockerd::start("berth-dockerd.");
    let work = tempfile::tempdir().unwrap();
    let host = t.host.clone();
    let one = format!("{host}/berth/one:v1");
    let two = format!("{host}/berth/two:v1");

    // A base image from a busybox root filesystem (nothing can be pulled).
    let out = run_input(
        &mut d.cmd("docker", &["import", "-", "berth-test/base:1"]),
        Some(busybox_rootfs()),
        LIMIT,
    );
    assert!(out.ok(), "docker import: {}", out.all());

    // Two images on that base, one layer (or two) each.
    for (name, text, extra) in [
        (
            "one",
            "hello from one",
            "CMD [\"/bin/cat\", \"/hello.txt\"]\n",
        ),
        (
            "two",
            "hello from two",
            "RUN [\"/bin/sh\", \"-c\", \"echo two-built > /built.txt\"]\n\
             CMD [\"/bin/sh\", \"-c\", \"cat /hello.txt /built.txt\"]\n",
        ),
    ] {
        let ctx = work.path().join(name);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("hello.txt"), format!("{text}\n")).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM berth-test/base:1\nCOPY hello.txt /hello.txt\n{extra}"),
        )
        .unwrap();
        let tag = format!("{host}/berth/{name}:v1");
        d.docker_ok(&[
            "build",
            "--network",
            "host",
            "-t",
            &tag,
            ctx.to_str().unwrap(),
        ]);
    }

    // Push both; the second mounts the shared base layer from the first.
    let out = d.docker_ok(&["push", &one]);
    assert!(out.stdout.contains("Pushed"), "{}", out.stdout);
    let one_digest = pushed_digest(&out);
    let out = d.docker_ok(&["push", &two]);
    assert!(
        out.stdout.contains("Mounted from berth/one"),
        "the base layer should be mounted, not uploaded again:\n{}",
        out.stdout
    );
    let two_digest = pushed_digest(&out);
    // Pushing again uploads nothing.
    let out = d.docker_ok(&["push", &one]);
    assert!(
        out.stdout.contains("Layer already exists"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Pushed"), "{}", out.stdout);
    assert_eq!(pushed_digest(&out), one_digest);
    // Another tag of the same image, named through `localhost`.
    let local = format!("localhost:{}/berth/one:latest", t.port);
    d.docker_ok(&["tag", &one, &local]);
    let out = d.docker_ok(&["push", &local]);
    assert_eq!(pushed_digest(&out), one_digest);

    // What the registry holds: Docker schema 2 manifests sharing the base.
    let (digest, m1, m1_bytes) = manifest(&t, "berth/one", "v1");
    assert_eq!(digest, one_digest);
    assert_eq!(m1["mediaType"], DOCKER_MANIFEST);
    let (digest, m2, _) = manifest(&t, "berth/two", "v1");
    assert_eq!(digest, two_digest);
    let (l1, l2) = (layer_digests(&m1), layer_digests(&m2));
    assert_eq!(l1.len(), 2, "{m1}");
    assert_eq!(l2.len(), 3, "{m2}");
    assert_eq!(l1[0], l2[0], "the base layer is shared");

    // Multi-platform tags over image one (linux/amd64) and a small
    // linux/arm64 image: a Docker manifest list and an OCI image index.
    let amd64 = support::Manifest {
        media_type: DOCKER_MANIFEST.to_string(),
        digest: one_digest.clone(),
        bytes: m1_bytes,
        blobs: Vec::new(),
        children: Vec::new(),
        platform: Some(("linux".into(), "amd64".into())),
    };
    let arm64 = support::small_image(Flavour::Docker, "arm64", "not for this machine\n");
    support::push_tree(&t.base, "berth/one", &arm64, &arm64.digest);
    let list = support::index(Flavour::Docker, vec![amd64.clone(), arm64.clone()]);
    let oci_index = support::index(Flavour::Oci, vec![amd64, arm64]);
    for (tag, m) in [("list", &list), ("index", &oci_index)] {
        support::put_manifest(&t.base, "berth/one", tag, &m.media_type, &m.bytes);
    }

    // Forget every image locally, the base too.
    d.docker_ok(&["rmi", &one, &local, &two, "berth-test/base:1"]);
    let out = d.docker_ok(&["images", "-q"]);
    assert_eq!(out.stdout.trim(), "", "images left after rmi");

    // Pull by tag and by digest.
    let out = d.docker_ok(&["pull", &one]);
    assert!(
        out.stdout.contains(&format!("Digest: {one_digest}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    let two_by_digest = format!("{host}/berth/two@{two_digest}");
    let out = d.docker_ok(&["pull", &two_by_digest]);
    assert!(
        out.stdout.contains("Already exists"),
        "the base layer is already there:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    let out = d.docker_ok(&["inspect", "--format", "{{json .RepoDigests}}", &one]);
    assert!(
        out.stdout
            .contains(&format!("{host}/berth/one@{one_digest}")),
        "{}",
        out.stdout
    );

    // Run what was pulled.
    let out = d.docker_ok(&["run", "--rm", "--network", "host", &one]);
    assert_eq!(out.stdout, "hello from one\n");
    let out = d.docker_ok(&["run", "--rm", "--network", "host", &two_by_digest]);
    assert_eq!(out.stdout, "hello from two\ntwo-built\n");

    // Multi-platform tags: docker picks the linux/amd64 image.
    for (tag, m) in [("list", &list), ("index", &oci_index)] {
        let name = format!("{host}/berth/one:{tag}");
        let out = d.docker_ok(&["pull", &name]);
        assert!(
            out.stdout.contains(&format!("Digest: {}", m.digest)),
            "{}",
            out.stdout
        );
        let out = d.docker_ok(&["run", "--rm", "--network", "host", &name]);
        assert_eq!(out.stdout, "hello from one\n", "run {name}");
    }

    // What curl users see.
    let catalog = get_json(&t.url("/v2/_catalog"));
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["berth/one", "berth/two"])
    );
    let tags = get_json(&t.url("/v2/berth/one/tags/list"));
    assert_eq!(tags["name"], "berth/one");
    let mut listed: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    if !t.is_berth() {
        listed.sort();
    }
    assert_eq!(listed, ["index", "latest", "list", "v1"]);
    let tags = get_json(&t.url("/v2/berth/two/tags/list"));
    assert_eq!(
        tags,
        serde_json::json!({"name": "berth/two", "tags": ["v1"]})
    );

    // A tag that does not exist.
    let out = d.docker(&["pull", &format!("{host}/berth/one:nope")]);
    assert!(!out.ok(), "pull of a missing tag succeeded");
    // dockerd says "not found" (and answers 404, not 500) only when the
    // registry's MANIFEST_UNKNOWN error carries a `detail`, as registry:2's does.
    assert!(
        out.stderr
            .contains(&format!("manifest for {host}/berth/one:nope not found")),
        "{}",
        out.stderr
    );
}
