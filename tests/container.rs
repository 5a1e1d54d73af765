//! The container image and `deploy/docker-compose.yml`, with the real Docker
//! Engine: a private `dockerd` (vfs storage, host networking, nothing pulled
//! from the internet) builds the repository's own Dockerfile, from a
//! `rust:1-bookworm` made here out of the host's Debian packages and Rust
//! toolchain; then docker-compose runs the stack (a CI copy switches it
//! to host networking on a free port), the healthcheck turns healthy,
//! `docker login` works with the bootstrapped user, an image is pushed and
//! pulled, the stack stops gracefully, is re-created and still serves the
//! image (named volume), and the registry process runs as uid 65532.
//!
//! Needs root, dockerd, docker and docker-compose; skipped without them
//! outside CI. Set `BERTH_KEEP_DOCKERD=1` to keep the daemon directory.

mod support;

use support::dockerd::Dockerd;
use support::{free_port, have};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(180);
/// A cold release build of Berth inside the builder (2 cores: ~6-8 min).
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);
const USER: &str = "ci";
const PASSWORD: &str = "ci-container-test-password";

/// A line for the CI log even when the test passes (bypasses capture).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "[container] {line}");
}

struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs `cmd` (with optional stdin) to completion, killing it after `limit`.
fn run(cmd: &mut Command, stdin: Option<Stdio>, limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    cmd.stdin(stdin.unwrap_or_else(Stdio::null))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut pipes = Vec::new();
    for pipe in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let mut pipe = pipe;
        pipes.push(std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        }));
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut texts = pipes.into_iter().map(|t| t.join().unwrap_or_default());
    let out = Out {
        status,
        stdout: texts.next().unwrap_or_default(),
        stderr: texts.next().unwrap_or_default(),
    };
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    eprintln!(
        "-> {}\n{}\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    out
}

fn must(out: Out, what: &str) -> Out {
    assert!(
        out.ok(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// `docker` against the test's private daemon.
fn docker(d: &Dockerd, args: &[&str]) -> Out {
    run(&mut d.cmd("docker", args), None, LIMIT)
}

fn docker_ok(d: &Dockerd, args: &[&str]) -> Out {
    must(docker(d, args), &format!("docker {args:?}"))
}

/// Installed Debian packages reachable from `roots` through Depends and
/// Pre-Depends (first installed alternative of each).
fn package_closure(roots: &[&str]) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f=${Package}\t${db:Status-Abbrev}\t${Depends}, ${Pre-Depends}\n",
        ])
        .output()
        .expect("dpkg-query");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut deps: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(name), Some(status), Some(d)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if status.starts_with("ii") {
            deps.insert(name.to_string(), d.to_string());
        }
    }
    let bare = |s: &str| {
        let s = s.split_whitespace().next().unwrap_or("");
        s.split(':').next().unwrap_or("").to_string()
    };
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.iter().map(|r| r.to_string()).collect();
    while let Some(p) = queue.pop_front() {
        let Some(d) = deps.get(&p) else {
            panic!("{p} is not installed (apt-get install -y {p})");
        };
        if !seen.insert(p.clone()) {
            continue;
        }
        for dep in d.split(',') {
            if let Some(alt) = dep
                .split('|')
                .map(bare)
                .find(|a| !a.is_empty() && deps.contains_key(a))
            {
                if !seen.contains(&alt) {
                    queue.push_back(alt);
                }
            }
        }
    }
    seen.into_iter().collect()
}

/// Paths (relative to /, parents resolved through the merged-/usr links)
/// of every file and symlink the packages installed.
fn package_files(packages: &[String]) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for p in packages {
        let list = ["", ":amd64", ":arm64"]
            .iter()
            .map(|arch| format!("/var/lib/dpkg/info/{p}{arch}.list"))
            .find_map(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_else(|| panic!("no dpkg file list for {p}"));
        for line in list.lines() {
            let path = Path::new(line);
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                continue;
            };
            if meta.is_dir() {
                continue;
            }
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let Ok(parent) = std::fs::canonicalize(parent) else {
                continue;
            };
            let full = parent.join(name);
            files.insert(full.to_string_lossy().trim_start_matches('/').to_string());
        }
    }
    files
}

/// Imports a `rust:1-bookworm` stand-in: the host's gcc/libc6-dev/dash/sed
/// with their dependencies, CA certificates, and the host's Rust toolchain
/// (cargo, rustc and their libraries only) under /usr/local.
fn import_builder(d: &Dockerd, work: &Path) {
    let packages = package_closure(&[
        "base-files",
        "dash",
        "coreutils",
        "sed",
        "grep",
        "gcc",
        "libc6-dev",
    ]);
    // Each path once: tar stores a repeated one as a hard link to itself.
    let mut entries: BTreeSet<String> = ["bin", "sbin", "lib", "lib64", "tmp", "root"]
        .iter()
        .filter(|p| Path::new("/").join(p).exists())
        .map(|p| p.to_string())
        .collect();
    entries.extend(package_files(&packages));
    // Made by update-ca-certificates and update-alternatives, not dpkg.
    for extra in [
        "etc/ssl/certs/ca-certificates.crt",
        "usr/bin/cc",
        "etc/alternatives/cc",
    ] {
        assert!(Path::new("/").join(extra).exists(), "/{extra} is missing");
        entries.insert(extra.into());
    }
    let list = work.join("builder-files");
    let text: Vec<&str> = entries.iter().map(String::as_str).collect();
    std::fs::write(&list, text.join("\n") + "\n").unwrap();
    let sysroot = String::from_utf8(
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .expect("rustc --print sysroot")
            .stdout,
    )
    .unwrap();
    let sysroot = std::fs::canonicalize(sysroot.trim()).expect("sysroot");
    // lib/'s entries rather than lib itself: a "lib" member would be the
    // same path as the host's /lib link.
    let toolchain_libs: Vec<String> = std::fs::read_dir(sysroot.join("lib"))
        .expect("sysroot lib")
        .map(|e| format!("lib/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    let mut tar = Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg("/")
        .arg("--no-recursion")
        .arg("-T")
        .arg(&list)
        .arg("--recursion")
        .arg("--exclude=lib/rustlib/src")
        .arg(r"--transform=s,^\(bin/cargo\|bin/rustc\|lib/\),usr/local/\1,S")
        .arg("-C")
        .arg(&sysroot)
        .args(["bin/cargo", "bin/rustc"])
        .args(toolchain_libs)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tar");
    let stdin = Stdio::from(tar.stdout.take().expect("tar stdout"));
    let out = run(
        &mut d.cmd(
            "docker",
            &[
                "import",
                "--change",
                "ENV PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                "ENV CARGO_HOME=/usr/local/cargo",
                "-",
                "rust:1-bookworm",
            ],
        ),
        Some(stdin),
        Duration::from_secs(600),
    );
    let tar_status = tar.wait().expect("tar");
    assert!(
        tar_status.success(),
        "tar of the builder rootfs: {tar_status}"
    );
    must(out, "docker import rust:1-bookworm");
}

/// A one-layer image holding the static busybox (busybox-static).
fn import_busybox(d: &Dockerd, work: &Path, name: &str) {
    let root = work.join("busybox-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox");
    for applet in ["sh", "echo", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let mut tar = Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(&root)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let stdin = Stdio::from(tar.stdout.take().expect("tar stdout"));
    let out = run(
        &mut d.cmd(
            "docker",
            &["import", "--change", "CMD [\"/bin/sh\"]", "-", name],
        ),
        Some(stdin),
        LIMIT,
    );
    let tar_status = tar.wait().expect("tar");
    assert!(
        tar_status.success(),
        "tar of the busybox rootfs: {tar_status}"
    );
    must(out, "docker import busybox");
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// docker-compose on the CI copy of deploy/docker-compose.yml.
struct Stack<'a> {
    d: &'a Dockerd,
    project: String,
    /// deploy/docker-compose.yml adapted to host networking.
    compose_file: PathBuf,
}

impl Stack<'_> {
    fn compose(&self, args: &[&str]) -> Out {
        let mut all = vec![
            "-p".to_string(),
            self.project.clone(),
            "-f".to_string(),
            self.compose_file.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = self.d.cmd("docker-compose", &all);
        cmd.env("BERTH_INITIAL_USER", USER)
            .env("BERTH_INITIAL_PASSWORD", PASSWORD)
            .env("BERTH_IMAGE", "berth:ci");
        must(
            run(&mut cmd, None, LIMIT),
            &format!("docker-compose {args:?}"),
        )
    }

    fn container(&self) -> String {
        let id = self
            .compose(&["ps", "-q", "registry"])
            .stdout
            .trim()
            .to_string();
        assert!(!id.is_empty(), "no registry container");
        id
    }

    fn wait_healthy(&self) -> String {
        let id = self.container();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = docker_ok(self.d, &["inspect", "-f", "{{.State.Health.Status}}", &id]);
            match out.stdout.trim() {
                "healthy" => return id,
                "unhealthy" => {
                    docker(self.d, &["logs", &id]);
                    panic!("the registry turned unhealthy");
                }
                _ => {}
            }
            if Instant::now() > deadline {
                docker(self.d, &["logs", &id]);
                docker(self.d, &["inspect", &id]);
                panic!("the registry did not turn healthy within 90s");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn image_builds_and_compose_stack_pushes_pulls_and_persists() {
    if !(have("dockerd")
        && have("docker")
        && have("docker-compose")
        && have("tar")
        && have("dpkg-query")
        && have("busybox"))
    {
        return;
    }
    let root_uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root_uid {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the container test needs root in CI"
        );
        eprintln!("skipping: the container test needs root (for dockerd)");
        return;
    }

    let started = Instant::now();
    let d = Dockerd::start("berth-ctr.");
    let work = d.dir.join("work");
    std::fs::create_dir_all(&work).unwrap();

    // 1. The image, from the repository's own Dockerfile.
    let t = Instant::now();
    import_builder(&d, &work);
    report(&format!(
        "builder image (rust:1-bookworm stand-in) imported in {:.0?}",
        t.elapsed()
    ));
    let t = Instant::now();
    let context = repo_root();
    must(
        run(
            &mut d.cmd(
                "docker",
                &[
                    "build",
                    "--network",
                    "host",
                    "-t",
                    "berth:ci",
                    "-f",
                    &context.join("Dockerfile").display().to_string(),
                    &context.display().to_string(),
                ],
            ),
            None,
            BUILD_LIMIT,
        ),
        "docker build",
    );
    let size: u64 = docker_ok(&d, &["image", "inspect", "-f", "{{.Size}}", "berth:ci"])
        .stdout
        .trim()
        .parse()
        .expect("image size");
    report(&format!(
        "docker build took {:.0?}; final image size {size} bytes ({:.1} MB)",
        t.elapsed(),
        size as f64 / 1e6
    ));
    assert!(size < 25_000_000, "the image is {size} bytes, over 25 MB");
    let config = docker_ok(&d, &[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|{{json .Config.Healthcheck.Test}}",
            "berth:ci",
        ])
        .stdout;
    assert!(config.starts_with("65532:65532|"), "{config}");
    assert!(config.contains("5000/tcp"), "{config}");
    assert!(config.contains("/var/lib/registry"), "{config}");
    assert!(config.contains("healthcheck"), "{config}");

    // 2. The compose stack, on host networking and a free port.
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    // docker refuses published ports with host networking, and a compose
    // override cannot remove a list entry: derive the CI file from the real
    // one, changing only networking, the address and the check interval.
    let compose_file = work.join("docker-compose.ci.yml");
    {
        let base = repo_root().join("deploy/docker-compose.yml");
        let mut c: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
        let r = c["services"]["registry"].as_mapping_mut().unwrap();
        assert!(
            r.remove("ports").is_some(),
            "the compose file publishes no port"
        );
        r.insert("network_mode".into(), "host".into());
        r["environment"]
            .as_mapping_mut()
            .unwrap()
            .insert("REGISTRY_HTTP_ADDR".into(), host.clone().into());
        r["healthcheck"]
            .as_mapping_mut()
            .unwrap()
            .insert("interval".into(), "1s".into());
        r["build"]
            .as_mapping_mut()
            .unwrap()
            .insert("context".into(), repo_root().display().to_string().into());
        std::fs::write(&compose_file, serde_yaml::to_string(&c).unwrap()).unwrap();
    }
    let stack = Stack {
        d: &d,
        project: format!("berthci{}", std::process::id()),
        compose_file,
    };
    // Without a password the compose file refuses to start.
    let mut cmd = d.cmd(
        "docker-compose",
        &[
            "-f",
            &repo_root()
                .join("deploy/docker-compose.yml")
                .display()
                .to_string(),
            "config",
        ],
    );
    cmd.env_remove("BERTH_INITIAL_PASSWORD");
    let out = run(&mut cmd, None, LIMIT);
    assert!(
        !out.ok() && out.stderr.contains("BERTH_INITIAL_PASSWORD"),
        "compose without BERTH_INITIAL_PASSWORD should fail naming it"
    );

    let t = Instant::now();
    stack.compose(&["up", "-d", "--no-build"]);
    let id = stack.wait_healthy();
    report(&format!("compose stack healthy in {:.0?}", t.elapsed()));

    // 3. Not root: the image's user and the running process's.
    let user = docker_ok(&d, &["inspect", "-f", "{{.Config.User}}", &id]).stdout;
    assert_eq!(user.trim(), "65532:65532");
    let pid = docker_ok(&d, &["inspect", "-f", "{{.State.Pid}}", &id]).stdout;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or("")
        .to_string();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "{uids}"
    );
    docker_ok(&d, &["exec", &id, "/berth", "healthcheck"]);

    // 4. Login (when authentication is on), push, pull.
    let probe = reqwest::blocking::get(format!("http://{host}/v2/")).expect("GET /v2/");
    let auth_on = match probe.status().as_u16() {
        401 => true,
        200 => false,
        s => panic!("GET /v2/ answered {s}"),
    };
    if auth_on {
        must(
            run(
                &mut d.cmd("docker", &["login", "-u", USER, "--password-stdin", &host]),
                Some(Stdio::from({
                    let f = work.join("password");
                    std::fs::write(&f, PASSWORD).unwrap();
                    std::fs::File::open(&f).unwrap()
                })),
                LIMIT,
            ),
            "docker login",
        );
        let bad = run(
            &mut d.cmd("docker", &["login", "-u", USER, "--password-stdin", &host]),
            Some(Stdio::from({
                let f = work.join("wrong");
                std::fs::write(&f, "wrong-password").unwrap();
                std::fs::File::open(&f).unwrap()
            })),
            LIMIT,
        );
        assert!(!bad.ok(), "docker login with a wrong password succeeded");
        // The failed attempt replaced nothing: log in again for the rest.
        must(
            run(
                &mut d.cmd("docker", &["login", "-u", USER, "--password-stdin", &host]),
                Some(Stdio::from(
                    std::fs::File::open(work.join("password")).unwrap(),
                )),
                LIMIT,
            ),
            "docker login",
        );
    } else {
        report("authentication is NOT active (GET /v2/ answered 200): skipped docker login");
    }
    let image = format!("{host}/ci/busybox:1");
    import_busybox(&d, &work, &image);
    docker_ok(&d, &["push", &image]);
    docker_ok(&d, &["rmi", &image]);
    docker_ok(&d, &["pull", &image]);
    let out = docker_ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            &image,
            "/bin/echo",
            "pulled",
        ],
    );
    assert_eq!(out.stdout.trim(), "pulled");

    // 5. Graceful stop, re-create the stack, the image is still there.
    let t = Instant::now();
    stack.compose(&["stop"]);
    let stop_took = t.elapsed();
    let code = docker_ok(&d, &["inspect", "-f", "{{.State.ExitCode}}", &id]).stdout;
    assert_eq!(
        code.trim(),
        "0",
        "the registry did not exit cleanly on SIGTERM"
    );
    assert!(
        stop_took < Duration::from_secs(20),
        "stopping took {stop_took:?}"
    );
    let logs = docker_ok(&d, &["logs", &id]);
    assert!(
        logs.stderr.contains("stopped") || logs.stdout.contains("stopped"),
        "no 'stopped' in the logs"
    );
    stack.compose(&["down"]);
    stack.compose(&["up", "-d", "--no-build"]);
    let id2 = stack.wait_healthy();
    assert_ne!(id, id2, "down/up should create a new container");
    docker_ok(&d, &["rmi", &image]);
    docker_ok(&d, &["pull", &image]);
    let catalog: serde_json::Value = {
        let c = reqwest::blocking::Client::new();
        let mut req = c.get(format!("http://{host}/v2/_catalog"));
        if auth_on {
            req = req.basic_auth(USER, Some(PASSWORD));
        }
        req.send().expect("catalog").json().expect("catalog json")
    };
    assert_eq!(catalog["repositories"], serde_json::json!(["ci/busybox"]));

    stack.compose(&["down", "-v"]);
    report(&format!(
        "container test done in {:.0?} (auth {})",
        started.elapsed(),
        if auth_on { "on" } else { "off" }
    ));
}
