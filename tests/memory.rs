//! Memory stays bounded whatever the blob size: pushing (a streamed PATCH,
//! then the closing PUT) and pulling a 2 GiB blob raises the server's peak
//! RSS by well under 64 MiB. The blob is generated and hashed on the fly;
//! neither side ever holds it.

mod support;

use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use support::status_kib;

const SIZE: u64 = 2 << 30;
const LIMIT_KIB: u64 = 64 << 10;

/// Pseudo-random bytes (xorshift), hashed as they are read.
struct Generated {
    state: u64,
    left: u64,
    hash: Arc<Mutex<Sha256>>,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let len = chunk.len();
            chunk.copy_from_slice(&self.state.to_le_bytes()[..len]);
        }
        self.left -= n as u64;
        self.hash.lock().unwrap().update(&buf[..n]);
        Ok(n)
    }
}

#[test]
fn a_2_gib_push_and_pull_adds_under_64_mib_rss() {
    let reg = support::Registry::start();
    let c = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(c.get(reg.url("/v2/")).send().unwrap().status(), 200);
    let idle = status_kib(reg.pid(), "VmRSS:");

    let resp = c
        .post(reg.url("/v2/big/blob/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let hash = Arc::new(Mutex::new(Sha256::new()));
    let body = Generated {
        state: 0x9e37_79b9_7f4a_7c15,
        left: SIZE,
        hash: hash.clone(),
    };
    let resp = c
        .patch(reg.url(&location))
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::blocking::Body::sized(body, SIZE))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.text());
    assert_eq!(resp.headers()["range"], format!("0-{}", SIZE - 1).as_str());
    let digest = format!(
        "sha256:{}",
        hex::encode(hash.lock().unwrap().clone().finalize())
    );
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = c
        .put(reg.url(&format!("{location}{sep}digest={digest}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text());

    let mut resp = c
        .get(reg.url(&format!("/v2/big/blob/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut pulled = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        pulled.update(&buf[..n]);
    }
    assert_eq!(total, SIZE);
    assert_eq!(format!("sha256:{}", hex::encode(pulled.finalize())), digest);

    let peak = status_kib(reg.pid(), "VmHWM:");
    eprintln!(
        "server RSS: {} MiB idle, {} MiB peak over a 2 GiB push and pull (+{} MiB)",
        idle >> 10,
        peak >> 10,
        peak.saturating_sub(idle) >> 10
    );
    assert!(
        peak.saturating_sub(idle) < LIMIT_KIB,
        "peak RSS {peak} KiB is more than 64 MiB over the idle {idle} KiB"
    );
}
