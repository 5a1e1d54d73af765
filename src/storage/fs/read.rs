//! Blob bodies for GET: the blob file served in memory-mapped windows, so
//! a byte is copied once (page cache to socket buffer, by the kernel's
//! `write`) instead of twice (`read` into a buffer, then `write`).
//!
//! Each window of [`WINDOW`] bytes is mapped on the blocking pool with
//! `MAP_POPULATE` (the pages are faulted in there, in one call, not on the
//! runtime's threads while hyper writes) and handed to hyper as one
//! [`Bytes`] that owns its mapping: when hyper has written it and drops
//! it, the window is unmapped and its pages leave the process's RSS. Hyper
//! buffers about one body chunk per connection ahead of the socket, so a
//! pull holds one or two windows mapped at a time whatever the blob's size.
//!
//! A mapping stays valid while the file is renamed over or unlinked (GC,
//! DELETE): the inode lives on until unmapped, and blob files are
//! immutable — Berth and registry:2 write a blob under `_uploads` and
//! rename it into place, and neither ever truncates or rewrites a file
//! under `blobs/`. Only a third party truncating a blob file in place
//! while a window of it is being sent could fault the process (SIGBUS);
//! a file found shorter than the range being served is refused before it
//! is mapped (the response is cut, never padded). A file that cannot be
//! mapped (a filesystem without mmap) is read instead, in windows of the
//! same size; bodies up to [`SMALL`] are read with the file's opening.
//!
//! Measured and rejected (`benches/pull.rs`, same run, against registry:2):
//! `sendfile` of these windows from the connection's writer on plain TCP
//! (the socket is hyper's, so it meant finding a body slice's file behind
//! its address in `server::conn`). It copies nothing in user space, but the
//! kernel splices it to the socket 64 KiB at a time, each a TCP push, and
//! on loopback cost 1.3-1.4x the CPU per GiB of these mapped writes and
//! a third of their throughput. Large `read`s on the blocking pool are
//! what this replaced (two copies, a pool hop per 256 KiB chunk).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::storage::ByteStream;

/// Bytes per body chunk: large enough that the per-chunk costs (a hop to
/// the blocking pool, `mmap`/`munmap`, one `writev`) vanish, small enough
/// that a pull holds little memory.
pub(super) const WINDOW: u64 = 4 << 20;

/// Bodies up to this size are read with the file's opening, in the same
/// trip to the blocking pool.
pub(super) const SMALL: u64 = 64 << 10;

/// A small `range` of `file`, read now (on the blocking pool).
pub(super) fn small(file: &File, range: Range<u64>) -> io::Result<ByteStream> {
    let n = usize::try_from(range.end - range.start).map_err(io::Error::other)?;
    let bytes = read_window(file, range.start, n)?;
    Ok(futures_util::stream::once(async move { Ok(bytes) }).boxed())
}

/// `range` of `file` as a stream of windows; the file has been opened
/// and checked by the caller.
pub(super) fn stream(file: File, range: Range<u64>) -> ByteStream {
    let file = Arc::new(file);
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
fn window(file: &File, start: u64, len: u64) -> io::Result<Bytes> {
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
            .populate()
            .map(file)
    };
    match mapped {
        Ok(map) => Ok(Bytes::from_owner(map)),
        Err(_) => read_window(file, start, n),
    }
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
