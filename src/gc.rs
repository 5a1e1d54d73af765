//! Garbage collection: mark & sweep over a [`GcStore`], offline
//! (`berth garbage-collect`) or online (a background task of the server),
//! plus tag retention policies.
//!
//! **Mark.** Per repository, the roots are the manifests its tags point at,
//! plus every revision unless `delete_untagged`, plus every revision written
//! after the cutoff (pushes in flight). From each live manifest we follow
//! index children and collect config and layer blobs; referrers (Berth's
//! referrers index, or any revision whose `subject` is live) of live
//! manifests are live too. Blobs are global: live anywhere, kept everywhere.
//!
//! **Sweep**, in an order where a crash at any point leaves every live image
//! pullable (only unreachable things are ever deleted, and links are removed
//! only once what they point to is gone or unreferenced):
//! 1. tags removed by retention (re-checked: same target, same push time);
//! 2. unreachable manifest revisions, then history (`index`) entries and
//!    referrers-index entries of revisions that no longer exist;
//! 3. unreferenced blobs (`data`, then its directory), each re-checked under
//!    the store's GC lock to be older than the cutoff;
//! 4. layer links whose blob is gone; stale upload sessions and temp files.
//!
//! **Cutoff** = start of the run − grace period. Anything modified after it
//! is kept: a push refreshes the mtime of everything its manifest references
//! (under the store's push guard), so content a concurrent push relies on is
//! always newer than the cutoff when the collector re-checks it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use regex::Regex;
use serde::Serialize;

use crate::config::{Gc as GcConfig, RetentionRule as RuleConfig};
use crate::oci::Digest;
use crate::storage::{GcStore, GcTag};

/// What a manifest points at, read leniently from its JSON (OCI and Docker
/// schema 2 manifests and indexes, and Docker schema 1 `fsLayers`), so that
/// anything a registry:2 data dir holds is followed.
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Config and layer blobs.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index / manifest list.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// Parses what `bytes` (a stored manifest) references. Field names match
/// case-insensitively, as Go's encoding/json (registry:2) matches them.
/// Bytes that are not strict JSON (a registry may have accepted
/// non-UTF-8 text or numbers out of range in fields it ignores) are not
/// taken to reference nothing: every digest they spell out is kept, as a
/// blob and as a manifest to follow. Collecting too little is never right.
pub fn references(bytes: &[u8]) -> References {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => structured_references(&v),
        Err(_) => scanned_references(bytes),
    }
}

/// `v[key]`, the exact key first, then any spelling of it.
fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    let map = v.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn structured_references(v: &serde_json::Value) -> References {
    let mut refs = References::default();
    let digest = |d: &serde_json::Value, key: &str| -> Option<Digest> {
        field(d, key)?.as_str()?.parse().ok()
    };
    if let Some(c) = field(v, "config").and_then(|c| digest(c, "digest")) {
        refs.blobs.push(c);
    }
    for (list, key) in [("layers", "digest"), ("fsLayers", "blobSum")] {
        if let Some(items) = field(v, list).and_then(|l| l.as_array()) {
            refs.blobs
                .extend(items.iter().filter_map(|d| digest(d, key)));
        }
    }
    if let Some(items) = field(v, "manifests").and_then(|l| l.as_array()) {
        refs.manifests
            .extend(items.iter().filter_map(|d| digest(d, "digest")));
    }
    refs.subject = field(v, "subject").and_then(|s| digest(s, "digest"));
    refs
}

fn scanned_references(bytes: &[u8]) -> References {
    static DIGESTS: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
            .expect("digest pattern")
    });
    let mut refs = References::default();
    for m in DIGESTS.find_iter(bytes) {
        if let Some(d) = std::str::from_utf8(m.as_bytes())
            .ok()
            .and_then(|s| s.parse::<Digest>().ok())
        {
            refs.blobs.push(d.clone());
            refs.manifests.push(d);
        }
    }
    refs
}

/// A retention rule, compiled.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Glob over repository names: `*` within a path segment, `**` across
    /// segments, `?` one character.
    pub repositories: String,
    pub keep_last: Option<usize>,
    pub keep_tags: Option<Regex>,
    pub delete_older_than: Option<Duration>,
}

impl Retention {
    pub fn from_config(rules: &[RuleConfig]) -> Result<Vec<Retention>, regex::Error> {
        rules
            .iter()
            .map(|r| {
                Ok(Retention {
                    repositories: r.repositories.clone(),
                    keep_last: r.keep_last,
                    keep_tags: r.keep_tags.as_deref().map(Regex::new).transpose()?,
                    delete_older_than: r.delete_older_than,
                })
            })
            .collect()
    }

    /// Tags of a repository this rule removes: not matching `keep_tags`, not
    /// among the `keep_last` most recently pushed, and (when set) pushed more
    /// than `delete_older_than` ago.
    pub fn select<'a>(&self, tags: &'a [GcTag], now: SystemTime) -> Vec<&'a GcTag> {
        let mut by_push: Vec<&GcTag> = tags.iter().filter(|t| t.target.is_some()).collect();
        by_push.sort_by(|a, b| b.pushed.cmp(&a.pushed).then_with(|| a.name.cmp(&b.name)));
        by_push
            .into_iter()
            .enumerate()
            .filter(|(rank, t)| {
                let kept_by_regex = self.keep_tags.as_ref().is_some_and(|r| r.is_match(&t.name));
                let kept_by_rank = self.keep_last.is_some_and(|n| *rank < n);
                let kept_by_age = self
                    .delete_older_than
                    .is_some_and(|max| now.duration_since(t.pushed).unwrap_or_default() <= max);
                !(kept_by_regex || kept_by_rank || kept_by_age)
            })
            .map(|(_, t)| t)
            .collect()
    }
}

/// Does `name` match the glob `pattern`?
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=n.len()).any(|i| go(&p[2..], &n[i..])),
            Some(b'*') => {
                let stop = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=stop).any(|i| go(&p[1..], &n[i..]))
            }
            Some(b'?') => !n.is_empty() && n[0] != b'/' && go(&p[1..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

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
}

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

/// Test hook: `BERTH_GC_FAULT_AFTER=N` aborts the process right after the
/// N-th deletion, to prove a crash at any point leaves live images intact.
fn deleted_one() {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if let Ok(v) = std::env::var("BERTH_GC_FAULT_AFTER") {
        if v.trim().parse::<u64>().ok() == Some(n) {
            eprintln!("berth: BERTH_GC_FAULT_AFTER={n}: aborting");
            std::process::abort();
        }
    }
}

/// A repository as found at the start of the run.
struct Scan {
    name: String,
    tags: Vec<GcTag>,
    revisions: Vec<(Digest, SystemTime)>,
    layers: Vec<Digest>,
    referrer_links: Vec<(Digest, Digest)>,
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

/// Runs one collection. In a dry run nothing is modified and the report
/// says what would be removed.
pub fn collect(store: &dyn GcStore, opts: &Options) -> io::Result<Report> {
    let started = Instant::now();
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = Report {
        dry_run: opts.dry_run,
        started_at: humantime::format_rfc3339_millis(now).to_string(),
        ..Report::default()
    };

    let mut scans = Vec::new();
    for name in store.gc_repositories()? {
        scans.push(Scan {
            tags: store.gc_tags(&name)?,
            revisions: store.gc_revisions(&name)?,
            layers: store.gc_layer_links(&name)?,
            referrer_links: store.gc_referrer_links(&name)?,
            name,
        });
    }
    report.repositories_scanned = scans.len();
    let mut repo_reports: Vec<RepoReport> = scans
        .iter()
        .map(|s| RepoReport {
            name: s.name.clone(),
            ..RepoReport::default()
        })
        .collect();

    let mut manifests = Manifests {
        store,
        parsed: HashMap::new(),
    };

    // 1. Retention: decide (and, unless dry, remove) tags first; they stop being roots.
    let mut retired: Vec<HashSet<Digest>> = vec![HashSet::new(); scans.len()];
    for (i, scan) in scans.iter_mut().enumerate() {
        let Some(rule) = opts
            .retention
            .iter()
            .find(|r| glob_match(&r.repositories, &scan.name))
        else {
            continue;
        };
        let doomed: Vec<GcTag> = rule.select(&scan.tags, now).into_iter().cloned().collect();
        for tag in doomed {
            if !opts.dry_run {
                if !store.gc_delete_tag(&scan.name, &tag)? {
                    continue; // re-pushed meanwhile
                }
                deleted_one();
            }
            if let Some(t) = &tag.target {
                retired[i].insert(t.clone());
            }
            repo_reports[i].tags_deleted.push(tag.name.clone());
            scan.tags.retain(|t| t.name != tag.name);
        }
        for t in &scan.tags {
            if let Some(d) = &t.target {
                retired[i].remove(d);
            }
        }
        // What a retired manifest takes with it: an index's children and the
        // referrers of anything retired (the mark still keeps whatever a
        // remaining tag reaches).
        let mut stack: Vec<Digest> = retired[i].iter().cloned().collect();
        while let Some(d) = stack.pop() {
            let mut taken: Vec<Digest> = manifests.get(&d)?.manifests.clone();
            taken.extend(
                scan.referrer_links
                    .iter()
                    .filter(|(subject, _)| *subject == d)
                    .map(|(_, referrer)| referrer.clone()),
            );
            for (r, _) in &scan.revisions {
                if manifests.get(r)?.subject.as_ref() == Some(&d) {
                    taken.push(r.clone());
                }
            }
            for t in taken {
                if retired[i].insert(t.clone()) {
                    stack.push(t);
                }
            }
        }
    }

    // 2. Mark.
    let mut live_blobs: HashSet<Digest> = HashSet::new();
    let mut live_per_repo: Vec<HashSet<Digest>> = Vec::with_capacity(scans.len());
    for (i, scan) in scans.iter().enumerate() {
        report.manifests_scanned += scan.revisions.len();
        let mut stack: Vec<Digest> = scan.tags.iter().filter_map(|t| t.target.clone()).collect();
        for (d, written) in &scan.revisions {
            let untagged_is_garbage = opts.delete_untagged || retired[i].contains(d);
            if !untagged_is_garbage || *written >= cutoff {
                stack.push(d.clone());
            }
        }
        let mut live: HashSet<Digest> = HashSet::new();
        loop {
            while let Some(d) = stack.pop() {
                if !live.insert(d.clone()) {
                    continue;
                }
                let refs = manifests.get(&d)?;
                live_blobs.insert(d);
                live_blobs.extend(refs.blobs.iter().cloned());
                stack.extend(refs.manifests.iter().cloned());
            }
            // Referrers of live manifests are live: by Berth's index, or by
            // their own `subject` field (data written by other registries).
            for (subject, referrer) in &scan.referrer_links {
                if live.contains(subject) && !live.contains(referrer) {
                    stack.push(referrer.clone());
                }
            }
            for (d, _) in &scan.revisions {
                if !live.contains(d) {
                    if let Some(s) = &manifests.get(d)?.subject {
                        if live.contains(s) {
                            stack.push(d.clone());
                        }
                    }
                }
            }
            if stack.is_empty() {
                break;
            }
        }
        live_per_repo.push(live);
    }

    // Test hook: widen the window between mark and sweep, where a
    // concurrent push could start relying on content the mark found dead.
    if let Some(ms) = std::env::var("BERTH_GC_TEST_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }

    // 3. Sweep revisions, then the links into them.
    let mut remaining_revisions: Vec<HashSet<Digest>> = Vec::with_capacity(scans.len());
    for (i, scan) in scans.iter().enumerate() {
        let rr = &mut repo_reports[i];
        let mut remaining: HashSet<Digest> =
            scan.revisions.iter().map(|(d, _)| d.clone()).collect();
        for (d, _) in &scan.revisions {
            if live_per_repo[i].contains(d) {
                continue;
            }
            if !opts.dry_run {
                if !store.gc_delete_revision(&scan.name, d, cutoff)? {
                    // Written or re-pushed after the cutoff: keep what it needs.
                    live_blobs.insert(d.clone());
                    live_blobs.extend(manifests.get(d)?.blobs.iter().cloned());
                    continue;
                }
                deleted_one();
            }
            remaining.remove(d);
            rr.manifests_deleted.push(d.clone());
        }
        for tag in &scan.tags {
            for d in &tag.index {
                if remaining.contains(d) || tag.target.as_ref() == Some(d) {
                    continue;
                }
                if !opts.dry_run {
                    if !store.gc_delete_tag_index(&scan.name, &tag.name, d)? {
                        continue;
                    }
                    deleted_one();
                }
                rr.links_removed += 1;
            }
        }
        for (subject, referrer) in &scan.referrer_links {
            if remaining.contains(referrer) {
                continue;
            }
            if !opts.dry_run {
                if !store.gc_delete_referrer_link(&scan.name, subject, referrer)? {
                    continue;
                }
                deleted_one();
            }
            rr.links_removed += 1;
        }
        remaining_revisions.push(remaining);
    }

    // 4. Sweep blobs.
    let mut owner: HashMap<&Digest, usize> = HashMap::new();
    for (i, scan) in scans.iter().enumerate() {
        for d in scan
            .layers
            .iter()
            .chain(scan.revisions.iter().map(|(d, _)| d))
        {
            owner.entry(d).or_insert(i);
        }
    }
    let blobs = store.gc_blobs()?;
    report.blobs_scanned = blobs.len();
    let mut gone: HashSet<Digest> = HashSet::new();
    for blob in &blobs {
        if live_blobs.contains(&blob.digest) {
            continue;
        }
        if blob.modified >= cutoff {
            report.blobs_kept_recent += 1;
            continue;
        }
        let size = if opts.dry_run {
            blob.size
        } else {
            match store.gc_delete_blob(&blob.digest, cutoff)? {
                Some(size) => {
                    deleted_one();
                    size
                }
                None => {
                    report.blobs_kept_recent += 1;
                    continue;
                }
            }
        };
        gone.insert(blob.digest.clone());
        report.blobs_deleted += 1;
        report.bytes_reclaimed += size;
        let removed = RemovedBlob {
            digest: blob.digest.clone(),
            size,
        };
        match owner.get(&blob.digest) {
            Some(&i) => {
                repo_reports[i].bytes_reclaimed += size;
                repo_reports[i].blobs_deleted.push(removed);
            }
            None => report.unlinked_blobs_deleted.push(removed),
        }
    }

    // 5. Layer links to blobs that no longer exist; stale uploads; temp files.
    let present: HashSet<&Digest> = blobs
        .iter()
        .map(|b| &b.digest)
        .filter(|d| !gone.contains(*d))
        .collect();
    for (i, scan) in scans.iter().enumerate() {
        for d in &scan.layers {
            if present.contains(d) {
                continue;
            }
            if !opts.dry_run {
                if !store.gc_delete_layer_link(&scan.name, d)? {
                    continue;
                }
                deleted_one();
            }
            repo_reports[i].links_removed += 1;
        }
        if let Some(max) = opts.purge_uploads_older_than {
            let upload_cutoff = now.checked_sub(max).unwrap_or(SystemTime::UNIX_EPOCH);
            for upload in store.gc_uploads(&scan.name)? {
                if upload.last_active.is_some_and(|t| t < upload_cutoff) {
                    if !opts.dry_run {
                        store.gc_delete_upload(&scan.name, &upload.id)?;
                        deleted_one();
                    }
                    repo_reports[i].uploads_purged += 1;
                }
            }
        }
    }
    if let (Some(max), false) = (opts.purge_uploads_older_than, opts.dry_run) {
        let tmp_cutoff = now
            .checked_sub(max.min(Duration::from_secs(24 * 3600)).max(opts.grace))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        report.temp_files_removed = store.gc_purge_tmp(tmp_cutoff)?;
    }

    for rr in &repo_reports {
        report.tags_deleted += rr.tags_deleted.len();
        report.manifests_deleted += rr.manifests_deleted.len();
        report.links_removed += rr.links_removed;
        report.uploads_purged += rr.uploads_purged;
    }
    report.repositories = repo_reports.into_iter().filter(|r| !r.is_empty()).collect();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
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

/// Options of the online collector, from the `[gc]` config section.
pub fn online_options(config: &GcConfig) -> Result<Options, regex::Error> {
    Ok(Options {
        dry_run: false,
        delete_untagged: config.delete_untagged,
        grace: config.grace_period,
        purge_uploads_older_than: Some(config.purge_uploads_older_than),
        retention: Retention::from_config(&config.retention)?,
    })
}

/// Runs the collector every `config.interval` on the blocking pool, logging
/// each run, until the runtime shuts down.
pub fn spawn_online(
    store: Arc<dyn GcStore>,
    config: &GcConfig,
) -> Result<tokio::task::JoinHandle<()>, regex::Error> {
    let opts = online_options(config)?;
    let interval = config.interval;
    tracing::info!(
        interval = %humantime::format_duration(interval),
        grace = %humantime::format_duration(opts.grace),
        delete_untagged = opts.delete_untagged,
        retention_rules = opts.retention.len(),
        "online garbage collection enabled"
    );
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let (store, opts) = (store.clone(), opts.clone());
            match tokio::task::spawn_blocking(move || collect(store.as_ref(), &opts)).await {
                Ok(Ok(r)) => tracing::info!(
                    started_at = %r.started_at,
                    duration_ms = r.duration_ms,
                    blobs_deleted = r.blobs_deleted,
                    bytes_reclaimed = r.bytes_reclaimed,
                    manifests_deleted = r.manifests_deleted,
                    tags_deleted = r.tags_deleted,
                    links_removed = r.links_removed,
                    uploads_purged = r.uploads_purged,
                    blobs_scanned = r.blobs_scanned,
                    "garbage collection: reclaimed {} in {} ms",
                    human_bytes(r.bytes_reclaimed),
                    r.duration_ms
                ),
                Ok(Err(e)) => tracing::error!("garbage collection failed: {e}"),
                Err(e) => tracing::error!("garbage collection task failed: {e}"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "app"));
        assert!(!glob_match("*", "team/app"));
        assert!(glob_match("team/*", "team/app"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("team/**", "team/a/b"));
        assert!(glob_match("ap?", "app"));
        assert!(!glob_match("team/*", "other/app"));
    }

    #[test]
    fn references_of_all_kinds() {
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{d1}"}},"layers":[{{"digest":"{d2}"}}],"subject":{{"digest":"{d1}"}}}}"#
        );
        let r = references(m.as_bytes());
        assert_eq!(r.blobs.len(), 2);
        assert!(r.subject.is_some());
        let s1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{d2}"}}]}}"#);
        assert_eq!(references(s1.as_bytes()).blobs.len(), 1);
        let idx = format!(r#"{{"manifests":[{{"digest":"{d1}"}}]}}"#);
        assert_eq!(references(idx.as_bytes()).manifests.len(), 1);
        assert!(references(b"junk").blobs.is_empty());
        // registry:2 (Go) matches field names in any case.
        let upper = format!(r#"{{"Config":{{"Digest":"{d1}"}},"LAYERS":[{{"digest":"{d2}"}}]}}"#);
        assert_eq!(
            references(upper.as_bytes()).blobs,
            [d1.parse().unwrap(), d2.parse().unwrap()]
        );
        // Not strict JSON (a number out of range, Latin-1 text): every digest
        // it names is kept.
        let odd = format!(
            r#"{{"x":1e400,"config":{{"digest":"{d1}"}},"layers":[{{"digest":"{d2}"}}],"a":"caf"#
        )
        .into_bytes()
        .into_iter()
        .chain([0xe9, b'"', b'}'])
        .collect::<Vec<u8>>();
        let r = references(&odd);
        assert_eq!(r.blobs.len(), 2);
        assert_eq!(r.manifests.len(), 2);
    }

    fn tag(name: &str, age_s: u64, now: SystemTime) -> GcTag {
        GcTag {
            name: name.into(),
            target: Some(format!("sha256:{}", "c".repeat(64)).parse().unwrap()),
            pushed: now - Duration::from_secs(age_s),
            index: vec![],
        }
    }

    #[test]
    fn retention_selects() {
        let now = SystemTime::now();
        let tags = vec![
            tag("v1.0.0", 500, now),
            tag("a", 400, now),
            tag("b", 300, now),
            tag("c", 200, now),
            tag("d", 100, now),
        ];
        let rule = |keep_last, re: Option<&str>, older: Option<u64>| Retention {
            repositories: "**".into(),
            keep_last,
            keep_tags: re.map(|r| Regex::new(r).unwrap()),
            delete_older_than: older.map(Duration::from_secs),
        };
        let names = |r: Retention| -> Vec<String> {
            let mut v: Vec<String> = r
                .select(&tags, now)
                .iter()
                .map(|t| t.name.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(rule(Some(2), None, None)), ["a", "b", "v1.0.0"]);
        assert_eq!(names(rule(Some(2), Some(r"^v\d"), None)), ["a", "b"]);
        assert_eq!(names(rule(None, None, Some(250))), ["a", "b", "v1.0.0"]);
        assert_eq!(names(rule(Some(4), None, Some(250))), ["v1.0.0"]);
    }
}
