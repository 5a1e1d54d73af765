//! Blob bodies for GET: the blob file served in memory-mapped windows,
//! sent with `sendfile` on plain TCP (no byte crosses user space) and
//! copied once by the TLS stream otherwise.
//!
//! Each window of [`WINDOW`] bytes is mapped (lazily: no page is touched
//! by mapping it) on the blocking pool and handed to hyper as one
//! [`Bytes`] that owns its mapping and registers it in [`WINDOWS`]. When
//! hyper writes a slice of it to a plain TCP connection, the connection's
//! writer ([`poll_send_mapped`], from `server::conn`) finds the slice in
//! the registry and has the kernel send those bytes from the page cache
//! with `sendfile` instead of copying them from user space; a TLS stream
//! reads the mapping like any buffer (its pages fault in as touched).
//! When hyper drops the window, it is unregistered and unmapped, and its
//! pages leave the process's RSS. Hyper buffers about one body chunk per
//! connection ahead of the socket, so a pull holds one or two windows at
//! a time whatever the blob's size. Small bodies ([`SMALL`]) are read
//! into memory with the file's opening, in one trip to the blocking pool.
//!
//! A mapping, and `sendfile`, stay valid while the file is renamed over
//! or unlinked (GC, DELETE): the inode lives on until unmapped and
//! closed, and blob files are immutable — Berth and registry:2 write a
//! blob under `_uploads` and rename it into place, and neither ever
//! truncates or rewrites a file under `blobs/`. A file found shorter than
//! the range being served is refused before it is mapped (the body is
//! cut, never padded), and `sendfile` past the end sends nothing (the
//! connection is cut). Only a third party truncating a blob file in place
//! while a TLS stream reads its window could fault the process (SIGBUS);
//! the plain-TCP path never touches the mapping. A file that cannot be
//! mapped (a filesystem without mmap) is read instead, in windows of the
//! same size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::storage::ByteStream;

/// Bytes per body chunk: large enough that the per-chunk costs (a hop to
/// the blocking pool, `mmap`/`munmap`, one `writev`) vanish, small enough
/// that a pull holds little memory.
pub(super) const WINDOW: u64 = 4 << 20;

/// Bodies up to this size are read with the file's opening.
pub(super) const SMALL: u64 = 64 << 10;

/// The windows mapped now: start address -> (length, file, file offset
/// of the start). A window is in it exactly while it is mapped.
static WINDOWS: Mutex<BTreeMap<usize, (usize, Arc<File>, u64)>> = Mutex::new(BTreeMap::new());
/// How many windows are mapped (a cheap check before taking the lock).
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// A mapped window, the owner of the [`Bytes`] hyper sends.
struct Window {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Unregistered before `map` is unmapped (fields drop after this).
        let mut w = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
        if w.remove(&(self.map.as_ptr() as usize)).is_some() {
            MAPPED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The file and offset behind `buf` when it lies in a mapped window.
fn file_behind(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    if buf.is_empty() || MAPPED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let addr = buf.as_ptr() as usize;
    let w = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
    let (&start, (len, file, offset)) = w.range(..=addr).next_back()?;
    let end = addr.checked_add(buf.len())?;
    (end <= start + len).then(|| (file.clone(), offset + (addr - start) as u64))
}

/// Writes the first of `bufs` to the plain TCP socket `tcp` with
/// `sendfile` when it lies in a mapped window; `None` when it does not
/// (the caller writes it). `Some(n)` bufs, the count of leading bufs
/// that are not mapped, when a later one is: the caller writes only those.
pub fn poll_send_mapped(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> SendMapped {
    let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
        return SendMapped::NotMapped(bufs.len());
    };
    let Some((file, offset)) = file_behind(&bufs[first]) else {
        let plain = bufs[first..]
            .iter()
            .position(|b| file_behind(b).is_some())
            .map_or(bufs.len(), |i| first + i);
        return SendMapped::NotMapped(plain);
    };
    let len = bufs[first].len();
    let sent = loop {
        match tcp.poll_write_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
            Poll::Pending => break Poll::Pending,
        }
        match tcp.try_io(Interest::WRITABLE, || sendfile(tcp, &file, offset, len)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Ok(0) => {
                break Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file shrank while being served",
                )))
            }
            r => break Poll::Ready(r),
        }
    };
    SendMapped::Sent(sent)
}

/// What [`poll_send_mapped`] did.
pub enum SendMapped {
    /// The first non-empty buf was sent with `sendfile` (or failed).
    Sent(Poll<io::Result<usize>>),
    /// This many leading bufs are not mapped: write them as usual.
    NotMapped(usize),
}

fn sendfile(tcp: &TcpStream, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the call; `off` is a valid
    // pointer; the kernel reads the file, not our memory.
    let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `range` of `file` as a stream of windows; the file has been opened
/// and checked by the caller.
pub(super) fn stream(file: File, range: Range<u64>) -> ByteStream {
    let file = Arc::new(file);
    stream_shared(file, range)
}

/// A small `range` of `file`, read now (on the blocking pool).
pub(super) fn small(file: &File, range: Range<u64>) -> io::Result<ByteStream> {
    let n = usize::try_from(range.end - range.start).map_err(io::Error::other)?;
    let bytes = read_window(file, range.start, n)?;
    Ok(futures_util::stream::once(async move { Ok(bytes) }).boxed())
}

fn stream_shared(file: Arc<File>, range: Range<u64>) -> ByteStream {
    futures_util::stream::try_unfold(range, move |left| {
        let file = file.clone();
        async move {
            if left.start >= left.end {
                return Ok(None);
            }
            let len = (left.end - left.start).min(WINDOW);
            let start = left.start;
            let chunk = tokio::task::spawn_blocking(move || window(&file, start, len))
                .await
                .map_err(io::Error::other)??;
            Ok(Some((chunk, start + len..left.end)))
        }
    })
    .boxed()
}

/// `len` bytes of `file` from `start`: mapped, or read when the file
/// cannot be mapped.
fn window(file: &Arc<File>, start: u64, len: u64) -> io::Result<Bytes> {
    let size = file.metadata()?.len();
    if start.saturating_add(len) > size {
        // Mapping past the end would fault on access: cut the body.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob file shrank to {size} bytes while being served"),
        ));
    }
    let n = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: blob files are never modified in place (see the module
    // documentation); the length was checked against the file just now.
    let mapped = unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(n)
            .map(&**file)
    };
    let Ok(map) = mapped else {
        return read_window(file, start, n);
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    {
        let mut w = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(map.as_ptr() as usize, (n, file.clone(), start));
        MAPPED.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Bytes::from_owner(Window { map }))
}

fn read_window(mut file: &File, start: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; n];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(file: File, range: Range<u64>) -> io::Result<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(io::Error::other)?;
        rt.block_on(async {
            let mut s = stream(file, range);
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk?);
            }
            Ok(out)
        })
    }

    #[test]
    fn windows_cover_any_range_exactly() {
        let data: Vec<u8> = (0..(2 * WINDOW + 4099)).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let n = data.len() as u64;
        for r in [
            0..n,
            1..n,
            4095..4097,
            WINDOW - 1..WINDOW + 1,
            WINDOW..2 * WINDOW,
            n - 1..n,
        ] {
            let got = collect(f.try_clone().unwrap(), r.clone()).unwrap();
            assert!(got == data[r.start as usize..r.end as usize], "{r:?}");
        }
    }

    #[test]
    fn a_file_shorter_than_the_range_fails_the_body() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 100]).unwrap();
        let err = collect(f, 0..200).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
