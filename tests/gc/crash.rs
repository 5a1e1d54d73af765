//! Garbage collection interrupted, black-box: a crash after every single
//! deletion leaves every live image pullable.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crate::support;

use support::gc::*;
use support::{client, noise, Registry, R};

/// Builds a store with live images (sharing layers, an index, a referrer)
/// and plenty of garbage. Returns the live (repo, tag, digest) triples.
fn build_mixed_store(base: &str) -> Vec<(String, String, String)> {
    let c = client();
    let shared: Vec<Vec<u8>> = (0..3).map(|i| noise(20_000, 1000 + i)).collect();
    let mut live = Vec::new();
    for i in 0..6u64 {
        let repo = format!("proj/app{}", i % 3);
        let layers = vec![shared[(i % 3) as usize].clone(), noise(5_000, 2000 + i)];
        let tag = format!("keep{i}");
        let d = push_image(&c, base, &repo, Some(&tag), &layers, &tag, None).unwrap();
        live.push((repo.clone(), tag, d));
        // Garbage: an image whose tag is then moved, and a deleted one.
        let g = push_image(
            &c,
            base,
            &repo,
            Some("moving"),
            &[shared[0].clone(), noise(5_000, 3000 + i)],
            "g",
            None,
        )
        .unwrap();
        let _ = g;
        let del = push_image(
            &c,
            base,
            &repo,
            Some("gone"),
            &[noise(5_000, 4000 + i)],
            "del",
            None,
        )
        .unwrap();
        c.delete(format!("{base}/v2/{repo}/manifests/{del}"))
            .send()
            .unwrap();
    }
    let ch1 = push_image(
        &c,
        base,
        "proj/multi",
        None,
        &[shared[1].clone()],
        "c1",
        None,
    )
    .unwrap();
    let ch2 = push_image(
        &c,
        base,
        "proj/multi",
        None,
        &[noise(4000, 5000)],
        "c2",
        None,
    )
    .unwrap();
    let idx = push_index(&c, base, "proj/multi", "latest", &[ch1, ch2]).unwrap();
    live.push(("proj/multi".into(), "latest".into(), idx));
    let last = push_image(
        &c,
        base,
        "proj/app0",
        Some("moving"),
        &[noise(4000, 6000)],
        "m",
        None,
    )
    .unwrap();
    live.push(("proj/app0".into(), "moving".into(), last));
    live
}

fn check_live(base: &str, live: &[(String, String, String)]) -> R<()> {
    let c = client();
    for (repo, tag, d) in live {
        let got = pull(&c, base, repo, tag)?;
        if &got != d {
            return Err(format!("{repo}:{tag} is {got}, expected {d}"));
        }
    }
    Ok(())
}

/// A crash after every single deletion leaves every live image pullable,
/// and the next run finishes the job.
#[test]
fn crash_at_every_step_keeps_live_images() {
    let (_tmp, root) = tmp_root();
    let live = {
        let reg = Registry::start_in(&root, DELETE, &[]);
        build_mixed_store(&reg.base)
    };
    let dry = gc_json(&root, &["--delete-untagged"]);
    // (That was a real run; rebuild garbage is not needed: count its steps
    // from a fresh copy instead.) Start over with a fresh store.
    let steps = dry["blobs_deleted"].as_u64().unwrap()
        + dry["manifests_deleted"].as_u64().unwrap()
        + dry["links_removed"].as_u64().unwrap();
    assert!(steps > 20, "expected a real amount of garbage: {dry}");

    let (_tmp2, root) = tmp_root();
    let live = {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let l = build_mixed_store(&reg.base);
        assert_eq!(l.len(), live.len());
        l
    };
    let mut crashes = 0;
    loop {
        let out = gc(
            &root,
            &["--delete-untagged"],
            &[("BERTH_GC_FAULT_AFTER", "1")],
        );
        if out.status.success() {
            break; // nothing left to delete
        }
        crashes += 1;
        assert!(String::from_utf8_lossy(&out.stderr).contains("aborting"));
        let reg = Registry::start_in(&root, DELETE, &[]);
        check_live(&reg.base, &live).unwrap_or_else(|e| panic!("after crash {crashes}: {e}"));
        assert!(crashes < 1000);
    }
    assert!(
        crashes as u64 >= steps,
        "{crashes} crashes for {steps} steps"
    );
    let report = gc_json(&root, &["--delete-untagged"]);
    assert_eq!(report["blobs_deleted"], 0);
    let reg = Registry::start_in(&root, DELETE, &[]);
    check_live(&reg.base, &live).unwrap();
}
