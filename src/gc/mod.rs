//! Garbage collection: mark & sweep over a [`GcStore`] (any backend),
//! offline (`berth garbage-collect`) or online (a background task of the
//! server, [`spawn_online`]), plus tag retention policies.
//!
//! **Mark** ([`mark`]). Per repository, the roots are the manifests its tags
//! point at, plus every revision unless `delete_untagged`, plus every revision
//! written after the cutoff (pushes in flight). From each live manifest we
//! follow index children and collect config and layer blobs; referrers
//! (Berth's referrers index, or any revision whose `subject` is live) of live
//! manifests are live too. Blobs are global: live anywhere, kept everywhere.
//!
//! **Sweep** ([`sweep`]), in an order where a crash at any point leaves every
//! live image pullable (only unreachable things are ever deleted, and links
//! are removed only once what they point to is gone or unreferenced):
//! 1. tags removed by retention ([`retention`]; re-checked: same target, same
//!    push time);
//! 2. unreachable manifest revisions, then history (`index`) entries and
//!    referrers-index entries of revisions that no longer exist;
//! 3. unreferenced blobs, each re-checked under the store's GC lock to be
//!    older than the cutoff;
//! 4. layer links whose blob is gone; stale upload sessions and temp files.
//!
//! **Cutoff** = start of the run − grace period. Anything modified after it
//! is kept: a push refreshes the mtime of everything its manifest references
//! (under the store's push guard), so content a concurrent push relies on is
//! always newer than the cutoff when the collector re-checks it.

mod mark;
mod online;
mod report;
mod retention;
mod sweep;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::oci::{references, Digest, References, RepoName};
use crate::storage::{GcStore, GcTag};

pub use online::{online_options, spawn_online};
pub use report::{human_bytes, RemovedBlob, RepoReport, Report};
pub use retention::Retention;

/// How to collect.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report what would be removed; remove nothing.
    pub dry_run: bool,
    /// Untagged manifests (not reachable from a tag or a live index or as a
    /// referrer of a live manifest) are garbage too.
    pub delete_untagged: bool,
    /// Nothing modified less than this long before the run started is swept.
    pub grace: Duration,
    /// Upload sessions started longer ago than this are removed.
    pub purge_uploads_older_than: Option<Duration>,
    /// Retention rules to apply first (empty: none). The first rule whose
    /// pattern matches a repository applies to it.
    pub retention: Vec<Retention>,
    /// Fault injection for tests; none by default.
    pub hooks: Hooks,
}

/// Test hooks of a collection: see [`crate::config::GcTestHooks`].
pub use crate::config::GcTestHooks as Hooks;

/// Runs one collection. In a dry run nothing is modified and the report
/// says what would be removed.
pub fn collect(store: &dyn GcStore, opts: &Options) -> io::Result<Report> {
    let started = Instant::now();
    let mut run = Run::scan(store, opts)?;
    run.apply_retention()?;
    run.mark()?;
    if let Some(pause) = opts.hooks.pause_after_mark {
        std::thread::sleep(pause);
    }
    run.sweep_revisions()?;
    let present = run.sweep_blobs()?;
    run.sweep_links_and_uploads(&present)?;
    run.purge_tmp()?;
    let report = run.finish(started);
    if !report.dry_run {
        let deleted = [
            ("blob", report.blobs_deleted),
            ("manifest", report.manifests_deleted),
            ("tag", report.tags_deleted),
            ("link", report.links_removed),
            ("upload", report.uploads_purged),
        ];
        crate::telemetry::gc_collected(
            &deleted.map(|(k, n)| (k, n as u64)),
            report.bytes_reclaimed,
        );
    }
    Ok(report)
}

/// The state of one collection, which its phases fill in.
struct Run<'a> {
    store: &'a dyn GcStore,
    opts: &'a Options,
    now: SystemTime,
    /// Start of the run − grace period.
    cutoff: SystemTime,
    manifests: Manifests<'a>,
    deleter: Deleter<'a>,
    repos: Vec<Repo>,
    /// Blobs (manifests included) live in any repository.
    live_blobs: HashSet<Digest>,
    report: Report,
}

/// A repository as found at the start of the run, and what the phases
/// decide about it.
struct Repo {
    name: RepoName,
    tags: Vec<GcTag>,
    revisions: Vec<(Digest, SystemTime)>,
    layers: Vec<Digest>,
    referrer_links: Vec<(Digest, Digest)>,
    /// Manifests that retention took (no longer roots even if untagged
    /// manifests are kept).
    retired: HashSet<Digest>,
    /// Manifests the mark found live.
    live: HashSet<Digest>,
    /// Revisions still there after the sweep (or in a dry run: would be).
    remaining: HashSet<Digest>,
    report: RepoReport,
}

impl<'a> Run<'a> {
    fn scan(store: &'a dyn GcStore, opts: &'a Options) -> io::Result<Run<'a>> {
        let now = SystemTime::now();
        let mut repos = Vec::new();
        for name in store.gc_repositories()? {
            repos.push(Repo {
                tags: store.gc_tags(&name)?,
                revisions: store.gc_revisions(&name)?,
                layers: store.gc_layer_links(&name)?,
                referrer_links: store.gc_referrer_links(&name)?,
                retired: HashSet::new(),
                live: HashSet::new(),
                remaining: HashSet::new(),
                report: RepoReport {
                    name: name.to_string(),
                    ..RepoReport::default()
                },
                name,
            });
        }
        Ok(Run {
            store,
            opts,
            now,
            cutoff: now
                .checked_sub(opts.grace)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            manifests: Manifests {
                store,
                parsed: HashMap::new(),
            },
            deleter: Deleter {
                store,
                dry_run: opts.dry_run,
                fault_after: opts.hooks.fault_after,
                deletions: 0,
            },
            report: Report {
                dry_run: opts.dry_run,
                started_at: humantime::format_rfc3339_millis(now).to_string(),
                repositories_scanned: repos.len(),
                ..Report::default()
            },
            repos,
            live_blobs: HashSet::new(),
        })
    }
}

/// Manifests parsed so far, by digest (shared across repositories).
struct Manifests<'a> {
    store: &'a dyn GcStore,
    parsed: HashMap<Digest, Arc<References>>,
}

impl Manifests<'_> {
    fn get(&mut self, d: &Digest) -> io::Result<Arc<References>> {
        if let Some(r) = self.parsed.get(d) {
            return Ok(r.clone());
        }
        let refs = Arc::new(match self.store.gc_read_manifest(d)? {
            Some(bytes) => references(&bytes),
            None => References::default(),
        });
        self.parsed.insert(d.clone(), refs.clone());
        Ok(refs)
    }
}

/// Every delete of the sweep goes through here: nothing in a dry run, and
/// the fault hook counts each real deletion.
struct Deleter<'a> {
    store: &'a dyn GcStore,
    dry_run: bool,
    fault_after: Option<u64>,
    deletions: u64,
}

impl Deleter<'_> {
    /// Runs a guarded delete: `Some` with what it returned when it deleted,
    /// `None` when its re-check kept the item. A dry run deletes nothing and
    /// answers `Some(dry)`, as if it had.
    fn delete<T>(
        &mut self,
        dry: T,
        delete: impl FnOnce(&dyn GcStore) -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        if self.dry_run {
            return Ok(Some(dry));
        }
        let done = delete(self.store)?;
        if done.is_some() {
            self.deletions += 1;
            if self.fault_after == Some(self.deletions) {
                eprintln!("berth: BERTH_GC_FAULT_AFTER={}: aborting", self.deletions);
                std::process::abort();
            }
        }
        Ok(done)
    }

    /// [`Deleter::delete`] for deletes that answer whether they deleted.
    fn delete_if(
        &mut self,
        delete: impl FnOnce(&dyn GcStore) -> io::Result<bool>,
    ) -> io::Result<bool> {
        Ok(self
            .delete((), |store| Ok(delete(store)?.then_some(())))?
            .is_some())
    }
}
