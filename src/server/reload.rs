//! Applying a new configuration to a running registry (`berth serve` does
//! it on SIGHUP; this module reads no signal and no file: it is handed the
//! configuration, already loaded and validated).
//!
//! What a request reads afresh is swapped whole ([`crate::api::Live`]):
//! `http.headers`, `[cors]`, the per-request `[limits]`, read-only mode and
//! the `[access]` rules; the online collector is stopped in read-only mode
//! and restarted with new `[gc]` settings (retention, interval). Requests already running keep what they started
//! with (a pull streaming a blob goes on). Everything else that differs
//! from what the server started with is logged, key by key, as needing a
//! restart, and not applied. A configuration that cannot be applied (a
//! header or CORS value that does not build) changes nothing at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::api::{Live, ResponsePolicy};
use crate::auth::Auth;
use crate::config::{Config, Limits};
use crate::storage::FsStore;

/// A handle on the parts of a running registry that a reload replaces;
/// cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration the server started with: what a change to a key
    /// that needs a restart is measured against (so the warning comes on
    /// every reload until the restart).
    started: Config,
    /// The configuration last applied (the started one at first).
    current: Mutex<Config>,
    store: Arc<FsStore>,
    limits: Arc<Live<Limits>>,
    readonly: Arc<AtomicBool>,
    responses: Arc<Live<ResponsePolicy>>,
    auth: Option<Arc<Auth>>,
    /// The online collector, when it runs (with `gc.enabled`, not in
    /// read-only mode).
    collector: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// `[notifications]`, when an endpoint was enabled at start.
    notifier: Option<Arc<crate::notify::Notifier>>,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The keys whose new values are in effect.
    pub applied: Vec<String>,
    /// The keys that changed but keep their old values until a restart.
    pub needs_restart: Vec<String>,
    /// `log.level`, when it changed: the caller owns the log subscriber and
    /// applies it (then adds `log.level` to `applied`).
    pub log_level: Option<String>,
}

impl Reloaded {
    /// The one line that sums the reload up.
    pub fn log(&self) {
        let applied = if self.applied.is_empty() {
            "nothing".to_string()
        } else {
            self.applied.join(", ")
        };
        if self.needs_restart.is_empty() {
            tracing::info!("configuration reloaded: applied {applied}");
        } else {
            tracing::info!(
                "configuration reloaded: applied {applied}; not applied until a restart: {}",
                self.needs_restart.join(", ")
            );
        }
    }
}

/// Whether a setting changed. Every configuration type is `Debug` with
/// ordered maps (`BTreeMap`), so equal settings print alike.
fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

pub(super) struct Parts {
    pub store: Arc<FsStore>,
    pub limits: Arc<Live<Limits>>,
    pub readonly: Arc<AtomicBool>,
    pub responses: Arc<Live<ResponsePolicy>>,
    pub auth: Option<Arc<Auth>>,
    pub collector: Option<tokio::task::JoinHandle<()>>,
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

impl Reloader {
    pub(super) fn new(config: &Config, parts: Parts) -> Reloader {
        Reloader {
            inner: Arc::new(Inner {
                started: config.clone(),
                current: Mutex::new(config.clone()),
                store: parts.store,
                limits: parts.limits,
                readonly: parts.readonly,
                responses: parts.responses,
                auth: parts.auth,
                collector: Mutex::new(parts.collector),
                notifier: parts.notifier,
            }),
        }
    }

    /// Stops the online collector, for good unless a reload starts it again.
    pub(super) fn stop_collector(&self) {
        self.inner.stop_collector();
    }

    /// Applies what can change at run time from `new` (loaded and validated
    /// as at start-up) and logs a warning for each key that needs a
    /// restart. On an error nothing is applied.
    pub fn reload(&self, new: Config) -> Result<Reloaded, String> {
        let inner = &*self.inner;
        let mut current = match inner.current.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Everything that can fail is built before anything is applied.
        let responses = ResponsePolicy::from_config(&new)?;
        // The collector's settings that reload; whether it is on at all and
        // its grace period (which the store's read refreshes follow) stay.
        let mut gc = new.gc.clone();
        gc.enabled = inner.started.gc.enabled;
        gc.grace_period = inner.started.gc.grace_period;
        crate::gc::online_options(&gc).map_err(|e| format!("gc.retention: {e}"))?;

        let mut report = Reloaded::default();
        let (old, started) = (&*current, &inner.started);
        report.needs_restart = needs_restart(&new, started);
        inner.reload_others(old, &new, &mut report);
        for key in &report.needs_restart {
            tracing::warn!(
                key,
                "{key} changed in the configuration; needs a restart to take effect"
            );
        }

        let mut applied = |key: &str| report.applied.push(key.to_string());
        if differs(&new.http.headers, &old.http.headers) {
            applied("http.headers");
        }
        if differs(&new.cors, &old.cors) {
            applied("cors");
        }
        inner.responses.set(responses);

        let readonly = new.storage.maintenance.readonly.enabled;
        if readonly != old.storage.maintenance.readonly.enabled {
            inner.readonly.store(readonly, Ordering::Relaxed);
            applied("storage.maintenance.readonly.enabled");
        }

        let (g, o) = (&gc, &old.gc);
        let mut gc_changed = false;
        for (key, changed) in [
            ("gc.interval", g.interval != o.interval),
            ("gc.delete_untagged", g.delete_untagged != o.delete_untagged),
            (
                "gc.purge_uploads_older_than",
                g.purge_uploads_older_than != o.purge_uploads_older_than,
            ),
            ("gc.retention", differs(&g.retention, &o.retention)),
        ] {
            if changed && started.gc.enabled {
                applied(key);
                gc_changed = true;
            }
        }
        inner.run_collector(started.gc.enabled && !readonly, gc_changed, &gc);

        // The connection limit is the size of the accept loop's semaphore:
        // it stays as started. Every other limit is read per request (the
        // timeouts of a connection when it opens).
        let mut limits = new.limits.clone();
        limits.max_connections = started.limits.max_connections;
        let (l, o) = (&limits, &old.limits);
        for (key, changed) in [
            (
                "limits.header_read_timeout",
                l.header_read_timeout != o.header_read_timeout,
            ),
            ("limits.idle_timeout", l.idle_timeout != o.idle_timeout),
            (
                "limits.body_idle_timeout",
                l.body_idle_timeout != o.body_idle_timeout,
            ),
            ("limits.max_uploads", l.max_uploads != o.max_uploads),
            (
                "limits.max_uploads_per_repository",
                l.max_uploads_per_repository != o.max_uploads_per_repository,
            ),
            (
                "limits.max_tags_per_put",
                l.max_tags_per_put != o.max_tags_per_put,
            ),
            (
                "limits.max_referrers_page",
                l.max_referrers_page != o.max_referrers_page,
            ),
        ] {
            if changed {
                applied(key);
            }
        }
        inner
            .store
            .limit_uploads(limits.max_uploads, limits.max_uploads_per_repository);
        inner.limits.set(limits);

        let (a, o) = (&new.access, &old.access);
        let rules_changed = differs(&a.anonymous_pull, &o.anonymous_pull)
            || differs(&a.groups, &o.groups)
            || differs(&a.rules, &o.rules);
        if let (Some(auth), true) = (&inner.auth, rules_changed) {
            auth.set_access(a);
            applied("access");
        }

        if new.log.level != old.log.level {
            report.log_level = Some(new.log.level.clone());
        }
        *current = new;
        Ok(report)
    }
}

/// The keys changed from what the server `started` with that only a restart
/// applies (compared with the start, so the warning comes at every reload
/// until the restart).
fn needs_restart(new: &Config, started: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut restart = |key: &str| keys.push(key.to_string());
    let (h, sh) = (&new.http, &started.http);
    if h.addr != sh.addr {
        restart("http.addr");
    }
    for (key, changed) in [
        (
            "http.tls.certificate",
            h.tls.certificate != sh.tls.certificate,
        ),
        ("http.tls.key", h.tls.key != sh.tls.key),
        ("http.tls.minimumtls", h.tls.minimumtls != sh.tls.minimumtls),
        ("http.tls.clientcas", h.tls.clientcas != sh.tls.clientcas),
        ("http.http2.disabled", h.http2.disabled != sh.http2.disabled),
        ("http.debug", differs(&h.debug, &sh.debug)),
        ("http.host", h.host != sh.host),
        ("http.prefix", h.prefix != sh.prefix),
        ("http.relativeurls", h.relativeurls != sh.relativeurls),
        (
            "http.trusted_proxies",
            h.trusted_proxies != sh.trusted_proxies,
        ),
        (
            "storage.filesystem.rootdirectory",
            new.storage.filesystem.rootdirectory != started.storage.filesystem.rootdirectory,
        ),
        (
            "storage.delete.enabled",
            new.storage.delete.enabled != started.storage.delete.enabled,
        ),
        ("auth", differs(&new.auth, &started.auth)),
        (
            "access.lockout",
            differs(&new.access.lockout, &started.access.lockout),
        ),
        ("gc.enabled", new.gc.enabled != started.gc.enabled),
        (
            "gc.grace_period",
            new.gc.grace_period != started.gc.grace_period,
        ),
        (
            "limits.max_connections",
            new.limits.max_connections != started.limits.max_connections,
        ),
        ("log.formatter", new.log.formatter != started.log.formatter),
    ] {
        if changed {
            restart(key);
        }
    }
    keys
}

impl Inner {
    /// Starts, stops or restarts the online collector so that it runs with
    /// `gc` exactly when `run` says. Stopping it lets a run in progress (on
    /// the blocking pool) finish; a (re)started one first runs one
    /// `gc.interval` later.
    fn run_collector(&self, run: bool, changed: bool, gc: &crate::config::Gc) {
        let mut collector = match self.collector.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(old) = collector.take_if(|_| !run || changed) {
            old.abort();
            if !run {
                tracing::info!(
                    "read-only mode: the online collector stops (a run in progress finishes)"
                );
            }
        }
        if run && collector.is_none() {
            match crate::gc::spawn_online(self.store.clone(), gc, self.notifier.clone()) {
                Ok(task) => *collector = Some(task),
                Err(e) => tracing::error!("the online collector cannot start: gc.retention: {e}"),
            }
        }
    }

    /// Stops the online collector (the registry is dropped).
    fn stop_collector(&self) {
        let mut collector = match self.collector.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(task) = collector.take() {
            task.abort();
        }
    }

    /// The settings of other parts (notifications, the debug listener) that
    /// a reload applies or reports as needing a restart: compare `old` (last
    /// applied) and `new`, apply what can change, and add the keys to
    /// `report.applied` or `report.needs_restart`. Runs after the restart
    /// checks above and before their warnings are logged; nothing here may
    /// fail (build what can fail at the top of [`Reloader::reload`]).
    fn reload_others(&self, old: &Config, new: &Config, report: &mut Reloaded) {
        if new.notifications.events != self.started.notifications.events {
            report
                .needs_restart
                .push("notifications.events.includereferences".into());
        }
        // Compared whole (not by Debug, which hides header values).
        if old.notifications.endpoints != new.notifications.endpoints {
            let key = "notifications".to_string();
            match &self.notifier {
                Some(n) => match n.reconfigure(&new.notifications) {
                    Ok(()) => report.applied.push(key),
                    Err(e) => {
                        tracing::error!(
                            "notifications not reconfigured, the old endpoints stay: {e:#}"
                        );
                        report.needs_restart.push(key);
                    }
                },
                // No endpoint was enabled at start: no notifier to reconfigure.
                None => report.needs_restart.push(key),
            }
        }
    }
}
