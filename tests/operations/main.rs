//! Black-box tests of the operations settings (read-only mode, configured
//! response headers, CORS, notifications) against the real binary, one module per topic.

#[path = "../support/mod.rs"]
mod support;

mod cors;
mod headers;
mod notifications;
mod readonly;
