//! Appending a request body to an upload's data file with the three costs
//! of a push overlapped: while one batch of the body is written (one
//! `writev`, no copy) and hashed (at the same time, on a second blocking
//! thread), the next batch is read from the network. At most two batches
//! of a request are held at once, so memory per upload stays bounded.
//!
//! A chunk is all or nothing: [`Append`] truncates the data file back to
//! where the chunk began unless the whole chunk was written, and it does
//! so only once no write of the chunk is still running, holding the
//! upload's lock until then (also when the request is dropped mid-chunk),
//! so a retry never sees, or appends after, half a chunk.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;

use super::super::blocking;
use super::super::io::WRITE_BATCH;
use super::UploadState;
use crate::oci::digest::Hasher;
use crate::storage::{ByteStream, Result, StoreError};

/// A batch smaller than this is written and hashed by one blocking task:
/// for small pushes the second hop costs more than the overlap gains.
const SPLIT_AT: usize = 256 << 10;

/// Slices per `writev` (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;

/// An upload's data file (opened for appending), its running hash and size.
pub(super) struct Sink {
    pub file: Arc<File>,
    pub hasher: Hasher,
    pub size: u64,
}

impl Sink {
    /// Writes and hashes `batch`: on two blocking threads at once when it
    /// is large, on one when small.
    async fn write(self, batch: Vec<Bytes>) -> Result<Sink> {
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        let Sink {
            file,
            mut hasher,
            size,
        } = self;
        if len < SPLIT_AT as u64 {
            return blocking(move || {
                write_all(&file, &batch)?;
                start_writeback(&file, size, len);
                for chunk in &batch {
                    hasher.update(chunk);
                }
                Ok(Sink {
                    file,
                    hasher,
                    size: size + len,
                })
            })
            .await;
        }
        let batch = Arc::new(batch);
        let (f, b) = (file.clone(), batch.clone());
        let written = blocking(move || {
            write_all(&f, &b)?;
            start_writeback(&f, size, len);
            Ok(())
        });
        let hashed = blocking(move || {
            for chunk in batch.iter() {
                hasher.update(chunk);
            }
            Ok(hasher)
        });
        let (written, hashed) = tokio::join!(written, hashed);
        written?;
        Ok(Sink {
            file,
            hasher: hashed?,
            size: size + len,
        })
    }
}

/// Request bytes read and dropped, at most, after a write failed (a full
/// disk), and for how long: a client still sending when the error answer
/// comes and the connection closes would see a reset instead of it.
const DRAIN_MAX: u64 = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads what is left of `body`, within [`DRAIN_MAX`] and [`DRAIN_TIME`].
async fn drain(body: &mut ByteStream) {
    let mut left = DRAIN_MAX;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = body.next().await {
            let Some(rest) = left.checked_sub(chunk.len() as u64) else {
                return;
            };
            left = rest;
        }
    })
    .await;
}

/// Writes every byte of `batch` with as few `writev` calls as it takes.
fn write_all(mut file: &File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(MAX_SLICES);
        match file.write_vectored(&rest[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes from `offset` to disk now,
/// without waiting: the `fsync` before the blob is committed then waits
/// only for the last batches, instead of for every byte of the blob at
/// once after the body has been received.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a file descriptor this function borrows.
    // A failure only means the fsync does all the work, as without it.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

fn truncate(path: &Path, size: u64) {
    let result = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size));
    if let Err(e) = result {
        tracing::warn!(error = %e, path = %path.display(), "cannot truncate a failed chunk");
    }
}

/// One chunk being appended, holding the upload's lock; rolls the data
/// file back to `size` when dropped before [`Append::done`].
pub(super) struct Append {
    state: Option<OwnedMutexGuard<UploadState>>,
    /// The data file while the chunk is not complete.
    path: Option<PathBuf>,
    size: u64,
    inflight: Option<JoinHandle<Result<Sink>>>,
}

impl Append {
    pub(super) fn new(state: OwnedMutexGuard<UploadState>, path: PathBuf, size: u64) -> Append {
        Append {
            state: Some(state),
            path: Some(path),
            size,
            inflight: None,
        }
    }

    /// The batch in flight, done.
    async fn wait(&mut self) -> Result<Sink> {
        match self.inflight.take() {
            Some(h) => h.await.map_err(|e| StoreError::Io(io::Error::other(e)))?,
            None => Err(StoreError::Io(io::Error::other("no write in flight"))),
        }
    }

    /// Appends all of `body` through `sink`, reading the next batch while
    /// the last one is written and hashed.
    pub(super) async fn run(&mut self, sink: Sink, mut body: ByteStream) -> Result<Sink> {
        let mut idle = Some(sink);
        let mut batch = Vec::new();
        let mut batched = 0;
        loop {
            let next = body.next().await;
            let end = match next {
                Some(Ok(chunk)) => {
                    batched += chunk.len();
                    batch.push(chunk);
                    false
                }
                Some(Err(e)) => {
                    // Let the write in flight end before the rollback.
                    if let Some(h) = self.inflight.take() {
                        let _ = h.await;
                    }
                    return Err(StoreError::Body(e));
                }
                None => true,
            };
            if batched >= WRITE_BATCH || (end && !batch.is_empty()) {
                let sink = match idle.take() {
                    Some(s) => s,
                    None => match self.wait().await {
                        Ok(s) => s,
                        Err(e) => {
                            drain(&mut body).await;
                            return Err(e);
                        }
                    },
                };
                let full = std::mem::take(&mut batch);
                self.inflight = Some(tokio::spawn(sink.write(full)));
                batched = 0;
            }
            if end {
                break;
            }
        }
        match idle {
            Some(s) => Ok(s),
            None => self.wait().await,
        }
    }

    /// The chunk is complete: keeps it, records `state`, unlocks.
    pub(super) fn done(mut self, state: UploadState) {
        self.path = None;
        if let Some(guard) = self.state.as_mut() {
            **guard = state;
        }
    }
}

impl Drop for Append {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        let (size, state) = (self.size, self.state.take());
        if let Some(write) = self.inflight.take() {
            // Dropped mid-chunk (the client went away): a batch is still
            // being written on the blocking pool. Truncate once it is
            // done, keeping the upload locked until then.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = write.await;
                    let _ = tokio::task::spawn_blocking(move || truncate(&path, size)).await;
                    drop(state);
                });
                return;
            }
        }
        truncate(&path, size);
        drop(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_more_slices_than_one_writev_takes_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let file = File::create(&path).unwrap();
        let batch: Vec<Bytes> = (0..3000u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i % 7) as usize]))
            .collect();
        write_all(&file, &batch).unwrap();
        let want: Vec<u8> = batch.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
