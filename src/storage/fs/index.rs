//! Feeding the catalog's [`RepoIndex`] from the filesystem: a scan of the
//! repository tree that lists exactly what the catalog's walk lists (a
//! directory, not named `_…`, holding a `_manifests` directory), one
//! `readdir` per directory and no `stat` (the entry types come with the
//! listing), and the background task that repeats it.
//!
//! Berth's own writes keep the index current at once. Another process
//! writing the same data dir (registry:2, a second Berth) is caught by the
//! re-scan, every [`rescan_interval`]: max(2 s, 20 × the last scan's time),
//! so the scans cost at most 5% of one core whatever the store's size.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::io::not_found;
use super::layout::Layout;
use super::FsStore;

/// The shortest time between two scans.
const MIN_RESCAN: Duration = Duration::from_secs(2);
/// A scan every this many times its own duration, at most.
const RESCAN_FACTOR: u32 = 20;
/// Progress is published every this many repositories found.
const PROGRESS_EVERY: usize = 4096;

/// How long after a scan that took `took` the next one starts.
pub(super) fn rescan_interval(took: Duration) -> Duration {
    (took * RESCAN_FACTOR).max(MIN_RESCAN)
}

/// Every repository under the layout's repositories directory, as the
/// catalog's walk finds them; `progress` is told the count now and then.
pub(super) fn scan(
    layout: &Layout,
    progress: &mut dyn FnMut(usize),
) -> io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    visit(&layout.repositories(), None, &mut out, progress)?;
    Ok(out)
}

fn is_dir(entry: &fs::DirEntry) -> io::Result<bool> {
    let t = entry.file_type()?;
    // A symlink counts as what it points at, as `Path::is_dir` says.
    Ok(t.is_dir() || (t.is_symlink() && entry.path().is_dir()))
}

fn visit(
    dir: &Path,
    name: Option<&str>,
    out: &mut BTreeSet<String>,
    progress: &mut dyn FnMut(usize),
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(child) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(stripped) = child.strip_prefix('_') {
            if stripped == "manifests" && is_dir(&entry)? {
                if let Some(n) = name {
                    out.insert(n.to_string());
                    if out.len().is_multiple_of(PROGRESS_EVERY) {
                        progress(out.len());
                    }
                }
            }
            continue;
        }
        if !is_dir(&entry)? {
            continue;
        }
        let repo = match name {
            Some(n) => format!("{n}/{child}"),
            None => child,
        };
        visit(&entry.path(), Some(&repo), out, progress)?;
    }
    Ok(())
}

impl FsStore {
    /// Builds the catalog's index in the background, then re-scans on the
    /// bounded interval for other writers of the data dir; ends when the
    /// store is dropped. Until the first scan is done, the catalog is
    /// answered from a walk. Needs a Tokio runtime.
    /// The open upload sessions on disk are counted in the background
    /// too, alongside.
    pub fn index_in_background(self: &Arc<FsStore>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(keep_index(weak));
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.open_uploads.count_on_disk(&store.disk.layout);
        });
    }
}

async fn keep_index(weak: Weak<FsStore>) {
    let mut first = true;
    let mut warned = false;
    loop {
        let Some(store) = weak.upgrade() else {
            return;
        };
        let (index, layout) = (store.index.clone(), store.disk.layout.clone());
        drop(store);
        let started = Instant::now();
        index.begin_scan();
        let scanned = tokio::task::spawn_blocking(move || {
            let mut progress = |n: usize| {
                if first {
                    crate::telemetry::catalog_index_progress(n);
                }
            };
            scan(&layout, &mut progress)
        })
        .await;
        let took = started.elapsed();
        match scanned {
            Ok(Ok(found)) => {
                if index.finish_scan(found) {
                    crate::telemetry::catalog_indexed(index.len(), took);
                    if first {
                        tracing::info!(
                            repositories = index.len(),
                            ms = took.as_millis() as u64,
                            "indexed the catalog"
                        );
                        first = false;
                    }
                }
                warned = false;
            }
            Ok(Err(e)) => {
                index.abandon_scan();
                if !warned {
                    tracing::warn!(error = %e, "cannot scan the repositories for the catalog's index: the catalog walks the store until a scan succeeds");
                    warned = true;
                }
            }
            Err(_) => {
                index.abandon_scan();
                return;
            }
        }
        tokio::time::sleep(rescan_interval(took)).await;
    }
}

/// Tags lists of repositories with at least this many tags are cached:
/// every one, since a cached list costs one `stat` where a listing costs a
/// `readdir` and a `stat` per tag of the page.
const CACHE_MIN_TAGS: usize = 1;
/// Tags cached in all, at most (about 16 MiB of names at 64 bytes each):
/// past that the cache starts afresh.
const CACHE_MAX_TAGS: usize = 1 << 18;
/// A tags directory changed less than this before it was listed is not
/// cached: a change in the same tick of the filesystem's clock would leave
/// its modification time as it was.
const SETTLED: Duration = Duration::from_secs(2);

/// The tags of repositories, each with the modification time of its
/// `_manifests/tags` directory when listed: adding or removing a tag
/// (registry:2 and Berth both make and remove a tag's directory) changes
/// it, so an entry is used only while the time is unchanged, and is
/// consistent at once with every writer of the data dir. Tags whose
/// directory had no `current/link` yet are checked again on each use.
#[derive(Default)]
pub(super) struct TagsCache {
    entries: std::sync::Mutex<(std::collections::HashMap<String, Arc<CachedTags>>, usize)>,
}

pub(super) struct CachedTags {
    mtime: std::time::SystemTime,
    /// Sorted; each with a current link when listed.
    tags: Vec<String>,
    /// Directories that had no current link.
    pending: Vec<String>,
}

impl TagsCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (std::collections::HashMap<String, Arc<CachedTags>>, usize)>
    {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Berth changed `repo`'s tags.
    pub(super) fn forget(&self, repo: &str) {
        let mut g = self.lock();
        if let Some(e) = g.0.remove(repo) {
            g.1 -= e.tags.len() + e.pending.len();
        }
    }

    fn get(&self, repo: &str) -> Option<Arc<CachedTags>> {
        self.lock().0.get(repo).cloned()
    }

    fn put(&self, repo: &str, e: Arc<CachedTags>) {
        let mut g = self.lock();
        let size = e.tags.len() + e.pending.len();
        if let Some(old) = g.0.remove(repo) {
            g.1 -= old.tags.len() + old.pending.len();
        }
        if g.1 + size > CACHE_MAX_TAGS {
            g.0.clear();
            g.1 = 0;
        }
        if size <= CACHE_MAX_TAGS {
            g.1 += size;
            g.0.insert(repo.to_string(), e);
        }
    }
}

/// [`tags_page`] answered from the cache alone, on the calling thread (a
/// `stat` of the repository's tags directory; see `quick.rs`), or `None`
/// when the list must be read.
pub(super) fn cached_tags_page(
    cache: &TagsCache,
    layout: &Layout,
    r: &crate::oci::RepoName,
    after: Option<&str>,
    n: Option<usize>,
) -> io::Result<Option<(Vec<String>, bool)>> {
    let Some(e) = cache.get(r.as_str()) else {
        return Ok(None);
    };
    if !e.pending.is_empty() {
        return Ok(None);
    }
    let mtime = match fs::metadata(layout.tags(r)).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((e.mtime == mtime).then(|| page_of_sorted(&e.tags, after, n)))
}

/// One page of `repo`'s tags (after `after`, at most `n`), and whether more
/// follow; `repo` must have `_manifests`.
pub(super) fn tags_page(
    cache: &TagsCache,
    layout: &Layout,
    r: &crate::oci::RepoName,
    after: Option<&str>,
    n: Option<usize>,
) -> io::Result<(Vec<String>, bool)> {
    let dir = layout.tags(r);
    let has_link = |t: &str| layout.tag_current_link(r, t).is_file();
    let listed_at = std::time::SystemTime::now();
    let mtime = match fs::metadata(&dir).and_then(|m| m.modified()) {
        Ok(t) => Some(t),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(e),
    };
    if let (Some(e), Some(m)) = (cache.get(r.as_str()), mtime) {
        if e.mtime == m && !e.pending.iter().any(|t| has_link(t)) {
            return Ok(page_of_sorted(&e.tags, after, n));
        }
    }
    let mut names = super::io::list_dir(&dir)?;
    names.sort_unstable();
    let settled = mtime.is_some_and(|m| listed_at.duration_since(m).is_ok_and(|d| d >= SETTLED));
    if names.len() >= CACHE_MIN_TAGS && settled {
        let (tags, pending): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|t| has_link(t));
        let e = Arc::new(CachedTags {
            mtime: mtime.unwrap_or(listed_at),
            tags,
            pending,
        });
        let page = page_of_sorted(&e.tags, after, n);
        cache.put(r.as_str(), e);
        return Ok(page);
    }
    cache.forget(r.as_str());
    // Only the names of this page (and one more) are checked for a link.
    let mut tags = names
        .into_iter()
        .filter(|t| after.is_none_or(|a| t.as_str() > a))
        .filter(|t| has_link(t));
    Ok(match n {
        None => (tags.collect(), false),
        Some(n) => {
            let page: Vec<String> = tags.by_ref().take(n).collect();
            let more = tags.next().is_some();
            (page, more)
        }
    })
}

fn page_of_sorted(tags: &[String], after: Option<&str>, n: Option<usize>) -> (Vec<String>, bool) {
    let start = after.map_or(0, |a| tags.partition_point(|t| t.as_str() <= a));
    let rest = &tags[start..];
    let take = n.unwrap_or(rest.len()).min(rest.len());
    (rest[..take].to_vec(), take < rest.len())
}
