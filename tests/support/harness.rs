//! The Berth server under test: the real `berth` binary on a free loopback
//! port with its own data directory, stopped (by PID) when dropped; its log
//! echoed to the test log and, on request, kept for assertions.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Log lines kept from a server's output streams.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// Echoes a child's stdout and stderr to the test log with `prefix` (keeping
/// the lines in `logs` if given) and sends each `listening on ADDR` address.
pub fn watch_output(
    child: &mut Child,
    prefix: &'static str,
    logs: Option<Logs>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel::<String>();
    let streams: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout pipe")),
        Box::new(child.stderr.take().expect("stderr pipe")),
    ];
    for s in streams {
        let (tx, logs) = (tx.clone(), logs.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                eprintln!("[{prefix}] {line}");
                if let Some(i) = line.find("listening on ") {
                    let addr: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                if let Some(logs) = &logs {
                    logs.lock().unwrap().push(line);
                }
            }
        });
    }
    rx
}

/// The port of a `127.0.0.1:PORT` listening address.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad listening address {addr}"))
}

/// A free loopback TCP port (free when asked; nothing holds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `berth serve ARGS` on `root` and an ephemeral loopback port, logging at
/// info, with `env` on top; stdout and stderr piped. For [`Registry::spawn`],
/// or to run to completion when start-up is expected to fail.
pub fn serve_command(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
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
    cmd
}

pub struct Registry {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    /// The storage root (`storage.filesystem.rootdirectory`).
    pub root: PathBuf,
    logs: Option<Logs>,
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
        Registry::spawn(serve_command(root, env, args), root, false)
    }

    /// Starts `cmd` (a [`serve_command`] serving `root`) and waits for its
    /// listening address. With `capture_logs`, its log lines are kept for
    /// [`Registry::logs`].
    pub fn spawn(mut cmd: Command, root: &Path, capture_logs: bool) -> Registry {
        let mut child = cmd.spawn().expect("spawn berth");
        let logs = capture_logs.then(Logs::default);
        let rx = watch_output(&mut child, "berth", logs.clone());
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                match &logs {
                    Some(l) => panic!("berth did not start:\n{}", l.lock().unwrap().join("\n")),
                    None => panic!("berth did not report a listening address"),
                }
            }
        };
        let port = port_of(&addr);
        Registry {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            root: root.to_path_buf(),
            logs,
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

    /// Every log line so far (the server must have been spawned with
    /// `capture_logs`).
    pub fn logs(&self) -> String {
        let logs = self.logs.as_ref().expect("started without log capture");
        logs.lock().unwrap().join("\n")
    }

    /// `http://ADDR` of the debug listener (`http.debug.addr`), from the
    /// start-up log (the server must have been spawned with `capture_logs`).
    pub fn debug_base(&self) -> String {
        let logs = self.logs();
        let i = logs
            .find("debug endpoints at http://")
            .unwrap_or_else(|| panic!("no debug listener in the log:\n{logs}"));
        let addr: String = logs[i + "debug endpoints at http://".len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        format!("http://{}", addr.trim_end_matches(':'))
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM failed");
    }

    /// Sends SIGHUP (re-read the configuration).
    pub fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP failed");
    }

    /// Waits up to `limit` for the server to exit; its status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
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

/// Polls `f` every 100 ms until it holds or `limit` has passed; the last
/// answer.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`): the
/// server's memory, for tests that bound it.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
