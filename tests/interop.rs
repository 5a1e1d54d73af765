//! Interoperability with Debian's `docker-registry` (CNCF distribution 2.8,
//! the code of `registry:2`) over one data directory, both ways: what one
//! wrote, the other serves with the same catalog, tags, manifests (bytes,
//! media types, digests) and blobs. The content covers an OCI image, an OCI
//! image index (multi-arch, pushed with `skopeo copy --all`), a Docker
//! schema 2 image, a Docker manifest list, a nested repository name, several
//! tags on one manifest and a manifest deleted by digest.

mod support;

use std::path::Path;

use support::{
    catalog_paged, image, index, layout_entry, push_tree, put_manifest, skopeo_ok, small_image,
    snapshot, DistRegistry, Flavour, Layout, Manifest, ACCEPT_ALL,
};

fn have_tools() -> bool {
    support::have("docker-registry") && support::have("skopeo") && support::have("gzip")
}

/// What both tests push.
struct Content {
    app: Manifest,
    old: Manifest,
    multi: Manifest,
    legacy: Manifest,
    list: Manifest,
    nested: Manifest,
}

fn content() -> Content {
    Content {
        app: image(
            Flavour::Oci,
            "amd64",
            &[
                &[("etc/os-release", b"NAME=berth-test\n")],
                &[("app/run.sh", b"#!/bin/sh\necho app\n")],
            ],
            "app v1",
        ),
        old: small_image(Flavour::Oci, "amd64", "old app\n"),
        multi: index(
            Flavour::Oci,
            vec![
                small_image(Flavour::Oci, "amd64", "multi amd64\n"),
                small_image(Flavour::Oci, "arm64", "multi arm64\n"),
            ],
        ),
        legacy: small_image(Flavour::Docker, "amd64", "docker schema 2\n"),
        list: index(
            Flavour::Docker,
            vec![
                small_image(Flavour::Docker, "amd64", "list amd64\n"),
                small_image(Flavour::Docker, "arm64", "list arm64\n"),
            ],
        ),
        nested: small_image(Flavour::Oci, "amd64", "deeply nested\n"),
    }
}

/// (repository, tag, manifest) for everything that stays tagged.
fn tagged(c: &Content) -> Vec<(&'static str, &'static str, &Manifest)> {
    vec![
        ("interop/app", "v1", &c.app),
        ("interop/app", "latest", &c.app),
        ("interop/app", "moving", &c.app),
        ("interop/multi", "1.0", &c.multi),
        ("interop/legacy", "v2", &c.legacy),
        ("interop/legacy", "list", &c.list),
        ("interop/deep/nested/repo", "1", &c.nested),
    ]
}

/// Pushes the content to the registry at `base`: the OCI image and index
/// with skopeo from an OCI layout, the rest over plain HTTP; then deletes
/// `old` by digest (which also removes its tag).
fn populate(base: &str, host: &str, work: &Path, c: &Content) {
    let mut layout = Layout::new(&work.join("layout"));
    layout.add(&c.app, "app");
    layout.add(&c.old, "old");
    layout.add(&c.multi, "multi");
    for (tag, src) in [("v1", "app"), ("latest", "app"), ("old", "old")] {
        skopeo_ok(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &layout.reference(src),
            &format!("docker://{host}/interop/app:{tag}"),
        ]);
    }
    // A tag that moved: registry:2 keeps the old target in the tag's index.
    put_manifest(
        base,
        "interop/app",
        "moving",
        &c.old.media_type,
        &c.old.bytes,
    );
    put_manifest(
        base,
        "interop/app",
        "moving",
        &c.app.media_type,
        &c.app.bytes,
    );
    skopeo_ok(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &layout.reference("multi"),
        &format!("docker://{host}/interop/multi:1.0"),
    ]);
    push_tree(base, "interop/legacy", &c.legacy, "v2");
    push_tree(base, "interop/legacy", &c.list, "list");
    push_tree(base, "interop/deep/nested/repo", &c.nested, "1");

    // Unfinished uploads stay on disk; the other server must not mind them.
    support::start_upload(base, "interop/app", b"half a blob");
    support::start_upload(base, "interop/unfinished", b"never finished");

    let r = support::client()
        .delete(format!("{base}/v2/interop/app/manifests/{}", c.old.digest))
        .send()
        .expect("DELETE");
    assert_eq!(r.status().as_u16(), 202, "delete old by digest");
}

/// The registry at `base` serves exactly the content pushed: manifests byte
/// for byte with their media type, by tag and by digest; children and blobs
/// in their repository and nowhere else; `old` is gone.
fn check_content(base: &str, c: &Content) {
    let http = support::client();
    for (repo, tag, m) in tagged(c) {
        for reference in [tag, m.digest.as_str()] {
            let r = http
                .get(format!("{base}/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{repo}:{reference}");
            let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
            assert_eq!(ctype, m.media_type, "Content-Type of {repo}:{reference}");
            assert_eq!(
                r.headers()["docker-content-digest"].to_str().unwrap(),
                m.digest
            );
            assert!(
                r.bytes().unwrap() == m.bytes,
                "bytes of {repo}:{reference} differ"
            );
        }
        for child in &m.children {
            let r = http
                .get(format!("{base}/v2/{repo}/manifests/{}", child.digest))
                .header("accept", ACCEPT_ALL)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{repo}@{}", child.digest);
            assert!(r.bytes().unwrap() == child.bytes);
        }
        for b in m.all_blobs() {
            let r = http
                .get(format!("{base}/v2/{repo}/blobs/{}", b.digest))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{repo} blob {}", b.digest);
            assert!(r.bytes().unwrap() == b.data, "{repo} blob {}", b.digest);
        }
    }
    // A blob is served only from the repositories it was pushed to.
    let r = http
        .get(format!(
            "{base}/v2/interop/legacy/blobs/{}",
            c.app.layers()[1].digest
        ))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "a blob of interop/app served from interop/legacy"
    );
    // The deleted manifest and its tag.
    let r = http
        .get(format!("{base}/v2/interop/app/manifests/{}", c.old.digest))
        .header("accept", ACCEPT_ALL)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "deleted manifest still served");
    let r = http
        .get(format!("{base}/v2/interop/app/manifests/old"))
        .header("accept", ACCEPT_ALL)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "tag of a deleted manifest");
    // The catalog, a page at a time.
    assert_eq!(
        catalog_paged(base, 1),
        [
            "interop/app",
            "interop/deep/nested/repo",
            "interop/legacy",
            "interop/multi"
        ]
    );
}

/// skopeo pulls the multi-arch image out of the registry at `host` with
/// its digests intact.
fn pull_multi(host: &str, work: &Path, c: &Content) {
    let out = work.join(format!("pulled-{}", host.replace([':', '.'], "-")));
    skopeo_ok(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{host}/interop/multi:1.0"),
        &format!("oci:{}:multi", out.display()),
    ]);
    assert_eq!(
        layout_entry(&out, "multi")["digest"],
        c.multi.digest.as_str()
    );
    for child in &c.multi.children {
        assert!(support::layout_blob(&out, &child.digest) == child.bytes);
    }
}

fn berth_in(root: &Path) -> support::Registry {
    support::Registry::start_in(root, &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")], &[])
}

#[test]
fn berth_serves_a_data_dir_written_by_docker_registry() {
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let c = content();

    let mut dist = DistRegistry::start(&root);
    populate(&dist.base, &dist.host(), tmp.path(), &c);
    check_content(&dist.base, &c);
    let written = snapshot(&dist.base);
    dist.stop();

    let berth = berth_in(&root);
    let served = snapshot(&berth.base);
    assert_eq!(
        served.catalog,
        [
            "interop/app",
            "interop/deep/nested/repo",
            "interop/legacy",
            "interop/multi"
        ]
    );
    assert_eq!(served, written, "Berth serves what docker-registry wrote");
    // registry:2 lists tags in directory order; Berth sorts them.
    let tags: serde_json::Value = support::client()
        .get(berth.url("/v2/interop/app/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "interop/app", "tags": ["latest", "moving", "v1"]})
    );
    check_content(&berth.base, &c);
    pull_multi(&berth.host(), tmp.path(), &c);

    // Berth writes into the same directory: a new tag and a new repository.
    let extra = small_image(Flavour::Oci, "amd64", "added by berth\n");
    push_tree(&berth.base, "interop/app", &extra, "added");
    push_tree(&berth.base, "interop/added", &extra, "1");
    let r = support::client()
        .get(berth.url("/v2/interop/app/manifests/v1"))
        .header("accept", ACCEPT_ALL)
        .send()
        .unwrap();
    assert!(r.bytes().unwrap() == c.app.bytes);
}

#[test]
fn docker_registry_serves_a_data_dir_written_by_berth() {
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let c = content();

    let mut berth = berth_in(&root);
    populate(&berth.base, &berth.host(), tmp.path(), &c);
    check_content(&berth.base, &c);
    let written = snapshot(&berth.base);
    berth.kill();

    let mut dist = DistRegistry::start(&root);
    let served = snapshot(&dist.base);
    assert_eq!(served, written, "docker-registry serves what Berth wrote");
    check_content(&dist.base, &c);
    pull_multi(&dist.host(), tmp.path(), &c);

    // And back again: docker-registry adds a tag, Berth serves all of it.
    let extra = small_image(Flavour::Docker, "amd64", "added by docker-registry\n");
    push_tree(&dist.base, "interop/legacy", &extra, "added");
    let before = snapshot(&dist.base);
    dist.stop();
    let berth = berth_in(&root);
    assert_eq!(snapshot(&berth.base), before, "Berth after docker-registry");
    check_content(&berth.base, &c);
}
