//! Black-box tests of concurrent pushes: the same blob from many clients,
//! and many manifests to the same tag, against the real binary.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Barrier;

use reqwest::Method;
use support::*;

#[test]
fn concurrent_pushes_of_the_same_blob_all_succeed() {
    let api = Api::start();
    let data = noise(2 * 1024 * 1024 + 3, 500);
    let d = sha256(&data);
    let threads = 6;
    for round in 0..3 {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (api, data, d, barrier) = (&api, &data, &d, &barrier);
                s.spawn(move || {
                    let repo = if t % 3 == 2 {
                        "race/other"
                    } else {
                        "race/blob"
                    };
                    if t % 2 == 0 {
                        let loc = api.start_upload(repo);
                        let r = api.patch(&loc, &data[..1024 * 1024], None);
                        r.expect(202);
                        let loc = r.must_header("location");
                        barrier.wait();
                        let r = api.close_upload(&loc, d, &data[1024 * 1024..]);
                        assert_eq!(r.status, 201, "round {round} thread {t}: {r}");
                    } else {
                        barrier.wait();
                        let r = api.send(
                            api.req(
                                Method::POST,
                                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                            )
                            .header("Content-Type", "application/octet-stream")
                            .body(data.clone()),
                        );
                        assert_eq!(r.status, 201, "round {round} thread {t}: {r}");
                    }
                });
            }
        });
        for repo in ["race/blob", "race/other"] {
            let g = api.get(&format!("/v2/{repo}/blobs/{d}"));
            g.expect(200);
            assert_eq!(g.body.len(), data.len());
            assert_eq!(sha256(&g.body), d, "round {round}: torn blob in {repo}");
        }
        if round < 2 {
            api.delete(&format!("/v2/race/blob/blobs/{d}")).expect(202);
            api.delete(&format!("/v2/race/other/blobs/{d}")).expect(202);
        }
    }
}

#[test]
fn concurrent_pushes_to_the_same_tag_leave_one_consistent_winner() {
    let api = Api::start();
    let threads = 8;
    let manifests: Vec<Vec<u8>> = (0..threads as u64)
        .map(|i| api.oci_image("race/tag", 600 + i))
        .collect();
    let digests: BTreeSet<String> = manifests.iter().map(|m| sha256(m)).collect();
    for round in 0..3 {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for m in &manifests {
                let (api, barrier) = (&api, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let r = api.put_manifest("race/tag", "latest", OCI_MANIFEST, m);
                    assert_eq!(r.status, 201, "round {round}: {r}");
                });
            }
        });
        let g = api.get_manifest("race/tag", "latest");
        g.expect(200);
        let d = g.must_header("docker-content-digest");
        assert!(
            digests.contains(&d),
            "round {round}: tag points to an unknown digest {d}"
        );
        assert_eq!(
            sha256(&g.body),
            d,
            "round {round}: body does not match its digest"
        );
        for _ in 0..3 {
            let again = api.get_manifest("race/tag", "latest");
            assert_eq!(again.expect(200).body, g.body, "round {round}: tag flaps");
            assert_eq!(
                api.head_manifest("race/tag", "latest")
                    .must_header("docker-content-digest"),
                d
            );
        }
        let r = api.get("/v2/race/tag/tags/list");
        assert_eq!(string_list(&r.expect(200).json(), "tags"), ["latest"]);
        for m in &manifests {
            assert_eq!(
                api.get_manifest("race/tag", &sha256(m)).expect(200).body,
                *m
            );
        }
    }
}
