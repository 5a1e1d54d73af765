//! Black-box tests of the API endpoints against the real binary, one
//! module per topic (one test binary: fewer to build and link).

#[path = "../support/mod.rs"]
mod support;

mod base;
mod blob_reads;
mod blobs;
mod catalog;
mod catalog_index;
mod concurrency;
mod manifest_refusals;
mod manifests;
mod names;
mod push_fast_path;
mod referrers;
mod tags;
mod upload_chunks;
mod uploads;
