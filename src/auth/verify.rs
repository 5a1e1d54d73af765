//! Checking a user's password against the htpasswd file, fast and without
//! leaks: bcrypt verifications are cached (by keyed hashes, never the
//! password), unknown users cost a bcrypt verification too, and the file is
//! re-read when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::htpasswd::{self, Entries};

/// How long a verified password is trusted without running bcrypt again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many users' verifications are cached at once.
pub const CACHE_SIZE: usize = 10_000;
/// How often the htpasswd file is checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Cost of the dummy hash when the file has no entry to copy it from.
const DEFAULT_DUMMY_COST: u32 = 10;

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Valid,
    WrongPassword,
    UnknownUser,
    /// Not verified: the caller's gate closed while it waited for a slot.
    Refused,
}

/// The users currently in force, and the dummy hash unknown users are
/// verified against so they cost what a known user does.
struct Table {
    users: HashMap<String, Arc<str>>,
    dummy: Arc<str>,
    dummy_cost: u32,
    /// How long a verification at the file's highest cost takes: every
    /// failed check lasts at least this long, so that neither an unknown
    /// user nor a user whose entry has a lower cost answers faster.
    floor: Duration,
    generation: u64,
}

struct Cached {
    /// Keyed hash of user and password that was verified.
    verifier: [u8; 32],
    expires: Instant,
    generation: u64,
}

/// Identifies a file version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

pub struct Verifier {
    path: PathBuf,
    table: RwLock<Arc<Table>>,
    cache: RwLock<HashMap<[u8; 32], Cached>>,
    /// Per-process random key of the cache's hashes: what the cache holds
    /// is useless outside this process.
    key: [u8; 32],
    /// bcrypt is CPU-bound: at most one verification per core at a time, so
    /// a flood of logins cannot starve the blocking pool or the requests.
    slots: Semaphore,
    generation: AtomicU64,
    last_stamp: std::sync::Mutex<Option<Stamp>>,
}

/// A hash of a random password at `cost`, and how long verifying it takes.
fn dummy_hash(cost: u32) -> anyhow::Result<(Arc<str>, Duration)> {
    let mut pw = [0u8; 16];
    getrandom::fill(&mut pw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let hash = bcrypt::hash(hex::encode(pw), cost)?;
    let start = Instant::now();
    let _ = bcrypt::verify("", &hash);
    Ok((Arc::from(hash), start.elapsed()))
}

impl Verifier {
    /// Loads the file at `path`; lines that are not bcrypt entries are
    /// logged with their line numbers and ignored.
    pub fn load(path: &Path) -> anyhow::Result<Verifier> {
        let st = stamp(path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the htpasswd file {}: {e} (create it with `berth htpasswd add`, or set BERTH_INITIAL_USER and BERTH_INITIAL_PASSWORD)",
                path.display()
            )
        })?;
        let (entries, problems) = htpasswd::parse(&text);
        report(path, &problems);
        if entries.users.is_empty() {
            tracing::warn!(
                path = %path.display(),
                "the htpasswd file has no usable entry: nobody can log in until one is added"
            );
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let cost = cost_of(&entries);
        let (dummy, floor) = dummy_hash(cost)?;
        let table = Table {
            users: entries.users,
            dummy,
            dummy_cost: cost,
            floor,
            generation: 0,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tracing::info!(path = %path.display(), users = table.users.len(), "htpasswd loaded");
        Ok(Verifier {
            path: path.to_path_buf(),
            table: RwLock::new(Arc::new(table)),
            cache: RwLock::new(HashMap::new()),
            key,
            slots: Semaphore::new(cores),
            generation: AtomicU64::new(0),
            last_stamp: std::sync::Mutex::new(st),
        })
    }

    fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Keyed hashes: one naming the user (the cache key), one over user and
    /// password (what a cached entry must match).
    fn digests(&self, user: &str, password: &str) -> ([u8; 32], [u8; 32]) {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        let user_key: [u8; 32] = h.clone().finalize().into();
        h.update(password.as_bytes());
        (user_key, h.finalize().into())
    }

    /// Checks `user`'s `password`. A cache hit answers at once; anything
    /// else runs bcrypt, against a dummy hash when the user is unknown, so a
    /// wrong password and an unknown user take the same time (a failure
    /// lasts at least as long as a verification at the file's highest cost).
    /// `allowed` is asked once a bcrypt slot is free; when it says no, the
    /// password is not checked ([`Outcome::Refused`]). Returns the outcome
    /// and when a failure may be answered: the caller counts the failure at
    /// once, then waits until then.
    pub async fn verify(
        &self,
        user: &str,
        password: &str,
        allowed: impl Fn() -> bool,
    ) -> (Outcome, tokio::time::Instant) {
        let table = self.table();
        let now = tokio::time::Instant::now();
        let (user_key, verifier) = self.digests(user, password);
        if self.cache_hit(&user_key, &verifier, table.generation) {
            return (Outcome::Valid, now);
        }
        let known = table.users.get(user).cloned();
        let hash = known.clone().unwrap_or_else(|| table.dummy.clone());
        let (ok, started) = {
            let _permit = self.slots.acquire().await;
            if !allowed() {
                return (Outcome::Refused, now);
            }
            let started = tokio::time::Instant::now();
            let password = password.to_string();
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            (ok, started)
        };
        match (known, ok) {
            (Some(_), true) => {
                self.remember(user_key, verifier, table.generation);
                (Outcome::Valid, started)
            }
            (Some(_), false) => (Outcome::WrongPassword, started + table.floor),
            (None, _) => (Outcome::UnknownUser, started + table.floor),
        }
    }

    /// Whether `user`'s `password` was verified recently (the cache alone,
    /// never bcrypt): what a login from a locked address may still use.
    pub fn cached(&self, user: &str, password: &str) -> bool {
        let generation = self.table().generation;
        let (user_key, verifier) = self.digests(user, password);
        self.cache_hit(&user_key, &verifier, generation)
    }

    fn cache_hit(&self, user_key: &[u8; 32], verifier: &[u8; 32], generation: u64) -> bool {
        let Ok(cache) = self.cache.read() else {
            return false;
        };
        let hit = match cache.get(user_key) {
            Some(c) => {
                bool::from(c.verifier.ct_eq(verifier))
                    & (c.generation == generation)
                    & (c.expires > Instant::now())
            }
            None => false,
        };
        crate::telemetry::password_cache(hit);
        hit
    }

    fn remember(&self, user_key: [u8; 32], verifier: [u8; 32], generation: u64) {
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= CACHE_SIZE && !cache.contains_key(&user_key) {
            cache.retain(|_, c| c.expires > now && c.generation == generation);
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(
            user_key,
            Cached {
                verifier,
                expires: now + CACHE_TTL,
                generation,
            },
        );
    }

    /// Number of users in force (for tests and logs).
    pub fn user_count(&self) -> usize {
        self.table().users.len()
    }

    /// Re-reads the file if it changed since the last look. A file that
    /// cannot be read, or has no usable entry, is refused and the users in
    /// force stay.
    pub async fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        {
            let Ok(mut last) = self.last_stamp.lock() else {
                return;
            };
            if *last == now {
                return;
            }
            *last = now;
        }
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
        let bytes = match read {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "cannot read the htpasswd file; keeping the users loaded before");
                return;
            }
            Err(_) => return,
        };
        let Ok(text) = String::from_utf8(bytes) else {
            tracing::warn!(path = %self.path.display(),
                "the htpasswd file is not UTF-8 text; keeping the users loaded before");
            return;
        };
        let (entries, problems) = htpasswd::parse(&text);
        // Empty too: editors that rewrite in place pass through an empty
        // file, and a poll that lands then must not lock everyone out.
        if entries.users.is_empty() {
            report(&self.path, &problems);
            tracing::warn!(path = %self.path.display(),
                "the changed htpasswd file has no usable entry; keeping the users loaded before");
            return;
        }
        report(&self.path, &problems);
        let old = self.table();
        let cost = cost_of(&entries);
        let (dummy, floor) = if cost == old.dummy_cost {
            (old.dummy.clone(), old.floor)
        } else {
            match tokio::task::spawn_blocking(move || dummy_hash(cost)).await {
                Ok(Ok(d)) => d,
                _ => (old.dummy.clone(), old.floor),
            }
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let users = entries.users.len();
        let table = Arc::new(Table {
            users: entries.users,
            dummy,
            dummy_cost: cost,
            floor,
            generation,
        });
        match self.table.write() {
            Ok(mut t) => *t = table,
            Err(p) => *p.into_inner() = table,
        }
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
        tracing::info!(path = %self.path.display(), users, "htpasswd reloaded");
    }

    /// Polls the file for changes for as long as the runtime lives.
    pub fn spawn_reloader(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(v) = me.upgrade() else { break };
                v.reload_if_changed().await;
            }
        });
    }
}

fn cost_of(entries: &Entries) -> u32 {
    if entries.max_cost == 0 {
        DEFAULT_DUMMY_COST
    } else {
        entries.max_cost
    }
}

fn report(path: &Path, problems: &[htpasswd::LineProblem]) {
    for p in problems {
        tracing::warn!(path = %path.display(), line = p.line, "htpasswd entry ignored: {}", p.why);
    }
}
