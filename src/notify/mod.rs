//! Notifications in registry:2's format: events about pushes, pulls, mounts
//! and deletes (tag deletes and garbage collection too) POSTed to the
//! configured endpoints.
//!
//! A handler's [`Hook`] hands an [`Event`] to the [`Notifier`] without
//! waiting: a bounded channel, and when it is full the event is dropped and
//! counted, never the request slowed. A dispatcher task writes each event
//! into the on-disk [`queue::Queue`] of every endpoint that does not ignore
//! it (fsynced: a crash loses nothing queued); one worker per endpoint
//! delivers its queue in order ([`deliver`]). Stopping the server delivers
//! nothing more: it only waits for what was handed off to reach the disk
//! ([`Notifier::settle`]), where it stays for the next start.
//!
//! `gc → notify → {config, oci, storage}`; `api` and `server` use it too.

mod deliver;
pub mod event;
mod hook;
mod queue;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

pub use event::{
    Action, Actor, Event, RequestRecord, Source, Target, BLOB_MEDIA_TYPE, EVENTS_MEDIA_TYPE,
};

use crate::config::{Endpoint, Notifications};
pub use hook::{Hook, ManifestRef, RequestContext};
use queue::Queue;

/// Events waiting for the dispatcher; beyond this they are dropped.
const HANDOFF: usize = 4096;

/// The memory events waiting for the dispatcher may take (estimated by
/// [`Event::approx_size`]: a push of a large index with `includereferences`
/// makes a large event); beyond this they are dropped.
const HANDOFF_BYTES: usize = 64 << 20;

/// One configured endpoint: its queue and its worker.
struct Sink {
    config: Endpoint,
    queue: Arc<Queue>,
    worker: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// The running notification system of a server.
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    sinks: Arc<RwLock<Vec<Sink>>>,
    dispatcher: tokio::task::JoinHandle<()>,
    source: RwLock<Source>,
    include_references: bool,
    queues: std::path::PathBuf,
    /// Events dropped because the hand-off channel was full.
    handoff_dropped: AtomicU64,
    /// Bytes (estimated) of the events handed off and not yet on disk.
    pending: Arc<AtomicUsize>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// Where this instance says events come from: `source.addr` is
/// `<hostname>:<port>` as in registry:2, `source.instanceID` a new UUID.
pub fn source(port: u16) -> Source {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    Source {
        addr: format!("{host}:{port}"),
        instance_id: uuid::Uuid::new_v4().to_string(),
    }
}

fn open_sinks(config: &Notifications, queues: &Path) -> anyhow::Result<Vec<Sink>> {
    let mut sinks = Vec::new();
    for e in config.enabled() {
        let queue = Arc::new(Queue::open(queues, &e.name, e.queue_limit).map_err(|err| {
            anyhow::anyhow!(
                "notifications.endpoints {:?}: cannot open its queue under {}: {err}",
                e.name,
                queues.display()
            )
        })?);
        let client = deliver::client(e)?;
        if !queue.is_empty() {
            tracing::info!(
                endpoint = e.name,
                queued = queue.len(),
                "notification queue: delivering what an earlier run queued"
            );
        }
        let worker = tokio::spawn(deliver::run(queue.clone(), e.clone(), client));
        sinks.push(Sink {
            config: e.clone(),
            queue,
            worker,
        });
    }
    Ok(sinks)
}

impl Notifier {
    /// Starts the endpoints of `config` (needs a Tokio runtime), with their
    /// queues under the data dir at `root`; `None` when no endpoint is enabled.
    pub fn start(
        config: &Notifications,
        root: &Path,
        source: Source,
    ) -> anyhow::Result<Option<Arc<Notifier>>> {
        if config.enabled().next().is_none() {
            return Ok(None);
        }
        let queues = crate::storage::notification_queues(root);
        let sinks = Arc::new(RwLock::new(open_sinks(config, &queues)?));
        let (tx, rx) = mpsc::channel(HANDOFF);
        let pending = Arc::new(AtomicUsize::new(0));
        let dispatcher = tokio::spawn(dispatch(rx, sinks.clone(), pending.clone()));
        for e in config.enabled() {
            // Without credentials a URL may carry (`https://user:pass@host/`).
            let mut url = reqwest::Url::parse(&e.url)?;
            let _ = (url.set_username(""), url.set_password(None));
            tracing::info!(endpoint = e.name, url = %url, "notifications enabled");
        }
        Ok(Some(Arc::new(Notifier {
            tx,
            sinks,
            dispatcher,
            source: RwLock::new(source),
            include_references: config.events.includereferences,
            queues,
            handoff_dropped: AtomicU64::new(0),
            pending,
        })))
    }

    /// Replaces the endpoints (a configuration reload): endpoints whose
    /// settings are unchanged keep running, the others are stopped and
    /// started anew (what they had queued stays on disk and is delivered by
    /// the new worker when the endpoint keeps its name).
    /// `includereferences` stays as it was at start.
    pub fn reconfigure(&self, config: &Notifications) -> anyhow::Result<()> {
        let mut sinks = self.sinks.write().unwrap_or_else(|p| p.into_inner());
        let mut kept = Vec::new();
        let mut wanted = Notifications {
            endpoints: Vec::new(),
            events: config.events.clone(),
        };
        for e in config.enabled() {
            match sinks.iter().position(|s| s.config == *e) {
                Some(i) => kept.push(sinks.remove(i)),
                None => wanted.endpoints.push(e.clone()),
            }
        }
        sinks.clear();
        kept.extend(open_sinks(&wanted, &self.queues)?);
        *sinks = kept;
        Ok(())
    }

    /// Says `<hostname>:<port>` in `source.addr` with the port actually
    /// listened on (`http.addr` may say `:0`).
    pub fn set_listen_port(&self, port: u16) {
        let mut s = self.source.write().unwrap_or_else(|p| p.into_inner());
        let host = s
            .addr
            .rsplit_once(':')
            .map_or("localhost", |(h, _)| h)
            .to_string();
        s.addr = format!("{host}:{port}");
    }

    /// What events of this instance say in `source`.
    pub fn source(&self) -> Source {
        self.source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hands `event` to the dispatcher without waiting.
    pub fn emit(&self, event: Event) {
        let size = event.approx_size();
        let before = self.pending.fetch_add(size, Ordering::SeqCst);
        let sent = before.saturating_add(size) <= HANDOFF_BYTES && self.tx.try_send(event).is_ok();
        if !sent {
            self.pending.fetch_sub(size, Ordering::SeqCst);
            let n = self.handoff_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("berth_notifications_dropped_total", "endpoint" => "", "reason" => "handoff")
                .increment(1);
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(
                    dropped_total = n,
                    "notification events dropped: the queues cannot keep up"
                );
            }
        }
    }

    /// Waits (up to `limit`) until every event handed off is on disk: at
    /// shutdown, so a graceful stop loses no event of a request it answered.
    /// Delivers nothing.
    pub async fn settle(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Events dropped since start because the hand-off was full.
    pub fn handoff_dropped(&self) -> u64 {
        self.handoff_dropped.load(Ordering::Relaxed)
    }
}

/// Writes `events` (an offline collection's deletes) straight into the
/// queues of the enabled endpoints under `root`, for the server to deliver
/// when it next starts (`berth garbage-collect` runs with no server).
pub fn queue_offline(
    config: &Notifications,
    root: &Path,
    events: &[Event],
) -> anyhow::Result<usize> {
    if config.enabled().next().is_none() {
        return Ok(0);
    }
    let queues = crate::storage::notification_queues(root);
    let mut n = 0;
    for e in config.enabled() {
        let q = Queue::open(&queues, &e.name, e.queue_limit)?;
        for ev in events
            .iter()
            .filter(|ev| !e.ignores(&ev.action, &ev.target.media_type))
        {
            q.push(&serde_json::to_vec(ev)?)?;
            n += 1;
        }
    }
    Ok(n)
}

async fn dispatch(
    mut rx: mpsc::Receiver<Event>,
    sinks: Arc<RwLock<Vec<Sink>>>,
    pending: Arc<AtomicUsize>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let n: usize = batch.iter().map(Event::approx_size).sum();
        let events: Vec<(Event, Vec<u8>)> = batch
            .drain(..)
            .filter_map(|e| serde_json::to_vec(&e).ok().map(|j| (e, j)))
            .collect();
        let (sinks, pending) = (sinks.clone(), pending.clone());
        let done = tokio::task::spawn_blocking(move || {
            // Under the read lock: a reconfigure waits for this batch.
            let sinks = sinks.read().unwrap_or_else(|p| p.into_inner());
            for (event, json) in &events {
                for s in sinks.iter() {
                    let (e, q) = (&s.config, &s.queue);
                    if e.ignores(&event.action, &event.target.media_type) {
                        continue;
                    }
                    if let Err(err) = q.push(json) {
                        metrics::counter!("berth_notifications_dropped_total",
                            "endpoint" => e.name.clone(), "reason" => "write_error")
                        .increment(1);
                        tracing::error!(
                            endpoint = e.name,
                            "cannot queue a notification event: {err}"
                        );
                    }
                }
            }
            pending.fetch_sub(n, Ordering::SeqCst);
        })
        .await;
        if done.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, url: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            url: url.into(),
            ..Endpoint::default()
        }
    }

    fn names(n: &Notifier) -> Vec<String> {
        let sinks = n.sinks.read().unwrap();
        sinks.iter().map(|s| s.config.name.clone()).collect()
    }

    #[tokio::test]
    async fn reconfigure_keeps_unchanged_endpoints_and_starts_new_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Notifications {
            endpoints: vec![
                endpoint("a", "http://127.0.0.1:9/"),
                endpoint("b", "http://127.0.0.1:9/"),
            ],
            ..Notifications::default()
        };
        let n = Notifier::start(&config, tmp.path(), source(5000))
            .unwrap()
            .unwrap();
        assert_eq!(names(&n), ["a", "b"]);
        let mut changed = config.clone();
        changed.endpoints[1].url = "http://127.0.0.1:10/".into();
        changed.endpoints[0].disabled = true;
        changed.endpoints.push(endpoint("c", "http://127.0.0.1:9/"));
        n.reconfigure(&changed).unwrap();
        assert_eq!(names(&n), ["b", "c"]);
        assert_eq!(
            n.sinks.read().unwrap()[0].config.url,
            "http://127.0.0.1:10/"
        );
        // Events handed off land on disk for the endpoints now configured.
        n.emit(Event::new(
            Action::Push,
            Target::default(),
            RequestRecord::default(),
            Actor::default(),
            n.source(),
        ));
        n.settle(std::time::Duration::from_secs(5)).await;
        let queues = crate::storage::notification_queues(tmp.path());
        assert!(queues.join("c").is_dir());
        assert_eq!(n.pending.load(Ordering::SeqCst), 0);
    }
}
