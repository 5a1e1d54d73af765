//! Side-by-side benchmark: Berth against Debian's `docker-registry` (CNCF
//! distribution 2.8 = registry:2), same run, same machine, every workload of
//! issue 18: small requests at 32 clients (req/s, p50/p99), blob push
//! monolithic and chunked, image push, blob pull, one 2 GiB push and pull,
//! catalog walks at 2,000 and 20,000 repositories, a 10,000-tag list, and
//! memory (idle, peaks during the 2 GiB transfers, after the 20k catalog).
//!
//! Rounds run A B, B A, A B (`BENCH_ROUNDS`, default 3) with fresh data dirs
//! (kept to the end of the run, each step's writes synced before the next); the
//! table gives medians, min–max spreads, the ratio Berth / registry:2 and
//! which direction is better, server CPU-seconds per GiB (utime + stime from
//! `/proc/<pid>/stat`) and the client's own CPU, so a reader can tell the
//! client is not the bottleneck. It is printed and written to
//! `target/bench/vs_registry2.md`.
//!
//! `cargo bench --bench vs_registry2`; `BENCH_SECONDS=N` per small-request
//! phase (default 2); `BENCH_SMOKE=1`: tiny sizes, one round, a check that
//! every workload still works (`.ci/run`). Without `docker-registry`, only
//! Berth's figures are printed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

use common::data::{self, Blob};
use common::http::{Body, Conn, Sink};
use common::procfs::{status_kib, RssSampler};
use common::report::{Better, Results, Row};
use common::server::{self, Kind, Server};
use common::work;

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
/// Apache `htpasswd -B`'s default cost.
const BCRYPT_COST: u32 = 5;
const CLIENTS: usize = 32;
const TRANSFER_CLIENTS: usize = 4;

struct Cfg {
    smoke: bool,
    rounds: usize,
    secs: f64,
    blob_count: usize,
    blob_size: u64,
    chunk: u64,
    big: u64,
    catalog_small: usize,
    catalog_big: usize,
    tags: usize,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

impl Cfg {
    fn from_env() -> Cfg {
        if std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0") {
            return Cfg {
                smoke: true,
                rounds: 1,
                secs: 0.3,
                blob_count: 8,
                blob_size: 1 << 20,
                chunk: 256 << 10,
                big: 32 << 20,
                catalog_small: 200,
                catalog_big: 1000,
                tags: 300,
            };
        }
        Cfg {
            smoke: false,
            rounds: env("BENCH_ROUNDS", 3usize).max(1),
            secs: env("BENCH_SECONDS", 2.0f64),
            blob_count: 32,
            blob_size: 16 << 20,
            chunk: 8 << 20,
            big: 2 << 30,
            catalog_small: 2000,
            catalog_big: 20000,
            tags: 10000,
        }
    }
}

fn rows(c: &Cfg) -> Vec<Row> {
    let s = |x: String| -> &'static str { Box::leak(x.into_boxed_str()) };
    let mut rows = Vec::new();
    let mut row = |key, label: String, unit, better| {
        rows.push(Row {
            key,
            label: s(label),
            unit,
            better,
        })
    };
    use Better::*;
    for (k, name) in [
        ("manifest", "manifest GET"),
        ("head", "blob HEAD"),
        ("tags", "tags list (10 tags)"),
        ("v2", "`/v2/` anonymous"),
        ("v2basic", "`/v2/` Basic auth"),
    ] {
        let key = |suffix: &str| s(format!("{k}_{suffix}"));
        row(key("rps"), format!("{name}, c={CLIENTS}"), "req/s", Higher);
        row(key("p50"), format!("{name}, p50"), "ms", Lower);
        row(key("p99"), format!("{name}, p99"), "ms", Lower);
    }
    let size = |b: u64| {
        if b >= 1 << 30 {
            format!("{} GiB", b >> 30)
        } else if b >= 1 << 20 {
            format!("{} MiB", b >> 20)
        } else {
            format!("{} KiB", b >> 10)
        }
    };
    let n = c.blob_count;
    let bs = size(c.blob_size);
    let t = TRANSFER_CLIENTS;
    for (k, name) in [
        (
            "push_mono",
            format!("blob push monolithic {n} x {bs}, c={t}"),
        ),
        (
            "push_chunk",
            format!("blob push chunked ({}) {n} x {bs}, c={t}", size(c.chunk)),
        ),
        ("pull", format!("blob pull {n} x {bs}, c={t}")),
        ("bigpush", format!("blob push {}, c=1", size(c.big))),
        ("bigpull", format!("blob pull {}, c=1", size(c.big))),
    ] {
        row(s(format!("{k}_mibs")), name.clone(), "MiB/s", Higher);
        row(
            s(format!("{k}_cpu")),
            format!("{name}: server CPU"),
            "CPU-s/GiB",
            Lower,
        );
    }
    row(
        "images",
        format!("image push (16 KiB layer), c={t}"),
        "images/s",
        Higher,
    );
    row(
        "cat_small",
        format!("catalog walk n=100, {} repos", c.catalog_small + 1),
        "s",
        Lower,
    );
    row(
        "cat_big_first",
        format!("start-up to first catalog page, {} repos", c.catalog_big),
        "s",
        Lower,
    );
    row(
        "cat_big",
        format!("catalog walk n=100, {} repos", c.catalog_big),
        "s",
        Lower,
    );
    row(
        "tags_big",
        format!("tags list, {} tags (following Link)", c.tags),
        "ms",
        Lower,
    );
    row("rss_idle", "RSS idle".into(), "MiB", Lower);
    row(
        "rss_bigpush",
        format!("peak RSS during the {} push", size(c.big)),
        "MiB",
        Lower,
    );
    row(
        "rss_bigpush_added",
        format!("RSS added by the {} push (peak minus before)", size(c.big)),
        "MiB",
        Lower,
    );
    row(
        "rss_bigpull",
        format!("peak RSS during the {} pull", size(c.big)),
        "MiB",
        Lower,
    );
    row(
        "rss_bigpull_added",
        format!("RSS added by the {} pull (peak minus before)", size(c.big)),
        "MiB",
        Lower,
    );
    row(
        "rss_cat_big",
        format!("RSS after start-up + walk, {} repos", c.catalog_big),
        "MiB",
        Lower,
    );
    row(
        "index_mem",
        format!(
            "catalog memory, {} repos: that minus idle RSS",
            c.catalog_big
        ),
        "MiB",
        Lower,
    );
    rows
}

/// A small-request workload: key, method, path, headers.
type SmallReq<'a> = (&'static str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

struct Inputs {
    mono: Vec<Blob>,
    chunked: Vec<Blob>,
    big: Vec<Blob>,
    probe: Blob,
    catalog_small: PathBuf,
    catalog_big: PathBuf,
    htpasswd: PathBuf,
    scratch: PathBuf,
}

/// Done with a data dir: it stays until the end of the run (the scratch
/// dir goes then), since ext4 makes every file create scan for inodes freed
/// in the last 30 s and the next workload would pay for this one's
/// deletions; its dirty pages are written out now (`sync`) so the next
/// workload does not wait on them either.
fn fresh(_dir: &Path) {
    let _ = std::process::Command::new("sync").status();
}

fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS") as f64 / 1024.0
}

/// Every workload against one server kind, on fresh data dirs.
fn round(kind: Kind, round: usize, c: &Cfg, inp: &Inputs, out: &mut Results) {
    let name = kind.name();
    let dir = |what: &str| {
        inp.scratch
            .join(format!("{what}-{}-{round}", name.replace(':', "")))
    };
    let t_round = Instant::now();
    let step = |what: &str| {
        eprintln!(
            "  [{name} round {} +{:.1}s] {what}",
            round + 1,
            t_round.elapsed().as_secs_f64()
        )
    };

    // An empty registry: idle memory, small requests, transfers.
    let root = dir("data");
    let s = server::start(kind, &root, None, &inp.scratch);
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_mib(s.pid);
    out.add(kind, "rss_idle", idle);
    step("small requests");
    let mut conn = Conn::new(&s.addr);
    for i in 0..10 {
        let tag = if i == 0 {
            "latest".to_string()
        } else {
            format!("v{i}")
        };
        work::push_image(&mut conn, "bench/app", &tag, 1_000_000 + i);
    }
    work::push_blob(&mut conn, "bench/app", &inp.probe, None);
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    let head = format!("/v2/bench/app/blobs/{}", inp.probe.digest);
    let smalls: [SmallReq; 4] = [
        ("manifest", "GET", "/v2/bench/app/manifests/latest", &accept),
        ("head", "HEAD", &head, &[]),
        ("tags", "GET", "/v2/bench/app/tags/list", &[]),
        ("v2", "GET", "/v2/", &[]),
    ];
    for (k, method, path, headers) in smalls {
        let r = work::small(&s.addr, s.pid, CLIENTS, c.secs, path, method, headers);
        record_small(out, kind, k, &r);
    }

    step("blob push and pull");
    let t = TRANSFER_CLIENTS;
    let r = work::push_blobs(&s.addr, s.pid, "bench/mono", &inp.mono, t, None);
    record_transfer(out, kind, "push_mono", &r);
    let r = work::push_blobs(
        &s.addr,
        s.pid,
        "bench/chunked",
        &inp.chunked,
        t,
        Some(c.chunk),
    );
    record_transfer(out, kind, "push_chunk", &r);
    let (ips, cores) = work::push_images(&s.addr, s.pid, t, c.secs);
    out.add(kind, "images", ips);
    out.client(kind, "images", cores);
    let r = work::pull_blobs(&s.addr, s.pid, "bench/mono", &inp.mono, t, c.smoke);
    record_transfer(out, kind, "pull", &r);
    // Chunked uploads must have stored the right bytes too.
    work::pull_blobs(&s.addr, s.pid, "bench/chunked", &inp.chunked[..1], 1, true);

    step("big blob");
    let before = rss_mib(s.pid);
    let sampler = RssSampler::start(s.pid);
    let r = work::push_blobs(&s.addr, s.pid, "bench/big", &inp.big, 1, None);
    let peak = sampler.finish();
    out.add(kind, "rss_bigpush", peak);
    out.add(kind, "rss_bigpush_added", peak - before);
    record_transfer(out, kind, "bigpush", &r);
    let before = rss_mib(s.pid);
    let sampler = RssSampler::start(s.pid);
    let r = work::pull_blobs(&s.addr, s.pid, "bench/big", &inp.big, 1, c.smoke);
    let peak = sampler.finish();
    out.add(kind, "rss_bigpull", peak);
    out.add(kind, "rss_bigpull_added", peak - before);
    record_transfer(out, kind, "bigpull", &r);
    drop(s);
    fresh(&root);

    // Basic auth on every request (the verification as each server does it:
    // Berth caches it, registry:2 runs bcrypt each time).
    step("Basic auth");
    let root = dir("auth");
    let s = server::start(kind, &root, Some(&inp.htpasswd), &inp.scratch);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let hdr = [("Authorization", basic.as_str())];
    let r = work::small(&s.addr, s.pid, CLIENTS, c.secs, "/v2/", "GET", &hdr);
    record_small(out, kind, "v2basic", &r);
    drop(s);
    fresh(&root);

    step("catalog and tags");
    let root = dir("catalog");
    data::copy_tree(&inp.catalog_small, &root).expect("copy tree");
    let s = server::start(kind, &root, None, &inp.scratch);
    let t0 = Instant::now();
    let (repos, _) = work::walk(&s.addr, "/v2/_catalog?n=100", "repositories");
    out.add(kind, "cat_small", t0.elapsed().as_secs_f64());
    assert_eq!(repos, c.catalog_small + 1, "{name}: catalog walk");
    let mut times = Vec::new();
    for _ in 0..if c.smoke { 1 } else { 5 } {
        let t0 = Instant::now();
        let (tags, _) = work::walk(&s.addr, "/v2/bench/tags/tags/list", "tags");
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(tags, c.tags, "{name}: tags list");
    }
    times.sort_by(f64::total_cmp);
    out.add(kind, "tags_big", times[times.len() / 2]);
    drop(s);
    fresh(&root);

    let root = dir("catalog-big");
    data::copy_tree(&inp.catalog_big, &root).expect("copy tree");
    let s = server::start(kind, &root, None, &inp.scratch);
    first_page(&s, out, kind);
    let t0 = Instant::now();
    let (repos, _) = work::walk(&s.addr, "/v2/_catalog?n=100", "repositories");
    out.add(kind, "cat_big", t0.elapsed().as_secs_f64());
    assert_eq!(repos, c.catalog_big, "{name}: big catalog walk");
    std::thread::sleep(Duration::from_millis(200));
    let rss = rss_mib(s.pid);
    out.add(kind, "rss_cat_big", rss);
    out.add(kind, "index_mem", rss - idle);
    drop(s);
    fresh(&root);
}

/// Time from spawning the server to its first `200` catalog page.
fn first_page(s: &Server, out: &mut Results, kind: Kind) {
    let mut conn = Conn::new(&s.addr);
    loop {
        let r = conn.send("GET", "/v2/_catalog?n=100", &[], Body::Empty, Sink::Discard);
        if matches!(r, Ok(ref r) if r.status == 200) {
            break;
        }
        assert!(
            s.spawned.elapsed() < Duration::from_secs(300),
            "no catalog page"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    out.add(kind, "cat_big_first", s.spawned.elapsed().as_secs_f64());
}

fn record_small(out: &mut Results, kind: Kind, k: &'static str, r: &work::Small) {
    let key = |s: &str| -> &'static str { Box::leak(format!("{k}_{s}").into_boxed_str()) };
    out.add(kind, key("rps"), r.rps);
    out.add(kind, key("p50"), r.p50_ms);
    out.add(kind, key("p99"), r.p99_ms);
    out.client(kind, key("rps"), r.client_cores);
}

fn record_transfer(out: &mut Results, kind: Kind, k: &'static str, r: &work::Transfer) {
    let key = |s: &str| -> &'static str { Box::leak(format!("{k}_{s}").into_boxed_str()) };
    out.add(kind, key("mibs"), r.mibs);
    out.add(kind, key("cpu"), r.cpu_per_gib);
    out.client(kind, key("mibs"), r.client_cores);
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |(_, m)| m.trim());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = status_like("/proc/meminfo", "MemTotal") / 1024 / 1024;
    format!(
        "{cores} cores, {model}, {mem} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn status_like(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `<target>/bench/vs_registry2.md`, next to the build that runs.
fn results_file() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // <target>/release/deps/vs_registry2-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    target.join("bench/vs_registry2.md")
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let c = Cfg::from_env();
    let started = Instant::now();
    let reference = server::registry2_installed();
    if !reference {
        eprintln!("docker-registry not installed: Berth-only figures");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let scratch = tmp.path().to_path_buf();

    eprintln!("generating blobs and trees ...");
    let base = data::base(16 << 20);
    let n = c.blob_count as u64;
    let mono: Vec<Blob> = (0..n)
        .map(|i| Blob::new(&base, i + 1, c.blob_size))
        .collect();
    let chunked: Vec<Blob> = (0..n)
        .map(|i| Blob::new(&base, n + i + 1, c.blob_size))
        .collect();
    let big = vec![Blob::new(&base, 1 << 40, c.big)];
    let probe = Blob::new(&base, 1 << 41, 4096);
    let catalog_small = scratch.join("tree-small");
    data::catalog_tree(&catalog_small, c.catalog_small, c.tags).expect("tree");
    let catalog_big = scratch.join("tree-big");
    data::catalog_tree(&catalog_big, c.catalog_big, 0).expect("tree");
    let htpasswd = scratch.join("htpasswd");
    server::htpasswd(&htpasswd, USER, PASSWORD, BCRYPT_COST);
    let inputs = Inputs {
        mono,
        chunked,
        big,
        probe,
        catalog_small,
        catalog_big,
        htpasswd,
        scratch,
    };
    eprintln!("ready in {:.1}s", started.elapsed().as_secs_f64());

    let mut kinds = vec![Kind::Berth];
    if reference {
        kinds.push(Kind::Registry2);
    }
    let load_start = loadavg();
    let mut results = Results::default();
    for r in 0..c.rounds {
        // Each round starts with the other server, so neither always runs
        // right after the other's work.
        let n = kinds.len();
        for k in (0..n).map(|i| kinds[(i + r) % n]) {
            round(k, r, &c, &inputs, &mut results);
        }
        // The table so far, so that a cut-short run still leaves figures.
        let md = render(&c, &results, reference, r + 1, started, &load_start);
        if r + 1 < c.rounds {
            write_results(&md);
        } else {
            println!("\n{md}");
            write_results(&md);
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn render(
    c: &Cfg,
    results: &Results,
    reference: bool,
    done: usize,
    started: Instant,
    load_start: &str,
) -> String {
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let rev = command_line(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let r2 = if reference {
        command_line(server::REGISTRY2, &["--version"])
            .rsplit(' ')
            .next()
            .unwrap_or("?")
            .to_string()
    } else {
        "not installed".into()
    };
    let mut md = format!(
        "Berth {} ({rev}) vs registry:2 (Debian docker-registry {r2}), {date}{}.\n\
         {done} of {} round(s), A B / B A alternating, fresh data dirs kept to the end, synced between steps; {} s per small-request phase; \
         {} wall; load average {load_start} at the start, {} at the end.\n\
         Machine: {}; {}.\n\n",
        env!("CARGO_PKG_VERSION"),
        if c.smoke {
            ", SMOKE sizes (not figures)"
        } else {
            ""
        },
        c.rounds,
        c.secs,
        format_args!("{:.0} s", started.elapsed().as_secs_f64()),
        loadavg(),
        machine(),
        command_line("rustc", &["--version"]),
    );
    md.push_str(&results.table(&rows(c), reference));
    md
}

fn write_results(md: &str) {
    let file = results_file();
    if let Some(p) = file.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    match std::fs::write(&file, md) {
        Ok(()) => eprintln!("written to {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
}
