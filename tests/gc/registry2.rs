//! Garbage collection of a data dir written by registry:2 (Debian's
//! `docker-registry`), black-box.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::gc::*;
use support::{client, free_port, noise, sha256, Registry};

/// A data dir written by Debian's docker-registry (distribution 2.8.2).
#[test]
fn collects_a_docker_registry_data_dir() {
    let bin = "/usr/bin/docker-registry";
    if !Path::new(bin).exists() {
        eprintln!("skipping: {bin} is not installed");
        return;
    }
    let (tmp, root) = tmp_root();
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.display()
        ),
    )
    .unwrap();
    let c = client();
    let base = format!("http://127.0.0.1:{port}");
    let shared = noise(30_000, 31);
    let (a_own, b_own) = (noise(10_000, 32), noise(10_000, 33));
    let (a, b);
    {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&c, &format!("{base}/v2/")) != 200 {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        a = push_image(
            &c,
            &base,
            "lib/a",
            Some("v1"),
            &[shared.clone(), a_own.clone()],
            "a",
            None,
        )
        .unwrap();
        b = push_image(
            &c,
            &base,
            "lib/b",
            Some("v1"),
            &[shared.clone(), b_own.clone()],
            "b",
            None,
        )
        .unwrap();
        let r = c
            .delete(format!("{base}/v2/lib/a/manifests/{a}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let _ = child.kill();
        let _ = child.wait();
    }
    // A dry run leaves registry:2's data dir exactly as it was: not even
    // Berth's own directories appear.
    let before = files(&root);
    let dry = gc_json(&root, &["--dry-run"]);
    assert_eq!(files(&root), before);
    assert!(!root.join("docker/registry/v2/_berth").exists());
    let report = gc_json(&root, &[]);
    assert_eq!(deleted_blobs(&dry), deleted_blobs(&report));
    let deleted = deleted_blobs(&report);
    assert!(
        deleted.contains(&a) && deleted.contains(&sha256(&a_own)),
        "{report}"
    );
    assert!(!deleted.contains(&sha256(&shared)));
    let reg = Registry::start_in(&root, DELETE, &[]);
    assert_eq!(pull(&c, &reg.base, "lib/b", "v1").unwrap(), b);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/lib/a/blobs/{}", sha256(&a_own)))),
        404
    );
    assert_eq!(
        status(
            &c,
            &reg.url(&format!("/v2/lib/b/blobs/{}", sha256(&shared)))
        ),
        200
    );
}
