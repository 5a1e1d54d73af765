//! Test harness: starts the real `berth` binary on a free loopback port with
//! its own data directory, and stops it (by PID) when dropped.
#![allow(dead_code)]

pub mod dockerd;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Registry {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    /// The storage root (`storage.filesystem.rootdirectory`).
    pub root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Registry {
    /// A fresh registry with delete enabled, on a new temporary data dir.
    pub fn start() -> Registry {
        Registry::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "true")])
    }

    /// A fresh registry on a new temporary data dir with extra environment.
    pub fn start_with(env: &[(&str, &str)]) -> Registry {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        let mut r = Registry::start_in(&root, env, &[]);
        r._tmp = Some(tmp);
        r
    }

    /// A registry serving an existing data dir, with extra environment and
    /// extra command line arguments after `serve`.
    pub fn start_in(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Registry {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("serve")
            .args(args)
            .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn berth");
        let (tx, rx) = mpsc::channel::<String>();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("[berth] {line}");
                    if let Some(i) = line.find("listening on ") {
                        let addr = line[i + "listening on ".len()..]
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        let _ = tx.send(addr);
                    }
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("berth did not report a listening address");
            }
        };
        let port: u16 = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad listening address {addr}"));
        Registry {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            root: root.to_path_buf(),
            _tmp: None,
        }
    }

    /// `base` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `127.0.0.1:PORT`, as docker/skopeo name the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM failed");
    }

    /// Waits up to `limit` for the server to exit; its status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Is `prog` on PATH? In CI (CI=true) a missing tool is a test failure, not a skip.
pub fn have(prog: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{prog} is required in CI but is not installed");
    }
    if !found {
        eprintln!("skipping: {prog} is not installed");
    }
    found
}
