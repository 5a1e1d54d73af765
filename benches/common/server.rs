//! The two servers under test, started on a free loopback port over a data
//! directory: Berth (this build's binary) and Debian's `docker-registry`
//! (registry:2 = CNCF distribution 2.8), optionally with htpasswd auth.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::http::{Body, Conn, Sink};
use super::process::{free_port, Killed};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    Berth,
    Registry2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Berth => "Berth",
            Kind::Registry2 => "registry:2",
        }
    }
}

pub const REGISTRY2: &str = "/usr/bin/docker-registry";

pub fn registry2_installed() -> bool {
    Path::new(REGISTRY2).exists()
}

pub struct Server {
    _child: Killed,
    pub addr: String,
    pub pid: u32,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// Starts `kind` over `root` (created if missing); with `htpasswd`, every
/// request needs Basic credentials from that file. `scratch` holds configs.
/// Returns once `GET /v2/` answers.
pub fn start(kind: Kind, root: &Path, htpasswd: Option<&Path>, scratch: &Path) -> Server {
    std::fs::create_dir_all(root).expect("data dir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = match kind {
        Kind::Berth => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
            c.arg("serve");
            if let Some(h) = htpasswd {
                let cfg = scratch.join(format!("berth-{port}.toml"));
                std::fs::write(
                    &cfg,
                    format!(
                        "[auth.htpasswd]\nrealm = \"bench\"\npath = \"{}\"\n",
                        h.display()
                    ),
                )
                .expect("berth config");
                c.arg("--config").arg(cfg);
            }
            c.env("REGISTRY_HTTP_ADDR", &addr)
                .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
                .env("RUST_LOG", "error");
            c
        }
        Kind::Registry2 => {
            let cfg: PathBuf = scratch.join(format!("registry2-{port}.yml"));
            let auth = htpasswd.map_or(String::new(), |h| {
                format!(
                    "auth:\n  htpasswd:\n    realm: bench\n    path: {}\n",
                    h.display()
                )
            });
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: berth-bench\n{auth}",
                    root.display()
                ),
            )
            .expect("registry2 config");
            let mut c = Command::new(REGISTRY2);
            c.arg("serve").arg(cfg);
            // Its REGISTRY_* overrides would apply to it too: keep them out.
            for (k, _) in std::env::vars() {
                if k.starts_with("REGISTRY_") {
                    c.env_remove(k);
                }
            }
            c
        }
    };
    let spawned = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let pid = child.id();
    let s = Server {
        _child: Killed(child),
        addr,
        pid,
        spawned,
    };
    let mut c = Conn::new(&s.addr);
    while spawned.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = c.send("GET", "/v2/", &[], Body::Empty, Sink::Discard) {
            if r.status == 200 || r.status == 401 {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} on {} did not become ready", kind.name(), s.addr);
}

/// `berth htpasswd --file FILE add USER --password-stdin --cost COST`.
pub fn htpasswd(file: &Path, user: &str, password: &str, cost: u32) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["htpasswd", "--file"])
        .arg(file)
        .args(["add", user, "--password-stdin", "--cost", &cost.to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth htpasswd");
    if let Some(mut i) = child.stdin.take() {
        writeln!(i, "{password}").expect("password");
    }
    assert!(child.wait().expect("htpasswd").success(), "htpasswd add");
}
