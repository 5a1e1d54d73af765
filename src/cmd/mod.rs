//! The `berth` subcommands other than option parsing: each reads what it
//! needs from the environment and calls the library.

pub mod healthcheck;
pub mod htpasswd;
pub mod serve;
