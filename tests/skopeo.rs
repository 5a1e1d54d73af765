//! skopeo end to end: OCI image layouts written by hand are copied into the
//! registry (a single image and a multi-arch index with `--all`), inspected,
//! listed, copied registry to registry, copied back out with the same
//! digests, converted to Docker schema 2, and deleted; each step is checked
//! the way a user sees it, through skopeo's own output.
//!
//! Set `BERTH_TEST_AGAINST=docker-registry` to run the same steps against
//! Debian's `docker-registry` instead of Berth (to check the tests).

mod support;

use serde_json::Value;
use support::{
    image, index, layout_blob, layout_entry, skopeo, skopeo_ok, small_image, Flavour, Layout,
    Manifest, Target, DOCKER_MANIFEST,
};

fn have_tools() -> bool {
    support::have("skopeo") && support::have("gzip")
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `skopeo inspect --raw` of `reference` in the target.
fn raw_manifest(t: &Target, reference: &str) -> String {
    skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &t.docker(reference),
    ])
    .stdout
}

fn list_tags(t: &Target, repo: &str) -> Value {
    json(&skopeo_ok(&["list-tags", "--tls-verify=false", &t.docker(repo)]).stdout)
}

/// Checks the `Tags` of `skopeo list-tags` output: exactly `want` (which is
/// in lexical order) from Berth, the same set from the reference registry.
fn assert_tags(t: &Target, listed: &Value, want: &[&str]) {
    let mut got: Vec<&str> = listed["Tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no Tags in {listed}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    if !t.is_berth() {
        got.sort();
    }
    assert_eq!(got, want, "tags listed by skopeo");
}

/// Checks that the layout at `dir` holds `m` (and all it refers to) byte for
/// byte under `tag`.
fn assert_layout_holds(dir: &std::path::Path, tag: &str, m: &Manifest) {
    let entry = layout_entry(dir, tag);
    assert_eq!(
        entry["digest"],
        m.digest.as_str(),
        "digest of {tag} copied back"
    );
    assert_eq!(entry["mediaType"], m.media_type.as_str());
    assert_eq!(layout_blob(dir, &m.digest), m.bytes, "manifest bytes");
    for c in &m.children {
        assert_eq!(layout_blob(dir, &c.digest), c.bytes, "child manifest bytes");
    }
    for b in m.all_blobs() {
        assert!(
            layout_blob(dir, &b.digest) == b.data,
            "blob {} differs",
            b.digest
        );
    }
}

#[test]
fn skopeo_copies_an_oci_image_in_inspects_lists_copies_back_and_deletes() {
    if !have_tools() {
        return;
    }
    let t = Target::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = image(
        Flavour::Oci,
        "amd64",
        &[
            &[("etc/base.txt", b"the base layer\n")],
            &[("app/hello.txt", b"hello from skopeo\n")],
        ],
        "single",
    );
    let mut src = Layout::new(&tmp.path().join("src"));
    src.add(&img, "v1");

    let out = skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.reference("v1"),
        &t.docker("skopeo/single:v1"),
    ]);
    assert!(out.all().contains("Writing manifest"), "{}", out.all());

    // The manifest comes back byte for byte, by tag and by digest.
    assert_eq!(raw_manifest(&t, "skopeo/single:v1").as_bytes(), img.bytes);
    assert_eq!(
        raw_manifest(&t, &format!("skopeo/single@{}", img.digest)).as_bytes(),
        img.bytes
    );
    let config = skopeo_ok(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &t.docker("skopeo/single:v1"),
    ]);
    assert_eq!(config.stdout.as_bytes(), img.config().data);

    // What `skopeo inspect` tells a user about the image.
    let info = json(
        &skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            &t.docker("skopeo/single:v1"),
        ])
        .stdout,
    );
    assert_eq!(info["Name"], format!("{}/skopeo/single", t.host).as_str());
    assert_eq!(info["Digest"], img.digest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Labels"]["berth.test"], "single");
    assert_eq!(info["RepoTags"], serde_json::json!(["v1"]));
    assert_eq!(info["Layers"], serde_json::json!(img.layer_digests()));
    // Newer skopeo versions also show sizes and media types.
    let layers_data = info["LayersData"].as_array().cloned().unwrap_or_default();
    for (data, layer) in layers_data.iter().zip(img.layers()) {
        assert_eq!(data["Digest"], layer.digest.as_str());
        assert_eq!(data["Size"], layer.data.len() as u64);
        assert_eq!(data["MIMEType"], layer.media_type.as_str());
    }

    // More tags on the same image: the blobs are already there.
    for tag in ["latest", "1.0"] {
        skopeo_ok(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src.reference("v1"),
            &t.docker(&format!("skopeo/single:{tag}")),
        ]);
    }
    let tags = list_tags(&t, "skopeo/single");
    assert_eq!(
        tags["Repository"],
        format!("{}/skopeo/single", t.host).as_str()
    );
    assert_tags(&t, &tags, &["1.0", "latest", "v1"]);

    // Registry to registry, into another repository.
    skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &t.docker("skopeo/single:latest"),
        &t.docker("skopeo/copied:v1"),
    ]);
    assert_eq!(raw_manifest(&t, "skopeo/copied:v1").as_bytes(), img.bytes);

    // Back out into a new OCI layout: same digests, same bytes.
    let back = tmp.path().join("back");
    skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &t.docker("skopeo/single:1.0"),
        &format!("oci:{}:back", back.display()),
    ]);
    assert_layout_holds(&back, "back", &img);

    // Delete by tag: skopeo deletes the manifest, so every tag on it goes.
    skopeo_ok(&[
        "delete",
        "--tls-verify=false",
        &t.docker("skopeo/single:v1"),
    ]);
    for reference in ["skopeo/single:v1", "skopeo/single:latest"] {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &t.docker(reference),
        ]);
        assert!(!out.ok(), "{reference} still there after delete");
        assert!(
            out.stderr.contains("manifest unknown"),
            "inspect {reference} after delete: {}",
            out.stderr
        );
    }
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &t.docker("skopeo/single:1.0"),
        &format!("oci:{}:gone", tmp.path().join("gone").display()),
    ]);
    assert!(!out.ok(), "copy of a deleted image succeeded");
    // The copy in the other repository is untouched.
    assert_eq!(raw_manifest(&t, "skopeo/copied:v1").as_bytes(), img.bytes);
    let again = tmp.path().join("again");
    skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &t.docker("skopeo/copied:v1"),
        &format!("oci:{}:again", again.display()),
    ]);
    assert_layout_holds(&again, "again", &img);
}

#[test]
fn skopeo_copies_a_multi_arch_index_with_all() {
    if !have_tools() {
        return;
    }
    let t = Target::start();
    let tmp = tempfile::tempdir().unwrap();
    let amd64 = small_image(Flavour::Oci, "amd64", "hello amd64\n");
    let arm64 = small_image(Flavour::Oci, "arm64", "hello arm64\n");
    let multi = index(Flavour::Oci, vec![amd64.clone(), arm64.clone()]);
    let mut src = Layout::new(&tmp.path().join("src"));
    src.add(&multi, "multi");

    skopeo_ok(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.reference("multi"),
        &t.docker("skopeo/multi:1.0"),
    ]);

    assert_eq!(raw_manifest(&t, "skopeo/multi:1.0").as_bytes(), multi.bytes);
    for child in [&amd64, &arm64] {
        assert_eq!(
            raw_manifest(&t, &format!("skopeo/multi@{}", child.digest)).as_bytes(),
            child.bytes
        );
    }
    // Non-raw inspect picks the platform asked for.
    for (arch, child) in [("amd64", &amd64), ("arm64", &arm64)] {
        let info = json(
            &skopeo_ok(&[
                "--override-arch",
                arch,
                "--override-os",
                "linux",
                "inspect",
                "--tls-verify=false",
                &t.docker("skopeo/multi:1.0"),
            ])
            .stdout,
        );
        assert_eq!(info["Architecture"], arch);
        assert_eq!(info["Layers"], serde_json::json!(child.layer_digests()));
        assert_eq!(
            info["Labels"]["berth.test"],
            format!("{arch}:hello {arch}\n").as_str()
        );
        assert_eq!(info["RepoTags"], serde_json::json!(["1.0"]));
    }

    // Everything back out, digests preserved.
    let back = tmp.path().join("back");
    skopeo_ok(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &t.docker("skopeo/multi:1.0"),
        &format!("oci:{}:multi", back.display()),
    ]);
    assert_layout_holds(&back, "multi", &multi);

    // Without --all a client takes only its own platform's image.
    let one = tmp.path().join("one");
    skopeo_ok(&[
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &t.docker("skopeo/multi:1.0"),
        &format!("oci:{}:arm", one.display()),
    ]);
    assert_layout_holds(&one, "arm", &arm64);

    // Deleting the index leaves the tag unknown.
    skopeo_ok(&[
        "delete",
        "--tls-verify=false",
        &t.docker("skopeo/multi:1.0"),
    ]);
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &t.docker("skopeo/multi:1.0"),
    ]);
    assert!(
        !out.ok() && out.stderr.contains("manifest unknown"),
        "{}",
        out.all()
    );
}

#[test]
fn skopeo_converts_to_docker_schema2_and_reports_unknown_names() {
    if !have_tools() {
        return;
    }
    let t = Target::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(Flavour::Oci, "amd64", "converted\n");
    let mut src = Layout::new(&tmp.path().join("src"));
    src.add(&img, "v1");

    skopeo_ok(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &src.reference("v1"),
        &t.docker("skopeo/v2s2:v1"),
    ]);
    let raw = raw_manifest(&t, "skopeo/v2s2:v1");
    let m = json(&raw);
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);
    assert_eq!(m["schemaVersion"], 2);
    let info =
        json(&skopeo_ok(&["inspect", "--tls-verify=false", &t.docker("skopeo/v2s2:v1")]).stdout);
    assert_eq!(info["Digest"], support::sha256(raw.as_bytes()).as_str());
    assert_eq!(info["Labels"]["berth.test"], "amd64:converted\n");
    // The layer is the same blob, only the manifest changed.
    assert_eq!(info["Layers"], serde_json::json!(img.layer_digests()));
    let back = tmp.path().join("back");
    skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &t.docker("skopeo/v2s2:v1"),
        &format!("dir:{}", back.display()),
    ]);
    assert_eq!(
        std::fs::read(back.join("manifest.json")).unwrap(),
        raw.as_bytes()
    );

    // Tags come back in lexical order.
    for tag in ["b", "a", "10", "1", "c-1", "C"] {
        skopeo_ok(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &t.docker("skopeo/v2s2:v1"),
            &t.docker(&format!("skopeo/v2s2:{tag}")),
        ]);
    }
    assert_tags(
        &t,
        &list_tags(&t, "skopeo/v2s2"),
        &["1", "10", "C", "a", "b", "c-1", "v1"],
    );

    // What a user sees for names the registry does not have.
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &t.docker("skopeo/v2s2:nope"),
    ]);
    assert!(
        !out.ok() && out.stderr.contains("manifest unknown"),
        "{}",
        out.all()
    );
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &t.docker("skopeo/nothing:v1"),
    ]);
    assert!(!out.ok(), "{}", out.all());
    assert!(
        out.stderr.contains("name unknown") || out.stderr.contains("manifest unknown"),
        "{}",
        out.stderr
    );
    let out = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &t.docker("skopeo/nothing"),
    ]);
    assert!(!out.ok(), "{}", out.all());
    // skopeo 1.9 reports only the status here; newer ones add the error code.
    assert!(
        out.stderr.contains("404") || out.stderr.contains("name unknown"),
        "{}",
        out.stderr
    );
}

#[test]
fn skopeo_copies_run_at_once_all_succeed_with_one_consistent_result() {
    if !have_tools() {
        return;
    }
    let t = Target::start();
    let tmp = tempfile::tempdir().unwrap();
    // Layers big enough for the uploads to overlap in time.
    let big = support::noise(4 << 20, 7);
    let img = image(
        Flavour::Oci,
        "amd64",
        &[&[("big.bin", &big)], &[("small.txt", b"small\n")]],
        "parallel",
    );
    let mut src = Layout::new(&tmp.path().join("src"));
    src.add(&img, "v1");
    let source = src.reference("v1");

    // Three clients push the same image to one tag, three to other names.
    let dests: Vec<String> = (0..6)
        .map(|i| match i {
            0..=2 => t.docker("skopeo/same:v1"),
            _ => t.docker(&format!("skopeo/each{i}:v1")),
        })
        .collect();
    let handles: Vec<_> = dests
        .iter()
        .cloned()
        .map(|dest| {
            let source = source.clone();
            std::thread::spawn(move || {
                skopeo(&[
                    "copy",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    &source,
                    &dest,
                ])
            })
        })
        .collect();
    for (h, dest) in handles.into_iter().zip(&dests) {
        let out = h.join().expect("skopeo thread");
        assert!(out.ok(), "copy to {dest} failed:\n{}", out.all());
    }

    for repo in [
        "skopeo/same",
        "skopeo/each3",
        "skopeo/each4",
        "skopeo/each5",
    ] {
        assert_eq!(
            raw_manifest(&t, &format!("{repo}:v1")).as_bytes(),
            img.bytes
        );
        let out = tmp.path().join(repo.replace('/', "-"));
        skopeo_ok(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &t.docker(&format!("{repo}:v1")),
            &format!("oci:{}:v1", out.display()),
        ]);
        assert_layout_holds(&out, "v1", &img);
    }
}

#[test]
fn skopeo_delete_is_refused_when_delete_is_disabled() {
    if !have_tools() {
        return;
    }
    let t = Target::start_with(false);
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(Flavour::Oci, "amd64", "kept\n");
    let mut src = Layout::new(&tmp.path().join("src"));
    src.add(&img, "v1");
    skopeo_ok(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.reference("v1"),
        &t.docker("skopeo/kept:v1"),
    ]);
    let out = skopeo(&["delete", "--tls-verify=false", &t.docker("skopeo/kept:v1")]);
    assert!(!out.ok(), "delete succeeded with delete disabled");
    // skopeo shows the status and the registry's error body.
    assert!(out.stderr.contains("405"), "{}", out.stderr);
    assert!(out.stderr.contains("UNSUPPORTED"), "{}", out.stderr);
    assert_eq!(raw_manifest(&t, "skopeo/kept:v1").as_bytes(), img.bytes);
}
