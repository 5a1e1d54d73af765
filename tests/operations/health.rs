//! The debug listener's health endpoints: registry:2's `/debug/health`,
//! Kubernetes-style `/healthz` (the process is up) and `/readyz` (the data
//! dir is readable and writable), and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::harness::wait_until;
use crate::support::http::client;

use super::metrics::{get, start_with_debug};

#[test]
fn health_answers_on_the_debug_listener_with_prometheus_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reg = start_with_debug(&root, &[]);
    let debug = reg.debug_base();
    let r = client()
        .get(format!("{debug}/debug/health"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{r:?}"
    );
    assert_eq!(r.text().unwrap(), "{}");
    assert_eq!(get(&format!("{debug}/healthz")), (200, "ok\n".into()));
    assert_eq!(get(&format!("{debug}/readyz")), (200, "ok\n".into()));
    // Prometheus is off: no metrics; and no registry data on this listener.
    for path in ["/metrics", "/v2/", "/v2/_catalog", "/", "/debug/pprof/"] {
        assert_eq!(get(&format!("{debug}{path}")).0, 404, "{path}");
    }
    // registry:2 answers only GET on its health endpoint.
    let r = client()
        .post(format!("{debug}/debug/health"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A small tmpfs, unmounted when dropped (even when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, String> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err("mount -t tmpfs failed: not root, or no mount permission here".into())
        }
    }

    fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn readyz_turns_503_with_the_reason_when_the_data_dir_becomes_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let fs = match Tmpfs::mount(&mnt) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: needs a tmpfs mount ({why})");
            return;
        }
    };
    let root = mnt.join("data");
    let mut reg = start_with_debug(&root, &[]);
    let debug = reg.debug_base();
    assert_eq!(get(&format!("{debug}/readyz")).0, 200);
    assert_eq!(get(&format!("{debug}/debug/health")), (200, "{}".into()));
    assert!(fs.remount_read_only(), "mount -o remount,ro failed");

    // Within the probe cache's second, the answer turns.
    let mut last = (0, String::new());
    let turned = wait_until(Duration::from_secs(5), || {
        last = get(&format!("{debug}/readyz"));
        last.0 == 503
    });
    assert!(turned, "/readyz still {last:?}");
    assert!(last.1.contains("not ready"), "{last:?}");
    assert!(last.1.contains("Read-only file system"), "{last:?}");
    let (status, body) = get(&format!("{debug}/debug/health"));
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let why = v["storagedriver_filesystem"].as_str().unwrap_or_default();
    assert!(why.contains("Read-only file system"), "{body}");
    // The process is still up.
    assert_eq!(get(&format!("{debug}/healthz")).0, 200);
    reg.kill();
    drop(fs);
}

#[test]
fn stalled_connections_to_the_debug_listener_are_capped_and_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reg = start_with_debug(&root, &[("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "1s")]);
    let debug = reg.debug_base();
    let addr = debug.trim_start_matches("http://").to_string();
    // 16 connections that never send a request take every slot...
    let stalled: Vec<_> = (0..16)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(
        c.get(format!("{debug}/healthz")).send().is_err(),
        "a 17th connection was served"
    );
    // ...until the header timeout closes them.
    let served = wait_until(Duration::from_secs(5), || {
        c.get(format!("{debug}/healthz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(
        served,
        "the stalled connections still hold the debug listener"
    );
    drop(stalled);
}

#[test]
fn the_debug_listener_stops_with_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mut reg = start_with_debug(&root, &[]);
    let debug = reg.debug_base();
    assert_eq!(get(&format!("{debug}/healthz")).0, 200);
    reg.terminate();
    assert!(
        reg.wait_exit(Duration::from_secs(10)).is_some(),
        "berth did not stop"
    );
    let addr = debug.trim_start_matches("http://").to_string();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the debug port still accepts"
    );
}
