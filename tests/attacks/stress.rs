//! Concurrency stress (bounded: a few threads, a fixed number of rounds):
//! the same blob pushed at once, one tag pushed with different manifests
//! at once, deletes while pulling, mounts while the source's link is
//! deleted. Whatever interleaving happens, no answer serves bytes that do
//! not match their digest, nothing answers 5xx, and at the end every tag
//! points at a manifest that pulls, blobs included.

use std::collections::BTreeSet;

use crate::support::*;

/// Every tag of every repository pulls: the manifest matches its digest
/// and every blob it names is served with matching bytes.
fn assert_every_tag_pulls(api: &Api) {
    let repos = api.get("/v2/_catalog").expect(200).json()["repositories"].clone();
    for repo in repos.as_array().expect("repositories") {
        let repo = repo.as_str().expect("name");
        let tags = api.get(&format!("/v2/{repo}/tags/list")).expect(200).json()["tags"].clone();
        for tag in tags.as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("tag");
            let m = api.get_manifest(repo, tag);
            m.expect(200);
            assert_eq!(
                m.must_header("docker-content-digest"),
                sha256(&m.body),
                "{repo}:{tag}"
            );
            let v = m.json();
            let blobs =
                std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten());
            for b in blobs {
                let d = b["digest"].as_str().expect("digest");
                let r = api.get(&format!("/v2/{repo}/blobs/{d}"));
                r.expect(200);
                assert_eq!(sha256(&r.body), d, "{repo}:{tag} blob {d}");
            }
        }
    }
}

/// A pull that found something found the right bytes.
fn assert_pull_consistent(r: &Resp, digest: &str) {
    match r.status {
        200 => assert_eq!(sha256(&r.body), digest, "{}", r.what),
        404 => {}
        other => panic!("{}: {other} while racing", r.what),
    }
}

#[test]
fn concurrent_pushes_retags_deletes_and_mounts_leave_every_tag_pullable() {
    let api = Api::start();
    let shared = noise(256 << 10, 77);
    let shared_digest = sha256(&shared);
    // Images to delete while they are pulled.
    let doomed: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let (m, d) = api.push_oci_image("stress/del", &format!("t{i}"), 500 + i);
            (d, m)
        })
        .collect();
    let source = noise(32 << 10, 99);
    let source_digest = api.push_blob("stress/src", &source);
    let mounted = std::sync::Mutex::new(BTreeSet::new());

    std::thread::scope(|s| {
        // The same blob, pushed by three clients at once.
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..10 {
                    assert_eq!(api.push_blob("stress/same", &shared), shared_digest);
                }
            });
        }
        // One tag, two writers with different manifests.
        for writer in 0..2u64 {
            let api = &api;
            s.spawn(move || {
                for i in 0..10 {
                    api.push_oci_image("stress/tag", "latest", 1000 * (writer + 1) + i);
                }
            });
        }
        // Deletes while pulling.
        s.spawn(|| {
            for (d, _) in &doomed {
                api.delete(&format!("/v2/stress/del/manifests/{d}"))
                    .expect(202);
            }
        });
        s.spawn(|| {
            for _ in 0..4 {
                for (d, m) in &doomed {
                    let r = api.get(&format!("/v2/stress/del/manifests/{d}"));
                    assert_pull_consistent(&r, d);
                    if r.status == 200 {
                        assert_eq!(&r.body, m);
                    }
                }
            }
        });
        // Mounts while the source's link comes and goes.
        s.spawn(|| {
            for _ in 0..15 {
                let r = api.delete(&format!("/v2/stress/src/blobs/{source_digest}"));
                assert!([202, 404].contains(&r.status), "{r}");
                assert_eq!(api.push_blob("stress/src", &source), source_digest);
            }
        });
        s.spawn(|| {
            for i in 0..15 {
                let dst = format!("stress/dst{i}");
                let r = api.send(api.req(
                    reqwest::Method::POST,
                    &format!("/v2/{dst}/blobs/uploads/?mount={source_digest}&from=stress/src"),
                ));
                match r.status {
                    201 => {
                        let b = api.get(&format!("/v2/{dst}/blobs/{source_digest}"));
                        b.expect(200);
                        assert_eq!(b.body, source, "mounted blob of {dst}");
                        mounted.lock().unwrap().insert(dst);
                    }
                    202 => {
                        let location = r.must_header("location");
                        api.delete(&location).expect(204);
                    }
                    other => panic!("mount: {other} {r}"),
                }
            }
        });
    });

    // What the races left behind is whole.
    assert_every_tag_pulls(&api);
    let tag = api.get_manifest("stress/tag", "latest");
    tag.expect(200);
    for (d, _) in &doomed {
        api.get(&format!("/v2/stress/del/manifests/{d}"))
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    for dst in mounted.lock().unwrap().iter() {
        let b = api.get(&format!("/v2/{dst}/blobs/{source_digest}"));
        assert_eq!(b.body, source, "{dst}");
    }
    let r = api.get(&format!("/v2/stress/same/blobs/{shared_digest}"));
    r.expect(200);
    assert_eq!(r.body, shared);
}
