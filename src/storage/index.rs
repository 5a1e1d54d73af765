//! The catalog's index: every repository name, sorted, in memory, so a
//! catalog page costs O(page) instead of a walk of the whole store.
//!
//! Backend-neutral: a store feeds it with full scans ([`RepoIndex::begin_scan`],
//! [`RepoIndex::finish_scan`]) and with its own writes
//! ([`RepoIndex::note_present`], [`RepoIndex::note_absent`]). Until the first
//! scan is complete, [`RepoIndex::page`] answers `None` and the store answers
//! from a walk, as it did before there was an index.
//!
//! A scan takes time, and the store's own writes go on meanwhile: what a write
//! notes during a scan is journaled and applied on top of the scan's result,
//! so a repository made (or removed) while the scan had already passed its
//! place is not lost (or brought back) by it.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::RwLock;

/// Writes noted during one scan, at most; past that the scan's result is
/// thrown away and the next one starts afresh (the index stays as it was).
const MAX_JOURNAL: usize = 100_000;

#[derive(Default)]
pub struct RepoIndex {
    state: RwLock<State>,
    /// Told when a scan ends, however it ends.
    scanned: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    repos: BTreeSet<String>,
    /// The first scan is complete: `repos` is the store's list.
    ready: bool,
    /// A scan runs: writes are journaled too.
    journal: Option<Vec<(String, bool)>>,
    /// The journal overflowed during this scan.
    overflowed: bool,
}

/// Which names a caller may see.
pub type Allow<'a> = dyn Fn(&str) -> bool + Sync + 'a;

/// One catalog page: the names, and whether more follow.
pub type Page = (Vec<String>, bool);

impl RepoIndex {
    pub fn new() -> RepoIndex {
        RepoIndex::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits, at most `limit`, for the first scan when it is running:
    /// whether the index is ready now. A catalog request during the
    /// start-up scan waits for it rather than walk the store a second time
    /// beside it.
    pub async fn wait_ready(&self, limit: std::time::Duration) -> bool {
        let scanned = self.scanned.notified();
        tokio::pin!(scanned);
        scanned.as_mut().enable();
        {
            let state = self.read();
            if state.ready || state.journal.is_none() {
                return state.ready;
            }
        }
        let _ = tokio::time::timeout(limit, scanned).await;
        self.is_ready()
    }

    /// The first scan is complete.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// Repositories indexed.
    pub fn len(&self) -> usize {
        self.read().repos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names greater than `after` that `allow` admits, at most `n` (all
    /// when `None`), and whether more follow; `None` until the index is ready.
    pub fn page(&self, after: Option<&str>, n: Option<usize>, allow: &Allow<'_>) -> Option<Page> {
        let state = self.read();
        if !state.ready {
            return None;
        }
        Some(page_of(&state.repos, after, n, allow))
    }

    /// The store's own write made `name` a repository.
    pub fn note_present(&self, name: &str) {
        self.note(name, true);
    }

    /// The store's own write made `name` no longer a repository.
    pub fn note_absent(&self, name: &str) {
        self.note(name, false);
    }

    fn note(&self, name: &str, present: bool) {
        let mut state = self.write();
        if present == state.repos.contains(name) && state.journal.is_none() {
            return;
        }
        if present {
            state.repos.insert(name.to_string());
        } else {
            state.repos.remove(name);
        }
        let mut overflow = false;
        if let Some(j) = state.journal.as_mut() {
            if j.len() < MAX_JOURNAL {
                j.push((name.to_string(), present));
            } else {
                overflow = true;
            }
        }
        state.overflowed |= overflow;
    }

    /// A full scan starts: from now on writes are journaled.
    pub fn begin_scan(&self) {
        let mut state = self.write();
        state.journal = Some(Vec::new());
        state.overflowed = false;
    }

    /// A full scan found `found`: it becomes the index, with the writes noted
    /// since [`RepoIndex::begin_scan`] applied on top. Returns whether the
    /// index took it (not when the journal overflowed: the next scan will).
    pub fn finish_scan(&self, mut found: BTreeSet<String>) -> bool {
        let mut state = self.write();
        let journal = state.journal.take().unwrap_or_default();
        if state.overflowed {
            state.overflowed = false;
            drop(state);
            self.scanned.notify_waiters();
            return false;
        }
        for (name, present) in journal {
            if present {
                found.insert(name);
            } else {
                found.remove(&name);
            }
        }
        state.repos = found;
        state.ready = true;
        drop(state);
        self.scanned.notify_waiters();
        true
    }

    /// A scan failed: writes stop being journaled; the index stays as it was.
    pub fn abandon_scan(&self) {
        let mut state = self.write();
        state.journal = None;
        state.overflowed = false;
        drop(state);
        self.scanned.notify_waiters();
    }
}

/// [`RepoIndex::page`] over any sorted set.
fn page_of(
    set: &BTreeSet<String>,
    after: Option<&str>,
    n: Option<usize>,
    allow: &Allow<'_>,
) -> Page {
    let lower = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Unbounded,
    };
    let mut names = set
        .range::<str, _>((lower, Bound::Unbounded))
        .filter(|r| allow(r));
    match n {
        None => (names.map(String::clone).collect(), false),
        Some(n) => {
            let page: Vec<String> = names.by_ref().take(n).cloned().collect();
            let more = names.next().is_some();
            (page, more)
        }
    }
}

/// Pages a sorted list as the index does (for a store without an index, or
/// before it is ready).
pub fn page_list(
    all: Vec<String>,
    after: Option<&str>,
    n: Option<usize>,
    allow: &Allow<'_>,
) -> Page {
    let mut names = all
        .into_iter()
        .filter(|r| after.is_none_or(|a| r.as_str() > a) && allow(r));
    match n {
        None => (names.collect(), false),
        Some(n) => {
            let page: Vec<String> = names.by_ref().take(n).collect();
            let more = names.next().is_some();
            (page, more)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages_follow_last_and_n() {
        let i = RepoIndex::new();
        assert!(i.page(None, None, &|_| true).is_none());
        i.begin_scan();
        assert!(i.finish_scan(set(&["a", "b", "b/c", "d"])));
        let all = |_: &str| true;
        assert_eq!(
            i.page(None, Some(2), &all),
            Some((vec!["a".into(), "b".into()], true))
        );
        assert_eq!(
            i.page(Some("b"), Some(2), &all),
            Some((vec!["b/c".into(), "d".into()], false))
        );
        assert_eq!(i.page(Some("d"), Some(2), &all), Some((vec![], false)));
        assert_eq!(i.page(Some("a"), Some(0), &all), Some((vec![], true)));
        let no_b = |r: &str| !r.starts_with('b');
        assert_eq!(i.page(None, Some(1), &no_b), Some((vec!["a".into()], true)));
        assert_eq!(
            i.page(Some("a"), Some(1), &no_b),
            Some((vec!["d".into()], false))
        );
        for (after, n) in [
            (None, None),
            (Some("a"), Some(1)),
            (Some("b"), None),
            (None, Some(0)),
        ] {
            let names = vec!["a".into(), "b".into(), "b/c".into(), "d".into()];
            assert_eq!(
                i.page(after, n, &no_b),
                Some(page_list(names, after, n, &no_b))
            );
        }
    }

    #[test]
    fn writes_during_a_scan_survive_it() {
        let i = RepoIndex::new();
        i.begin_scan();
        i.finish_scan(set(&["old"]));
        i.begin_scan();
        i.note_present("new");
        i.note_absent("old");
        // The scan had seen "old" and not yet "new".
        assert!(i.finish_scan(set(&["old", "other"])));
        let (names, _) = i.page(None, None, &|_| true).unwrap();
        assert_eq!(names, ["new", "other"]);
    }
}
