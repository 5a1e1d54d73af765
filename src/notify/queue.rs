//! One endpoint's queue on disk: a file per event under
//! `_berth/notifications/<endpoint>/`, named by a sequence number, written
//! to a temporary file, fsynced and renamed (then the directory fsynced)
//! before it counts as queued, removed once the endpoint answered 2xx. At
//! most `limit` wait: beyond that the oldest are dropped and counted.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

pub struct Queue {
    pub name: String,
    dir: PathBuf,
    limit: usize,
    state: Mutex<State>,
    /// Woken when an event is queued.
    pub wake: tokio::sync::Notify,
    /// Events dropped because the queue was full, since start.
    pub dropped: AtomicU64,
}

struct State {
    seqs: VecDeque<u64>,
    next: u64,
}

/// The directory name of an endpoint: its name with anything but
/// `[A-Za-z0-9_-]` percent-encoded (so any name is one safe path component).
fn dir_name(name: &str) -> String {
    let mut s = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

impl Queue {
    /// Opens (creating it if need be) the queue of endpoint `name` under
    /// `queues`, with what an earlier run left in it.
    pub fn open(queues: &Path, name: &str, limit: usize) -> io::Result<Queue> {
        let dir = queues.join(dir_name(name));
        fs::create_dir_all(&dir)?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            match file
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(seq) => seqs.push(seq),
                // A write a crash interrupted: never acknowledged as queued.
                None if file.starts_with(".tmp-") => {
                    let _ = fs::remove_file(entry.path());
                }
                None => {}
            }
        }
        seqs.sort_unstable();
        let next = seqs.last().map_or(0, |s| s + 1);
        let q = Queue {
            name: name.to_string(),
            dir,
            limit,
            state: Mutex::new(State {
                seqs: seqs.into(),
                next,
            }),
            wake: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
        };
        {
            let mut st = q.lock();
            q.enforce_limit(&mut st);
        }
        q.gauge();
        Ok(q)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn gauge(&self) {
        metrics::gauge!("berth_notifications_queue_length", "endpoint" => self.name.clone())
            .set(self.len() as f64);
    }

    /// Queues one event (its JSON); durable when this returns. Blocking.
    pub fn push(&self, event: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let seq = st.next;
        let tmp = self.dir.join(format!(".tmp-{seq}"));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(event)?;
            f.sync_all()?;
            fs::rename(&tmp, self.dir.join(file_name(seq)))?;
            File::open(&self.dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        st.next = seq + 1;
        st.seqs.push_back(seq);
        self.enforce_limit(&mut st);
        drop(st);
        self.gauge();
        self.wake.notify_one();
        Ok(())
    }

    fn enforce_limit(&self, st: &mut State) {
        let mut dropped = 0u64;
        while st.seqs.len() > self.limit {
            if let Some(seq) = st.seqs.pop_front() {
                let _ = fs::remove_file(self.dir.join(file_name(seq)));
                dropped += 1;
            }
        }
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            metrics::counter!("berth_notifications_dropped_total",
                "endpoint" => self.name.clone(), "reason" => "queue_limit")
            .increment(dropped);
            tracing::warn!(
                endpoint = self.name,
                dropped,
                dropped_total = total,
                queue_limit = self.limit,
                "notification queue full: dropped the oldest queued events (notifications.endpoints.queue_limit)"
            );
        }
    }

    /// The oldest queued event: its sequence number and JSON. Blocking.
    pub fn front(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            let Some(seq) = self.lock().seqs.front().copied() else {
                return Ok(None);
            };
            match fs::read(self.dir.join(file_name(seq))) {
                Ok(bytes) => return Ok(Some((seq, bytes))),
                // Dropped for the limit meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.forget(seq),
                Err(e) => return Err(e),
            }
        }
    }

    fn forget(&self, seq: u64) {
        let mut st = self.lock();
        if st.seqs.front() == Some(&seq) {
            st.seqs.pop_front();
        }
    }

    /// Removes a delivered event. Blocking.
    pub fn remove(&self, seq: u64) -> io::Result<()> {
        let r = match fs::remove_file(self.dir.join(file_name(seq))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.forget(seq);
        self.gauge();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_counts_them_and_survives_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path(), "ci hook", 3).unwrap();
        for i in 0..5 {
            q.push(format!("{{\"n\":{i}}}").as_bytes()).unwrap();
        }
        assert_eq!(q.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.len(), 3);
        let (seq, bytes) = q.front().unwrap().unwrap();
        assert_eq!(bytes, b"{\"n\":2}");
        q.remove(seq).unwrap();
        drop(q);
        // A crash mid-write leaves a temporary file: not an event.
        std::fs::write(tmp.path().join("ci%20hook/.tmp-99"), b"{").unwrap();
        let q = Queue::open(tmp.path(), "ci hook", 3).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.front().unwrap().unwrap().1, b"{\"n\":3}");
        q.push(b"{\"n\":5}").unwrap();
        let mut seen = Vec::new();
        while let Some((seq, b)) = q.front().unwrap() {
            seen.push(String::from_utf8(b).unwrap());
            q.remove(seq).unwrap();
        }
        assert_eq!(seen, ["{\"n\":3}", "{\"n\":4}", "{\"n\":5}"]);
        // A lower limit at start-up drops the oldest too (3 queued, limit 2).
        for i in 0..4 {
            q.push(format!("{i}").as_bytes()).unwrap();
        }
        drop(q);
        let q = Queue::open(tmp.path(), "ci hook", 2).unwrap();
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.front().unwrap().unwrap().1, b"2");
    }
}
