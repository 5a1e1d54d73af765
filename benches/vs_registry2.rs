//! Side-by-side benchmark: Berth against Debian's `docker-registry` (CNCF
//! distribution, registry:2) on this machine, in the same run, on the same
//! workload. Prints each figure and the ratio Berth / registry:2.
//!
//! `cargo bench --bench vs_registry2` (BENCH_SECONDS=N per phase, default 3).
//! When `docker-registry` is not installed only Berth's figures are printed.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;

struct Server {
    name: &'static str,
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_berth(root: &Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start berth");
    Server {
        name: "berth",
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn start_registry2(root: &Path) -> Option<Server> {
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = free_port();
    let config = root.with_extension("yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.display()
        ),
    )
    .ok()?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Server {
        name: "registry:2",
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/v2/")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Pushes a blob the way docker does: POST, PATCH the data, PUT ?digest=.
async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, data: Vec<u8>) -> String {
    let d = digest(&data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let loc = resolve(base, r.headers()["location"].to_str().expect("location"));
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 202);
    let loc = resolve(base, r.headers()["location"].to_str().expect("location"));
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={d}"))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 201, "blob put");
    d
}

async fn push_image(c: &reqwest::Client, base: &str, repo: &str, tag: &str, seed: u64) -> String {
    let layer: Vec<u8> = (0..16 * 1024u64)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed * 7919) % 251) as u8)
        .collect();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let (ls, cs) = (layer.len(), config.len());
    let ld = push_blob(c, base, repo, layer).await;
    let cd = push_blob(c, base, repo, config).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ls}}}]}}"#
    );
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .expect("manifest put");
    assert_eq!(r.status(), 201, "manifest put");
    ld
}

/// Runs `op` from `workers` concurrent tasks for `secs`; returns operations per second.
async fn rate<F, Fut>(workers: usize, secs: f64, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (op, count) = (op.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                op(w as u64 * 1_000_000 + i).await;
                i += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

struct Figures {
    manifest_get: f64,
    blob_head: f64,
    image_push: f64,
    big_push_mbs: f64,
    big_pull_mbs: f64,
}

async fn measure(s: &Server, secs: f64) -> Figures {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    wait_ready(&c, &s.base).await;
    let base = s.base.clone();
    let layer = push_image(&c, &base, "bench/app", "latest", 0).await;

    let (c2, b2) = (c.clone(), base.clone());
    let manifest_get = rate(16, secs, move |_| {
        let (c, b) = (c2.clone(), b2.clone());
        async move {
            let r = c
                .get(format!("{b}/v2/bench/app/manifests/latest"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .expect("get");
            assert!(r.status().is_success());
            r.bytes().await.expect("body");
        }
    })
    .await;

    let (c2, b2) = (c.clone(), base.clone());
    let blob_head = rate(16, secs, move |_| {
        let (c, b, l) = (c2.clone(), b2.clone(), layer.clone());
        async move {
            let r = c
                .head(format!("{b}/v2/bench/app/blobs/{l}"))
                .send()
                .await
                .expect("head");
            assert!(r.status().is_success());
        }
    })
    .await;

    let (c2, b2) = (c.clone(), base.clone());
    let image_push = rate(8, secs, move |i| {
        let (c, b) = (c2.clone(), b2.clone());
        async move {
            push_image(&c, &b, "bench/push", &format!("t{i}"), i + 1).await;
        }
    })
    .await;

    let big: Vec<u8> = (0..256u64 << 20).map(|i| (i % 253) as u8).collect();
    let big_len = big.len() as f64;
    let t = Instant::now();
    let big_digest = push_blob(&c, &base, "bench/big", big).await;
    let big_push_mbs = big_len / t.elapsed().as_secs_f64() / 1e6;
    let t = Instant::now();
    let mut r = c
        .get(format!("{base}/v2/bench/big/blobs/{big_digest}"))
        .send()
        .await
        .expect("pull");
    let mut n = 0usize;
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        n += chunk.len();
    }
    assert_eq!(n as f64, big_len);
    let big_pull_mbs = big_len / t.elapsed().as_secs_f64() / 1e6;

    Figures {
        manifest_get,
        blob_head,
        image_push,
        big_push_mbs,
        big_pull_mbs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    type Figure = fn(&Figures) -> f64;
    let mut results = Vec::new();
    let berth = start_berth(&tmp.path().join("berth"));
    results.push((berth.name, rt.block_on(measure(&berth, secs))));
    drop(berth);
    match start_registry2(&tmp.path().join("registry2")) {
        Some(r2) => {
            results.push((r2.name, rt.block_on(measure(&r2, secs))));
        }
        None => eprintln!("docker-registry not installed: no reference run"),
    }
    println!(
        "\n{:<28} {:>14} {:>14} {:>8}",
        "workload", "berth", "registry:2", "ratio"
    );
    let rows: [(&str, Figure); 5] = [
        ("manifest GET (req/s, c=16)", |f| f.manifest_get),
        ("blob HEAD (req/s, c=16)", |f| f.blob_head),
        ("image push (images/s, c=8)", |f| f.image_push),
        ("256 MiB blob push (MB/s)", |f| f.big_push_mbs),
        ("256 MiB blob pull (MB/s)", |f| f.big_pull_mbs),
    ];
    for (label, get) in rows {
        let b = get(&results[0].1);
        match results.get(1) {
            Some((_, r)) => {
                let r = get(r);
                println!("{label:<28} {b:>14.1} {r:>14.1} {:>7.2}x", b / r);
            }
            None => println!("{label:<28} {b:>14.1} {:>14} {:>8}", "-", "-"),
        }
    }
}
