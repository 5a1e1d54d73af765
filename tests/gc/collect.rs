//! Garbage collection, black-box: push over HTTP to the real server, run
//! `berth garbage-collect` as a process, then check what still pulls and
//! what answers 404. Shared layers, untagged manifests, indexes and
//! referrers, odd manifests, half-pushed repositories, the lock.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gc::*;
use support::{client, ensure_blob, noise, sha256, try_put_manifest, Registry, OCI_MANIFEST};

/// A and B share a layer; A is deleted; GC removes A's own blobs only.
#[test]
fn shared_layer_survives_and_dry_run_deletes_nothing() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let shared = noise(300_000, 1);
    let (a_own, b_own) = (noise(200_000, 2), noise(100_000, 3));
    let (a, b);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        a = push_image(
            &c,
            &reg.base,
            "app/a",
            Some("v1"),
            &[shared.clone(), a_own.clone()],
            "a",
            None,
        )
        .unwrap();
        b = push_image(
            &c,
            &reg.base,
            "app/b",
            Some("v1"),
            &[shared.clone(), b_own.clone()],
            "b",
            None,
        )
        .unwrap();
        let r = c
            .delete(reg.url(&format!("/v2/app/a/manifests/{a}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }

    let before = files(&root);
    let dry = gc_json(&root, &["--dry-run"]);
    assert_eq!(files(&root), before, "--dry-run changed the data dir");
    assert_eq!(dry["dry_run"], true);
    let text = gc(&root, &["-d"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("would remove blob"));
    assert_eq!(files(&root), before);

    let report = gc_json(&root, &[]);
    let deleted = deleted_blobs(&report);
    assert_eq!(
        deleted,
        deleted_blobs(&dry),
        "dry run predicted the real run"
    );
    assert!(
        deleted.contains(&a) && deleted.contains(&sha256(&a_own)),
        "{deleted:?}"
    );
    assert_eq!(
        deleted.len(),
        3,
        "manifest, config and own layer of A: {deleted:?}"
    );
    assert!(!deleted.contains(&sha256(&shared)));
    assert!(report["bytes_reclaimed"].as_u64().unwrap() as usize >= a_own.len());
    let per_repo = &report["repositories"][0];
    assert_eq!(per_repo["name"], "app/a");

    let reg = Registry::start_in(&root, DELETE, &[]);
    assert_eq!(pull(&c, &reg.base, "app/b", "v1").unwrap(), b);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/app/a/blobs/{}", sha256(&a_own)))),
        404
    );
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/app/a/manifests/{a}"))),
        404
    );
    assert_eq!(
        status(
            &c,
            &reg.url(&format!("/v2/app/b/blobs/{}", sha256(&shared)))
        ),
        200
    );
    drop(reg);
    // A second run finds nothing.
    let again = gc_json(&root, &[]);
    assert_eq!(again["blobs_deleted"], 0);
    assert_eq!(again["links_removed"], 0);
}

/// Untagged manifests, indexes and referrers.
#[test]
fn untagged_indexes_and_referrers() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let reg = Registry::start_in(&root, DELETE, &[]);
    let base = reg.base.clone();
    let x = push_image(
        &c,
        &base,
        "r",
        Some("latest"),
        &[noise(1000, 10)],
        "x",
        None,
    )
    .unwrap();
    let x_size = get_ok(&c, &format!("{base}/v2/r/manifests/{x}"))
        .unwrap()
        .len();
    let y_layer = noise(1000, 11);
    let y = push_image(&c, &base, "r", Some("old"), &[y_layer.clone()], "y", None).unwrap();
    let y_size = get_ok(&c, &format!("{base}/v2/r/manifests/{y}"))
        .unwrap()
        .len();
    // "old" moves on: y is now untagged.
    let z = push_image(&c, &base, "r", Some("old"), &[noise(1000, 12)], "z", None).unwrap();
    // A signature of x (live subject) and one of y (dead subject), both untagged.
    let sig_x_layer = noise(500, 13);
    let sig_x = push_image(
        &c,
        &base,
        "r",
        None,
        &[sig_x_layer.clone()],
        "sig-x",
        Some((&x, x_size)),
    )
    .unwrap();
    let sig_y_layer = noise(500, 14);
    let sig_y = push_image(
        &c,
        &base,
        "r",
        None,
        &[sig_y_layer.clone()],
        "sig-y",
        Some((&y, y_size)),
    )
    .unwrap();
    // A signature of x whose referrers-index entry is missing (as if written
    // by another registry): kept because its `subject` is live.
    let sig_x2 = push_image(
        &c,
        &base,
        "r",
        None,
        &[noise(500, 15)],
        "sig-x2",
        Some((&x, x_size)),
    )
    .unwrap();
    // A multi-arch index whose children are pushed by digest only.
    let c1_layer = noise(800, 16);
    let c1 = push_image(&c, &base, "r", None, &[c1_layer.clone()], "c1", None).unwrap();
    let c2 = push_image(&c, &base, "r", None, &[noise(800, 17)], "c2", None).unwrap();
    let idx = push_index(&c, &base, "r", "multi", &[c1.clone(), c2.clone()]).unwrap();
    drop(reg);
    let refs = root
        .join("docker/registry/v2/repositories/r/_berth/referrers/sha256")
        .join(&x[7..])
        .join("sha256")
        .join(&sig_x2[7..]);
    std::fs::remove_dir_all(&refs).unwrap();

    // Without --delete-untagged every revision is live.
    let report = gc_json(&root, &[]);
    assert_eq!(report["blobs_deleted"], 0, "{report}");
    assert_eq!(report["manifests_deleted"], 0);

    let report = gc_json(&root, &["--delete-untagged"]);
    let mut deleted_manifests: Vec<String> = report["repositories"][0]["manifests_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    deleted_manifests.sort();
    let mut want = vec![y.clone(), sig_y.clone()];
    want.sort();
    assert_eq!(deleted_manifests, want, "{report}");
    let deleted = deleted_blobs(&report);
    for d in [&y, &sig_y, &sha256(&y_layer), &sha256(&sig_y_layer)] {
        assert!(deleted.contains(d), "{d} should be gone: {deleted:?}");
    }
    assert!(!deleted.contains(&sha256(&sig_x_layer)));
    assert!(!deleted.contains(&sha256(&c1_layer)));

    let reg = Registry::start_in(&root, DELETE, &[]);
    for (r, want) in [("latest", &x), ("old", &z), ("multi", &idx)] {
        assert_eq!(&pull(&c, &reg.base, "r", r).unwrap(), want);
    }
    for d in [&sig_x, &sig_x2, &c1, &c2] {
        pull(&c, &reg.base, "r", d).unwrap();
    }
    assert_eq!(status(&c, &reg.url(&format!("/v2/r/manifests/{y}"))), 404);
    assert_eq!(
        status(&c, &reg.url(&format!("/v2/r/manifests/{sig_y}"))),
        404
    );
    let referrers: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url(&format!("/v2/r/referrers/{x}"))).unwrap())
            .unwrap();
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&sig_x.as_str()), "{referrers}");
    let referrers_y: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url(&format!("/v2/r/referrers/{y}"))).unwrap())
            .unwrap();
    assert_eq!(
        referrers_y["manifests"].as_array().map(|a| a.len()),
        Some(0)
    );
    drop(reg);
    assert!(!root
        .join("docker/registry/v2/repositories/r/_berth/referrers/sha256")
        .join(&y[7..])
        .exists());
}

/// A manifest that is not strict JSON (accepted on push, or written by
/// registry:2, which is laxer) is never taken to reference nothing.
#[test]
fn manifests_that_are_not_strict_json_keep_their_blobs() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let layer = noise(4000, 40);
    let (ld, cd, odd_digest);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        ld = ensure_blob(&c, &reg.base, "odd/app", &layer).unwrap();
        cd = ensure_blob(&c, &reg.base, "odd/app", b"{}").unwrap();
        // A number no float holds, in a field nobody reads.
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","x":1e400,"config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cd}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{ld}","size":{}}}]}}"#,
            layer.len()
        );
        odd_digest =
            try_put_manifest(&c, &reg.base, "odd/app", "v1", OCI_MANIFEST, m.as_bytes()).unwrap();
    }
    let report = gc_json(&root, &["--delete-untagged"]);
    assert_eq!(report["blobs_deleted"], 0, "{report}");
    let reg = Registry::start_in(&root, DELETE, &[]);
    let m = get_ok(&c, &reg.url("/v2/odd/app/manifests/v1")).unwrap();
    assert_eq!(sha256(&m), odd_digest);
    for d in [&ld, &cd] {
        let data = get_ok(&c, &reg.url(&format!("/v2/odd/app/blobs/{d}"))).unwrap();
        assert_eq!(&sha256(&data), d);
    }
}

/// A first push that never got to its manifest leaves an upload session and
/// a layer link in a repository with no `_manifests`: both are collected.
#[test]
fn a_repository_without_manifests_is_collected_too() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let blob;
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        blob = ensure_blob(&c, &reg.base, "half/pushed", &noise(3000, 50)).unwrap();
        let r = c
            .post(reg.url("/v2/half/started/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let repos = root.join("docker/registry/v2/repositories");
    assert!(!repos.join("half/pushed/_manifests").exists());
    std::thread::sleep(Duration::from_millis(1100));
    let report = gc_json(&root, &["--purge-uploads-older-than", "1s"]);
    assert_eq!(report["blobs_deleted"], 1, "{report}");
    assert!(!blob_on_disk(&root, &blob));
    assert!(!repos
        .join("half/pushed/_layers/sha256")
        .join(&blob[7..])
        .exists());
    assert_eq!(
        std::fs::read_dir(repos.join("half/started/_uploads"))
            .unwrap()
            .count(),
        0,
        "the stale upload session is still there"
    );
}

/// Offline GC refuses a data dir a server is using, unless --force.
#[test]
fn lock_refuses_while_server_runs() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let mut reg = Registry::start_in(&root, DELETE, &[]);
    push_image(&c, &reg.base, "l", Some("v1"), &[noise(100, 1)], "l", None).unwrap();
    let out = gc(&root, &[], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by a running berth server"), "{err}");
    assert!(gc(&root, &["--force", "--dry-run"], &[]).status.success());
    reg.kill();
    assert!(gc(&root, &[], &[]).status.success());
}

/// Not a check: measures a realistic store for the closing note. Run with
/// `cargo test --release --test gc measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_gc_on_a_realistic_store() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let images: u64 = std::env::var("BERTH_GC_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let bases: Vec<Vec<u8>> = (0..5).map(|i| noise(2 << 20, 70 + i)).collect();
    let mut digests = Vec::new();
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        for i in 0..images {
            let repo = format!("team{}/svc{}", i % 10, i % 30);
            let layers = vec![
                bases[(i % 5) as usize].clone(),
                noise(200_000, 10_000 + i),
                noise(50_000, 20_000 + i),
            ];
            let d = push_image(
                &c,
                &reg.base,
                &repo,
                Some(&format!("build-{i}")),
                &layers,
                &format!("{i}"),
                None,
            )
            .unwrap();
            digests.push((repo, i, d));
        }
        // Delete two thirds of the builds.
        for (repo, i, d) in &digests {
            if i % 3 != 0 {
                c.delete(reg.url(&format!("/v2/{repo}/manifests/{d}")))
                    .send()
                    .unwrap();
            }
        }
    }
    let du = |p: &Path| -> u64 { files(p).values().sum() };
    let before = du(&root);
    let blobs_before = files(&root.join("docker/registry/v2/blobs")).len();
    let t = Instant::now();
    let report = gc_json(&root, &[]);
    let took = t.elapsed();
    let after = du(&root);
    eprintln!(
        "MEASURE images={images} blobs_before={blobs_before} bytes_before={before} bytes_after={after} \
         reclaimed={} blobs_deleted={} gc_ms={} (process wall {} ms)",
        report["bytes_reclaimed"],
        report["blobs_deleted"],
        report["duration_ms"],
        took.as_millis()
    );
    let reg = Registry::start_in(&root, DELETE, &[]);
    for (repo, i, d) in &digests {
        if i % 3 == 0 {
            assert_eq!(
                &pull(&c, &reg.base, repo, &format!("build-{i}")).unwrap(),
                d
            );
        }
    }
}
