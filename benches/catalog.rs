//! Catalog and tags-list benchmark: Berth against Debian's `docker-registry`
//! (registry:2) in the same run, on data dirs made by `common/datadir.rs`.
//!
//! `cargo bench --bench catalog`. Environment: `BENCH_ROUNDS` (default 3,
//! A B A B), `CATALOG_BIG` (repositories of the start-up phase, default
//! 100000; 0 skips it), `CATALOG_R2_BIG=1` to walk 20,000 repositories with
//! registry:2 too (minutes: its every page walks the whole tree).
//!
//! Figures: a full `n=100` walk following `Link` at 2,000 and 20,000
//! repositories; a `n=100` walk of 10,000 tags; for the big store, start-up
//! to the first `/v2/` answer, to the index being ready, the RSS before and
//! after, and a full walk.

#[path = "common/datadir.rs"]
mod datadir;

#[path = "common/process.rs"]
mod process;

use process::{free_port, Killed};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Killed,
    base: String,
    debug: Option<String>,
}

fn start_berth(root: &Path) -> Server {
    let (port, debug) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTRY_HTTP_DEBUG_ADDR", format!("127.0.0.1:{debug}"))
        .env("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true")
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start berth");
    Server {
        child: Killed(child),
        base: format!("http://127.0.0.1:{port}"),
        debug: Some(format!("http://127.0.0.1:{debug}")),
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
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
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
        child: Killed(child),
        base: format!("http://127.0.0.1:{port}"),
        debug: None,
    })
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client")
}

/// Time until `/v2/` answers 200.
fn wait_ready(c: &reqwest::blocking::Client, base: &str) -> Duration {
    let started = Instant::now();
    for _ in 0..20_000 {
        if let Ok(r) = c.get(format!("{base}/v2/")).send() {
            if r.status().is_success() {
                return started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("{base} did not become ready");
}

/// Time until Berth's catalog index is ready (from its metrics).
fn wait_indexed(c: &reqwest::blocking::Client, s: &Server) -> Duration {
    let started = Instant::now();
    let Some(debug) = &s.debug else {
        return Duration::ZERO;
    };
    for _ in 0..60_000 {
        if let Ok(r) = c.get(format!("{debug}/metrics")).send() {
            if r.text()
                .unwrap_or_default()
                .lines()
                .any(|l| l == "berth_catalog_index_ready 1")
            {
                return started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the index was not ready");
}

/// A gauge's value from Berth's metrics.
fn gauge(c: &reqwest::blocking::Client, s: &Server, name: &str) -> f64 {
    let Some(debug) = &s.debug else {
        return 0.0;
    };
    let text = c
        .get(format!("{debug}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn rss_kib(s: &Server) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Follows `Link` from `path` to the end; returns the names and the time.
fn walk(
    c: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    key: &str,
) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let mut url = format!("{base}{path}");
    let mut names = Vec::new();
    for _ in 0..1_000_000 {
        let r = c.get(&url).send().expect("page");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let next = r
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split('<').nth(1)?.split('>').next().map(str::to_string));
        let body: serde_json::Value = r.json().expect("json");
        for n in body[key].as_array().into_iter().flatten() {
            names.push(n.as_str().unwrap_or_default().to_string());
        }
        match next {
            Some(n) if n.starts_with("http") => url = n,
            Some(n) => url = format!("{base}{n}"),
            None => break,
        }
    }
    (names, started.elapsed())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn spread(xs: &[f64]) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0, f64::max);
    format!("{:.4}-{:.4}", lo, hi)
}

fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Walks `path` on Berth and registry:2 (A B A B), `rounds` times each, and
/// prints medians, spreads and the ratio; checks both listed `expect`.
fn side_by_side(
    label: &str,
    berth: &Server,
    r2: Option<&Server>,
    path: &str,
    key: &str,
    expect: usize,
    rounds: usize,
) {
    let c = client();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (names, t) = walk(&c, &berth.base, path, key);
        assert_eq!(
            names.len(),
            expect,
            "berth listed {} of {expect}",
            names.len()
        );
        a.push(t.as_secs_f64());
        if let Some(r2) = r2 {
            let (names, t) = walk(&c, &r2.base, path, key);
            assert_eq!(
                names.len(),
                expect,
                "registry:2 listed {} of {expect}",
                names.len()
            );
            b.push(t.as_secs_f64());
        }
    }
    let ma = median(a.clone());
    if b.is_empty() {
        println!(
            "{label:<44} berth {ma:>9.4} s ({})   registry:2 -",
            spread(&a)
        );
    } else {
        let mb = median(b.clone());
        println!(
            "{label:<44} berth {ma:>9.4} s ({})   registry:2 {mb:>9.4} s ({})   berth/registry:2 {:.4}x",
            spread(&a),
            spread(&b),
            ma / mb
        );
    }
}

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let big = env_usize("CATALOG_BIG", 100_000);
    let r2_big = std::env::var("CATALOG_R2_BIG").is_ok_and(|v| v == "1");
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = client();
    println!("catalog benchmark: {rounds} rounds, medians (min-max)");

    for (count, with_r2) in [(2_000, true), (20_000, r2_big)] {
        let (rb, rr) = (
            tmp.path().join(format!("b{count}")),
            tmp.path().join(format!("r{count}")),
        );
        datadir::make_repositories(&rb, count).expect("data dir");
        let berth = start_berth(&rb);
        let r2 = if with_r2 {
            datadir::make_repositories(&rr, count).expect("data dir");
            start_registry2(&rr)
        } else {
            None
        };
        wait_ready(&c, &berth.base);
        wait_indexed(&c, &berth);
        if let Some(r) = &r2 {
            wait_ready(&c, &r.base);
        }
        let label = format!("catalog walk n=100, {count} repositories");
        side_by_side(
            &label,
            &berth,
            r2.as_ref(),
            "/v2/_catalog?n=100",
            "repositories",
            count,
            rounds,
        );
        drop((berth, r2));
        let _ = std::fs::remove_dir_all(&rb);
        let _ = std::fs::remove_dir_all(&rr);
    }

    {
        let tags = 10_000;
        let (rb, rr) = (tmp.path().join("tb"), tmp.path().join("tr"));
        datadir::make_tags(&rb, "bench/tags", tags).expect("data dir");
        datadir::make_tags(&rr, "bench/tags", tags).expect("data dir");
        let berth = start_berth(&rb);
        let r2 = start_registry2(&rr);
        wait_ready(&c, &berth.base);
        if let Some(r) = &r2 {
            wait_ready(&c, &r.base);
        }
        // Berth keeps a tags list in memory only once its directory is 2 s
        // old (see the README's catalog section): a repository's tags as
        // they are between pushes, not in the second after one.
        std::thread::sleep(Duration::from_millis(2100));
        let path = "/v2/bench/tags/tags/list";
        side_by_side(
            "tags list, 10000 tags, one page",
            &berth,
            r2.as_ref(),
            path,
            "tags",
            tags,
            rounds,
        );
        let path = "/v2/bench/tags/tags/list?n=100";
        side_by_side(
            "tags walk n=100, 10000 tags",
            &berth,
            r2.as_ref(),
            path,
            "tags",
            tags,
            rounds,
        );
    }

    if big > 0 {
        let root = tmp.path().join("big");
        let made = Instant::now();
        datadir::make_repositories(&root, big).expect("data dir");
        println!(
            "made {big} repositories in {:.1} s",
            made.elapsed().as_secs_f64()
        );
        for round in 0..rounds {
            let berth = start_berth(&root);
            let first = wait_ready(&c, &berth.base);
            let rss_first = rss_kib(&berth);
            let indexed = wait_indexed(&c, &berth) + first;
            // Let the scan's own garbage go before measuring.
            std::thread::sleep(Duration::from_millis(300));
            let rss_indexed = rss_kib(&berth);
            let scan = gauge(&c, &berth, "berth_catalog_index_scan_seconds");
            let (names, t100) = walk(&c, &berth.base, "/v2/_catalog?n=100", "repositories");
            assert_eq!(names.len(), big);
            let (_, t1000) = walk(&c, &berth.base, "/v2/_catalog?n=1000", "repositories");
            let (_, one) = walk(&c, &berth.base, "/v2/_catalog", "repositories");
            println!(
                "round {round}: {big} repositories: start to first /v2/ {:.3} s, to index ready {:.3} s (scan {:.3} s); RSS {} KiB at first answer, {} KiB indexed (+{} KiB); walk n=100 {:.3} s, n=1000 {:.3} s, one page {:.3} s",
                first.as_secs_f64(),
                indexed.as_secs_f64(),
                scan,
                rss_first,
                rss_indexed,
                rss_indexed.saturating_sub(rss_first),
                t100.as_secs_f64(),
                t1000.as_secs_f64(),
                one.as_secs_f64(),
            );
        }
    }
}
