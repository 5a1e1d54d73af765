//! Online garbage collection, black-box: the server collects on a timer
//! while clients push and pull; a blob a client found by HEAD survives.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::gc::*;
use support::{client, ensure_blob, noise, sha256, try_put_manifest, Registry, OCI_MANIFEST};

/// The classic push race under online GC: a client HEADs a layer that is
/// garbage (and older than the grace period), finds it, skips the upload
/// and pushes its manifest a moment later. The lookup counts as a use, so
/// the collections in between keep the layer and the push succeeds.
#[test]
fn a_blob_found_by_head_survives_until_the_manifest_that_needs_it() {
    let (_tmp, root) = tmp_root();
    let c = client();
    let layer = noise(8000, 60);
    let ld;
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let a = push_image(
            &c,
            &reg.base,
            "race/app",
            Some("a"),
            &[layer.clone()],
            "a",
            None,
        )
        .unwrap();
        ld = sha256(&layer);
        let r = c
            .delete(reg.url(&format!("/v2/race/app/manifests/{a}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    std::thread::sleep(Duration::from_millis(3500)); // older than the grace period
    let env = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "200ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "3s"),
        ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
    ];
    let reg = Registry::start_in(&root, &env, &[]);
    let head = c
        .head(reg.url(&format!("/v2/race/app/blobs/{ld}")))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    // Several collections run while the client "builds" its manifest.
    std::thread::sleep(Duration::from_millis(1500));
    let config = br#"{"architecture":"amd64","os":"linux","label":"b"}"#;
    let cd = ensure_blob(&c, &reg.base, "race/app", config).unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let b = try_put_manifest(&c, &reg.base, "race/app", "b", OCI_MANIFEST, &m)
        .expect("the manifest push failed: its layer was collected after the HEAD");
    assert_eq!(pull(&c, &reg.base, "race/app", "b").unwrap(), b);
}

/// Clients push and pull without pause while the server collects every
/// 300 ms with a 2 s grace period; every still-tagged image pulls at the end.
#[test]
fn online_gc_under_concurrent_pushes() {
    let (_tmp, root) = tmp_root();
    let env = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "300ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "2s"),
        ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
        // Mark, then wait before sweeping: pushes land in between.
        ("BERTH_GC_TEST_PAUSE_MS", "700"),
    ];
    let c = client();
    let base_layer = noise(50_000, 7);
    let early_garbage;
    {
        // Old content: a base layer that later pushes find already present
        // (HEAD → skip upload), which is exactly what a collector could race.
        let reg = Registry::start_in(&root, &env, &[]);
        for w in 0..4 {
            push_image(
                &c,
                &reg.base,
                &format!("w{w}"),
                Some("seed"),
                &[base_layer.clone()],
                "seed",
                None,
            )
            .unwrap();
        }
        let g = noise(10_000, 8);
        push_image(&c, &reg.base, "w0", Some("tmp"), &[g.clone()], "tmp", None).unwrap();
        c.delete(reg.url("/v2/w0/manifests/tmp")).send().unwrap();
        early_garbage = sha256(&g);
    }
    std::thread::sleep(Duration::from_millis(2500)); // everything so far is older than the grace period

    let reg = Registry::start_in(&root, &env, &[]);
    let base = reg.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let tagged: Arc<Mutex<BTreeMap<(String, String), String>>> = Arc::default();
    let pushes = Arc::new(AtomicUsize::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut threads = Vec::new();
    for w in 0..4u64 {
        let (stop, tagged, pushes, errors, base, base_layer) = (
            stop.clone(),
            tagged.clone(),
            pushes.clone(),
            errors.clone(),
            base.clone(),
            base_layer.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let c = client();
            let repo = format!("w{w}");
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let tag = format!("t{}", i % 3); // tags move: older images become garbage
                                                 // A small pool: layers become garbage when tags move, then get
                                                 // re-referenced (HEAD finds them, upload skipped) after the grace period.
                let pick = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 40; // gaps of every length
                let own = noise(20_000, w * 100_000 + pick);
                std::thread::sleep(Duration::from_millis(100));
                let result = if i.is_multiple_of(5) {
                    let a = push_image(
                        &c,
                        &base,
                        &repo,
                        None,
                        &[base_layer.clone(), own.clone()],
                        "a",
                        None,
                    );
                    let b = push_image(
                        &c,
                        &base,
                        &repo,
                        None,
                        &[base_layer.clone()],
                        &format!("b{i}"),
                        None,
                    );
                    match (a, b) {
                        (Ok(a), Ok(b)) => push_index(&c, &base, &repo, &tag, &[a, b]),
                        (Err(e), _) | (_, Err(e)) => Err(e),
                    }
                } else {
                    push_image(
                        &c,
                        &base,
                        &repo,
                        Some(&tag),
                        &[base_layer.clone(), own],
                        &format!("{i}"),
                        None,
                    )
                };
                match result {
                    Ok(d) => {
                        tagged
                            .lock()
                            .unwrap()
                            .insert((repo.clone(), tag.clone()), d);
                        pushes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
                // Pull something pushed a while ago.
                let seen: Vec<_> = tagged
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(((r, t), _)) = seen.get(i as usize % seen.len().max(1)) {
                    if let Err(e) = pull(&c, &base, r, t) {
                        // The tag may have moved between GET manifest and GET blob.
                        if pull(&c, &base, r, t).is_err() {
                            errors.lock().unwrap().push(format!("pull {r}:{t}: {e}"));
                        }
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let seconds: u64 = std::env::var("BERTH_GC_TEST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(pushes.load(Ordering::SeqCst) > 20, "too few pushes");
    // Let a few more collections run over the final state, past the grace period.
    std::thread::sleep(Duration::from_millis(3000));
    let tagged = tagged.lock().unwrap().clone();
    for ((repo, tag), digest) in &tagged {
        assert_eq!(
            &pull(&c, &base, repo, tag).unwrap_or_else(|e| panic!("{e}")),
            digest
        );
    }
    for w in 0..4 {
        pull(&c, &base, &format!("w{w}"), "seed").unwrap();
    }
    assert!(
        !blob_on_disk(&root, &early_garbage),
        "online GC never collected"
    );
    eprintln!(
        "{} pushes, {} tags checked",
        pushes.load(Ordering::SeqCst),
        tagged.len()
    );
}
