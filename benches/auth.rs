//! What authentication costs: manifest GETs per second against the real
//! server, in the same run, three ways:
//!
//! - `open`: a registry without authentication (anonymous requests);
//! - `anonymous`: a registry with htpasswd auth, the repository open to
//!   anonymous pull (requests without credentials);
//! - `basic`: the same registry, every request with `Authorization: Basic`
//!   (bcrypt cost 10 in the file, as docker sends it on every request).
//!
//! Prints requests/s of each and the ratio basic / open and basic / anonymous.
//! `cargo bench --bench auth` (BENCH_SECONDS=N per phase, default 4;
//! BENCH_CLIENTS=N concurrent keep-alive connections, default 16).

#[path = "common/process.rs"]
mod process;

use process::{free_port, Killed};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const REPO: &str = "bench/app";

struct Server {
    _child: Killed,
    addr: String,
}

fn start(root: &Path, config: Option<&Path>) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let child = cmd
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start berth");
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "berth did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        _child: Killed(child),
        addr,
    }
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Pushes a small image to `REPO:latest` over plain HTTP.
async fn push(addr: &str, auth: Option<&str>) {
    let c = reqwest::Client::new();
    let with = |rb: reqwest::RequestBuilder| match auth {
        Some(a) => rb.header("authorization", a),
        None => rb,
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![7u8; 4096];
    for blob in [&config, &layer] {
        let url = format!(
            "http://{addr}/v2/{REPO}/blobs/uploads/?digest={}",
            digest(blob)
        );
        let r = with(c.post(url).body(blob.clone())).send().await.unwrap();
        assert_eq!(r.status(), 201, "blob upload failed");
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = with(
        c.put(format!("http://{addr}/v2/{REPO}/manifests/latest"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "manifest push failed");
}

/// One keep-alive connection sending `request` until `stop`; counts 200s.
async fn worker(addr: String, request: Arc<Vec<u8>>, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.set_nodelay(true).ok();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        s.write_all(&request).await.expect("write");
        // Read the head, then exactly Content-Length bytes of body.
        let mut have = 0;
        let (head_end, length) = loop {
            let n = s.read(&mut buf[have..]).await.expect("read");
            assert!(n > 0, "server closed the connection");
            have += n;
            if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..i]).expect("head");
                assert!(
                    head.starts_with("HTTP/1.1 200"),
                    "unexpected answer: {head}"
                );
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .expect("content-length");
                break (i + 4, length);
            }
        };
        let mut body = have - head_end;
        while body < length {
            let n = s.read(&mut buf).await.expect("read body");
            assert!(n > 0, "server closed the connection");
            body += n;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests per second of `clients` connections for `secs` seconds.
async fn rate(addr: &str, auth: Option<&str>, clients: usize, secs: f64) -> f64 {
    let mut req = format!(
        "GET /v2/{REPO}/manifests/latest HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: application/vnd.oci.image.manifest.v1+json\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let request = Arc::new(req.into_bytes());
    // Warm up (and fill the verification cache) before counting.
    let run = |secs: f64| {
        let request = request.clone();
        async move {
            let stop = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    tokio::spawn(worker(
                        addr.to_string(),
                        request.clone(),
                        stop.clone(),
                        done.clone(),
                    ))
                })
                .collect();
            let t = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            let n = done.load(Ordering::Relaxed);
            let elapsed = t.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await.expect("worker");
            }
            n as f64 / elapsed
        }
    };
    run(0.5).await;
    run(secs).await
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let tmp = tempfile::tempdir().expect("tempdir");
    let htpasswd = tmp.path().join("htpasswd");
    let ok = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["htpasswd", "--file"])
        .arg(&htpasswd)
        .args(["add", USER, "--password-stdin", "--cost", "10"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            writeln!(c.stdin.take().expect("stdin"), "{PASSWORD}")?;
            c.wait()
        })
        .expect("berth htpasswd add");
    assert!(ok.success());
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.htpasswd]\nrealm = \"bench\"\npath = \"{}\"\n\n[access]\nanonymous_pull = [\"{REPO}\"]\n",
            htpasswd.display()
        ),
    )
    .expect("config");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let open = start(&tmp.path().join("open"), None);
        let authed = start(&tmp.path().join("auth"), Some(&config));
        push(&open.addr, None).await;
        push(&authed.addr, Some(&basic)).await;
        // Interleave the phases so that drift (thermal, other load) hits all.
        let mut figures = [0.0f64; 3];
        for _ in 0..2 {
            figures[0] += rate(&open.addr, None, clients, secs / 2.0).await;
            figures[1] += rate(&authed.addr, None, clients, secs / 2.0).await;
            figures[2] += rate(&authed.addr, Some(&basic), clients, secs / 2.0).await;
        }
        let [open_rps, anon_rps, basic_rps] = figures.map(|f| f / 2.0);
        println!("manifest GET, {clients} keep-alive clients, {secs}s per figure");
        println!("  open registry, anonymous        {open_rps:>10.0} req/s");
        println!("  auth registry, anonymous pull   {anon_rps:>10.0} req/s");
        println!("  auth registry, Basic (bcrypt10) {basic_rps:>10.0} req/s");
        println!(
            "  ratio basic / open = {:.2}, basic / anonymous = {:.2}",
            basic_rps / open_rps,
            basic_rps / anon_rps
        );
    });
}
