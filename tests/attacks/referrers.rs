//! Referrers of large manifests: the list is served a page at a time from
//! the descriptors recorded at push, so neither one response nor memory
//! grows with the size (or number) of the referrer manifests.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::*;

/// Referrers pushed, each a manifest of about [`ANNOTATION`] bytes.
const REFERRERS: usize = 8;
/// One annotation this long makes each referrer a ~3 MB manifest.
const ANNOTATION: usize = 3 << 20;
/// Concurrent clients reading the whole list.
const CLIENTS: usize = 4;
/// What serving them all may add to the server's peak RSS.
const LIMIT_KIB: u64 = 64 << 10;

/// Follows the referrers pages from `first`; asserts each is a valid index
/// (with the filter header when filtered) and returns the digests in order.
fn all_pages(api: &Api, first: &str, filtered: bool) -> (Vec<String>, usize) {
    let pages = api.pages(first);
    let mut digests = Vec::new();
    for (page, _) in &pages {
        assert_eq!(page["mediaType"], OCI_INDEX, "{page}");
        let list = page["manifests"].as_array().expect("manifests array");
        assert!(!list.is_empty(), "an empty page before the end");
        for d in list {
            assert_eq!(d["artifactType"], SBOM, "{}", d["digest"]);
            assert_eq!(
                d["annotations"]["big"].as_str().map(str::len),
                Some(ANNOTATION)
            );
            digests.push(d["digest"].as_str().expect("digest").to_string());
        }
    }
    if filtered {
        let r = api.get(first);
        assert_eq!(
            r.header("oci-filters-applied").as_deref(),
            Some("artifactType")
        );
    }
    (digests, pages.len())
}

#[test]
fn referrers_of_large_manifests_are_paged_and_keep_server_memory_flat() {
    let api = Api::start();
    let repo = "big/referred";
    let (subject, sd) = api.push_oci_image(repo, "v1", 7);
    let mut pushed = BTreeSet::new();
    for i in 0..REFERRERS {
        let big = format!("{i}{}", "x".repeat(ANNOTATION - 1));
        let m = api.artifact(
            repo,
            SBOM,
            Some((&sd, subject.len())),
            json!({ "big": big }),
        );
        pushed.insert(api.push_manifest(repo, &sha256(&m), OCI_MANIFEST, &m));
    }
    // Another kind, which the filter leaves out.
    let sig = api.artifact(repo, SIG, Some((&sd, subject.len())), Value::Null);
    api.push_manifest(repo, &sha256(&sig), OCI_MANIFEST, &sig);

    let pid = api.reg.pid();
    // Forget the pushes' peak: from here VmHWM is the peak while serving.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let idle = status_kib(pid, "VmRSS:");

    let first = format!("/v2/{repo}/referrers/{sd}?artifactType={SBOM}");
    let results: Vec<(Vec<String>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| s.spawn(|| all_pages(&api, &first, true)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = status_kib(pid, "VmHWM:");
    eprintln!(
        "server RSS {} MiB before, peak {} MiB while {CLIENTS} clients read {REFERRERS} referrers of {} MiB",
        idle >> 10,
        peak >> 10,
        ANNOTATION >> 20
    );
    for (digests, pages) in &results {
        // In digest order, each once, all of them, over several pages.
        let sorted: Vec<String> = pushed.iter().cloned().collect();
        assert_eq!(digests, &sorted);
        assert!(
            *pages > 1,
            "{REFERRERS} referrers of 3 MB came in one response"
        );
    }
    assert!(
        peak.saturating_sub(idle) < LIMIT_KIB,
        "peak RSS {peak} KiB is more than {LIMIT_KIB} KiB over {idle} KiB"
    );

    // Unfiltered, the other kind is there too, and each page is bounded.
    let pages = api.pages(&format!("/v2/{repo}/referrers/{sd}"));
    let total: usize = pages
        .iter()
        .map(|(p, _)| p["manifests"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(total, REFERRERS + 1);
    for (p, _) in &pages {
        assert!(
            p.to_string().len() < 8 << 20,
            "a page of {} bytes",
            p.to_string().len()
        );
    }
}

#[test]
fn a_referrers_page_link_is_refused_when_last_is_not_a_digest() {
    let api = Api::start();
    let (subject, sd) = api.push_oci_image("lib/a", "v1", 1);
    let m = api.artifact("lib/a", SBOM, Some((&sd, subject.len())), Value::Null);
    api.push_manifest("lib/a", &sha256(&m), OCI_MANIFEST, &m);
    api.get(&format!("/v2/lib/a/referrers/{sd}?last=nonsense"))
        .expect_error(400, "PAGINATION_NUMBER_INVALID");
    // After the only referrer, the page is empty and ends the list.
    let r = api.get(&format!("/v2/lib/a/referrers/{sd}?last={}", sha256(&m)));
    r.expect(200);
    assert_eq!(r.json()["manifests"], json!([]));
    assert!(r.header("link").is_none());
}
