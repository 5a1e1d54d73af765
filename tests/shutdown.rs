//! A graceful stop: on SIGTERM the server takes no new connections, lets a
//! request in flight (a slow chunk upload) finish, exits 0, and the upload
//! it was in the middle of is intact after a restart.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{client, sha256, Registry};

/// A body that arrives slowly: `chunks` pieces of `data`, `pause` apart.
struct Slow {
    data: Vec<u8>,
    sent: usize,
    piece: usize,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.data.len() {
            return Ok(0);
        }
        std::thread::sleep(self.pause);
        let n = self.piece.min(buf.len()).min(self.data.len() - self.sent);
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mut reg = Registry::start_in(&root, &[], &[]);
    let c = client();
    let resp = c
        .post(reg.url("/v2/slow/up/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();

    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let body = Slow {
        data: data.clone(),
        sent: 0,
        piece: 4096,
        pause: Duration::from_millis(100),
    };
    // 16 pieces, 100 ms apart: SIGTERM lands in the middle.
    let (url, c2) = (reg.url(&location), c.clone());
    let upload = std::thread::spawn(move || {
        c2.patch(url)
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(body))
            .send()
            .map(|r| (r.status().as_u16(), r.headers().get("range").cloned()))
    });
    std::thread::sleep(Duration::from_millis(500));
    reg.terminate();
    std::thread::sleep(Duration::from_millis(200));
    // No new connections once stopping.
    let fresh = reqwest::blocking::Client::new()
        .get(reg.url("/v2/"))
        .timeout(Duration::from_secs(2))
        .send();
    assert!(fresh.is_err(), "a new request was served after SIGTERM");

    let (status, range) = upload
        .join()
        .unwrap()
        .expect("the in-flight PATCH was cut off");
    assert_eq!(status, 202);
    assert_eq!(
        range.unwrap().to_str().unwrap(),
        format!("0-{}", data.len() - 1)
    );
    let exit = reg
        .wait_exit(Duration::from_secs(10))
        .expect("the server did not exit after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}");

    // The session it finished is on disk: close it after a restart.
    let reg = Registry::start_in(&root, &[], &[]);
    let resp = c.get(reg.url(&location)).send().unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["range"],
        format!("0-{}", data.len() - 1).as_str()
    );
    let d = sha256(&data);
    let resp = c
        .put(reg.url(&format!("{location}?digest={d}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = c
        .get(reg.url(&format!("/v2/slow/up/blobs/{d}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(&got[..], &data[..]);
}
