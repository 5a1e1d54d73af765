//! Counting the open upload sessions, per repository and in total, to
//! bound them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::io::list_dir;
use super::super::layout::{Holding, Layout};
use crate::oci::RepoName;
use crate::storage::fs::FsStore;
use crate::storage::StoreError;

/// How often, at most, the sessions counted are checked against the disk
/// when a limit is hit (a session finished by another replica, or purged).
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The upload sessions open, counted in memory: initialised at open from
/// the `_uploads` directories, kept current by start, finish and cancel.
/// A session that leaves the disk otherwise (purged by garbage collection,
/// finished by another replica) is noticed when a limit is hit: the
/// sessions counted are then checked against the disk (at most once per
/// [`RECHECK_EVERY`]) before a start is refused.
pub(in crate::storage::fs) struct OpenUploads(Mutex<Open>);

struct Open {
    by_repo: HashMap<String, HashSet<String>>,
    total: usize,
    max_total: usize,
    max_per_repository: usize,
    checked: Option<Instant>,
}

impl OpenUploads {
    /// No sessions counted yet: see [`OpenUploads::count_on_disk`].
    pub(in crate::storage::fs) fn new() -> OpenUploads {
        OpenUploads(Mutex::new(Open {
            by_repo: HashMap::new(),
            total: 0,
            max_total: FsStore::DEFAULT_MAX_UPLOADS,
            max_per_repository: FsStore::DEFAULT_MAX_UPLOADS_PER_REPOSITORY,
            checked: None,
        }))
    }

    /// Adds the sessions found under `layout` to those counted. A server
    /// runs it in the background at start-up (a walk of every repository:
    /// it must not delay the first answer); sessions started meanwhile are
    /// counted as usual, and one the walk saw that ended before it was
    /// added is dropped by the check against the disk when a limit is hit.
    pub(in crate::storage::fs) fn count_on_disk(&self, layout: &Layout) {
        let found = match scan(layout) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the open upload sessions; counting those started from now on");
                return;
            }
        };
        let mut open = self.get();
        for (name, id) in found {
            if open.by_repo.entry(name).or_default().insert(id) {
                open.total += 1;
            }
        }
        crate::telemetry::uploads_open(open.total);
    }

    fn get(&self) -> std::sync::MutexGuard<'_, Open> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn limit(&self, total: usize, per_repository: usize) {
        let mut open = self.get();
        open.max_total = total;
        open.max_per_repository = per_repository;
    }

    /// Takes a slot for `id` in `repo`, or says which limit is hit.
    pub(super) fn reserve(&self, repo: &RepoName, id: &str) -> Result<(), StoreError> {
        let mut open = self.get();
        let in_repo = open.by_repo.get(repo.as_str()).map_or(0, HashSet::len);
        if in_repo >= open.max_per_repository {
            return Err(StoreError::TooManyUploads {
                repository: Some(repo.to_string()),
                limit: open.max_per_repository,
            });
        }
        if open.total >= open.max_total {
            return Err(StoreError::TooManyUploads {
                repository: None,
                limit: open.max_total,
            });
        }
        if open
            .by_repo
            .entry(repo.to_string())
            .or_default()
            .insert(id.to_string())
        {
            open.total += 1;
        }
        crate::telemetry::uploads_open(open.total);
        Ok(())
    }

    /// Frees `id`'s slot (no-op when it holds none).
    pub(super) fn release(&self, repo: &str, id: &str) {
        let mut open = self.get();
        open.release(repo, id);
    }

    /// The sessions counted, to check against the disk; `None` when checked
    /// too recently.
    pub(super) fn to_check(&self) -> Option<Vec<(String, String)>> {
        let mut open = self.get();
        if open.checked.is_some_and(|t| t.elapsed() < RECHECK_EVERY) {
            return None;
        }
        open.checked = Some(Instant::now());
        Some(
            open.by_repo
                .iter()
                .flat_map(|(r, ids)| ids.iter().map(move |id| (r.clone(), id.clone())))
                .collect(),
        )
    }
}

impl Open {
    pub(super) fn release(&mut self, repo: &str, id: &str) {
        if let Some(ids) = self.by_repo.get_mut(repo) {
            if ids.remove(id) {
                self.total -= 1;
                crate::telemetry::uploads_open(self.total);
            }
            if ids.is_empty() {
                self.by_repo.remove(repo);
            }
        }
    }
}

/// Every upload session under `layout`, as (repository, id).
fn scan(layout: &Layout) -> std::io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for name in layout.walk_repositories(Holding::Anything)? {
        let Ok(repo) = RepoName::from_storage(&name) else {
            continue;
        };
        for id in list_dir(&layout.uploads(&repo))? {
            found.push((name.clone(), id));
        }
    }
    Ok(found)
}
