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

/// What [`read_small`] reads in one go.
const SMALL: usize = 256;

/// The bytes of a small record (a `link`, a media-type record): an open,
/// one `read` and a close, where `fs::read` also stats the file and reads
/// again to see the end (five calls; a manifest GET reads three such
/// records). A read that returns less than asked is taken as the whole
/// file, which it is on local file systems; callers whose bytes do not
/// parse read the file again with [`fs::read`] ([`reread`]), so a file
/// system that returns short reads costs only that.
fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut buf = [0u8; SMALL];
    let n = loop {
        match file.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    let mut bytes = buf[..n].to_vec();
    if n == SMALL {
        file.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// `parse` of the bytes at `path` read with [`read_small`], or, when that
/// gives `None`, of the whole file read again.
fn reread<T>(path: &Path, parse: impl Fn(&[u8]) -> Option<T>) -> io::Result<Option<T>> {
    let quick = read_small(path)?;
    if let Some(t) = parse(&quick) {
        return Ok(Some(t));
    }
    Ok(parse(&fs::read(path)?))
}

fn absent(e: &io::Error) -> bool {
    not_found(e) || e.kind() == io::ErrorKind::NotADirectory
}

fn parse_digest(bytes: &[u8]) -> Option<Digest> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// Reads a `link` file; `None` when absent or not a valid digest.
pub(super) fn read_link(path: &Path) -> io::Result<Option<Digest>> {
    read_record(path, |s| s.trim().parse().ok())
}

/// Reads a small text record (a link, a media-type record) and parses it;
/// `None` when absent or when it does not parse.
pub(super) fn read_record<T>(
    path: &Path,
    parse: impl Fn(&str) -> Option<T>,
) -> io::Result<Option<T>> {
    match reread(path, |b| std::str::from_utf8(b).ok().and_then(&parse)) {
        Err(e) if absent(&e) => Ok(None),
        r => r,
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
/// (its path is what names the digest): empty, or, on file systems that
/// keep the size but not the data (XFS, ext4 with `data=writeback`), NUL
/// bytes. No when absent or naming another.
pub(super) fn links_to(path: &Path, d: &Digest) -> io::Result<bool> {
    let names = |bytes: &[u8]| {
        if bytes.iter().all(|b| *b == 0 || b.is_ascii_whitespace()) {
            Some(true)
        } else {
            parse_digest(bytes).map(|named| named == *d)
        }
    };
    match reread(path, names) {
        Ok(linked) => Ok(linked == Some(true)),
        Err(e) if absent(&e) => Ok(false),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_records_read_whole_whatever_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let other: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let path = dir.path().join("link");
        let cases: Vec<(Vec<u8>, Option<Digest>, bool)> = vec![
            (d.to_string().into_bytes(), Some(d.clone()), true),
            (format!("{d}\n").into_bytes(), Some(d.clone()), true),
            (other.to_string().into_bytes(), Some(other.clone()), false),
            // What a power cut leaves of a link whose bytes never reached the disk.
            (Vec::new(), None, true),
            (vec![0; 71], None, true),
            // Torn or foreign bytes name nothing.
            (vec![0xff, 0xfe, b's'], None, false),
            (b"sha256:ab".to_vec(), None, false),
            // Longer than one small read: read on to the end.
            (
                format!("{}{d}", " ".repeat(SMALL + 10)).into_bytes(),
                Some(d.clone()),
                true,
            ),
        ];
        for (bytes, named, linked) in cases {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read_link(&path).unwrap(), named, "{bytes:?}");
            assert_eq!(links_to(&path, &d).unwrap(), linked, "{bytes:?}");
        }
        fs::remove_file(&path).unwrap();
        assert_eq!(read_link(&path).unwrap(), None);
        assert!(!links_to(&path, &d).unwrap());
        let file = dir.path().join("a-file");
        fs::write(&file, b"x").unwrap();
        assert!(!links_to(&file.join("link"), &d).unwrap());
        let record = dir.path().join("media-type");
        assert_eq!(read_record(&record, |s| Some(s.to_string())).unwrap(), None);
        fs::write(&record, "text/plain").unwrap();
        assert_eq!(
            read_record(&record, |s| Some(s.to_string())).unwrap(),
            Some("text/plain".to_string())
        );
        fs::write(&record, [0xff, 0xfe]).unwrap();
        assert_eq!(read_record(&record, |s| Some(s.to_string())).unwrap(), None);
    }
}
