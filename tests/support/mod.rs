//! What the integration tests share. Each test file says `mod support;` and
//! uses what it needs; every test binary compiles all of it, hence the
//! `allow`s.
//!
//! - [`harness`]: the `berth` server on a free port (log capture on request)
//! - [`dockerd`]: a private Docker daemon; [`registry2`]: Debian's
//!   `docker-registry` (registry:2) and the [`Target`] of client tests
//! - [`http`], [`api`], [`raw`]: the HTTP client, the API tests' request and
//!   response helpers, raw socket requests
//! - [`content`], [`image`], [`layout`]: media types, digests, seeded bytes,
//!   tar/gzip, image and index builders, OCI image layouts
//! - [`push`]: pushing blobs, manifests and trees; [`snapshot`]: reading a
//!   whole registry back
//! - [`tools`]: external commands with time limits, `have(prog)`
//! - [`inprocess`]: the real application in-process, driven with `oneshot`
//! - [`auth`], [`gc`], [`served`]: helpers of the auth, GC and manifest
//!   test files (not re-exported here)
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod auth;
pub mod content;
pub mod dockerd;
pub mod gc;
pub mod harness;
pub mod http;
pub mod image;
pub mod inprocess;
pub mod layout;
pub mod push;
pub mod raw;
pub mod registry2;
pub mod served;
pub mod snapshot;
pub mod tools;

pub use api::*;
pub use content::*;
pub use harness::*;
pub use http::*;
pub use image::*;
pub use layout::*;
pub use push::*;
pub use raw::*;
pub use registry2::*;
pub use snapshot::*;
pub use tools::*;
