//! The catalog's index (`src/storage/index.rs`): pages answered from memory
//! must list exactly what a walk of the data dir lists: at once for Berth's
//! own writes, within the documented bound (a re-scan every max(2 s, 20 ×
//! the scan's time)) for another process writing the same data dir, and
//! rightly while the start-up scan is still running.

use std::path::Path;
use std::time::Duration;

use crate::support;

use support::*;

/// Longer than the re-scan bound of a small store (2 s), with room for a
/// loaded machine.
const CATCH_UP: Duration = Duration::from_secs(15);

fn catalog(api: &Api) -> Vec<String> {
    api.pages("/v2/_catalog?n=3")
        .iter()
        .flat_map(|(v, _)| string_list(v, "repositories"))
        .collect()
}

fn tags(api: &Api, repo: &str) -> Vec<String> {
    let r = api.get(&format!("/v2/{repo}/tags/list"));
    r.expect(200);
    string_list(&r.json(), "tags")
}

/// Berth with its metrics on, waited for until the index is built.
fn indexed_berth(root: &Path) -> Api {
    let env = [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_HTTP_DEBUG_ADDR", "127.0.0.1:0"),
        ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
    ];
    let reg = Registry::spawn(serve_command(root, &env, &[]), root, true);
    let metrics = format!("{}/metrics", reg.debug_base());
    let api = Api::on(reg);
    let ready = wait_until(Duration::from_secs(30), || {
        api.c
            .get(&metrics)
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.lines().any(|l| l == "berth_catalog_index_ready 1"))
    });
    assert!(ready, "the catalog's index was never ready");
    api
}

/// `count` repositories made directly in the data dir, as registry:2's
/// layout has them (no push): `bulk/nNNNN`, and every tenth one level
/// deeper.
fn make_repositories(root: &Path, count: usize) -> Vec<String> {
    let base = root.join("docker/registry/v2/repositories");
    let mut names: Vec<String> = (0..count)
        .map(|i| match i % 10 {
            0 => format!("bulk/deep/n{i:05}"),
            _ => format!("bulk/n{i:05}"),
        })
        .collect();
    for n in &names {
        std::fs::create_dir_all(base.join(n).join("_manifests")).unwrap();
    }
    // Not repositories: a bare prefix, a layer-only push, a `_` name.
    std::fs::create_dir_all(base.join("bulk/only-layers/_layers")).unwrap();
    std::fs::create_dir_all(base.join("_hidden/_manifests")).unwrap();
    names.sort();
    names
}

#[test]
fn the_catalog_catches_up_with_a_second_berth_on_the_same_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let first = indexed_berth(&tmp.path().join("data"));
    first.push_oci_image("one/app", "v1", 1);
    // Berth's own push: listed at once.
    assert_eq!(catalog(&first), ["one/app"]);

    let second = Api::on(Registry::start_in(&first.reg.root, &[], &[]));
    second.push_oci_image("two/app", "v1", 2);
    second.push_oci_image("one/app", "v2", 3);
    assert_eq!(catalog(&second), ["one/app", "two/app"]);
    // Tags lists read the data dir: the second writer's tag at once.
    assert_eq!(tags(&first, "one/app"), ["v1", "v2"]);
    let caught_up = wait_until(CATCH_UP, || catalog(&first) == ["one/app", "two/app"]);
    assert!(caught_up, "still {:?}", catalog(&first));
    assert_eq!(tags(&first, "two/app"), ["v1"]);
}

#[test]
fn the_catalog_catches_up_with_docker_registry_on_the_same_data_dir() {
    if !std::path::Path::new("/usr/bin/docker-registry").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let berth = indexed_berth(&root);
    berth.push_oci_image("mine", "v1", 1);
    let dist = DistRegistry::start(&root);
    let m = small_image(Flavour::Oci, "amd64", "pushed by docker-registry\n");
    push_tree(&dist.base, "theirs/app", &m, "latest");
    let caught_up = wait_until(CATCH_UP, || catalog(&berth) == ["mine", "theirs/app"]);
    assert!(caught_up, "still {:?}", catalog(&berth));
    assert_eq!(tags(&berth, "theirs/app"), ["latest"]);
}

#[test]
fn a_deleted_tag_is_never_listed_after_the_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let api = indexed_berth(&tmp.path().join("data"));
    api.push_oci_image("app", "keep", 1);
    let (_, gone) = api.push_oci_image("app", "gone", 2);
    api.push_oci_image("app", "also-gone", 2);
    assert_eq!(tags(&api, "app"), ["also-gone", "gone", "keep"]);
    api.delete(&format!("/v2/app/manifests/{gone}")).expect(202);
    assert_eq!(tags(&api, "app"), ["keep"]);
    let page = api.get("/v2/app/tags/list?n=1&last=also-gone");
    page.expect(200);
    assert_eq!(string_list(&page.json(), "tags"), ["keep"]);
    assert!(page.header("link").is_none(), "{page}");
    // The repository stays: it still holds a manifest.
    assert_eq!(catalog(&api), ["app"]);
}

#[test]
fn a_repository_removed_from_the_data_dir_leaves_the_catalog_within_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let api = indexed_berth(&tmp.path().join("data"));
    api.push_oci_image("stays", "v1", 1);
    api.push_oci_image("goes/away", "v1", 2);
    assert_eq!(catalog(&api), ["goes/away", "stays"]);
    // Another process (an operator, registry:2's own tooling) removes it.
    let dir = api.reg.root.join("docker/registry/v2/repositories/goes");
    std::fs::remove_dir_all(dir).unwrap();
    api.get("/v2/goes/away/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
    let gone = wait_until(CATCH_UP, || catalog(&api) == ["stays"]);
    assert!(gone, "still {:?}", catalog(&api));
}

#[test]
fn start_up_with_a_large_store_answers_at_once_and_pages_stay_complete_while_indexing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let names = make_repositories(&root, 5_000);
    let api = Api::on(Registry::start_in(&root, &[], &[]));
    // The first request, with no retry: the scan runs in the background.
    api.get("/v2/").expect(200);
    let walk = |n: usize| -> Vec<String> {
        let mut out = Vec::new();
        let mut path = format!("/v2/_catalog?n={n}");
        for _ in 0..1_000 {
            let r = api.get(&path);
            r.expect(200);
            out.extend(string_list(&r.json(), "repositories"));
            match r.header("link") {
                Some(l) => path = parse_link_next(&l),
                None => return out,
            }
        }
        panic!("the catalog never ended");
    };
    // Walked at once (likely from the walk, the index still building),
    // then again (from the index): the same, complete, sorted list.
    assert_eq!(walk(997), names);
    assert_eq!(walk(1_000), names);
    let r = api.get("/v2/_catalog?n=2&last=bulk/n04998");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "repositories"), ["bulk/n04999"]);
    assert!(r.header("link").is_none(), "{r}");
    // A repository pushed now is listed at once, in its place.
    api.push_oci_image("bulk/n02500x", "v1", 1);
    let r = api.get("/v2/_catalog?n=2&last=bulk/n02500");
    assert_eq!(
        string_list(&r.expect(200).json(), "repositories"),
        ["bulk/n02500x", "bulk/n02501"]
    );
}

/// A repository with `count` tags made directly in the data dir, as
/// registry:2 lays them out, all pointing at `digest`.
fn make_tags(root: &Path, repo: &str, count: usize, digest: &str) -> Vec<String> {
    let tags: Vec<String> = (0..count).map(|i| format!("t{i:04}")).collect();
    for t in &tags {
        write_tag(root, repo, t, digest);
    }
    tags
}

fn write_tag(root: &Path, repo: &str, tag: &str, digest: &str) {
    let dir = root
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags")
        .join(tag)
        .join("current");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("link"), digest).unwrap();
}

fn all_tags(api: &Api, repo: &str) -> Vec<String> {
    api.pages(&format!("/v2/{repo}/tags/list?n=100"))
        .iter()
        .flat_map(|(v, _)| string_list(v, "tags"))
        .collect()
}

#[test]
fn a_big_repository_s_cached_tags_follow_another_writer_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let api = indexed_berth(&tmp.path().join("data"));
    let (_, digest) = api.push_oci_image("big", "t0000", 1);
    let root = api.reg.root.clone();
    let mut want = make_tags(&root, "big", 300, &digest);
    // Listed once the directory has settled, so the list is cached.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(all_tags(&api, "big"), want);
    assert_eq!(all_tags(&api, "big"), want);

    // Another process adds a tag, and one whose link is not written yet.
    write_tag(&root, "big", "t9999", &digest);
    let half = root.join("docker/registry/v2/repositories/big/_manifests/tags/t5000");
    std::fs::create_dir_all(&half).unwrap();
    want.push("t9999".into());
    assert_eq!(all_tags(&api, "big"), want, "a tag added by another writer");
    // Settled and cached again with the half-made tag pending: its link
    // appears without the tags directory changing.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(all_tags(&api, "big"), want);
    write_tag(&root, "big", "t5000", &digest);
    want.push("t5000".into());
    want.sort();
    assert_eq!(all_tags(&api, "big"), want, "a tag whose link came later");

    // Another process deletes a tag (registry:2 removes its directory).
    std::fs::remove_dir_all(root.join("docker/registry/v2/repositories/big/_manifests/tags/t0007"))
        .unwrap();
    want.retain(|t| t != "t0007");
    assert_eq!(
        all_tags(&api, "big"),
        want,
        "a tag deleted by another writer"
    );

    // Berth's own delete, of a tag in a cached list.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(all_tags(&api, "big"), want);
    api.delete("/v2/big/manifests/t0100").expect(202);
    want.retain(|t| t != "t0100");
    assert_eq!(all_tags(&api, "big"), want, "a tag Berth deleted");
}
