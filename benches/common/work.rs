//! The workloads, each against one server address, in client threads (one
//! keep-alive connection each).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::data::{manifest, sha256, Blob};
use super::http::{Body, Conn, Resp, Sink};
use super::procfs::{CpuMeter, CpuUse};

pub const GIB: f64 = (1u64 << 30) as f64;
pub const MIB: f64 = (1u64 << 20) as f64;

fn expect(r: std::io::Result<Resp>, want: u16, what: &str) -> Resp {
    match r {
        Ok(r) if r.status == want => r,
        Ok(r) => panic!(
            "{what}: status {} (want {want}): {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A run of small requests: throughput and latency.
pub struct Small {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub client_cores: f64,
}

/// `clients` connections sending the same request for `secs` (after a short
/// warm-up); each answer must be 200.
pub fn small(
    addr: &str,
    pid: u32,
    clients: usize,
    secs: f64,
    path: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> Small {
    let run = |secs: f64| -> (Vec<u32>, CpuUse) {
        let meter = CpuMeter::start(pid);
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let lat: Vec<Vec<u32>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = Conn::new(addr);
                        let mut lat = Vec::with_capacity(1 << 16);
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            let r = c.send(method, path, headers, Body::Empty, Sink::Discard);
                            expect(r, 200, path);
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        lat
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("client thread"))
                .collect()
        });
        (lat.concat(), meter.stop())
    };
    run((secs / 5.0).min(0.5));
    let (mut lat, cpu) = run(secs);
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    Small {
        rps: lat.len() as f64 / cpu.wall,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        client_cores: cpu.client / cpu.wall,
    }
}

/// Bytes moved: throughput, server CPU per GiB, client CPU.
pub struct Transfer {
    pub mibs: f64,
    pub cpu_per_gib: f64,
    pub client_cores: f64,
}

fn transfer(bytes: f64, cpu: CpuUse) -> Transfer {
    Transfer {
        mibs: bytes / MIB / cpu.wall,
        cpu_per_gib: cpu.server / (bytes / GIB),
        client_cores: cpu.client / cpu.wall,
    }
}

/// Runs `f` on each item from `c` threads (one connection each).
fn parallel<T: Sync>(addr: &str, items: &[T], c: usize, f: impl Fn(&mut Conn, &T) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..c {
            s.spawn(|| {
                let mut conn = Conn::new(addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    f(&mut conn, item);
                }
            });
        }
    });
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

/// One blob push: `POST`, then either one `PUT` with the whole body
/// (monolithic) or `PATCH`es of `chunk` bytes and an empty `PUT`.
pub fn push_blob(c: &mut Conn, repo: &str, blob: &Blob, chunk: Option<u64>) {
    let octet = [("Content-Type", "application/octet-stream")];
    let r = c.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Body::Empty,
        Sink::Keep,
    );
    let mut loc = expect(r, 202, "POST upload").location();
    match chunk {
        None => {
            let r = c.send(
                "PUT",
                &with_digest(&loc, &blob.digest),
                &octet,
                Body::Blob(blob, 0, blob.len),
                Sink::Keep,
            );
            expect(r, 201, "PUT blob");
        }
        Some(n) => {
            let mut at = 0;
            while at < blob.len {
                let end = (at + n).min(blob.len);
                let range = format!("{at}-{}", end - 1);
                let r = c.send(
                    "PATCH",
                    &loc,
                    &[octet[0], ("Content-Range", &range)],
                    Body::Blob(blob, at, end),
                    Sink::Keep,
                );
                loc = expect(r, 202, "PATCH chunk").location();
                at = end;
            }
            let r = c.send(
                "PUT",
                &with_digest(&loc, &blob.digest),
                &[],
                Body::Empty,
                Sink::Keep,
            );
            expect(r, 201, "PUT last chunk");
        }
    }
}

pub fn push_blobs(
    addr: &str,
    pid: u32,
    repo: &str,
    blobs: &[Blob],
    c: usize,
    chunk: Option<u64>,
) -> Transfer {
    let bytes: u64 = blobs.iter().map(|b| b.len).sum();
    let meter = CpuMeter::start(pid);
    parallel(addr, blobs, c, |conn, b| push_blob(conn, repo, b, chunk));
    transfer(bytes as f64, meter.stop())
}

/// Pulls every blob (`GET`), checking its length, and its digest if `verify`.
pub fn pull_blobs(
    addr: &str,
    pid: u32,
    repo: &str,
    blobs: &[Blob],
    c: usize,
    verify: bool,
) -> Transfer {
    let bytes: u64 = blobs.iter().map(|b| b.len).sum();
    let meter = CpuMeter::start(pid);
    parallel(addr, blobs, c, |conn, b| {
        let sink = if verify { Sink::Hash } else { Sink::Discard };
        let path = format!("/v2/{repo}/blobs/{}", b.digest);
        let r = expect(conn.send("GET", &path, &[], Body::Empty, sink), 200, &path);
        assert_eq!(r.len, b.len, "{path}: length");
        if verify {
            assert_eq!(
                r.sha256.as_deref(),
                Some(b.digest.as_str()),
                "{path}: bytes"
            );
        }
    });
    transfer(bytes as f64, meter.stop())
}

/// Pushes one small image (16 KiB layer, config, manifest) as `repo:tag`.
pub fn push_image(c: &mut Conn, repo: &str, tag: &str, seed: u64) {
    let mut layer = vec![0u8; 16 * 1024];
    for (i, b) in layer.iter_mut().enumerate() {
        *b = ((i as u64)
            .wrapping_mul(31)
            .wrapping_add(seed.wrapping_mul(7919))
            % 251) as u8;
    }
    layer[..8].copy_from_slice(&seed.to_le_bytes());
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    for b in [&layer, &config] {
        let r = c.send(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Body::Empty,
            Sink::Keep,
        );
        let loc = expect(r, 202, "POST upload").location();
        let r = c.send(
            "PUT",
            &with_digest(&loc, &sha256(b)),
            &[("Content-Type", "application/octet-stream")],
            Body::Bytes(b),
            Sink::Keep,
        );
        expect(r, 201, "PUT blob");
    }
    let (ld, cd) = (sha256(&layer), sha256(&config));
    let m = manifest((&cd, config.len()), &[(&ld, layer.len())]);
    let r = c.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        Body::Bytes(&m),
        Sink::Keep,
    );
    expect(r, 201, "PUT manifest");
}

/// Images per second pushed by `c` clients for `secs`; client cores.
pub fn push_images(addr: &str, pid: u32, c: usize, secs: f64) -> (f64, f64) {
    let meter = CpuMeter::start(pid);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..c {
            let done = &done;
            s.spawn(move || {
                let mut conn = Conn::new(addr);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let seed = ((w as u64) << 32) | i;
                    push_image(&mut conn, "bench/images", &format!("w{w}-{i}"), seed + 1);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    });
    let cpu = meter.stop();
    (
        done.load(Ordering::Relaxed) as f64 / cpu.wall,
        cpu.client / cpu.wall,
    )
}

/// Follows `Link: rel="next"` from `first` to the end; returns the number of
/// entries in the JSON arrays named `key` and the number of pages.
pub fn walk(addr: &str, first: &str, key: &str) -> (usize, usize) {
    let mut c = Conn::new(addr);
    let mut next = Some(first.to_string());
    let (mut items, mut pages) = (0, 0);
    while let Some(path) = next.take() {
        let r = expect(
            c.send("GET", &path, &[], Body::Empty, Sink::Keep),
            200,
            &path,
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("list JSON");
        items += v[key].as_array().map_or(0, |a| a.len());
        pages += 1;
        next = r.next_link();
        assert!(pages < 1_000_000, "walk does not end");
    }
    (items, pages)
}
