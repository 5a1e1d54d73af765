//! Berth: an OCI Distribution Spec v1.1 registry, drop-in compatible with
//! registry:2 (API, `REGISTRY_*` settings, on-disk layout).

pub mod api;
pub mod auth;
pub mod config;
pub mod gc;
pub mod notify;
pub mod oci;
pub mod server;
pub mod storage;
pub mod telemetry;
