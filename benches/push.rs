//! Push benchmark: Berth against Debian's `docker-registry` (registry:2), and
//! optionally against another Berth binary (e.g. a build from before a
//! change), in the same run, rounds interleaved A B [C], fresh data dirs.
//!
//! `cargo bench --bench push`. Environment:
//! - `BENCH_ROUNDS` (default 3): rounds; medians and min–max are printed.
//! - `BERTH_BASELINE=/path/to/berth`: a second Berth to compare against.
//! - `BENCH_BLOBS` (default 32): 16 MiB blobs per monolithic round.
//! - `BENCH_SECONDS` (default 3): seconds of image pushes per round.
//!
//! Workloads: the raw SHA-256 ceiling on 256 MiB in this process; monolithic
//! blob push (POST, then one PUT `?digest=` with the 16 MiB body), c=4;
//! chunked push (32 MiB blobs as 8 MiB PATCHes with `Content-Range`, then an
//! empty PUT), c=4; image push (16 KiB layer + config + manifest), c=8.
//! For each, MB/s (or images/s) and the server's CPU seconds from `/proc`.

#[path = "common/process.rs"]
mod process;

use process::{free_port, Killed};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;

const MIB: usize = 1 << 20;

struct Server {
    child: Killed,
    base: String,
}

impl Server {
    /// utime + stime of the server process, in seconds.
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parens.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }
}

#[derive(Clone)]
enum Kind {
    Berth(PathBuf),
    Registry2(PathBuf),
}

fn start(kind: &Kind, root: &Path) -> Server {
    let port = free_port();
    let child = match kind {
        Kind::Berth(bin) => Command::new(bin)
            .arg("serve")
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start berth"),
        Kind::Registry2(bin) => {
            let config = root.with_extension("yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    root.display()
                ),
            )
            .expect("registry:2 config");
            Command::new(bin)
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start registry:2")
        }
    };
    Server {
        child: Killed(child),
        base: format!("http://127.0.0.1:{port}"),
    }
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

fn with_digest(loc: &str, d: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

async fn post(c: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    resolve(base, r.headers()["location"].to_str().expect("location"))
}

/// POST, then one PUT `?digest=` carrying the whole blob.
async fn push_monolithic(c: &reqwest::Client, base: &str, repo: &str, data: Vec<u8>, d: &str) {
    let loc = post(c, base, repo).await;
    let r = c
        .put(with_digest(&loc, d))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 201, "monolithic put");
}

/// POST, PATCHes of `chunk` bytes with `Content-Range`, empty PUT.
async fn push_chunked(c: &reqwest::Client, base: &str, repo: &str, data: &[u8], chunk: usize) {
    let d = digest(data);
    let mut loc = post(c, base, repo).await;
    for (i, part) in data.chunks(chunk).enumerate() {
        let start = i * chunk;
        let r = c
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{start}-{}", start + part.len() - 1),
            )
            .body(part.to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), 202, "patch");
        loc = resolve(base, r.headers()["location"].to_str().expect("location"));
    }
    let r = c.put(with_digest(&loc, &d)).send().await.expect("put");
    assert_eq!(r.status(), 201, "chunked put");
}

async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, data: Vec<u8>) -> String {
    let d = digest(&data);
    push_monolithic(c, base, repo, data, &d).await;
    d
}

async fn push_image(c: &reqwest::Client, base: &str, repo: &str, tag: &str, seed: u64) {
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
}

/// A blob of `len` bytes unique to (`round`, `i`).
fn blob(len: usize, round: u64, i: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len as u64)
        .map(|j| (j.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    v[..8].copy_from_slice(&round.to_le_bytes());
    v[8..16].copy_from_slice(&i.to_le_bytes());
    v
}

/// (MB/s or ops/s, server CPU seconds) per workload.
#[derive(Default, Clone)]
struct Figures {
    mono_mbs: f64,
    mono_cpu: f64,
    chunked_mbs: f64,
    chunked_cpu: f64,
    images: f64,
    images_cpu: f64,
}

async fn measure(s: &Server, round: u64, blobs: usize, secs: f64) -> Figures {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    wait_ready(&c, &s.base).await;
    let mut f = Figures::default();

    // Monolithic: `blobs` x 16 MiB, 4 at a time.
    let data: Vec<(Vec<u8>, String)> = (0..blobs as u64)
        .map(|i| {
            let b = blob(16 * MIB, round, i);
            let d = digest(&b);
            (b, d)
        })
        .collect();
    let total = (blobs * 16 * MIB) as f64;
    let queue = Arc::new(std::sync::Mutex::new(data));
    let (t, cpu) = (Instant::now(), s.cpu());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, b, q) = (c.clone(), s.base.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = q.lock().expect("queue").pop();
                let Some((data, d)) = next else { break };
                push_monolithic(&c, &b, "bench/mono", data, &d).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    f.mono_mbs = total / t.elapsed().as_secs_f64() / 1e6;
    f.mono_cpu = s.cpu() - cpu;

    // Chunked: blobs/4 x 32 MiB in 8 MiB PATCHes, 4 at a time.
    let n = (blobs / 4).max(4) as u64;
    let data: Vec<Vec<u8>> = (0..n).map(|i| blob(32 * MIB, round, 1000 + i)).collect();
    let total = (n as usize * 32 * MIB) as f64;
    let queue = Arc::new(std::sync::Mutex::new(data));
    let (t, cpu) = (Instant::now(), s.cpu());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, b, q) = (c.clone(), s.base.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = q.lock().expect("queue").pop();
                let Some(data) = next else { break };
                push_chunked(&c, &b, "bench/chunked", &data, 8 * MIB).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    f.chunked_mbs = total / t.elapsed().as_secs_f64() / 1e6;
    f.chunked_cpu = s.cpu() - cpu;

    // Images, 8 pushers for `secs`.
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (t, cpu) = (Instant::now(), s.cpu());
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let (c, b, count) = (c.clone(), s.base.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let seed = round << 40 | w << 32 | i;
                push_image(&c, &b, "bench/images", &format!("t{w}-{i}"), seed).await;
                i += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    f.images = count.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    f.images_cpu = s.cpu() - cpu;
    f
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (m, v[0], v[v.len() - 1])
}

fn sha256_ceiling() -> f64 {
    let data = blob(256 * MIB, 0, 0);
    let t = Instant::now();
    let d = sha2::Sha256::digest(&data);
    let mbs = data.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
    std::hint::black_box(d);
    mbs
}

/// Writes every dirty page out (`sync`), so a run does not pay for the
/// writeback of the one before it.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds: u64 = env("BENCH_ROUNDS", 3);
    let blobs: usize = env("BENCH_BLOBS", 32);
    let secs: f64 = env("BENCH_SECONDS", 3.0);
    let mut servers: Vec<(String, Kind)> = vec![(
        "berth".into(),
        Kind::Berth(PathBuf::from(env!("CARGO_BIN_EXE_berth"))),
    )];
    if let Ok(bin) = std::env::var("BERTH_BASELINE") {
        servers.push(("baseline".into(), Kind::Berth(bin.into())));
    }
    match ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    {
        Some(bin) => servers.push(("registry:2".into(), Kind::Registry2(bin.into()))),
        None => eprintln!("docker-registry not installed: no reference run"),
    }
    let ceiling: Vec<f64> = (0..rounds).map(|_| sha256_ceiling()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); servers.len()];
    // Data dirs are removed at the end, not between runs: ext4 makes every
    // file create scan for inodes freed in the last 30 s, so a run right
    // after tens of thousands of deletions would pay for them.
    let mut dirs = Vec::new();
    for round in 0..rounds {
        // Each round starts with the next server, so none always runs right
        // after registry:2 (which leaves its writes dirty for the next run's
        // fsyncs to wait on); and every run starts from a clean page cache:
        // the previous run's dirty pages written out first.
        let n = servers.len();
        for i in (0..n).map(|k| (k + round as usize) % n) {
            let (name, kind) = &servers[i];
            settle();
            let tmp =
                tempfile::tempdir_in(env("BENCH_DIR", std::env::temp_dir())).expect("tempdir");
            let s = start(kind, &tmp.path().join("root"));
            let f = rt.block_on(measure(&s, round, blobs, secs));
            eprintln!(
                "round {round} {name}: mono {:.0} MB/s ({:.2} cpu-s), chunked {:.0} MB/s ({:.2} cpu-s), images {:.1}/s ({:.2} cpu-s)",
                f.mono_mbs, f.mono_cpu, f.chunked_mbs, f.chunked_cpu, f.images, f.images_cpu
            );
            results[i].push(f);
            drop(s);
            dirs.push(tmp);
        }
    }
    drop(dirs);
    let (c, lo, hi) = median(ceiling);
    println!("\nSHA-256 in one thread here: {c:.0} MB/s ({lo:.0}-{hi:.0})");
    type Get = fn(&Figures) -> f64;
    let rows: [(&str, Get); 6] = [
        ("monolithic push 16 MiB c=4 (MB/s)", |f| f.mono_mbs),
        ("  server CPU-s per GiB", |f| f.mono_cpu),
        ("chunked 8 MiB push c=4 (MB/s)", |f| f.chunked_mbs),
        ("  server CPU-s per GiB", |f| f.chunked_cpu),
        ("image push c=8 (images/s)", |f| f.images),
        ("  server CPU-ms per image", |f| f.images_cpu),
    ];
    print!("{:<36}", "workload (median, min-max)");
    for (name, _) in &servers {
        print!(" {name:>20}");
    }
    println!("   ratios vs berth");
    let gib_mono = (blobs * 16 * MIB) as f64 / (1u64 << 30) as f64;
    let gib_chunked = ((blobs / 4).max(4) * 32 * MIB) as f64 / (1u64 << 30) as f64;
    for (r, (label, get)) in rows.iter().enumerate() {
        print!("{label:<36}");
        let mut meds = Vec::new();
        for figs in &results {
            let scale = |f: &Figures| match r {
                1 => get(f) / gib_mono,
                3 => get(f) / gib_chunked,
                5 => get(f) * 1000.0 / (f.images * secs).max(1.0),
                _ => get(f),
            };
            let (m, lo, hi) = median(figs.iter().map(scale).collect());
            meds.push(m);
            print!(" {:>20}", format!("{m:.2} ({lo:.1}-{hi:.1})"));
        }
        let ratios: Vec<String> = meds[1..]
            .iter()
            .zip(&servers[1..])
            .map(|(m, (n, _))| format!("{:.2}x {n}", meds[0] / m))
            .collect();
        println!("   {}", ratios.join(", "));
    }
}
