//! Slow clients (issue 16, finding 3): connections that never finish a
//! request header, kept-alive connections left idle, and request bodies
//! that stall while holding an upload's lock. Each is cut after its limit
//! (`[limits]`), and everyone else keeps being served.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::tools::{have, run};
use crate::support::*;

/// Waits up to `limit` for the server to close `s`: true when it did (end
/// of stream or a reset), false when it still holds it open.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return true,
        }
    }
}

/// Reads one response to `GET /v2/` (body `{}`) from a kept-alive connection.
fn read_base_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\n{}") {
        let n = s.read(&mut buf).expect("read the response");
        assert!(n > 0, "connection closed mid-response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn stalled_request_headers_are_cut_and_other_clients_are_served() {
    let reg = Registry::start_with(&[
        ("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "1s"),
        ("REGISTRY_LIMITS_MAX_CONNECTIONS", "16"),
    ]);
    // 50 slowloris connections: most send half a header and stall, some
    // send nothing at all, some start an HTTP/2 preface and stall.
    let mut stalled: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
            let partial: &[u8] = match i % 5 {
                0 => b"",
                1 => b"PRI * HTTP/2.0\r\n",
                _ => b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: a",
            };
            s.write_all(partial).expect("write");
            s
        })
        .collect();
    let started = Instant::now();
    let resp = reqwest::blocking::Client::new()
        .get(reg.url("/v2/"))
        .timeout(Duration::from_secs(20))
        .send()
        .expect("a normal client is served despite the stalled connections");
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a normal client waited {:?}",
        started.elapsed()
    );
    // Every stalled connection has been (or is soon) closed by the server.
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)),
            "stalled connection {i} is still open"
        );
    }
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let reg = Registry::start_with(&[
        ("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "1s"),
        ("REGISTRY_LIMITS_IDLE_TIMEOUT", "3s"),
    ]);
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", reg.host());
    s.write_all(req.as_bytes()).unwrap();
    assert!(read_base_response(&mut s).starts_with("HTTP/1.1 200"));
    // Idle for longer than the header timeout, shorter than the idle one:
    // the connection is still there for the next request.
    std::thread::sleep(Duration::from_millis(1800));
    s.write_all(req.as_bytes()).unwrap();
    assert!(read_base_response(&mut s).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    assert!(
        closed_by_server(&mut s, Duration::from_secs(8)),
        "an idle connection was held past limits.idle_timeout"
    );
    assert!(idle_from.elapsed() >= Duration::from_millis(2500));
}

#[test]
fn a_stalled_patch_releases_its_upload_lock() {
    let api = Api::start_with(&[("REGISTRY_LIMITS_BODY_IDLE_TIMEOUT", "1s")]);
    let location = api.start_upload("slow/patch");
    let path = path_of(&location);
    // A PATCH that promises 1000 bytes, sends 10 and stalls.
    let mut s = TcpStream::connect(("127.0.0.1", api.reg.port)).expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000\r\n\r\n0123456789",
        api.reg.host()
    );
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Another request on that session is answered within seconds.
    let started = Instant::now();
    let second = api.send(
        api.req(reqwest::Method::PATCH, &location)
            .timeout(Duration::from_secs(15))
            .header("Content-Type", "application/octet-stream")
            .body(b"more".to_vec()),
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the second PATCH waited {:?}",
        started.elapsed()
    );
    assert!(second.status < 500, "{second:?}");
    let status = api.get(&location);
    assert_eq!(status.status, 204, "{status:?}");
    // The stalled client was told why: 408 with a JSON error.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("BLOB_UPLOAD_INVALID"), "{text}");
    assert!(text.contains("body_idle_timeout"), "{text}");
}

#[test]
fn a_stalled_manifest_body_is_cut_with_408() {
    let reg = Registry::start_with(&[("REGISTRY_LIMITS_BODY_IDLE_TIMEOUT", "1s")]);
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    let head = format!(
        "PUT /v2/slow/manifest/manifests/latest HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
         Content-Length: 500\r\n\r\n{{\"schemaVersion\"",
        reg.host()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("MANIFEST_INVALID"), "{text}");
}

#[test]
fn h2c_prior_knowledge_still_answers() {
    if !have("curl") {
        eprintln!("skipped: no curl");
        return;
    }
    let reg = Registry::start();
    let out = run(
        std::process::Command::new("curl").args([
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &reg.url("/v2/"),
        ]),
        Duration::from_secs(20),
    );
    assert!(out.ok(), "{}", out.all());
    assert!(out.all().contains("2 200"), "{}", out.all());
}

#[test]
fn stalled_connections_cannot_exhaust_a_low_file_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    // `berth serve` under `ulimit -n 128`, with room for 64 connections.
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 128 && exec \"$0\" serve",
        env!("CARGO_BIN_EXE_berth"),
    ])
    .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
    .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &root)
    .env("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "1s")
    .env("REGISTRY_LIMITS_MAX_CONNECTIONS", "64")
    .env("RUST_LOG", "info")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let reg = Registry::spawn(cmd, &root, false);
    // 300 connections that send half a header and stall: more than the
    // process has file descriptors.
    let _stalled: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            s
        })
        .collect();
    let started = Instant::now();
    let resp = reqwest::blocking::Client::new()
        .get(reg.url("/v2/"))
        .timeout(Duration::from_secs(30))
        .send()
        .expect("a normal client is served despite 300 stalled connections");
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a normal client waited {:?}",
        started.elapsed()
    );
}
