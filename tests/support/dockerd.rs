//! A private Docker daemon for the tests that drive the real Docker Engine:
//! vfs storage, no bridge or iptables, its own socket, data, exec root and
//! client config under one directory in /tmp. Stopped by PID when dropped,
//! with its containerd and the mounts it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    child: Child,
    /// Everything of this daemon: socket, data, exec root, log, client
    /// config. Removed on drop unless `BERTH_KEEP_DOCKERD` is set.
    pub dir: PathBuf,
    sock: PathBuf,
}

impl Dockerd {
    /// Starts a daemon and waits (up to 60 s) until it answers.
    pub fn start(prefix: &str) -> Dockerd {
        // Unix socket paths are short: keep the directory directly in /tmp.
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        let sock = dir.join("docker.sock");
        std::fs::create_dir_all(dir.join("config")).expect("client config dir");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd.log");
        let child = Command::new("dockerd")
            .arg("--storage-driver=vfs")
            .arg("--iptables=false")
            .arg("--ip6tables=false")
            .arg("--bridge=none")
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let mut d = Dockerd { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                d.dump_log();
                panic!("dockerd exited at start-up: {status}");
            }
            if d.sock.exists() && d.answers() {
                return d;
            }
            if Instant::now() > deadline {
                d.dump_log();
                panic!("dockerd did not come up within 60s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn answers(&self) -> bool {
        self.cmd("docker", &["version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `prog` (docker, docker-compose) talking to this daemon only, with its
    /// own client config (no credential helpers from the user's), the
    /// daemon's API version and the classic builder.
    pub fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_API_VERSION", "1.41")
            .env("COMPOSE_API_VERSION", "1.41")
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        cmd
    }

    /// The last 60 lines of the daemon's log, on stderr.
    pub fn dump_log(&self) {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("[dockerd] {line}");
        }
    }

    /// dockerd leaves mounts behind (at least `exec/netns/default`, a bind
    /// of the host's network namespace); without unmounting them the
    /// directory cannot be removed.
    fn unmount_all(&self) {
        let prefix = format!("{}/", self.dir.display());
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
        if std::thread::panicking() {
            self.dump_log();
        }
        // The containerd dockerd started for itself, if it still runs.
        let containerd = std::fs::read_to_string(self.dir.join("exec/containerd/containerd.pid"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|p| !p.is_empty());
        // SIGTERM lets dockerd stop its containers and its containerd.
        signal("TERM", &self.child.id().to_string());
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
            let proc = Path::new("/proc").join(&pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if proc.exists() {
                signal("KILL", &pid);
            }
        }
        self.unmount_all();
        if std::env::var_os("BERTH_KEEP_DOCKERD").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Sends SIG`name` to process `pid` (with the shell's built-in `kill`, so
/// procps need not be installed).
fn signal(name: &str, pid: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .status();
}
