//! What Berth tells Prometheus: the name of every metric (registry:2's
//! where it has one, so its Grafana dashboards keep working, Berth's own
//! under `berth_`), the small functions the rest of the code calls to move
//! them, the HTTP layer that measures every API request ([`instrument`]),
//! and the process-wide recorder the debug listener renders.
//!
//! Everything goes through the `metrics` facade: without a recorder (the
//! debug listener or its Prometheus endpoint off, `berth garbage-collect`)
//! every call here is a no-op.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// registry:2's (docker/go-metrics' `InstrumentHandler`, namespace
/// `registry`, subsystem `http`): `{code, handler, method}`.
pub const HTTP_REQUESTS: &str = "registry_http_requests_total";
/// Histogram, `{handler, method}`, seconds until the response was sent.
pub const HTTP_REQUEST_DURATION: &str = "registry_http_request_duration_seconds";
/// Histogram, `{handler}`: request body bytes read.
pub const HTTP_REQUEST_SIZE: &str = "registry_http_request_size_bytes";
/// Histogram, `{handler}`: response body bytes sent.
pub const HTTP_RESPONSE_SIZE: &str = "registry_http_response_size_bytes";
/// Gauge, `{handler}`.
pub const HTTP_IN_FLIGHT: &str = "registry_http_in_flight_requests";

/// Counters, `{handler}`: body bytes really streamed (not what
/// `Content-Length` claimed), counted as they pass.
pub const RECEIVED_BYTES: &str = "berth_http_received_bytes_total";
pub const SENT_BYTES: &str = "berth_http_sent_bytes_total";
/// Gauge: upload sessions open (started, neither finished nor cancelled).
pub const UPLOADS_OPEN: &str = "berth_uploads_in_progress";
/// Gauges: blobs in the blob store and their bytes (counted once at
/// start-up, then kept current by commits and garbage collection).
pub const STORAGE_BLOBS: &str = "berth_storage_blobs";
pub const STORAGE_BLOB_BYTES: &str = "berth_storage_blob_bytes";
/// Gauge: 1 once the start-up count of the blob store is done.
pub const STORAGE_COUNTED: &str = "berth_storage_counted";
/// Gauge: repositories in the catalog's index (during the start-up scan:
/// found so far).
pub const CATALOG_INDEX_REPOSITORIES: &str = "berth_catalog_index_repositories";
/// Gauge: 1 once the start-up scan is done and the catalog is answered
/// from the index.
pub const CATALOG_INDEX_READY: &str = "berth_catalog_index_ready";
/// Gauge, seconds: how long the last scan of the repositories took (the
/// re-scan for other writers follows after 20 times that, 2 s at least).
pub const CATALOG_INDEX_SCAN_SECONDS: &str = "berth_catalog_index_scan_seconds";
/// Counter, `{reason}`: refused logins (`wrong_password`, `unknown_user`,
/// `malformed`, `locked_out`).
pub const AUTH_FAILURES: &str = "berth_auth_failures_total";
/// Counter: lockouts started (an address group, a user or a pair).
pub const AUTH_LOCKOUTS: &str = "berth_auth_lockouts_total";
/// Counters: lookups in the verified-password cache (a hit spares a bcrypt).
pub const PASSWORD_CACHE_HITS: &str = "berth_auth_password_cache_hits_total";
pub const PASSWORD_CACHE_MISSES: &str = "berth_auth_password_cache_misses_total";
/// Counter, `{result}` (`ok`, `error`): garbage collection runs (not dry runs).
pub const GC_RUNS: &str = "berth_gc_runs_total";
/// Counter, `{kind}` (`blob`, `manifest`, `tag`, `link`, `upload`).
pub const GC_DELETED: &str = "berth_gc_deleted_total";
pub const GC_FREED_BYTES: &str = "berth_gc_freed_bytes_total";
/// Gauge, `{version}`: always 1.
pub const BUILD_INFO: &str = "berth_build_info";

/// registry:2's duration buckets (docker/go-metrics: Prometheus' defaults
/// plus 25 s and 60 s).
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// registry:2's size buckets: 1 KiB × 2ⁿ, 22 of them (1 KiB to 2 GiB).
fn size_buckets() -> Vec<f64> {
    (0..22).map(|n| 1024.0 * f64::from(1u32 << n)).collect()
}

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (so memory stays bounded between scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder, installed by the first caller
/// (later callers, e.g. several in-process servers in one test binary,
/// share it: metrics are per process, as the facade is). `None` when
/// another recorder was installed first. Needs a Tokio runtime the first
/// time (for the upkeep task).
pub fn prometheus() -> Option<PrometheusHandle> {
    RECORDER.get_or_init(install).clone()
}

/// Whether the Prometheus recorder is installed (the HTTP layer measures
/// nothing otherwise).
pub fn recording() -> bool {
    matches!(RECORDER.get(), Some(Some(_)))
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.into()),
            &DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_SIZE.into()), &size_buckets())
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(HTTP_RESPONSE_SIZE.into()), &size_buckets())
        });
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the Prometheus recorder");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed: no Prometheus metrics");
        return None;
    }
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS, "Total number of HTTP requests made.");
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "The HTTP request latencies in seconds."
    );
    describe_histogram!(
        HTTP_REQUEST_SIZE,
        Unit::Bytes,
        "The HTTP request sizes in bytes."
    );
    describe_histogram!(
        HTTP_RESPONSE_SIZE,
        Unit::Bytes,
        "The HTTP response sizes in bytes."
    );
    describe_gauge!(HTTP_IN_FLIGHT, "The in-flight HTTP requests");
    describe_counter!(RECEIVED_BYTES, Unit::Bytes, "Request body bytes received.");
    describe_counter!(SENT_BYTES, Unit::Bytes, "Response body bytes sent.");
    describe_gauge!(UPLOADS_OPEN, "Upload sessions open.");
    describe_gauge!(STORAGE_BLOBS, "Blobs in the blob store.");
    describe_gauge!(
        STORAGE_BLOB_BYTES,
        Unit::Bytes,
        "Bytes of the blobs in the blob store."
    );
    describe_gauge!(
        STORAGE_COUNTED,
        "1 once the start-up count of the blob store is done."
    );
    describe_gauge!(
        CATALOG_INDEX_REPOSITORIES,
        "Repositories in the catalog's index (found so far, while it builds)."
    );
    describe_gauge!(
        CATALOG_INDEX_READY,
        "1 once the catalog is answered from its index."
    );
    describe_gauge!(
        CATALOG_INDEX_SCAN_SECONDS,
        Unit::Seconds,
        "Duration of the last scan of the repositories for the catalog's index."
    );
    describe_counter!(AUTH_FAILURES, "Refused logins, by reason.");
    describe_counter!(AUTH_LOCKOUTS, "Login lockouts started.");
    describe_counter!(
        PASSWORD_CACHE_HITS,
        "Logins answered by the verified-password cache."
    );
    describe_counter!(
        PASSWORD_CACHE_MISSES,
        "Logins the verified-password cache could not answer."
    );
    describe_counter!(GC_RUNS, "Garbage collection runs, by result.");
    describe_counter!(GC_DELETED, "Items deleted by garbage collection, by kind.");
    describe_counter!(
        GC_FREED_BYTES,
        Unit::Bytes,
        "Bytes freed by garbage collection."
    );
    describe_gauge!(BUILD_INFO, "Berth's version (the value is always 1).");
}

/// A blob of `size` bytes entered the blob store.
pub fn blob_stored(size: u64) {
    gauge!(STORAGE_BLOBS).increment(1.0);
    gauge!(STORAGE_BLOB_BYTES).increment(size as f64);
}

/// A blob of `size` bytes left the blob store.
pub fn blob_removed(size: u64) {
    gauge!(STORAGE_BLOBS).decrement(1.0);
    gauge!(STORAGE_BLOB_BYTES).decrement(size as f64);
}

/// The start-up count of the blob store: what was there before this
/// process committed or removed anything.
pub fn blobs_counted(blobs: u64, bytes: u64) {
    gauge!(STORAGE_BLOBS).increment(blobs as f64);
    gauge!(STORAGE_BLOB_BYTES).increment(bytes as f64);
    gauge!(STORAGE_COUNTED).set(1.0);
}

/// The catalog's start-up scan has found `n` repositories so far.
pub fn catalog_index_progress(n: usize) {
    gauge!(CATALOG_INDEX_REPOSITORIES).set(n as f64);
}

/// A scan of the repositories (`repositories` of them, in `took`) is the
/// catalog's index now.
pub fn catalog_indexed(repositories: usize, took: Duration) {
    gauge!(CATALOG_INDEX_REPOSITORIES).set(repositories as f64);
    gauge!(CATALOG_INDEX_SCAN_SECONDS).set(took.as_secs_f64());
    gauge!(CATALOG_INDEX_READY).set(1.0);
}

/// The number of upload sessions open now.
pub fn uploads_open(n: usize) {
    gauge!(UPLOADS_OPEN).set(n as f64);
}

/// A login refused: `wrong_password`, `unknown_user`, `malformed` or
/// `locked_out`.
pub fn login_failed(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// A failed login started a lockout.
pub fn lockout_started() {
    counter!(AUTH_LOCKOUTS).increment(1);
}

/// A lookup in the verified-password cache.
pub fn password_cache(hit: bool) {
    if hit {
        counter!(PASSWORD_CACHE_HITS).increment(1);
    } else {
        counter!(PASSWORD_CACHE_MISSES).increment(1);
    }
}

/// A garbage collection run that completed: what it deleted of each kind
/// (`blob`, `manifest`, `tag`, `link`, `upload`) and the bytes it freed.
pub fn gc_collected(deleted: &[(&'static str, u64)], freed_bytes: u64) {
    counter!(GC_RUNS, "result" => "ok").increment(1);
    for &(kind, n) in deleted {
        counter!(GC_DELETED, "kind" => kind).increment(n);
    }
    counter!(GC_FREED_BYTES).increment(freed_bytes);
}

/// A garbage collection run that failed.
pub fn gc_failed() {
    counter!(GC_RUNS, "result" => "error").increment(1);
}
