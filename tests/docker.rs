//! The real Docker Engine end to end: a private `dockerd` (vfs storage, its
//! own socket and directories) builds two tiny images that share a busybox
//! base layer, pushes them, forgets them, pulls them back by tag and by
//! digest and runs them; the registry's catalog and tag lists show them.
//!
//! Set `BERTH_TEST_AGAINST=docker-registry` to run the same steps against
//! Debian's `docker-registry` instead of Berth (to check the test).

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{run, run_input, tar, Entry, Flavour, Out, Target, ACCEPT_ALL, DOCKER_MANIFEST};

const LIMIT: Duration = Duration::from_secs(120);

/// A private Docker daemon, stopped (by PID) when dropped.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Dockerd {
    fn start() -> Dockerd {
        // Unix socket paths are short: keep the directory directly in /tmp.
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd.")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        let sock = d.join("docker.sock");
        std::fs::create_dir_all(d.join("config")).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--storage-driver=vfs")
            .arg("--iptables=false")
            .arg("--ip6tables=false")
            .arg("--bridge=none")
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("spawn dockerd");
        let mut daemon = Dockerd { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                daemon.dump_log();
                panic!("dockerd exited at start-up: {status}");
            }
            if daemon.sock.exists() {
                let out = run(&mut daemon.cmd(&["version"]), LIMIT);
                if out.ok() {
                    return daemon;
                }
            }
            if Instant::now() > deadline {
                daemon.dump_log();
                panic!("dockerd did not come up within 60s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A `docker` command talking to this daemon only, with its own client
    /// config (no credential helpers from the user's).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_API_VERSION", "1.41")
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        cmd
    }

    fn docker(&self, args: &[&str]) -> Out {
        run(&mut self.cmd(args), LIMIT)
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

    fn dump_log(&self) {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("[dockerd] {line}");
        }
    }

    /// The containerd that dockerd started for itself, if it still runs.
    fn containerd_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.path().join("exec/containerd/containerd.pid"))
            .ok()?
            .trim()
            .to_string();
        Path::new("/proc").join(&pid).exists().then_some(pid)
    }

    fn stop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        let containerd = self.containerd_pid();
        let pid = self.child.id().to_string();
        // SIGTERM lets dockerd stop its containerd and unmount what it mounted.
        signal("TERM", &pid);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = containerd {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new("/proc").join(&pid).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if Path::new("/proc").join(&pid).exists() {
                signal("KILL", &pid);
            }
        }
        self.unmount_all();
    }

    /// dockerd leaves mounts behind (at least `exec/netns/default`, a bind
    /// of the host's network namespace); without unmounting them the
    /// temporary directory cannot be removed.
    fn unmount_all(&self) {
        let prefix = format!("{}/", self.dir.path().display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        // Deepest first.
        ours.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in ours {
            let _ = Command::new("umount").arg(p).status();
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIG`name` to process `pid` (with the shell's built-in `kill`,
/// so procps need not be installed).
fn signal(name: &str, pid: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .status();
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
    if !common::have("docker") || !common::have("dockerd") {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: install busybox-static"
    );
    let t = Target::start();
    let d = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let host = t.host.clone();
    let one = format!("{host}/berth/one:v1");
    let two = format!("{host}/berth/two:v1");

    // A base image from a busybox root filesystem (nothing can be pulled).
    let out = run_input(
        &mut d.cmd(&["import", "-", "berth-test/base:1"]),
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
