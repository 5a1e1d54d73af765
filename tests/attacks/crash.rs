//! kill -9 at arbitrary moments of a push: a pusher uploads chunked blobs
//! and tags manifests while the server is killed after a random (seeded)
//! delay, so over the rounds the kill lands mid-chunk, between a blob's
//! commit and its link, mid-manifest and mid-tag update. After every
//! restart on the same data dir: the server starts; every push that was
//! answered 201 pulls byte-identical; nothing is served under a digest its
//! bytes do not match; the interrupted upload either resumes from the
//! offset the server reports or is `BLOB_UPLOAD_UNKNOWN`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client;

use crate::support::*;

/// A manifest the server answered 201 for, and everything it names.
#[derive(Clone)]
struct Committed {
    repo: String,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
}

/// The upload in flight when the server died: where, and how many bytes
/// the server had acknowledged.
#[derive(Clone)]
struct InFlight {
    location: String,
    data: Vec<u8>,
    acked: usize,
}

#[derive(Default)]
struct Progress {
    committed: Vec<Committed>,
    in_flight: Option<InFlight>,
}

type R<T> = Result<T, String>;

fn check(
    r: reqwest::Result<reqwest::blocking::Response>,
    want: u16,
) -> R<reqwest::blocking::Response> {
    let r = r.map_err(|e| e.to_string())?;
    if r.status().as_u16() == want {
        Ok(r)
    } else {
        Err(format!("{} instead of {want}", r.status()))
    }
}

/// A chunked upload of `data` in four PATCHes, recording what the server
/// acknowledged in `progress` as it goes.
fn push_chunked(
    c: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    progress: &Mutex<Progress>,
) -> R<String> {
    let r = check(
        c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send(),
        202,
    )?;
    let mut location = absolute(
        base,
        r.headers()["location"]
            .to_str()
            .map_err(|e| e.to_string())?,
    );
    progress.lock().unwrap().in_flight = Some(InFlight {
        location: location.clone(),
        data: data.to_vec(),
        acked: 0,
    });
    let step = data.len().div_ceil(4);
    for (i, chunk) in data.chunks(step).enumerate() {
        let start = i * step;
        let r = check(
            c.patch(&location)
                .header("content-type", "application/octet-stream")
                .header(
                    "content-range",
                    format!("{start}-{}", start + chunk.len() - 1),
                )
                .body(chunk.to_vec())
                .send(),
            202,
        )?;
        location = absolute(
            base,
            r.headers()["location"]
                .to_str()
                .map_err(|e| e.to_string())?,
        );
        if let Some(f) = progress.lock().unwrap().in_flight.as_mut() {
            f.location = location.clone();
            f.acked = start + chunk.len();
        }
    }
    let digest = sha256(data);
    let sep = if location.contains('?') { '&' } else { '?' };
    check(c.put(format!("{location}{sep}digest={digest}")).send(), 201)?;
    progress.lock().unwrap().in_flight = None;
    Ok(digest)
}

/// Pushes images until an error (the kill) stops it.
fn pusher(base: String, round: u64, progress: Arc<Mutex<Progress>>) {
    let c = client();
    for i in 0..u64::MAX {
        let repo = format!("crash/r{}", i % 3);
        let layer = noise(192 << 10, round * 1000 + i);
        let config = format!(r#"{{"round":{round},"i":{i}}}"#).into_bytes();
        let pushed = (|| -> R<Committed> {
            let ld = push_chunked(&c, &base, &repo, &layer, &progress)?;
            let cd = push_chunked(&c, &base, &repo, &config, &progress)?;
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": ld, "size": layer.len()}],
            }))
            .map_err(|e| e.to_string())?;
            let tag = format!("r{round}-{i}");
            check(
                c.put(format!("{base}/v2/{repo}/manifests/{tag}"))
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest.clone())
                    .send(),
                201,
            )?;
            // A tag moved by a second push of another manifest, as CI does.
            check(
                c.put(format!("{base}/v2/{repo}/manifests/latest"))
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest.clone())
                    .send(),
                201,
            )?;
            Ok(Committed {
                repo: repo.clone(),
                tag,
                manifest,
                blobs: vec![(ld, layer.clone()), (cd, config.clone())],
            })
        })();
        match pushed {
            Ok(done) => progress.lock().unwrap().committed.push(done),
            Err(_) => return,
        }
    }
}

fn verify(api: &Api, progress: &Progress) {
    for done in &progress.committed {
        let m = api.get_manifest(&done.repo, &done.tag);
        m.expect(200);
        assert_eq!(m.body, done.manifest, "{}:{}", done.repo, done.tag);
        for (d, bytes) in &done.blobs {
            let b = api.get(&format!("/v2/{}/blobs/{d}", done.repo));
            b.expect(200);
            assert_eq!(&b.body, bytes, "{}: blob {d}", done.repo);
        }
    }
    for repo in ["crash/r0", "crash/r1", "crash/r2"] {
        let latest = api.get_manifest(repo, "latest");
        if latest.status == 200 {
            assert_eq!(
                latest.must_header("docker-content-digest"),
                sha256(&latest.body)
            );
        }
    }
}

/// The interrupted upload: resumable from what the server reports (the
/// bytes it holds are a prefix of what was sent), or gone.
fn resume(api: &Api, f: &InFlight) {
    // The location of the server that died; the same path on this one.
    let r = api.get(&path_of(&f.location));
    if r.status == 404 {
        assert_eq!(r.error_codes(), ["BLOB_UPLOAD_UNKNOWN"], "{r}");
        return;
    }
    r.expect(204);
    // `Range: 0-0` is also what an empty session reports; chunks here are
    // far larger than one byte, so it means nothing is held.
    let held = match range_end(&r) as usize {
        0 => 0,
        end => end + 1,
    };
    assert!(
        held >= f.acked,
        "the server forgot acknowledged bytes: holds {held} of {}",
        f.acked
    );
    assert!(held <= f.data.len(), "holds more than was sent");
    let location = r.must_header("location");
    let digest = sha256(&f.data);
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = api.send(
        api.req(
            reqwest::Method::PUT,
            &format!("{location}{sep}digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(f.data[held..].to_vec()),
    );
    put.expect(201);
    let b = api.get(&put.must_header("location"));
    assert_eq!(b.body, f.data, "resumed upload");
}

#[test]
fn a_kill_at_any_moment_of_a_push_loses_nothing_the_client_was_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let env = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
    let progress = Arc::new(Mutex::new(Progress::default()));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut resumed = 0;
    for round in 0..12 {
        let mut reg = Registry::start_in(&root, &env, &[]);
        let api = Api::on(Registry::start_in(&root, &env, &[]));
        // Two servers may share a data dir; the second only verifies what
        // the last round left, and stops before this round's pushes.
        {
            let p = progress.lock().unwrap();
            verify(&api, &p);
        }
        if let Some(f) = progress.lock().unwrap().in_flight.take() {
            resume(&api, &f);
            resumed += 1;
        }
        drop(api);
        let (base, p) = (reg.base.clone(), progress.clone());
        let pushing = std::thread::spawn(move || pusher(base, round, p));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 400));
        reg.kill();
        pushing.join().expect("pusher");
    }
    let api = Api::on(Registry::start_in(&root, &env, &[]));
    let p = progress.lock().unwrap();
    verify(&api, &p);
    if let Some(f) = &p.in_flight {
        resume(&api, f);
        resumed += 1;
    }
    assert!(
        p.committed.len() >= 6,
        "too few pushes finished to mean anything: {}",
        p.committed.len()
    );
    eprintln!(
        "{} pushes committed across 12 kills; {resumed} interrupted uploads checked",
        p.committed.len()
    );
}
