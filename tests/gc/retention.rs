//! Garbage collection with retention rules from the config, black-box:
//! which tags are retired, what goes along with them, and bad rules.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use support::gc::*;
use support::{client, noise, sha256, Registry};

/// Retention rules from the config, dry run first.
#[test]
fn retention_rules() {
    let (tmp, root) = tmp_root();
    let c = client();
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        r#"
[[gc.retention]]
repositories = "ret/*"
keep_last = 2
keep_tags = '^v\d+\.\d+\.\d+$'
"#,
    )
    .unwrap();
    let shared = noise(5000, 20);
    let mut own = BTreeMap::new();
    let mut digests = BTreeMap::new();
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        for (i, t) in ["v1.0.0", "t1", "t2", "t3", "t4", "t5"].iter().enumerate() {
            let layer = noise(3000, 100 + i as u64);
            let d = push_image(
                &c,
                &reg.base,
                "ret/app",
                Some(t),
                &[shared.clone(), layer.clone()],
                t,
                None,
            )
            .unwrap();
            push_image(
                &c,
                &reg.base,
                "keep/app",
                Some(t),
                &[layer.clone()],
                t,
                None,
            )
            .unwrap();
            own.insert(t.to_string(), sha256(&layer));
            digests.insert(t.to_string(), d);
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let cfg = config.to_str().unwrap();
    let before = files(&root);
    let dry = gc_json(&root, &[cfg, "--apply-retention", "--dry-run"]);
    assert_eq!(files(&root), before);
    let mut tags: Vec<String> = dry["repositories"][0]["tags_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["t1", "t2", "t3"], "{dry}");
    assert_eq!(dry["repositories"][0]["name"], "ret/app");
    let text = gc(
        &root,
        &["--config", cfg, "--apply-retention", "--dry-run"],
        &[],
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("would remove tag t1"));

    // Without --apply-retention nothing happens.
    assert_eq!(gc_json(&root, &[cfg])["tags_deleted"], 0);

    let report = gc_json(&root, &[cfg, "--apply-retention"]);
    assert_eq!(report["tags_deleted"], 3);
    assert_eq!(deleted_blobs(&report), deleted_blobs(&dry));
    let reg = Registry::start_in(&root, DELETE, &[]);
    let listed: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url("/v2/ret/app/tags/list")).unwrap()).unwrap();
    assert_eq!(listed["tags"], json!(["t4", "t5", "v1.0.0"]));
    for t in ["t4", "t5", "v1.0.0"] {
        assert_eq!(pull(&c, &reg.base, "ret/app", t).unwrap(), digests[t]);
    }
    for t in ["t1", "t2", "t3"] {
        // Untagged by retention, so swept even without --delete-untagged;
        // the same layer stays in keep/app.
        assert_eq!(
            status(
                &c,
                &reg.url(&format!("/v2/ret/app/manifests/{}", digests[t]))
            ),
            404
        );
        assert!(blob_on_disk(&root, &own[t]));
    }
    let listed: Value =
        serde_json::from_slice(&get_ok(&c, &reg.url("/v2/keep/app/tags/list")).unwrap()).unwrap();
    assert_eq!(listed["tags"].as_array().unwrap().len(), 6);
    assert!(blob_on_disk(&root, &sha256(&shared)));
}

/// Retention takes with a tag what only that tag reached: the children of
/// a retired index and the referrers of retired images, even without
/// --delete-untagged; a child another tag still reaches stays.
#[test]
fn retention_takes_index_children_and_referrers_along() {
    let (tmp, root) = tmp_root();
    let c = client();
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[gc.retention]]\nrepositories = \"r/*\"\nkeep_last = 1\n",
    )
    .unwrap();
    let (old_child, shared_child, old_sig, new);
    {
        let reg = Registry::start_in(&root, DELETE, &[]);
        let b = &reg.base;
        old_child = push_image(&c, b, "r/app", None, &[noise(900, 1)], "old", None).unwrap();
        shared_child = push_image(&c, b, "r/app", None, &[noise(900, 2)], "shared", None).unwrap();
        let size = get_ok(&c, &reg.url(&format!("/v2/r/app/manifests/{old_child}")))
            .unwrap()
            .len();
        old_sig = push_image(
            &c,
            b,
            "r/app",
            None,
            &[noise(90, 3)],
            "sig",
            Some((&old_child, size)),
        )
        .unwrap();
        push_index(
            &c,
            b,
            "r/app",
            "old",
            &[old_child.clone(), shared_child.clone()],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        new = push_index(&c, b, "r/app", "new", std::slice::from_ref(&shared_child)).unwrap();
    }
    let report = gc_json(&root, &[config.to_str().unwrap(), "--apply-retention"]);
    assert_eq!(report["tags_deleted"], 1, "{report}");
    let reg = Registry::start_in(&root, DELETE, &[]);
    for gone in [&old_child, &old_sig] {
        assert_eq!(
            status(&c, &reg.url(&format!("/v2/r/app/manifests/{gone}"))),
            404,
            "{gone}"
        );
    }
    assert_eq!(pull(&c, &reg.base, "r/app", "new").unwrap(), new);
    assert_eq!(
        pull(&c, &reg.base, "r/app", &shared_child).unwrap(),
        shared_child
    );
}

/// A bad retention rule is a config error.
#[test]
fn retention_rule_needs_a_limit() {
    let (tmp, root) = tmp_root();
    let config = tmp.path().join("berth.toml");
    std::fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
    std::fs::write(
        &config,
        "[[gc.retention]]\nrepositories = \"*\"\nkeep_tags = \"^v\"\n",
    )
    .unwrap();
    let out = gc(&root, &[config.to_str().unwrap(), "--apply-retention"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep_last or delete_older_than"));
}
