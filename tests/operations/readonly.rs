//! `storage.maintenance.readonly.enabled`: every read is served, every write
//! answers 405 UNSUPPORTED saying the registry is read-only.

use reqwest::Method;

use crate::support::api::{Api, Resp};
use crate::support::content::{sha256, OCI_MANIFEST};
use crate::support::harness::{serve_command, Registry};

const READONLY: &str = "the registry is in read-only mode (storage.maintenance.readonly.enabled)";

fn expect_readonly(r: &Resp) {
    r.expect_error(405, "UNSUPPORTED");
    assert_eq!(r.json()["errors"][0]["message"], READONLY, "{r}");
}

#[test]
fn a_read_only_registry_serves_every_read_and_refuses_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    // A normal server pushes an image and leaves an upload open.
    let (manifest, digest, layer, upload) = {
        let api = Api::on(Registry::start_in(
            &root,
            &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
            &[],
        ));
        let (manifest, digest) = api.push_oci_image("ro/app", "v1", 7);
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
        let upload = api.start_upload("ro/app");
        (manifest, digest, layer, upload)
    };
    let cmd = serve_command(
        &root,
        &[
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true"),
            ("REGISTRY_GC_ENABLED", "true"),
        ],
        &[],
    );
    let api = Api::on(Registry::spawn(cmd, &root, true));
    // The online collector, though enabled, does not run.
    assert!(
        api.reg.logs().contains("the online collector does not run"),
        "{}",
        api.reg.logs()
    );

    // Every read.
    api.get("/v2/").expect(200);
    assert_eq!(
        api.get("/v2/_catalog").expect(200).json()["repositories"][0],
        "ro/app"
    );
    assert_eq!(
        api.get("/v2/ro/app/tags/list").expect(200).json()["tags"][0],
        "v1"
    );
    let r = api.get_manifest("ro/app", "v1");
    r.expect(200);
    assert_eq!(r.body, manifest);
    assert_eq!(r.must_header("docker-content-digest"), digest);
    api.get_manifest("ro/app", &digest).expect(200);
    api.head_manifest("ro/app", "v1").expect(200);
    let r = api.get(&format!("/v2/ro/app/blobs/{layer}"));
    r.expect(200);
    assert_eq!(sha256(&r.body), layer);
    api.head(&format!("/v2/ro/app/blobs/{layer}")).expect(200);
    api.get(&format!("/v2/ro/app/referrers/{digest}"))
        .expect(200);
    api.get(&upload).expect(204);

    // Every write.
    let post = |path: &str| api.send(api.req(Method::POST, path).header("Content-Length", "0"));
    expect_readonly(&post("/v2/ro/app/blobs/uploads/"));
    expect_readonly(&post(&format!(
        "/v2/ro/other/blobs/uploads/?mount={layer}&from=ro/app"
    )));
    let data = b"monolithic";
    expect_readonly(
        &api.send(
            api.req(
                Method::POST,
                &format!("/v2/ro/app/blobs/uploads/?digest={}", sha256(data)),
            )
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec()),
        ),
    );
    expect_readonly(&api.patch(&upload, b"chunk", None));
    expect_readonly(&api.close_upload(&upload, &sha256(data), data));
    expect_readonly(&api.delete(&upload));
    expect_readonly(&api.put_manifest("ro/app", "v2", OCI_MANIFEST, &manifest));
    expect_readonly(&api.delete(&format!("/v2/ro/app/manifests/{digest}")));
    expect_readonly(&api.delete(&format!("/v2/ro/app/blobs/{layer}")));

    // Nothing changed: the upload is still open, the image still whole.
    api.get(&upload).expect(204);
    api.get_manifest("ro/app", "v1").expect(200);
    api.get(&format!("/v2/ro/app/blobs/{layer}")).expect(200);
    api.get_manifest("ro/app", "v2")
        .expect_error(404, "MANIFEST_UNKNOWN");
    api.get(&format!("/v2/ro/other/blobs/{layer}"))
        .expect_error(404, "BLOB_UNKNOWN");
}
