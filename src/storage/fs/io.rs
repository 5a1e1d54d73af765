//! Synchronous file I/O the filesystem store is built from. Nothing here
//! knows the layout; callers pass paths built by [`super::layout`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Digest};

/// Bytes gathered from a request body before one write to disk, and the
/// read size when hashing a file.
pub(super) const WRITE_BATCH: usize = 1 << 20;

pub(super) fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Reads a `link` file; `None` when absent or not a valid digest.
pub(super) fn read_link(path: &Path) -> io::Result<Option<Digest>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How durable a write must be before the call returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Durable {
    /// Content and name: the file survives a crash as written.
    All,
    /// The name only: the file survives a crash, perhaps empty. For a file
    /// whose content its path already names (a `link` under the digest's
    /// own directory, read with [`links_to`]).
    Name,
    /// Nothing: a crash may lose the file. For records that are derived
    /// again when missing or unreadable (a revision's media type) or that
    /// only history reads (a tag's index).
    Lazy,
}

/// Writes `bytes` to `path` atomically (a reader sees the old file or the
/// new one, never a part), through the temporary file `tmp` (removed on
/// failure), and as durably as `durable` asks.
pub(super) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    tmp: &Path,
    durable: Durable,
) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    fs::create_dir_all(dir)?;
    let result = (|| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        if durable == Durable::All {
            f.sync_all()?;
        }
        fs::rename(tmp, path)?;
        if durable == Durable::Lazy {
            return Ok(());
        }
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Does the `link` file at `path`, in the directory of digest `d`, link `d`?
/// Yes when it names `d`, and also when it names nothing at all: a link
/// written with [`Durable::Name`] whose bytes a crash kept from the disk
/// (its path is what names the digest). No when absent or naming another.
pub(super) fn links_to(path: &Path, d: &Digest) -> io::Result<bool> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(match s.trim().parse::<Digest>() {
            Ok(named) => named == *d,
            Err(_) => s.trim().is_empty(),
        }),
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree; absent is fine.
pub(super) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if !not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Directory entries' names; empty when the directory is absent.
pub(super) fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Modification time; `None` when absent.
pub(super) fn mtime(path: &Path) -> io::Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.modified()?)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The hash of the first `len` bytes of `path`.
pub(super) fn hash_file(path: &Path, algorithm: Algorithm, len: u64) -> io::Result<Hasher> {
    let mut hasher = algorithm.hasher();
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; WRITE_BATCH];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buf[..n]);
    }
}

pub(super) fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
