//! Blob pulls, Berth against Debian's `docker-registry` (registry:2) in
//! the same run: MiB/s and the server's CPU-seconds per GiB served (its
//! utime + stime from `/proc/<pid>/stat`), and the server's RSS growth
//! during one big pull.
//!
//! `cargo bench --bench pull`. Workloads: `c=4` clients pulling
//! `PULL_COUNT` (32) blobs of `PULL_MIB` (16) MiB, `PULL_PASSES` (2) times
//! over; then one blob of `PULL_BIG_MIB` (2048) MiB. `BENCH_ROUNDS` (3)
//! rounds, servers alternated A B A B, medians and spreads (min-max)
//! printed. `BERTH_BEFORE=/path/to/berth[:/path/to/another]` adds other
//! Berth binaries (say, builds before a change; named by their file names)
//! to the same run.
//!
//! The measuring pieces ([`cpu_seconds`], [`rss_kib`], [`pull_all`]) are
//! self-contained so another benchmark can reuse them.

#[path = "common/process.rs"]
mod process;

use process::{free_port, Killed};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;

const MIB: u64 = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process's CPU time (user + system) in seconds, from `/proc/<pid>/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s: Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// A process's resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

struct Server {
    name: String,
    child: Killed,
    base: String,
    _root: tempfile::TempDir,
}

fn start_berth(name: &str, bin: &Path) -> Server {
    let root = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(bin)
        .arg("serve")
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start berth");
    Server {
        name: name.to_string(),
        child: Killed(child),
        base: format!("http://127.0.0.1:{port}"),
        _root: root,
    }
}

fn start_registry2() -> Option<Server> {
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let root = tempfile::tempdir().ok()?;
    let port = free_port();
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.path().join("data").display()
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
        name: "registry:2".into(),
        child: Killed(child),
        base: format!("http://127.0.0.1:{port}"),
        _root: root,
    })
}

async fn wait_ready(c: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/v2/")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Blob `seed` of `mib` MiB: a 1 MiB pseudo-random block, each MiB
/// stamped with its index and the seed, so every blob and MiB differs.
fn chunk(seed: u64, i: u64, block: &[u8]) -> bytes::Bytes {
    let mut c = block.to_vec();
    c[..8].copy_from_slice(&i.to_le_bytes());
    c[8..16].copy_from_slice(&seed.to_le_bytes());
    c.into()
}

fn block() -> Vec<u8> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..MIB)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn blob_digest(seed: u64, mib: u64, block: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    for i in 0..mib {
        h.update(chunk(seed, i, block));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Pushes blob `seed` (POST, one streamed PATCH, PUT ?digest=).
async fn push(c: &reqwest::Client, base: &str, seed: u64, mib: u64, block: &Arc<Vec<u8>>, d: &str) {
    let r = c
        .post(format!("{base}/v2/bench/pull/blobs/uploads/"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let loc = resolve(base, r.headers()["location"].to_str().expect("location"));
    let b = block.clone();
    let body = futures_util::stream::iter(
        (0..mib).map(move |i| Ok::<_, std::io::Error>(chunk(seed, i, &b))),
    );
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
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
}

/// Pulls every URL in `urls` from `clients` concurrent clients, each body
/// read to its end and checked for `expect` bytes. Returns the bytes
/// read and the wall time.
pub async fn pull_all(
    c: &reqwest::Client,
    urls: Arc<Vec<String>>,
    clients: usize,
    expect: u64,
) -> (u64, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, urls, next, total) = (c.clone(), urls.clone(), next.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(url) = urls.get(i) else { return };
                let mut r = c.get(url).send().await.expect("get");
                assert_eq!(r.status(), 200, "{url}");
                let mut n = 0u64;
                while let Some(b) = r.chunk().await.expect("body") {
                    n += b.len() as u64;
                }
                assert_eq!(n, expect, "{url}");
                total.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    (total.load(Ordering::Relaxed), start.elapsed())
}

#[derive(Default)]
struct Samples {
    mibs: Vec<f64>,
    cpu_per_gib: Vec<f64>,
}

impl Samples {
    fn add(&mut self, bytes: u64, wall: Duration, cpu: f64) {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        self.mibs
            .push(bytes as f64 / MIB as f64 / wall.as_secs_f64());
        self.cpu_per_gib.push(cpu / gib);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.3}-{hi:.3}")
}

struct Figures {
    small: Samples,
    big: Samples,
    big_rss_kib: Vec<f64>,
}

#[tokio::main]
async fn main() {
    let rounds = env_u64("BENCH_ROUNDS", 3).max(1);
    let (count, mib, passes) = (
        env_u64("PULL_COUNT", 32),
        env_u64("PULL_MIB", 16),
        env_u64("PULL_PASSES", 2).max(1),
    );
    let big_mib = env_u64("PULL_BIG_MIB", 2048);
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let berth: PathBuf = std::env::var_os("BERTH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_berth").into());
    let mut servers = vec![start_berth("berth", &berth)];
    if let Some(others) = std::env::var_os("BERTH_BEFORE") {
        for bin in std::env::split_paths(&others) {
            let name = bin
                .file_name()
                .map_or("berth-before".into(), |n| n.to_string_lossy().into_owned());
            servers.push(start_berth(&name, &bin));
        }
    }
    servers.extend(start_registry2());

    let block = Arc::new(block());
    let small: Vec<(u64, String)> = (0..count)
        .map(|s| (s, blob_digest(s, mib, &block)))
        .collect();
    let big = (1_000_000, blob_digest(1_000_000, big_mib, &block));
    for s in &servers {
        wait_ready(&c, &s.base).await;
        for (seed, d) in &small {
            push(&c, &s.base, *seed, mib, &block, d).await;
        }
        if big_mib > 0 {
            push(&c, &s.base, big.0, big_mib, &block, &big.1).await;
        }
        eprintln!("{}: pushed", s.name);
    }

    let mut figures: Vec<Figures> = servers
        .iter()
        .map(|_| Figures {
            small: Samples::default(),
            big: Samples::default(),
            big_rss_kib: Vec::new(),
        })
        .collect();
    for round in 0..rounds {
        for (s, f) in servers.iter().zip(figures.iter_mut()) {
            let pid = s.child.id();
            let urls: Vec<String> = (0..passes)
                .flat_map(|_| small.iter())
                .map(|(_, d)| format!("{}/v2/bench/pull/blobs/{d}", s.base))
                .collect();
            let cpu = cpu_seconds(pid);
            let (bytes, wall) = pull_all(&c, Arc::new(urls), 4, mib * MIB).await;
            f.small.add(bytes, wall, cpu_seconds(pid) - cpu);

            if big_mib > 0 {
                let url = format!("{}/v2/bench/pull/blobs/{}", s.base, big.1);
                let before = rss_kib(pid);
                let (stop, peak) = (
                    Arc::new(AtomicBool::new(false)),
                    Arc::new(AtomicU64::new(0)),
                );
                let sampler = {
                    let (stop, peak) = (stop.clone(), peak.clone());
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    })
                };
                let cpu = cpu_seconds(pid);
                let (bytes, wall) = pull_all(&c, Arc::new(vec![url]), 1, big_mib * MIB).await;
                f.big.add(bytes, wall, cpu_seconds(pid) - cpu);
                stop.store(true, Ordering::Relaxed);
                let _ = sampler.join();
                f.big_rss_kib
                    .push(peak.load(Ordering::Relaxed).saturating_sub(before) as f64);
            }
            eprintln!("round {round}: {} done", s.name);
        }
    }

    let r2 = servers.iter().position(|s| s.name == "registry:2");
    println!(
        "\nblob pull: c=4 x {count} x {mib} MiB x {passes} passes; 1 x {big_mib} MiB; {rounds} rounds (median, min-max)"
    );
    println!(
        "{:<15} {:>24} {:>26} {:>24} {:>26} {:>14}",
        "server", "c=4 MiB/s", "c=4 CPU-s/GiB", "big MiB/s", "big CPU-s/GiB", "big +RSS MiB"
    );
    for (s, f) in servers.iter().zip(&figures) {
        let big_rss = if f.big_rss_kib.is_empty() {
            0.0
        } else {
            median(&f.big_rss_kib) / 1024.0
        };
        let cell = |v: &[f64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.3} ({})", median(v), spread(v))
            }
        };
        println!(
            "{:<15} {:>24} {:>26} {:>24} {:>26} {:>14.1}",
            s.name,
            cell(&f.small.mibs),
            cell(&f.small.cpu_per_gib),
            cell(&f.big.mibs),
            cell(&f.big.cpu_per_gib),
            big_rss
        );
    }
    if let Some(r2) = r2 {
        let base = &figures[r2];
        for (s, f) in servers.iter().zip(&figures) {
            if s.name == "registry:2" {
                continue;
            }
            let ratio = |a: &[f64], b: &[f64]| {
                if a.is_empty() || b.is_empty() {
                    f64::NAN
                } else {
                    median(a) / median(b)
                }
            };
            println!(
                "{} / registry:2: c=4 MiB/s {:.2}x, CPU/GiB {:.2}x; big MiB/s {:.2}x, CPU/GiB {:.2}x",
                s.name,
                ratio(&f.small.mibs, &base.small.mibs),
                ratio(&f.small.cpu_per_gib, &base.small.cpu_per_gib),
                ratio(&f.big.mibs, &base.big.mibs),
                ratio(&f.big.cpu_per_gib, &base.big.cpu_per_gib),
            );
        }
    }
}
