//! Black-box tests of authentication and access control against the
//! real binary, one module per topic (real clients are in auth_clients.rs).

#[path = "../support/mod.rs"]
mod support;

mod access;
mod bootstrap;
mod htpasswd;
mod login;
