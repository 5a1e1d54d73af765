//! `[notifications]`: registry:2's events POSTed to endpoints, from a sink
//! in the test (a small HTTP server on 127.0.0.1 that records what it gets
//! and answers as told), for curl-level pushes and a real `docker push`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::support::api::Api;
use crate::support::auth::{self, Setup, ALICE};
use crate::support::content::{sha256, OCI_MANIFEST};
use crate::support::harness::{free_port, serve_command, wait_until, Registry};

const EVENTS: &str = "application/vnd.docker.distribution.events.v1+json";
const LIMIT: Duration = Duration::from_secs(30);

/// One POST the sink received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A notification endpoint: records every request, answers `status`
/// after sleeping `delay_ms`.
struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    /// The `Location` of a 3xx answered to `/events`.
    location: Arc<Mutex<String>>,
}

impl Sink {
    fn start() -> Sink {
        Sink::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// A sink on `port` (for an endpoint that was down until now).
    fn start_on(port: u16) -> Sink {
        Sink::on(TcpListener::bind(("127.0.0.1", port)).unwrap())
    }

    fn on(listener: TcpListener) -> Sink {
        let sink = Sink {
            port: listener.local_addr().unwrap().port(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::default(),
            location: Arc::default(),
        };
        let (got, status, delay, location) = (
            sink.got.clone(),
            sink.status.clone(),
            sink.delay_ms.clone(),
            sink.location.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (got, status, delay, location) =
                    (got.clone(), status.clone(), delay.clone(), location.clone());
                std::thread::spawn(move || serve(conn, &got, &status, &delay, &location));
            }
        });
        sink
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Every event received so far, in order.
    fn events(&self) -> Vec<Value> {
        self.received()
            .iter()
            .flat_map(|r| {
                let v: Value = serde_json::from_slice(&r.body).expect("JSON envelope");
                v["events"].as_array().expect("events array").clone()
            })
            .collect()
    }

    /// Waits until `f` holds for the events received.
    fn wait_for(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let ok = wait_until(LIMIT, || f(&self.events()));
        let events = self.events();
        assert!(ok, "{what}: received {}", pretty(&events));
        events
    }
}

fn pretty(events: &[Value]) -> String {
    serde_json::to_string_pretty(events).unwrap()
}

fn serve(
    conn: TcpStream,
    got: &Mutex<Vec<Received>>,
    status: &AtomicU16,
    delay: &AtomicU64,
    location: &Mutex<String>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
    let mut code = status.load(Ordering::SeqCst);
    let location = location.lock().unwrap().clone();
    let redirect = (300..400).contains(&code);
    let at_events = path == "/events";
    if redirect && !at_events {
        code = 200;
    }
    if code < 400 {
        got.lock().unwrap().push(Received {
            method,
            path,
            headers,
            body,
        });
    }
    let mut conn = conn;
    let location = if redirect && at_events {
        format!("Location: {location}\r\n")
    } else {
        String::new()
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {code} X\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// A config with one endpoint per `(name, url, extra keys)`.
fn endpoints(list: &[(&str, &str, &str)]) -> String {
    let mut s = String::new();
    for (name, url, extra) in list {
        s.push_str(&format!(
            "[[notifications.endpoints]]\nname = \"{name}\"\nurl = \"{url}\"\n\
             threshold = 3\nbackoff = \"200ms\"\n{extra}\n"
        ));
    }
    s
}

fn write_config(dir: &Path, text: &str) -> String {
    let p = dir.join("berth.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// A server on `root` with the config `text` (delete enabled), log kept.
fn start(root: &Path, config: &str, env: &[(&str, &str)]) -> Registry {
    let mut env = env.to_vec();
    env.push(("REGISTRY_STORAGE_DELETE_ENABLED", "true"));
    let cmd = serve_command(root, &env, &["--config", config]);
    Registry::spawn(cmd, root, true)
}

fn actions(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["target"]["digest"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn find<'a>(events: &'a [Value], action: &str, digest: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["action"] == action && e["target"]["digest"] == digest)
        .unwrap_or_else(|| panic!("no {action} of {digest} in {}", pretty(events)))
}

#[test]
fn pushes_pulls_and_deletes_are_posted_in_registry2s_format_with_the_configured_headers() {
    let sink = Sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "[notifications.events]\nincludereferences = true\n{}",
            endpoints(&[(
                "ci",
                &sink.url(),
                "headers = { Authorization = [\"Bearer t0ken\"], X-Multi = [\"a\", \"b\"] }"
            )])
        ),
    );
    let reg = start(&tmp.path().join("data"), &config, &[]);
    let api = Api::on(reg);
    let (manifest, digest) = api.push_oci_image("notify/app", "v1", 3);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = m["config"]["digest"].as_str().unwrap().to_string();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let events = sink.wait_for("the push", |e| {
        e.iter()
            .any(|e| e["action"] == "push" && e["target"]["tag"] == "v1")
    });

    // Blob pushes at upload completion, then the manifest push by tag.
    let blob = find(&events, "push", &layer);
    assert_eq!(blob["target"]["mediaType"], "application/octet-stream");
    assert_eq!(blob["target"]["repository"], "notify/app");
    assert!(blob["target"]["size"].as_u64().unwrap() > 0);
    assert_eq!(blob["target"]["size"], blob["target"]["length"]);
    assert_eq!(
        blob["target"]["url"],
        format!("{}/v2/notify/app/blobs/{layer}", api.reg.base)
    );
    find(&events, "push", &config_digest);
    let push = find(&events, "push", &digest);
    let t = &push["target"];
    assert_eq!(t["mediaType"], OCI_MANIFEST);
    assert_eq!(t["size"], manifest.len() as u64);
    assert_eq!(t["length"], manifest.len() as u64);
    assert_eq!(t["repository"], "notify/app");
    assert_eq!(t["tag"], "v1");
    assert_eq!(
        t["url"],
        format!("{}/v2/notify/app/manifests/{digest}", api.reg.base)
    );
    let refs: Vec<&str> = t["references"]
        .as_array()
        .expect("references with includereferences")
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(refs, [config_digest.as_str(), layer.as_str()]);
    assert_eq!(push["request"]["method"], "PUT");
    assert_eq!(push["request"]["host"], api.reg.host());
    assert!(
        push["request"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{push}"
    );
    assert_eq!(push["request"]["id"].as_str().unwrap().len(), 36, "{push}");
    assert!(
        push["actor"].get("name").is_none(),
        "no auth, no actor: {push}"
    );
    assert!(
        push["source"]["addr"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", api.reg.port)),
        "{push}"
    );
    assert!(!push["source"]["instanceID"].as_str().unwrap().is_empty());
    assert_eq!(push["id"].as_str().unwrap().len(), 36);
    let ts = push["timestamp"].as_str().unwrap();
    assert!(
        ts.contains('T') && ts.contains('.') && ts.ends_with('Z'),
        "{ts}"
    );

    // How it was sent: POST, registry:2's media type, the configured headers.
    for r in sink.received() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/events");
        assert_eq!(r.header("content-type"), [EVENTS]);
        assert_eq!(r.header("authorization"), ["Bearer t0ken"]);
        let multi = r.header("x-multi").join(",");
        assert!(multi == "a,b" || multi == "a, b", "{multi}");
    }

    // Pulls (GET and HEAD, as registry:2), with the client's user agent.
    let ua = "notify-test/1.0";
    api.send(
        api.req(Method::GET, "/v2/notify/app/manifests/v1")
            .header("user-agent", ua)
            .header("accept", OCI_MANIFEST),
    )
    .expect(200);
    api.send(
        api.req(Method::GET, &format!("/v2/notify/app/blobs/{layer}"))
            .header("user-agent", ua),
    )
    .expect(200);
    api.head_manifest("notify/app", &digest).expect(200);
    let events = sink.wait_for("the pulls", |e| {
        e.iter().filter(|e| e["action"] == "pull").count() >= 3
    });
    let pulls: Vec<&Value> = events.iter().filter(|e| e["action"] == "pull").collect();
    assert_eq!(pulls[0]["target"]["digest"], digest.as_str());
    assert_eq!(pulls[0]["target"]["tag"], "v1");
    assert_eq!(pulls[0]["target"]["mediaType"], OCI_MANIFEST);
    assert_eq!(pulls[0]["request"]["method"], "GET");
    assert_eq!(pulls[0]["request"]["useragent"], ua);
    assert_eq!(pulls[1]["target"]["digest"], layer.as_str());
    assert_eq!(pulls[1]["request"]["useragent"], ua);
    assert_eq!(pulls[2]["request"]["method"], "HEAD");
    // A miss is no event.
    api.get_manifest("notify/app", "nope").expect(404);

    // Deletes: the tag (which registry:2 does not report), then the manifest.
    api.put_manifest("notify/app", "v2", OCI_MANIFEST, &manifest)
        .expect(201);
    api.delete("/v2/notify/app/manifests/v2").expect(202);
    api.delete(&format!("/v2/notify/app/manifests/{digest}"))
        .expect(202);
    let events = sink.wait_for("the deletes", |e| {
        e.iter().filter(|e| e["action"] == "delete").count() >= 2
    });
    let deletes: Vec<&Value> = events.iter().filter(|e| e["action"] == "delete").collect();
    assert_eq!(deletes[0]["target"]["tag"], "v2");
    assert_eq!(deletes[0]["target"]["repository"], "notify/app");
    assert!(
        deletes[0]["target"].get("digest").is_none(),
        "{}",
        deletes[0]
    );
    assert_eq!(deletes[1]["target"]["digest"], digest.as_str());
    assert_eq!(deletes[1]["request"]["method"], "DELETE");
    let misses = events
        .iter()
        .filter(|e| e["target"]["tag"] == "nope")
        .count();
    assert_eq!(misses, 0);
}

#[test]
fn the_actor_is_the_authenticated_user_and_a_mount_is_reported_with_its_source() {
    let sink = Sink::start();
    let s = Setup::new();
    s.add_user("alice", "alice-secret");
    let reg = s.start(&endpoints(&[("ci", &sink.url(), "")]));
    let digest = auth::push_image_as(
        &reg.base,
        "team/one",
        "v1",
        ALICE,
        b"{\"c\":1}",
        b"layer bytes",
    );
    let layer = sha256(b"layer bytes");
    let r = auth::with(
        crate::support::http::client().post(reg.url(&format!(
            "/v2/team/two/blobs/uploads/?mount={layer}&from=team/one"
        ))),
        ALICE,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 201);
    let events = sink.wait_for("push and mount", |e| {
        e.iter().any(|e| e["action"] == "mount")
    });
    let push = find(&events, "push", &digest);
    assert_eq!(push["actor"]["name"], "alice");
    let mount = find(&events, "mount", &layer);
    assert_eq!(mount["actor"]["name"], "alice");
    assert_eq!(mount["target"]["repository"], "team/two");
    assert_eq!(mount["target"]["fromRepository"], "team/one");
    assert_eq!(mount["target"]["size"], 11);
    // The 401 that came before credentials emitted nothing.
    assert!(
        events.iter().all(|e| e["actor"]["name"] == "alice"),
        "{}",
        pretty(&events)
    );
}

#[test]
fn ignore_filters_apply_per_endpoint() {
    let (all, no_pulls, no_blobs) = (Sink::start(), Sink::start(), Sink::start());
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &endpoints(&[
            ("all", &all.url(), ""),
            (
                "no-pulls",
                &no_pulls.url(),
                "ignore = { actions = [\"pull\"] }",
            ),
            (
                "no-blobs",
                &no_blobs.url(),
                "ignoredmediatypes = [\"application/octet-stream\"]",
            ),
            ("off", "http://127.0.0.1:9/", "disabled = true"),
        ]),
    );
    let api = Api::on(start(&tmp.path().join("data"), &config, &[]));
    let (_, digest) = api.push_oci_image("filters/app", "v1", 5);
    api.get_manifest("filters/app", "v1").expect(200);
    let everything = all.wait_for("all", |e| e.len() >= 4);
    assert_eq!(actions(&everything).len(), 4, "{}", pretty(&everything));
    let n = no_pulls.wait_for("no pulls", |e| e.len() >= 3);
    let b = no_blobs.wait_for("no blobs", |e| e.len() >= 2);
    // Whatever came last to `all` has come to the others by now.
    std::thread::sleep(Duration::from_millis(500));
    let n2 = no_pulls.events();
    assert_eq!(n.len(), n2.len());
    assert!(n2.iter().all(|e| e["action"] != "pull"), "{}", pretty(&n2));
    let b2 = no_blobs.events();
    assert_eq!(
        actions(&b2),
        [("push".into(), digest.clone()), ("pull".into(), digest)],
        "{}",
        pretty(&b)
    );
    // A disabled endpoint gets nothing and has no queue.
    let queues = api.reg.root.join("docker/registry/v2/_berth/notifications");
    assert!(queues.join("all").is_dir());
    assert!(!queues.join("off").exists());
}

#[test]
fn an_endpoint_that_is_down_then_up_gets_everything_in_order_even_across_a_crash() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        &endpoints(&[("down", &format!("http://127.0.0.1:{port}/events"), "")]),
    );
    // Connection refused: the pushes succeed and their events wait on disk.
    let reg = start(&root, &config, &[]);
    let api = Api::on(reg);
    let mut expected = Vec::new();
    for seed in 0..3u64 {
        let data = format!("blob {seed}").into_bytes();
        expected.push(("push".to_string(), api.push_blob("order/app", &data)));
    }
    let (_, digest) = api.push_oci_image("order/app", "v1", 9);
    // Each event is a file on disk until delivered.
    let queue = root.join("docker/registry/v2/_berth/notifications/down");
    let on_disk = || {
        std::fs::read_dir(&queue).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
    };
    assert!(wait_until(LIMIT, || on_disk() == 6), "{} queued", on_disk());
    assert!(
        wait_until(LIMIT, || api
            .reg
            .logs()
            .contains("cannot deliver a notification")),
        "{}",
        api.reg.logs()
    );
    // Killed (SIGKILL, a crash) while the endpoint is down: nothing queued is lost.
    let mut reg = api.reg;
    reg.kill();
    let sink = Sink::start_on(port);
    sink.status.store(500, Ordering::SeqCst);
    let reg = start(&root, &config, &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(sink.events().is_empty());
    sink.status.store(200, Ordering::SeqCst);
    let events = sink.wait_for("the queued events", |e| {
        e.iter().any(|e| e["target"]["digest"] == digest.as_str())
    });
    let got = actions(&events);
    // The three blobs first, in order, then the image (its two blobs, its manifest).
    assert_eq!(got[..3], expected[..], "{}", pretty(&events));
    assert_eq!(got.len(), 6, "{}", pretty(&events));
    assert_eq!(got[5], ("push".to_string(), digest));
    // Delivered once only: the queue is empty now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.events().len(), 6);
    let queue = root.join("docker/registry/v2/_berth/notifications/down");
    assert_eq!(
        std::fs::read_dir(&queue).unwrap().count(),
        0,
        "{}",
        reg.logs()
    );
}

#[test]
fn a_full_queue_drops_the_oldest_events_and_says_so() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        &endpoints(&[(
            "small",
            &format!("http://127.0.0.1:{port}/events"),
            "queue_limit = 3",
        )]),
    );
    let api = Api::on(start(&root, &config, &[]));
    let digests: Vec<String> = (0..5u64)
        .map(|i| api.push_blob("bound/app", format!("bounded {i}").as_bytes()))
        .collect();
    assert!(
        wait_until(LIMIT, || api
            .reg
            .logs()
            .contains("notification queue full: dropped the oldest")),
        "{}",
        api.reg.logs()
    );
    let sink = Sink::start_on(port);
    let events = sink.wait_for("the newest three", |e| e.len() >= 3);
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> = actions(&sink.events())
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(got, digests[2..], "{}", pretty(&events));
}

#[test]
fn a_slow_endpoint_does_not_slow_a_push() {
    let sink = Sink::start();
    sink.delay_ms.store(10_000, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &endpoints(&[("slow", &sink.url(), "timeout = \"30s\"")]),
    );
    let api = Api::on(start(&tmp.path().join("data"), &config, &[]));
    let t = Instant::now();
    for seed in 0..3 {
        api.push_oci_image("slow/app", &format!("v{seed}"), seed);
    }
    api.get_manifest("slow/app", "v0").expect(200);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "pushes took {:?} with a 10 s endpoint",
        t.elapsed()
    );
}

#[test]
fn garbage_collection_deletes_are_reported_by_the_next_server() {
    let sink = Sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        &endpoints(&[(
            "gc",
            &sink.url(),
            "ignore = { actions = [\"push\", \"pull\"] }",
        )]),
    );
    let mut reg = start(&root, &config, &[]);
    let api = Api::on(reg);
    let (manifest, digest) = api.push_oci_image("gc/app", "v1", 11);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    api.delete("/v2/gc/app/manifests/v1").expect(202);
    sink.wait_for("the tag delete", |e| {
        e.iter().any(|e| e["target"]["tag"] == "v1")
    });
    reg = api.reg;
    reg.terminate();
    assert!(reg.wait_exit(LIMIT).is_some());
    // The offline collector (no server running) queues its deletes...
    let out = crate::support::gc::gc(&root, &["--config", &config, "-m"], &[]);
    assert!(out.status.success());
    // ...which the next server delivers, with no request behind them.
    let _reg = start(&root, &config, &[]);
    let events = sink.wait_for("the collector's deletes", |e| {
        e.iter().any(|e| e["target"]["digest"] == layer.as_str())
    });
    let manifest_delete = find(&events, "delete", &digest);
    assert_eq!(manifest_delete["target"]["repository"], "gc/app");
    assert_eq!(manifest_delete["request"]["method"], "");
    let blob = find(&events, "delete", &layer);
    assert!(blob["target"]["size"].as_u64().unwrap() > 0);
}

#[test]
fn the_online_collector_reports_what_it_deletes() {
    let sink = Sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &endpoints(&[(
            "gc",
            &sink.url(),
            "ignore = { actions = [\"push\", \"pull\"] }",
        )]),
    );
    let api = Api::on(start(
        &tmp.path().join("data"),
        &config,
        &[
            ("REGISTRY_GC_ENABLED", "true"),
            ("REGISTRY_GC_INTERVAL", "300ms"),
            ("REGISTRY_GC_GRACE_PERIOD", "0s"),
            ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
        ],
    ));
    let (_, digest) = api.push_oci_image("ogc/app", "v1", 12);
    api.delete("/v2/ogc/app/manifests/v1").expect(202);
    let events = sink.wait_for("the collector's manifest delete", |e| {
        e.iter()
            .any(|e| e["action"] == "delete" && e["target"]["digest"] == digest.as_str())
    });
    assert_eq!(
        find(&events, "delete", &digest)["target"]["repository"],
        "ogc/app"
    );
}

#[test]
fn a_real_docker_push_and_pull_are_reported() {
    if !crate::support::have("docker") || !crate::support::have("dockerd") {
        return;
    }
    let sink = Sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &endpoints(&[("docker", &sink.url(), "")]));
    let reg = start(&tmp.path().join("data"), &config, &[]);
    let d = crate::support::dockerd::Dockerd::start("berth-notify.");
    let limit = Duration::from_secs(120);
    let docker = |args: &[&str]| {
        let out = crate::support::run(&mut d.cmd("docker", args), limit);
        assert!(out.ok(), "docker {args:?}: {}", out.all());
        out
    };
    let rootfs = crate::support::tar(&[crate::support::Entry::File(
        "hello.txt",
        b"hello notifications\n",
        0o644,
    )]);
    let image = format!("{}/notify/docker:v1", reg.host());
    let out = crate::support::run_input(
        &mut d.cmd("docker", &["import", "-", &image]),
        Some(rootfs),
        limit,
    );
    assert!(out.ok(), "docker import: {}", out.all());
    docker(&["push", &image]);
    let events = sink.wait_for("docker push", |e| {
        e.iter()
            .any(|e| e["action"] == "push" && e["target"]["tag"] == "v1")
    });
    let push = events
        .iter()
        .find(|e| e["action"] == "push" && e["target"]["tag"] == "v1")
        .unwrap();
    assert_eq!(push["target"]["repository"], "notify/docker");
    assert_eq!(
        push["target"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(
        push["request"]["useragent"]
            .as_str()
            .unwrap()
            .contains("docker/"),
        "{push}"
    );
    let digest = push["target"]["digest"].as_str().unwrap().to_string();
    let blob_pushes = events
        .iter()
        .filter(|e| e["action"] == "push" && e["target"]["mediaType"] == "application/octet-stream")
        .count();
    assert_eq!(blob_pushes, 2, "config and layer: {}", pretty(&events));
    docker(&["rmi", &image]);
    docker(&["pull", &image]);
    let events = sink.wait_for("docker pull", |e| {
        e.iter().any(|e| {
            e["action"] == "pull"
                && e["target"]["digest"] == digest.as_str()
                && e["request"]["method"] == "GET"
        })
    });
    let pulled_blobs = events
        .iter()
        .filter(|e| {
            e["action"] == "pull"
                && e["target"]["mediaType"] == "application/octet-stream"
                && e["request"]["method"] == "GET"
        })
        .count();
    assert!(pulled_blobs >= 2, "config and layer: {}", pretty(&events));
}

#[test]
fn redirects_are_followed_within_the_endpoint_and_never_to_another_host() {
    let (sink, elsewhere) = (Sink::start(), Sink::start());
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &endpoints(&[(
            "moved",
            &sink.url(),
            "headers = { Authorization = [\"Bearer secret\"] }",
        )]),
    );
    let api = Api::on(start(&tmp.path().join("data"), &config, &[]));
    // Within the endpoint's origin: followed, the POST repeated there (307).
    *sink.location.lock().unwrap() = "/moved-here".into();
    sink.status.store(307, Ordering::SeqCst);
    let first = api.push_blob("redirect/app", b"first");
    let ok = wait_until(LIMIT, || {
        sink.received().iter().any(|r| r.path == "/moved-here")
    });
    assert!(ok, "{:?}", sink.received());
    let moved = sink
        .received()
        .into_iter()
        .find(|r| r.path == "/moved-here")
        .unwrap();
    assert_eq!(moved.method, "POST");
    assert_eq!(moved.header("authorization"), ["Bearer secret"]);
    assert!(String::from_utf8_lossy(&moved.body).contains(&first));
    // To another host (port): not followed, the credentials stay home; like
    // registry:2 the 3xx counts as delivered, so the queue goes on.
    *sink.location.lock().unwrap() = elsewhere.url();
    let second = api.push_blob("redirect/app", b"second");
    let ok = wait_until(LIMIT, || {
        api.reg
            .logs()
            .contains("redirected elsewhere: not followed")
    });
    assert!(ok, "{}", api.reg.logs());
    sink.status.store(200, Ordering::SeqCst);
    let third = api.push_blob("redirect/app", b"third");
    let events = sink.wait_for("the next event", |e| {
        e.iter().any(|e| e["target"]["digest"] == third.as_str())
    });
    assert!(events
        .iter()
        .any(|e| e["target"]["digest"] == second.as_str()));
    assert!(
        elsewhere.received().is_empty(),
        "{:?}",
        elsewhere.received()
    );
}

/// Waits (up to 10 s) for the log line that ends the next SIGHUP reload.
fn reload(reg: &Registry) -> String {
    let done = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("configuration reloaded") || l.contains("not reloaded"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = done(&reg.logs()).len();
    reg.hangup();
    let mut last = None;
    let ok = wait_until(Duration::from_secs(10), || {
        last = done(&reg.logs()).get(before).cloned();
        last.is_some()
    });
    assert!(ok, "no reload logged:\n{}", reg.logs());
    last.unwrap_or_default()
}

#[test]
fn a_reload_sends_the_next_events_to_the_reconfigured_endpoint() {
    let (old, new) = (Sink::start(), Sink::start());
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &endpoints(&[("hook", &old.url(), "")]));
    let api = Api::on(start(&tmp.path().join("data"), &config, &[]));
    let (_, first) = api.push_oci_image("reload/app", "v1", 5);
    old.wait_for("before the reload", |e| {
        e.iter().any(|e| e["target"]["digest"] == first.as_str())
    });

    // The same endpoint name with a new URL and a header: the queue is kept,
    // the worker starts anew on it.
    write_config(
        tmp.path(),
        &endpoints(&[(
            "hook",
            &new.url(),
            "[notifications.endpoints.headers]\nX-Reloaded = [\"yes\"]",
        )]),
    );
    let line = reload(&api.reg);
    assert!(
        line.contains("applied") && line.contains("notifications"),
        "{line}"
    );
    let (_, second) = api.push_oci_image("reload/app", "v2", 6);
    let events = new.wait_for("after the reload", |e| {
        e.iter().any(|e| e["target"]["digest"] == second.as_str())
    });
    assert!(
        events
            .iter()
            .all(|e| e["target"]["digest"] != first.as_str()),
        "an event delivered before the reload came again: {}",
        pretty(&events)
    );
    assert!(new
        .received()
        .iter()
        .all(|r| r.header("x-reloaded") == ["yes"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        old.events()
            .iter()
            .all(|e| e["target"]["digest"] != second.as_str()),
        "the old endpoint still gets events"
    );
}

#[test]
fn behind_a_trusted_proxy_events_name_the_forwarded_client_and_public_url() {
    let sink = Sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut text = endpoints(&[("hook", &sink.url(), "")]);
    text.insert_str(
        0,
        "[http]\nprefix = \"/reg/\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n",
    );
    let config = write_config(tmp.path(), &text);
    let reg = start(&tmp.path().join("data"), &config, &[]);
    // A pull through a "proxy" at 127.0.0.1 that forwards for 203.0.113.7.
    let client = reqwest::blocking::Client::new();
    let body = b"{}".to_vec();
    let digest = sha256(&body);
    let url = format!("{}/reg/v2/fwd/app/blobs/uploads/?digest={digest}", reg.base);
    let put = client
        .post(url)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "registry.example:8443")
        .header("x-forwarded-proto", "https")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(put.status(), 201, "{:?}", put.text());
    let events = sink.wait_for("the push", |e| !e.is_empty());
    let push = find(&events, "push", &digest);
    assert_eq!(
        push["request"]["addr"],
        "203.0.113.7",
        "{}",
        pretty(&events)
    );
    assert_eq!(
        push["target"]["url"],
        format!("https://registry.example:8443/reg/v2/fwd/app/blobs/{digest}"),
        "{}",
        pretty(&events)
    );
}
