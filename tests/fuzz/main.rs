//! Property tests ("fuzzing" on stable) of everything that parses client
//! input, one module per parser family. Each property runs a few hundred
//! to a few thousand cases by default (well under a minute in all);
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz` runs longer.
//! A failing case is saved under `proptest-regressions/fuzz/` (committed:
//! it is the corpus, replayed first on every run).

#[path = "../support/mod.rs"]
mod support;

mod config;
mod digests;
mod htpasswd;
mod manifests;
mod names;
mod ranges;
mod routes;
mod uploads;

use proptest::test_runner::{Config, FileFailurePersistence};

/// `default_cases` cases (unless `PROPTEST_CASES` says otherwise), failures
/// persisted in `file` (relative to the package root, where cargo runs tests).
pub fn cases(default_cases: u32, file: &'static str) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..Config::default()
    }
}

/// A tokio runtime for the in-process properties: built once per test,
/// each case `block_on`s in it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The spec's error body: `{"errors":[{"code": "...", "message": "..."}]}`.
pub fn is_spec_error(body: &[u8]) -> bool {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"]
        .as_array()
        .and_then(|a| a.first())
        .is_some_and(|e| {
            e["code"].as_str().is_some_and(|c| !c.is_empty()) && e["message"].is_string()
        })
}
