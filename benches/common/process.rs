//! What every benchmark's server needs: a free loopback port to start it
//! on, and a child process that is killed (and reaped) when dropped.
//! The focused benchmarks include this file alone (`#[path]`), the
//! side-by-side one through `common`.

use std::net::TcpListener;
use std::process::Child;

/// A child process, killed and reaped when dropped.
pub struct Killed(pub Child);

impl Killed {
    #[allow(dead_code)] // not every benchmark reads it
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
