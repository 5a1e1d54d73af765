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

/// A power cut after a push that kept the names of what it wrote but not
/// the bytes of the records whose path names their digest: every layer and
/// revision `link` is empty or NULs, every media-type record empty, NULs
/// or torn, and every tag's index gone (Berth fsyncs only the directory for these). The image still
/// pulls by tag and digest, its layers still mount into another
/// repository, a second push of it is accepted, and the collector keeps
/// all of it while deleting real garbage.
#[test]
fn links_a_power_cut_left_empty_still_link() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let layers = vec![noise(30_000, 1), noise(20_000, 2)];
    let (live, gone) = {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let live = push_image(&c, &reg.base, "cut/app", Some("v1"), &layers, "live", None).unwrap();
        let gone = push_image(
            &c,
            &reg.base,
            "cut/app",
            Some("old"),
            &[noise(9_000, 3)],
            "old",
            None,
        )
        .unwrap();
        let r = c
            .delete(format!("{}/v2/cut/app/manifests/{gone}", reg.base))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        (live, gone)
    };
    let (mut emptied, mut index_dirs) = (0, Vec::new());
    for path in files(&root).keys() {
        let s = path.to_string_lossy();
        let name = path.file_name().unwrap().to_string_lossy();
        if (name == "link" && (s.contains("/_layers/") || s.contains("/_manifests/revisions/")))
            || name == "media-type"
        {
            // What a power cut leaves of a file whose bytes never reached
            // the disk: nothing (ext4), or its size in NULs (XFS, ext4
            // data=writeback); a media-type record may be torn anyhow.
            let left: Vec<u8> = match emptied % 3 {
                0 => Vec::new(),
                1 => vec![0; 71],
                _ => vec![0xff, 0xfe, 0],
            };
            let left = if name == "link" && left.len() == 3 {
                Vec::new()
            } else {
                left
            };
            std::fs::write(path, left).unwrap();
            emptied += 1;
        }
        if s.contains("/_manifests/tags/") && s.contains("/index/") {
            index_dirs.push(path.parent().unwrap().to_path_buf());
        }
    }
    assert!(emptied >= 6, "only {emptied} records emptied");
    assert!(!index_dirs.is_empty(), "no tag index entries found");
    for d in index_dirs {
        let _ = std::fs::remove_dir_all(d);
    }

    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        assert_eq!(pull(&c, &reg.base, "cut/app", "v1").unwrap(), live);
        assert_eq!(pull(&c, &reg.base, "cut/app", &live).unwrap(), live);
        let r = c
            .head(format!("{}/v2/cut/app/manifests/v1", reg.base))
            .header("accept", support::OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], support::OCI_MANIFEST);
        let layer = support::sha256(&layers[0]);
        let r = c
            .post(format!(
                "{}/v2/cut/other/blobs/uploads/?mount={layer}&from=cut/app",
                reg.base
            ))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "mount from an emptied link");
        let r = c
            .head(format!("{}/v2/cut/other/blobs/{layer}", reg.base))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let again =
            push_image(&c, &reg.base, "cut/app", Some("v2"), &layers, "live", None).unwrap();
        assert_eq!(again, live);
    }
    let report = gc_json(&root, &["--delete-untagged"]);
    let deleted = deleted_blobs(&report);
    assert!(
        deleted.contains(&gone),
        "the deleted image is collected: {report}"
    );
    assert!(!deleted.contains(&live), "the live image is kept: {report}");
    let reg = Registry::start_in(&root, DELETE, &[]);
    assert_eq!(pull(&c, &reg.base, "cut/app", "v1").unwrap(), live);
}
