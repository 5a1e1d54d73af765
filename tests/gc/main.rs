//! Black-box tests of garbage collection (offline, online, retention,
//! crashes, registry:2 data) against the real binary, one module per topic.

#[path = "../support/mod.rs"]
mod support;

mod collect;
mod crash;
mod online;
mod registry2;
mod retention;
