//! `/metrics` on the debug listener (`http.debug.addr`,
//! `http.debug.prometheus.*`): registry:2's HTTP metrics with its names and
//! labels, and Berth's own, read by parsing the Prometheus text format.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;

use crate::support::api::Api;
use crate::support::auth::Setup;
use crate::support::content::noise;
use crate::support::harness::{serve_command, wait_until, Registry};
use crate::support::http::client;

/// One sample of a scrape: `name{labels} value`.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug)]
pub struct Scrape(pub Vec<Sample>);

/// Parses the Prometheus text exposition format (comments skipped).
pub fn parse(text: &str) -> Scrape {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = line[..name_end].to_string();
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut end = None;
            loop {
                // key
                let mut key = String::new();
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            end = Some(i);
                            break;
                        }
                        ',' => continue,
                        c => key.push(c),
                    }
                }
                if end.is_some() {
                    break;
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "label value in {line}"
                );
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("bad escape in {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key.trim().to_string(), value);
                if let Some((_, ',')) = chars.peek() {
                    chars.next();
                }
                if let Some(&(i, '}')) = chars.peek() {
                    end = Some(i);
                    break;
                }
            }
            rest = &r[end.expect("closing brace") + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    Scrape(out)
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`
    /// (0 when there is none: a counter not yet moved).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }

    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
}

/// GETs `url`: status and body.
pub fn get(url: &str) -> (u16, String) {
    let r = client()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Starts the real binary on `root` with the debug listener on a free port
/// (and `env` on top), keeping its log.
pub fn start_with_debug(root: &Path, env: &[(&str, &str)]) -> Registry {
    let mut all = vec![("REGISTRY_HTTP_DEBUG_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(env);
    Registry::spawn(serve_command(root, &all, &[]), root, true)
}

const PROMETHEUS: [(&str, &str); 2] = [
    ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
    ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
];

fn scrape(reg: &Registry) -> Scrape {
    let (status, body) = get(&format!("{}/metrics", reg.debug_base()));
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

/// Scrapes until `done` holds (a request counts once its response body is
/// done, a moment after the client has it), at most 5 s.
fn scrape_until(reg: &Registry, mut done: impl FnMut(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    wait_until(Duration::from_secs(5), || {
        let s = scrape(reg);
        let ok = done(&s);
        last = Some(s);
        ok
    });
    last.expect("scraped")
}

/// The start-up count of the blob store is done.
fn counted(reg: &Registry) -> Scrape {
    scrape_until(reg, |s| s.value("berth_storage_counted", &[]) == 1.0)
}

const REQS: &str = "registry_http_requests_total";

#[test]
fn registry2_http_metrics_count_a_push_and_a_pull_by_handler_code_and_method() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let api = Api::on(start_with_debug(&root, &PROMETHEUS));
    let before = counted(&api.reg);

    // A push: two blobs (POST + PUT each) and a manifest; then a pull.
    let (manifest, digest) = api.push_oci_image("metrics/app", "v1", 11);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let layer_size = m["layers"][0]["size"].as_u64().unwrap();
    let config_size = m["config"]["size"].as_u64().unwrap();
    api.get_manifest("metrics/app", "v1").expect(200);
    let blob = api.get(&format!("/v2/metrics/app/blobs/{layer}"));
    blob.expect(200);
    assert_eq!(blob.body.len() as u64, layer_size);
    api.get_manifest("metrics/app", "missing").expect(404);
    api.get("/v2/").expect(200);
    api.get("/v2/metrics/app/tags/list").expect(200);

    let after = scrape_until(&api.reg, |s| {
        s.value(REQS, &[("handler", "tags")]) >= 1.0
            && s.value(REQS, &[("handler", "blob"), ("method", "get")]) >= 1.0
    });
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let reqs = |code: &str, handler: &str, method: &str| {
        delta(
            REQS,
            &[("code", code), ("handler", handler), ("method", method)],
        )
    };
    // registry:2's handler names and lower-case methods.
    assert_eq!(reqs("202", "blob_upload", "post"), 2.0, "{after:#?}");
    assert_eq!(reqs("201", "blob_upload_chunk", "put"), 2.0);
    assert_eq!(reqs("201", "manifest", "put"), 1.0);
    assert_eq!(reqs("200", "manifest", "get"), 1.0);
    assert_eq!(reqs("404", "manifest", "get"), 1.0);
    assert_eq!(reqs("200", "blob", "get"), 1.0);
    assert_eq!(reqs("200", "base", "get"), 1.0);
    assert_eq!(reqs("200", "tags", "get"), 1.0);
    // The latency histogram counts the same requests, with registry:2's buckets.
    let dur = "registry_http_request_duration_seconds";
    let count = |h: &str, m: &str| delta(&format!("{dur}_count"), &[("handler", h), ("method", m)]);
    assert_eq!(count("manifest", "get"), 2.0);
    assert_eq!(count("blob_upload_chunk", "put"), 2.0);
    let bucket = format!("{dur}_bucket");
    let buckets: Vec<&str> = after
        .find(&bucket, &[("handler", "base"), ("method", "get")])
        .map(|s| s.labels["le"].as_str())
        .collect();
    for le in ["0.005", "0.1", "2.5", "25", "60", "+Inf"] {
        assert!(buckets.contains(&le), "no bucket le={le}: {buckets:?}");
    }
    // Sizes: the bytes really streamed.
    assert_eq!(
        delta(
            "registry_http_response_size_bytes_sum",
            &[("handler", "blob")]
        ),
        layer_size as f64
    );
    assert_eq!(
        delta(
            "registry_http_request_size_bytes_sum",
            &[("handler", "blob_upload_chunk")]
        ),
        (layer_size + config_size) as f64
    );
    assert_eq!(
        delta(
            "berth_http_received_bytes_total",
            &[("handler", "blob_upload_chunk")]
        ),
        (layer_size + config_size) as f64
    );
    assert_eq!(
        delta(
            "berth_http_received_bytes_total",
            &[("handler", "manifest")]
        ),
        manifest.len() as f64
    );
    assert_eq!(
        delta("berth_http_sent_bytes_total", &[("handler", "blob")]),
        layer_size as f64
    );
    // Nothing in flight any more; the handlers' gauges exist.
    assert!(after.has("registry_http_in_flight_requests"));
    assert_eq!(
        after.value("registry_http_in_flight_requests", &[("handler", "blob")]),
        0.0
    );
    // Three blobs stored: config, layer, manifest.
    assert_eq!(delta("berth_storage_blobs", &[]), 3.0);
    assert_eq!(
        delta("berth_storage_blob_bytes", &[]),
        (layer_size + config_size + manifest.len() as u64) as f64
    );
    assert_eq!(
        after.value(
            "berth_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let _ = digest;
}

#[test]
fn bytes_sent_for_a_multi_window_blob_and_a_range_are_counted_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let api = Api::on(start_with_debug(&root, &PROMETHEUS));
    let size = (9 << 20) + 7; // three 4 MiB windows, the last one partial
    let data = noise(size, 77);
    let d = api.push_blob("metrics/big", &data);
    let before = counted(&api.reg);
    let path = format!("/v2/metrics/big/blobs/{d}");
    let r = api.get(&path);
    r.expect(200);
    assert!(r.body == data);
    let r = api.send(
        api.req(Method::GET, &path)
            .header("Range", "bytes=4194303-8388609"),
    );
    r.expect(206);
    assert_eq!(r.body.len(), 4_194_307);
    let after = scrape_until(&api.reg, |s| {
        s.value(REQS, &[("handler", "blob"), ("method", "get")])
            - before.value(REQS, &[("handler", "blob"), ("method", "get")])
            >= 2.0
    });
    let delta = |name: &str| {
        after.value(name, &[("handler", "blob")]) - before.value(name, &[("handler", "blob")])
    };
    let sent = (size + 4_194_307) as f64;
    assert_eq!(delta("berth_http_sent_bytes_total"), sent);
    assert_eq!(delta("registry_http_response_size_bytes_sum"), sent);
}

#[test]
fn an_upload_in_progress_is_counted_until_it_is_finished_or_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let api = Api::on(start_with_debug(&root, &PROMETHEUS));
    let open = |api: &Api| scrape(&api.reg).value("berth_uploads_in_progress", &[]);
    assert_eq!(open(&api), 0.0);
    let a = api.start_upload("metrics/up");
    let _b = api.start_upload("metrics/up");
    assert_eq!(open(&api), 2.0);
    api.send(api.req(Method::DELETE, &a)).expect(204);
    assert_eq!(open(&api), 1.0);
}

#[test]
fn the_start_up_count_sees_blobs_stored_before_and_gc_moves_the_gauges_down() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let garbage = noise(5000, 77);
    {
        // A blob no manifest references, pushed by an earlier run.
        let api = Api::on(Registry::start_in(&root, &[], &[]));
        api.push_blob("metrics/gc", &garbage);
    }
    std::thread::sleep(Duration::from_millis(1200)); // older than the grace period
    let mut env = PROMETHEUS.to_vec();
    env.extend([
        ("REGISTRY_GC_ENABLED", "true"),
        ("REGISTRY_GC_INTERVAL", "300ms"),
        ("REGISTRY_GC_GRACE_PERIOD", "1s"),
    ]);
    let reg = start_with_debug(&root, &env);
    let s = scrape_until(&reg, |s| {
        s.value("berth_gc_runs_total", &[("result", "ok")]) >= 1.0
    });
    assert_eq!(s.value("berth_storage_counted", &[]), 1.0, "{s:#?}");
    assert_eq!(
        s.value("berth_gc_deleted_total", &[("kind", "blob")]),
        1.0,
        "{s:#?}"
    );
    assert_eq!(
        s.value("berth_gc_freed_bytes_total", &[]),
        garbage.len() as f64
    );
    // Counted at start-up (1 blob), then removed by the collection.
    assert_eq!(s.value("berth_storage_blobs", &[]), 0.0, "{s:#?}");
    assert_eq!(s.value("berth_storage_blob_bytes", &[]), 0.0);
}

#[test]
fn failed_logins_and_a_lockout_are_counted() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let config = setup.config(
        "[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n\
         [http.debug]\naddr = \"127.0.0.1:0\"\n[http.debug.prometheus]\nenabled = true\n",
    );
    let reg = setup.start_cmd(setup.command(Some(&config), &[]));
    let c = client();
    let login = |user: &str, password: &str| {
        c.get(reg.url("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login("alice", "alice-secret"), 200);
    assert_eq!(login("alice", "alice-secret"), 200); // from the cache
    assert_eq!(login("alice", "wrong-1"), 401);
    assert_eq!(login("nobody", "wrong-2"), 401);
    assert_eq!(login("alice", "wrong-3"), 401); // the third failure locks
    assert_eq!(login("alice", "wrong-4"), 429);
    let s = scrape_until(&reg, |s| s.value(REQS, &[("code", "429")]) >= 1.0);
    let failures = |reason: &str| s.value("berth_auth_failures_total", &[("reason", reason)]);
    assert_eq!(failures("wrong_password"), 2.0, "{s:#?}");
    assert_eq!(failures("unknown_user"), 1.0);
    assert_eq!(failures("locked_out"), 1.0);
    assert_eq!(s.value("berth_auth_lockouts_total", &[]), 1.0);
    assert!(
        s.value("berth_auth_password_cache_hits_total", &[]) >= 1.0,
        "{s:#?}"
    );
    assert!(s.value("berth_auth_password_cache_misses_total", &[]) >= 1.0);
    // The 401s are counted under the handler they were for.
    assert_eq!(
        s.value(
            REQS,
            &[("code", "401"), ("handler", "base"), ("method", "get")]
        ),
        3.0
    );
}

#[test]
fn the_debug_listener_is_off_by_default_and_the_main_listener_serves_no_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reg = Registry::spawn(serve_command(&root, &[], &[]), &root, true);
    assert!(!reg.logs().contains("debug endpoints at"), "{}", reg.logs());
    for path in ["/metrics", "/debug/health", "/healthz", "/readyz"] {
        let (status, _) = get(&reg.url(path));
        assert_eq!(status, 404, "{path} on the main listener");
    }
    // With the debug listener on, still nothing of it on the main one.
    let tmp2 = tempfile::tempdir().unwrap();
    let reg = start_with_debug(&tmp2.path().join("data"), &PROMETHEUS);
    assert_eq!(get(&reg.url("/metrics")).0, 404);
    assert_eq!(get(&format!("{}/metrics", reg.debug_base())).0, 200);
}

#[test]
fn a_custom_metrics_path_is_served_and_the_default_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mut env = PROMETHEUS.to_vec();
    env.push(("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/prom"));
    let reg = start_with_debug(&root, &env);
    let debug = reg.debug_base();
    let (status, body) = get(&format!("{debug}/prom"));
    assert_eq!(status, 200);
    assert!(parse(&body).has("berth_build_info"), "{body}");
    assert_eq!(get(&format!("{debug}/metrics")).0, 404);
}

#[test]
fn an_invalid_debug_setting_stops_start_up_naming_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let cases = [
        (
            "REGISTRY_HTTP_DEBUG_ADDR",
            "not-an-address",
            "http.debug.addr",
        ),
        (
            "REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH",
            "metrics",
            "http.debug.prometheus.path",
        ),
    ];
    for (var, value, key) in cases {
        let out = serve_command(
            &root,
            &[("REGISTRY_HTTP_DEBUG_ADDR", "127.0.0.1:0"), (var, value)],
            &[],
        )
        .output()
        .unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(key), "{var}={value}: {text}");
    }
}
