//! Black-box tests of repository names: the grammar, names at its edges,
//! names of many components and names that look like endpoints, and path
//! traversal that must not leave the data dir, against the real binary.

use crate::support;

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

#[test]
fn invalid_repository_names_are_400_name_invalid() {
    let api = Api::start();
    let too_long = format!("{}/{}", "a".repeat(200), "b".repeat(55)); // 256
    let names = [
        "Upper",
        "lib/Upper",
        "lib/-dash",
        "lib/dash-",
        "lib/_under",
        "lib/a..b",
        "lib/.hidden",
        too_long.as_str(),
    ];
    for name in names {
        api.get(&format!("/v2/{name}/tags/list"))
            .expect_error(400, "NAME_INVALID");
        api.get_manifest(name, "latest")
            .expect_error(400, "NAME_INVALID");
        api.send(api.req(Method::POST, &format!("/v2/{name}/blobs/uploads/")))
            .expect_error(400, "NAME_INVALID");
        api.get(&format!("/v2/{name}/blobs/{}", sha256(b"x")))
            .expect_error(400, "NAME_INVALID");
    }
    // Paths an URL library would normalise are sent raw.
    for target in [
        "/v2/lib/../etc/tags/list",
        "/v2/../tags/list",
        "/v2/lib/%2e%2e/etc/tags/list",
        "/v2/lib/%2E%2E/etc/tags/list",
        "/v2/lib//etc/tags/list",
        "/v2//lib/tags/list",
        "/v2/lib/./etc/tags/list",
        "/v2/lib/%41bc/tags/list",
    ] {
        let r = raw(&api.reg, "GET", target, &[], b"");
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(
            r.error_codes().iter().any(|c| c == "NAME_INVALID"),
            "{target}: want NAME_INVALID: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
}

#[test]
fn valid_repository_names_at_the_edges_work() {
    let api = Api::start();
    let longest = format!("{}/{}", "a".repeat(200), "b".repeat(54)); // 255
    assert_eq!(longest.len(), 255);
    for name in [
        longest.as_str(),
        "a",
        "a--b",
        "a__b",
        "a.b_c-d/e0/9z",
        "0/1/2/3/4/5/6/7/8/9",
    ] {
        api.get(&format!("/v2/{name}/tags/list"))
            .expect_error(404, "NAME_UNKNOWN");
        let (m, _) = api.push_oci_image(name, "v1", 300);
        assert_eq!(api.get_manifest(name, "v1").expect(200).body, m, "{name}");
        let r = api.get(&format!("/v2/{name}/tags/list"));
        assert_eq!(r.expect(200).json()["name"], name);
    }
}

/// Every file under `dir` except those under `except`.
fn files_outside(dir: &Path, except: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.starts_with(except) {
            continue;
        }
        out.push(p.clone());
        if p.is_dir() {
            files_outside(&p, except, out);
        }
    }
}

#[test]
fn path_traversal_cannot_read_or_write_outside_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("data");
    let secret_path = tmp.path().join("secret");
    let secret = b"top secret, outside the data dir".to_vec();
    std::fs::write(&secret_path, &secret).unwrap();
    let sd = sha256(&secret);
    let hex = &sd[7..];
    let api = Api::on(Registry::start_in(
        &root,
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
        &[],
    ));
    api.push_oci_image("lib/x", "v1", 400);
    let loc = api.start_upload("lib/x");

    let up = "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..";
    let dots = "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e";
    let reads = [
        format!("/v2/lib/x/blobs/sha256:{up}%2Fsecret"),
        format!("/v2/lib/x/blobs/sha256:..%2F..%2F{hex}"),
        "/v2/lib/x/blobs/..%2F..%2F..%2F..%2Fsecret".to_string(),
        format!("/v2/{dots}/blobs/{sd}"),
        format!("/v2/../../../../../../../blobs/{sd}"),
        format!("/v2/lib/x/manifests/{up}%2Fsecret"),
        "/v2/lib/x/manifests/..".to_string(),
        format!("/v2/{dots}/manifests/v1"),
        format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
        "/v2/lib/x/blobs/uploads/../../../../../../secret".to_string(),
        format!("/v2/{dots}/tags/list"),
        format!("/v2/lib/x/referrers/sha256:{up}%2Fsecret"),
    ];
    for target in &reads {
        for method in ["GET", "HEAD"] {
            let r = raw(&api.reg, method, target, &[], b"");
            assert!(
                (400..500).contains(&r.status),
                "{method} {target}: want a 4xx, got {} {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            assert!(
                !String::from_utf8_lossy(&r.body).contains("top secret"),
                "{method} {target} leaked the secret"
            );
        }
    }

    let manifest = api.oci_image("lib/x", 401);
    let ct = ("Content-Type", OCI_MANIFEST);
    let oct = ("Content-Type", "application/octet-stream");
    type Write<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let writes: Vec<Write> = vec![
        (
            "POST",
            format!("/v2/{dots}/evil/blobs/uploads/"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/{dots}/evil/blobs/uploads/?digest={}", sha256(b"evil")),
            vec![oct],
            b"evil".to_vec(),
        ),
        (
            "PUT",
            format!("/v2/{dots}/evil/manifests/v1"),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            "/v2/../../../../../../evil/manifests/v1".into(),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            format!("/v2/lib/x/manifests/{up}%2Fevil"),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PUT",
            "/v2/lib/x/manifests/..".into(),
            vec![ct],
            manifest.clone(),
        ),
        (
            "PATCH",
            format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
            vec![oct],
            b"pwned".to_vec(),
        ),
        (
            "PUT",
            format!(
                "/v2/lib/x/blobs/uploads/{up}%2Fsecret?digest={}",
                sha256(b"pwned")
            ),
            vec![oct],
            b"pwned".to_vec(),
        ),
        (
            "DELETE",
            format!("/v2/lib/x/blobs/uploads/{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            format!("/v2/lib/x/blobs/sha256:{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            format!("/v2/lib/x/manifests/{up}%2Fsecret"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/lib/y/blobs/uploads/?mount={sd}&from={dots}"),
            vec![],
            vec![],
        ),
        (
            "POST",
            format!("/v2/lib/y/blobs/uploads/?mount=sha256:{up}%2Fsecret&from=lib/x"),
            vec![],
            vec![],
        ),
    ];
    for (method, target, headers, body) in &writes {
        let r = raw(&api.reg, method, target, headers, body);
        let ok_mount_fallback = *method == "POST" && target.contains("mount=") && r.status == 202;
        assert!(
            (400..500).contains(&r.status) || ok_mount_fallback,
            "{method} {target}: want a 4xx, got {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    // An upload started normally cannot be finished into a traversal digest.
    let r = api.close_upload(&loc, &format!("sha256:{up}%2Fevil"), b"evil");
    assert!((400..500).contains(&r.status), "{r}");

    assert_eq!(
        std::fs::read(&secret_path).unwrap(),
        secret,
        "the secret was modified"
    );
    let mut outside = vec![];
    files_outside(tmp.path(), &root, &mut outside);
    assert_eq!(
        outside,
        [secret_path],
        "files appeared outside the data dir"
    );
    assert!(!tmp.path().parent().unwrap().join("evil").exists());
    // The mount-from-traversal fallback did not mount the secret.
    api.get(&format!("/v2/lib/y/blobs/{sd}")).expect(404);
}

#[test]
fn multi_component_names_work_end_to_end() {
    let api = Api::start();
    let repo = "team/app/web";
    // Chunked blob upload.
    let layer = noise(5000, 700);
    let ld = sha256(&layer);
    let loc = api.start_upload(repo);
    let r = api.patch(&loc, &layer[..2500], Some((0, 2499)));
    r.expect(202);
    api.close_upload(&r.must_header("location"), &ld, &layer[2500..])
        .expect(201);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = api.push_blob(repo, config);
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": ld, "size": layer.len()}]
    }))
    .unwrap();
    let md = api.push_manifest(repo, "v1", OCI_MANIFEST, &m);
    assert_eq!(api.get_manifest(repo, "v1").expect(200).body, m);
    assert_eq!(api.get_manifest(repo, &md).expect(200).body, m);
    assert_eq!(
        api.get(&format!("/v2/{repo}/blobs/{ld}")).expect(200).body,
        layer
    );
    let t = api.get(&format!("/v2/{repo}/tags/list"));
    let v = t.expect(200).json();
    assert_eq!(v["name"], repo);
    assert_eq!(string_list(&v, "tags"), ["v1"]);

    // Mount into a sibling, then push the same manifest there.
    for d in [&ld, &cd] {
        api.send(api.req(
            Method::POST,
            &format!("/v2/team/app/api/blobs/uploads/?mount={d}&from={repo}"),
        ))
        .expect(201);
    }
    api.push_manifest("team/app/api", "v1", OCI_MANIFEST, &m);

    let cat = api.get("/v2/_catalog");
    assert_eq!(
        string_list(&cat.expect(200).json(), "repositories"),
        ["team/app/api", "team/app/web"]
    );

    // Referrers on a deep name.
    let sig = api.artifact(repo, SIG, Some((&md, m.len())), json!({"deep": "yes"}));
    api.push_manifest(repo, &sha256(&sig), OCI_MANIFEST, &sig);
    let (_, found) = referrers(&api, repo, &md, "");
    assert_descriptor(
        &found,
        &sig,
        OCI_MANIFEST,
        Some(SIG),
        json!({"deep": "yes"}),
    );

    // Delete.
    api.delete(&format!("/v2/{repo}/manifests/{md}"))
        .expect(202);
    api.get_manifest(repo, "v1")
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(api.get_manifest("team/app/api", "v1").expect(200).body, m);
    api.delete(&format!("/v2/{repo}/blobs/{ld}")).expect(202);
    api.get(&format!("/v2/{repo}/blobs/{ld}"))
        .expect_error(404, "BLOB_UNKNOWN");
    assert_eq!(
        api.get(&format!("/v2/team/app/api/blobs/{ld}"))
            .expect(200)
            .body,
        layer
    );
}

#[test]
fn repository_names_that_look_like_endpoints_route_correctly() {
    let api = Api::start();
    let names = [
        "lib/blobs",
        "lib/blobs/uploads",
        "lib/manifests",
        "lib/manifests/latest",
        "lib/tags",
        "lib/tags/list",
        "lib/referrers",
        "v2",
    ];
    for (i, name) in names.iter().enumerate() {
        let (m, d) = api.push_oci_image(name, "latest", 800 + i as u64);
        assert_eq!(
            api.get_manifest(name, "latest").expect(200).body,
            m,
            "{name}"
        );
        assert_eq!(api.get_manifest(name, &d).expect(200).body, m, "{name}");
        let v: Value = serde_json::from_slice(&m).unwrap();
        let layer = v["layers"][0]["digest"].as_str().unwrap();
        api.get(&format!("/v2/{name}/blobs/{layer}")).expect(200);
        let t = api.get(&format!("/v2/{name}/tags/list"));
        let tv = t.expect(200).json();
        assert_eq!(tv["name"], *name);
        assert_eq!(string_list(&tv, "tags"), ["latest"]);
        let (_, found) = referrers(&api, name, &d, "");
        assert!(found.is_empty());
    }
    let cat = api.get("/v2/_catalog");
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    assert_eq!(string_list(&cat.expect(200).json(), "repositories"), want);
    // "lib" itself was never pushed: it is only a prefix of other names.
    api.get("/v2/lib/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
}
