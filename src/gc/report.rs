//! What a collection did (or, in a dry run, would do): per repository and
//! in total, as JSON (`--json`) or as the text `berth garbage-collect` prints.

use std::time::Instant;

use serde::Serialize;

use super::Run;
use crate::notify::{Action, Actor, Event, RequestRecord, Source, Target};
use crate::oci::Digest;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemovedBlob {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RepoReport {
    pub name: String,
    /// Tags removed by retention.
    pub tags_deleted: Vec<String>,
    /// Manifest revisions unlinked.
    pub manifests_deleted: Vec<Digest>,
    /// Blobs deleted from the blob store, attributed to the first
    /// repository (by name) that linked them.
    pub blobs_deleted: Vec<RemovedBlob>,
    pub bytes_reclaimed: u64,
    /// Dangling layer links, history entries and referrers-index entries.
    pub links_removed: usize,
    pub uploads_purged: usize,
}

impl RepoReport {
    fn is_empty(&self) -> bool {
        self.tags_deleted.is_empty()
            && self.manifests_deleted.is_empty()
            && self.blobs_deleted.is_empty()
            && self.links_removed == 0
            && self.uploads_purged == 0
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub dry_run: bool,
    /// RFC 3339 time the run started.
    pub started_at: String,
    pub duration_ms: u64,
    pub repositories_scanned: usize,
    pub manifests_scanned: usize,
    pub blobs_scanned: usize,
    pub blobs_deleted: usize,
    pub bytes_reclaimed: u64,
    pub manifests_deleted: usize,
    pub tags_deleted: usize,
    pub links_removed: usize,
    pub uploads_purged: usize,
    pub temp_files_removed: usize,
    /// Unreferenced blobs kept because they were modified after the cutoff
    /// (grace period, or refreshed by a concurrent push).
    pub blobs_kept_recent: usize,
    /// Repositories with something removed.
    pub repositories: Vec<RepoReport>,
    /// Deleted blobs that no repository linked.
    pub unlinked_blobs_deleted: Vec<RemovedBlob>,
}

/// Bytes in a human unit: `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl Report {
    /// The human-readable report printed by `berth garbage-collect`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for r in &self.repositories {
            let _ = writeln!(out, "{}:", r.name);
            for t in &r.tags_deleted {
                let _ = writeln!(out, "  {verb} tag {t}");
            }
            for m in &r.manifests_deleted {
                let _ = writeln!(out, "  {verb} manifest {m}");
            }
            for b in &r.blobs_deleted {
                let _ = writeln!(out, "  {verb} blob {} ({})", b.digest, human_bytes(b.size));
            }
            if r.links_removed > 0 {
                let _ = writeln!(out, "  {verb} {} dangling link(s)", r.links_removed);
            }
            if r.uploads_purged > 0 {
                let _ = writeln!(out, "  {verb} {} stale upload(s)", r.uploads_purged);
            }
            let _ = writeln!(out, "  reclaimed: {}", human_bytes(r.bytes_reclaimed));
        }
        if !self.unlinked_blobs_deleted.is_empty() {
            let _ = writeln!(out, "(blobs linked into no repository):");
            for b in &self.unlinked_blobs_deleted {
                let _ = writeln!(out, "  {verb} blob {} ({})", b.digest, human_bytes(b.size));
            }
        }
        let _ = writeln!(
            out,
            "{}: {} blob(s), {} manifest(s), {} tag(s), {} link(s), {} upload(s); {} {}reclaimed \
             ({} bytes) in {} ms; scanned {} repositories, {} manifests, {} blobs{}",
            if self.dry_run { "dry run" } else { "done" },
            self.blobs_deleted,
            self.manifests_deleted,
            self.tags_deleted,
            self.links_removed,
            self.uploads_purged,
            human_bytes(self.bytes_reclaimed),
            if self.dry_run { "would be " } else { "" },
            self.bytes_reclaimed,
            self.duration_ms,
            self.repositories_scanned,
            self.manifests_scanned,
            self.blobs_scanned,
            if self.blobs_kept_recent > 0 {
                format!(
                    "; kept {} unreferenced blob(s) younger than the grace period",
                    self.blobs_kept_recent
                )
            } else {
                String::new()
            }
        );
        out
    }
}

impl Run<'_> {
    /// The totals, and the repositories with something removed.
    pub(super) fn finish(self, started: Instant) -> Report {
        let mut report = self.report;
        for repo in &self.repos {
            let rr = &repo.report;
            report.tags_deleted += rr.tags_deleted.len();
            report.manifests_deleted += rr.manifests_deleted.len();
            report.links_removed += rr.links_removed;
            report.uploads_purged += rr.uploads_purged;
        }
        report.repositories = self
            .repos
            .into_iter()
            .map(|r| r.report)
            .filter(|r| !r.is_empty())
            .collect();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }
}

impl Report {
    /// A notification `delete` event for each tag, manifest and blob this
    /// collection removed, with no request behind it (none for a dry run).
    pub fn delete_events(&self, source: &Source) -> Vec<Event> {
        let report = self;
        let mut events = Vec::new();
        if report.dry_run {
            return events;
        }
        let mut ev = |target: Target| {
            events.push(Event::new(
                Action::Delete,
                target,
                RequestRecord::default(),
                Actor::default(),
                source.clone(),
            ))
        };
        for r in &report.repositories {
            for tag in &r.tags_deleted {
                ev(Target {
                    repository: r.name.clone(),
                    tag: tag.clone(),
                    ..Target::default()
                });
            }
            for d in &r.manifests_deleted {
                ev(Target {
                    repository: r.name.clone(),
                    digest: d.to_string(),
                    ..Target::default()
                });
            }
            for b in &r.blobs_deleted {
                ev(Target {
                    repository: r.name.clone(),
                    digest: b.digest.to_string(),
                    size: b.size,
                    ..Target::default()
                });
            }
        }
        for b in &report.unlinked_blobs_deleted {
            ev(Target {
                digest: b.digest.to_string(),
                size: b.size,
                ..Target::default()
            });
        }
        events
    }
}

#[cfg(test)]
mod notify_tests {
    use super::*;

    #[test]
    fn delete_events_report_each_deletion_and_none_for_a_dry_run() {
        let d = Digest::of(crate::oci::Algorithm::Sha256, b"x");
        let mut report = Report::default();
        report.repositories.push(RepoReport {
            name: "r".into(),
            tags_deleted: vec!["t".into()],
            manifests_deleted: vec![d.clone()],
            blobs_deleted: vec![RemovedBlob { digest: d, size: 1 }],
            ..Default::default()
        });
        let events = report.delete_events(&Source::default());
        assert_eq!(events.len(), 3);
        assert!(events
            .iter()
            .all(|e| e.action == "delete" && e.target.repository == "r"));
        assert_eq!(events[0].target.tag, "t");
        report.dry_run = true;
        assert!(report.delete_events(&Source::default()).is_empty());
    }
}
