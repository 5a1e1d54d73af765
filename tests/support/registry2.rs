//! Debian's `docker-registry` (CNCF distribution 2.8, what registry:2 runs)
//! on a free loopback port, and [`Target`]: the registry a real-client test
//! talks to, Berth or (with `BERTH_TEST_AGAINST=docker-registry`) that one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::{port_of, watch_output, Registry};
use super::http::client;

/// A `docker-registry serve` on a free loopback port over a given root
/// directory, stopped (by PID) when dropped.
pub struct DistRegistry {
    child: Child,
    pub base: String,
    pub port: u16,
    _cfg: tempfile::TempDir,
}

impl DistRegistry {
    /// Serves `root` with delete enabled.
    pub fn start(root: &Path) -> DistRegistry {
        DistRegistry::start_with(root, true)
    }

    pub fn start_with(root: &Path, delete: bool) -> DistRegistry {
        let cfg = tempfile::tempdir().expect("tempdir");
        let file = cfg.path().join("config.yml");
        std::fs::write(
            &file,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete}\n\
                 http:\n  addr: 127.0.0.1:0\n  secret: berth-interop-test\n",
                root.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&file);
        // Its REGISTRY_* overrides would apply to it too: keep them out.
        for (k, _) in std::env::vars() {
            if k.starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn docker-registry");
        let listening = watch_output(&mut child, "docker-registry", None);
        let Ok(addr) = listening.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("docker-registry did not report a listening address");
        };
        let port = port_of(&addr);
        let r = DistRegistry {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            _cfg: cfg,
        };
        // It logs the address before it accepts; wait until it answers.
        let c = client();
        for _ in 0..100 {
            if c.get(format!("{}/v2/", r.base)).send().is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry on {} does not answer", r.base);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DistRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The registry a client test talks to: Berth, started by the
/// harness; or, with `BERTH_TEST_AGAINST=docker-registry`, Debian's
/// `docker-registry`, to check the tests themselves against the reference
/// implementation.
pub struct Target {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    pub berth: Option<Registry>,
    dist: Option<DistRegistry>,
    _tmp: Option<tempfile::TempDir>,
}

impl Target {
    /// A fresh registry with delete enabled.
    pub fn start() -> Target {
        Target::start_with(true)
    }

    /// A fresh registry, with delete enabled or not.
    pub fn start_with(delete: bool) -> Target {
        if std::env::var("BERTH_TEST_AGAINST").is_ok_and(|v| v == "docker-registry") {
            let tmp = tempfile::tempdir().expect("tempdir");
            let d = DistRegistry::start_with(&tmp.path().join("data"), delete);
            return Target {
                host: d.host(),
                base: d.base.clone(),
                port: d.port,
                berth: None,
                dist: Some(d),
                _tmp: Some(tmp),
            };
        }
        let r = if delete {
            Registry::start()
        } else {
            Registry::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")])
        };
        Target {
            host: r.host(),
            base: r.base.clone(),
            port: r.port,
            berth: Some(r),
            dist: None,
            _tmp: None,
        }
    }

    /// `docker://HOST/<name>`, as skopeo names an image in this registry.
    pub fn docker(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Berth (rather than the reference registry) is under test. The reference
    /// does not sort tag lists, so order is checked only for Berth.
    pub fn is_berth(&self) -> bool {
        self.berth.is_some()
    }
}
