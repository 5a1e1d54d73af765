//! Running external commands with a time limit (skopeo, docker, podman,
//! gzip...), and finding out whether a tool is installed.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together, for matching messages a user sees.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion, feeding it `stdin`, killing it (and panicking)
/// after `limit`. Both output streams are echoed to the test log.
pub fn run_input(cmd: &mut Command, stdin: Option<Vec<u8>>, limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let so = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
                let se = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
                panic!("timed out after {limit:?}: {shown}\nstdout:\n{so}\nstderr:\n{se}");
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout_bytes = out_t.join().unwrap_or_default();
    let out = Out {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
    };
    if out.stdout.len() < 4000 {
        eprintln!("{}", out.stdout.trim_end());
    } else {
        eprintln!("({} bytes of stdout)", out.stdout.len());
    }
    if !out.stderr.trim().is_empty() {
        eprintln!("stderr: {}", out.stderr.trim_end());
    }
    eprintln!("-> {status}");
    out
}

/// Runs `cmd` with a time limit; see [`run_input`].
pub fn run(cmd: &mut Command, limit: Duration) -> Out {
    run_input(cmd, None, limit)
}

/// Runs `cmd` and panics, showing its output, unless it succeeds.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    let out = run(cmd, limit);
    assert!(
        out.ok(),
        "command failed ({}): {shown}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// `skopeo --insecure-policy ARGS...` (the caller passes the TLS flags).
pub fn skopeo(args: &[&str]) -> Out {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy").args(args);
    run(&mut cmd, Duration::from_secs(180))
}

/// Like [`skopeo`], panicking unless it succeeds.
pub fn skopeo_ok(args: &[&str]) -> Out {
    let out = skopeo(args);
    assert!(
        out.ok(),
        "skopeo {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
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
