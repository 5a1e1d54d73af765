//! Black-box tests of the operations settings (read-only mode, configured
//! response headers, CORS, reverse proxies, the debug listener's metrics
//! and health, notifications) against the real binary, one module per topic.

#[path = "../support/mod.rs"]
mod support;

mod cors;
mod headers;
mod health;
mod metrics;
mod notifications;
mod proxy;
mod readonly;
mod reload;
