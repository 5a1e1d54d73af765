//! Attacks on the real binary, the way a hostile or buggy client would make
//! them (the hardening audit's findings), one module per door: each test is
//! named for what it protects and failed on the code before its fix.

#[path = "../support/mod.rs"]
mod support;

mod crash;
mod full_disk;
mod limits;
mod lockout;
mod manifest_work;
mod mount;
mod referrers;
mod slow_clients;
mod stress;
mod uploads;
