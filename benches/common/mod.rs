//! Shared by the side-by-side benchmarks: a cheap blocking HTTP client,
//! generated data (blobs, registry:2-layout trees), the servers, `/proc`
//! CPU and memory, the workloads and the results table.

pub mod data;
pub mod http;
pub mod process;
pub mod procfs;
pub mod report;
pub mod server;
pub mod work;
