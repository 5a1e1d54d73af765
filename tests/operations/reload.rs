//! SIGHUP: the configuration file (and environment) re-read while serving;
//! what can change at run time is applied from the next request on, what
//! cannot is logged as needing a restart, and a configuration that does
//! not load changes nothing.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;

use crate::support::api::{Api, Resp};
use crate::support::auth::{self, Setup, ALICE};
use crate::support::content::{noise, sha256, OCI_MANIFEST};
use crate::support::harness::{free_port, serve_command, wait_until, Registry};

/// A registry started with a configuration file that the test rewrites.
struct Reloadable {
    api: Api,
    config: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The log lines a reload ends with, one per SIGHUP.
const DONE: [&str; 2] = ["configuration reloaded", "configuration not reloaded"];

impl Reloadable {
    fn start(toml: &str) -> Reloadable {
        Reloadable::start_with(toml, |_| {})
    }

    fn start_with(toml: &str, adjust: impl FnOnce(&mut std::process::Command)) -> Reloadable {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("berth.toml");
        std::fs::write(&config, toml).unwrap();
        let root = tmp.path().join("data");
        let mut cmd = serve_command(&root, &[], &["--config", config.to_str().unwrap()]);
        adjust(&mut cmd);
        let api = Api::on(Registry::spawn(cmd, &root, true));
        Reloadable {
            api,
            config,
            _tmp: tmp,
        }
    }

    /// Rewrites the configuration file with `toml`, sends SIGHUP and waits
    /// for the reload's last log line, which it returns.
    fn reload(&self, toml: &str) -> String {
        std::fs::write(&self.config, toml).unwrap();
        reload(&self.api.reg)
    }

    fn logs(&self) -> String {
        self.api.reg.logs()
    }
}

/// Sends SIGHUP to `reg` and waits (up to 10 s) for the reload's last log line.
fn reload(reg: &Registry) -> String {
    let done = |logs: &str| {
        logs.lines()
            .filter(|l| DONE.iter().any(|d| l.contains(d)))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = done(&reg.logs()).len();
    reg.hangup();
    let mut last = None;
    let finished = wait_until(Duration::from_secs(10), || {
        let lines = done(&reg.logs());
        last = lines.get(before).cloned();
        last.is_some()
    });
    assert!(finished, "no reload logged:\n{}", reg.logs());
    last.unwrap_or_default()
}

fn preflight(api: &Api, origin: &str) -> Resp {
    api.send(
        api.req(Method::OPTIONS, "/v2/")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET"),
    )
}

const OLD_UI: &str = "https://old-ui.example";
const NEW_UI: &str = "https://new-ui.example";

#[test]
fn a_reload_applies_new_http_headers_and_cors_origins() {
    let before = format!(
        "[http.headers]\nX-Before = [\"one\"]\n\n[cors]\nallowed_origins = [\"{OLD_UI}\"]\n"
    );
    let after = format!(
        "[http.headers]\nX-After = [\"two\"]\n\n[cors]\nallowed_origins = [\"{NEW_UI}\"]\n"
    );
    let r = Reloadable::start(&before);
    let resp = r.api.get("/v2/");
    resp.expect(200);
    assert_eq!(resp.header("x-before").as_deref(), Some("one"), "{resp}");
    let p = preflight(&r.api, OLD_UI);
    assert_eq!(
        p.header("access-control-allow-origin").as_deref(),
        Some(OLD_UI),
        "{p}"
    );
    assert_eq!(
        preflight(&r.api, NEW_UI).header("access-control-allow-origin"),
        None
    );

    let line = r.reload(&after);
    assert!(
        line.contains("configuration reloaded") && line.contains("http.headers"),
        "{line}"
    );
    assert!(line.contains("cors"), "{line}");
    let resp = r.api.get("/v2/");
    resp.expect(200);
    assert_eq!(resp.header("x-after").as_deref(), Some("two"), "{resp}");
    assert_eq!(resp.header("x-before"), None, "{resp}");
    let p = preflight(&r.api, NEW_UI);
    assert!(matches!(p.status, 200 | 204), "{p}");
    assert_eq!(
        p.header("access-control-allow-origin").as_deref(),
        Some(NEW_UI),
        "{p}"
    );
    let p = preflight(&r.api, OLD_UI);
    assert_eq!(p.header("access-control-allow-origin"), None, "{p}");
    // Errors carry the new header too (it is added by an outer layer).
    let missing = r.api.get("/v2/nope/manifests/latest");
    missing.expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(missing.header("x-after").as_deref(), Some("two"));
}

const READONLY_ON: &str = "[storage.maintenance.readonly]\nenabled = true\n";

#[test]
fn read_only_mode_is_switched_on_and_off_by_a_reload() {
    let r = Reloadable::start("");
    let (manifest, digest) = r.api.push_oci_image("ro/app", "v1", 3);

    let line = r.reload(READONLY_ON);
    assert!(
        line.contains("storage.maintenance.readonly.enabled"),
        "{line}"
    );
    let refused = r.api.put_manifest("ro/app", "v2", OCI_MANIFEST, &manifest);
    refused.expect_error(405, "UNSUPPORTED");
    assert!(
        refused.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"),
        "{refused}"
    );
    r.api
        .send(r.api.req(Method::POST, "/v2/ro/app/blobs/uploads/"))
        .expect_error(405, "UNSUPPORTED");
    let pulled = r.api.get_manifest("ro/app", "v1");
    pulled.expect(200);
    assert_eq!(pulled.body, manifest);
    assert_eq!(
        pulled.header("docker-content-digest").as_deref(),
        Some(digest.as_str())
    );

    r.reload("");
    r.api
        .put_manifest("ro/app", "v2", OCI_MANIFEST, &manifest)
        .expect(201);
    r.api.get_manifest("ro/app", "v2").expect(200);
}

#[test]
fn a_reloaded_limit_applies_to_the_next_request() {
    let r = Reloadable::start("");
    let manifest = r.api.oci_image("lim/app", 5);
    let three_tags = "/v2/lim/app/manifests/a?tag=b&tag=c";
    let put = |api: &Api| {
        api.send(
            api.req(Method::PUT, three_tags)
                .header("Content-Type", OCI_MANIFEST)
                .body(manifest.clone()),
        )
    };
    put(&r.api).expect(201);

    let first = r.api.start_upload("lim/app");
    r.api.start_upload("lim/app");

    let line = r.reload("[limits]\nmax_tags_per_put = 2\nmax_uploads_per_repository = 1\n");
    assert!(line.contains("limits.max_tags_per_put"), "{line}");
    assert!(line.contains("limits.max_uploads_per_repository"), "{line}");
    let refused = put(&r.api);
    refused.expect_error(400, "TAG_INVALID");
    assert!(
        refused.text().contains("limits.max_tags_per_put"),
        "{refused}"
    );
    // Two sessions are open: a third is over the new cap of one.
    let over = r
        .api
        .send(r.api.req(Method::POST, "/v2/lim/app/blobs/uploads/"));
    over.expect_error(429, "TOOMANYREQUESTS");
    assert!(over.text().contains("limit 1"), "{over}");
    r.api.delete(&first).expect(204);
}

/// Sends bytes that are not HTTP and waits for the answer (or the close).
fn send_garbage(reg: &Registry) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", reg.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

const DEBUG_LINE: &str = "connection ended with an error";

#[test]
fn a_reloaded_log_level_takes_effect_without_a_restart() {
    // `RUST_LOG` would decide over `log.level`: the test's harness sets it.
    let r = Reloadable::start_with("[log]\nlevel = \"info\"\n", |cmd| {
        cmd.env_remove("RUST_LOG");
    });
    send_garbage(&r.api.reg);
    r.api.get("/v2/").expect(200);
    // The request above is logged (info) after the garbage was handled.
    assert!(
        wait_until(Duration::from_secs(5), || r.logs().contains("status=200")),
        "{}",
        r.logs()
    );
    assert!(!r.logs().contains(DEBUG_LINE), "{}", r.logs());

    let line = r.reload("[log]\nlevel = \"debug\"\n");
    assert!(line.contains("log.level"), "{line}");
    send_garbage(&r.api.reg);
    assert!(
        wait_until(Duration::from_secs(5), || r.logs().contains(DEBUG_LINE)),
        "no debug line after the reload:\n{}",
        r.logs()
    );

    // And back down to warn: requests are no longer logged.
    r.reload("[log]\nlevel = \"warn\"\n");
    let logged = r.logs().matches("status=").count();
    r.api.get("/v2/").expect(200);
    r.api.get("/v2/_catalog").expect(200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(r.logs().matches("status=").count(), logged, "{}", r.logs());
}

#[test]
fn an_invalid_configuration_on_reload_is_logged_and_changes_nothing() {
    let r = Reloadable::start("[http.headers]\nX-Before = [\"one\"]\n");
    // A valid header change next to an invalid limit: neither is applied.
    let line = r.reload("[http.headers]\nX-After = [\"two\"]\n\n[limits]\nmax_tags_per_put = 0\n");
    assert!(line.contains("configuration not reloaded"), "{line}");
    assert!(line.contains("limits.max_tags_per_put"), "{line}");
    let resp = r.api.get("/v2/");
    resp.expect(200);
    assert_eq!(resp.header("x-before").as_deref(), Some("one"), "{resp}");
    assert_eq!(resp.header("x-after"), None, "{resp}");

    // Not TOML at all, and an unknown key: the same.
    for (bad, named) in [("[http\nX = 1", "TOML"), ("[http]\nbogus = 1\n", "bogus")] {
        let line = r.reload(bad);
        assert!(line.contains("configuration not reloaded"), "{line}");
        if named != "TOML" {
            assert!(line.contains(named), "{line}");
        }
        let resp = r.api.get("/v2/");
        assert_eq!(resp.header("x-before").as_deref(), Some("one"), "{resp}");
    }
    // A value the configuration accepts but the headers layer cannot send
    // is refused at the same place as at start-up.
    let line = r.reload("[http.headers]\nX-Bad = [\"a\\u0001b\"]\n");
    assert!(line.contains("configuration not reloaded"), "{line}");
    assert!(line.contains("X-Bad"), "{line}");
    assert_eq!(r.api.get("/v2/").header("x-before").as_deref(), Some("one"));
}

#[test]
fn a_changed_listen_address_is_reported_and_the_old_one_keeps_serving() {
    let (old, new) = (free_port(), free_port());
    let config = |port: u16| format!("[http]\naddr = \"127.0.0.1:{port}\"\n");
    let r = Reloadable::start_with(&config(old), |cmd| {
        cmd.env_remove("REGISTRY_HTTP_ADDR");
    });
    assert_eq!(r.api.reg.port, old);
    let line = r.reload(&format!(
        "{}\n[storage.delete]\nenabled = true\n",
        config(new)
    ));
    assert!(line.contains("configuration reloaded"), "{line}");
    let logs = r.logs();
    for key in ["http.addr", "storage.delete.enabled"] {
        assert!(
            logs.contains(&format!(
                "{key} changed in the configuration; needs a restart to take effect"
            )),
            "{logs}"
        );
        assert!(line.contains(key), "{line}");
    }
    r.api.get("/v2/").expect(200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", new)).is_err(),
        "nothing should listen on the new address"
    );
    // Delete stays off, as started.
    let (_, digest) = r.api.push_oci_image("addr/app", "v1", 9);
    r.api
        .delete(&format!("/v2/addr/app/manifests/{digest}"))
        .expect_error(405, "UNSUPPORTED");
}

#[test]
fn a_pull_streaming_across_a_reload_completes_with_the_right_bytes() {
    let r = Reloadable::start("");
    let blob = noise(48 << 20, 17);
    let digest = r.api.push_blob("big/app", &blob);
    let mut resp = r
        .api
        .c
        .get(r.api.url(&format!("/v2/big/app/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = vec![0u8; 1 << 20];
    resp.read_exact(&mut got).unwrap();
    // Read-only and new headers while the blob is streaming.
    let line = r.reload(&format!(
        "{READONLY_ON}\n[http.headers]\nX-After = [\"two\"]\n"
    ));
    assert!(line.contains("configuration reloaded"), "{line}");
    resp.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), blob.len());
    assert_eq!(sha256(&got), digest);
    assert_eq!(r.api.get("/v2/").header("x-after").as_deref(), Some("two"));
}

const ACCESS_BEFORE: &str = "[access]\n\n[[access.rules]]\nrepositories = [\"team-a/*\"]\nusers = [\"alice\"]\nactions = [\"pull\", \"push\"]\n";
const ACCESS_AFTER: &str = "[access.groups]\nteam-b = [\"alice\"]\n\n[[access.rules]]\nrepositories = [\"team-b/*\"]\ngroups = [\"team-b\"]\nactions = [\"pull\", \"push\"]\n";

#[test]
fn reloaded_access_rules_and_groups_decide_the_next_request() {
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start(ACCESS_BEFORE);
    auth::push_image(&reg, "team-a/app", "v1", ALICE);
    let denied = auth::post_blob(&reg.base, "team-b/app", b"x", ALICE);
    auth::expect_error(denied, 403, "DENIED");

    s.config(ACCESS_AFTER);
    let line = reload(&reg);
    assert!(line.contains("access"), "{line}");
    auth::push_image(&reg, "team-b/app", "v1", ALICE);
    let r = auth::get(&reg, "/v2/team-a/app/manifests/v1", ALICE);
    auth::expect_error(r, 403, "DENIED");
}

#[test]
fn a_reloaded_header_timeout_applies_to_new_connections() {
    let r = Reloadable::start("");
    let line = r.reload("[limits]\nheader_read_timeout = \"1s\"\n");
    assert!(line.contains("limits.header_read_timeout"), "{line}");
    // Half a request header, then nothing: closed after about 1s, not the
    // 10s it started with.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", r.api.reg.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = std::time::Instant::now();
    let mut sink = Vec::new();
    let read = s.read_to_end(&mut sink);
    assert!(read.is_ok(), "not closed within 5s: {read:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

const GC: &str = "[gc]\nenabled = true\ninterval = \"300ms\"\ngrace_period = \"1s\"\n";

fn collections(r: &Reloadable) -> usize {
    r.logs().matches("garbage collection: reclaimed").count()
}

#[test]
fn a_reload_stops_the_collector_in_read_only_mode_and_applies_new_retention_rules() {
    let r = Reloadable::start(GC);
    for (i, tag) in ["v1", "v2", "v3"].iter().enumerate() {
        r.api.push_oci_image("keep/app", tag, 20 + i as u64);
    }
    assert!(
        wait_until(Duration::from_secs(10), || collections(&r) >= 2),
        "{}",
        r.logs()
    );

    // Read-only: no more runs (one in progress may still finish).
    let line = r.reload(&format!("{GC}\n{READONLY_ON}"));
    assert!(
        line.contains("storage.maintenance.readonly.enabled"),
        "{line}"
    );
    assert!(
        r.logs().contains("the online collector stops"),
        "{}",
        r.logs()
    );
    std::thread::sleep(Duration::from_millis(500));
    let stopped_at = collections(&r);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(collections(&r), stopped_at, "{}", r.logs());
    let tags = r.api.get("/v2/keep/app/tags/list").expect(200).json();
    assert_eq!(tags["tags"].as_array().map(Vec::len), Some(3), "{tags}");

    // Writable again with a retention rule: the collector runs it.
    let retention = format!("{GC}\n[[gc.retention]]\nrepositories = \"keep/**\"\nkeep_last = 1\n");
    let line = r.reload(&retention);
    assert!(line.contains("gc.retention"), "{line}");
    assert!(
        wait_until(Duration::from_secs(15), || {
            let tags = r.api.get("/v2/keep/app/tags/list").json();
            tags["tags"].as_array().map(Vec::len) == Some(1)
        }),
        "{}",
        r.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || collections(&r) > stopped_at),
        "{}",
        r.logs()
    );
}
