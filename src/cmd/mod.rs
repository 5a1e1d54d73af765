//! The `berth` subcommands other than option parsing: each reads what it
//! needs from the environment and calls the library.

pub mod gc;
pub mod healthcheck;
pub mod htpasswd;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use berth::config::Config;

/// The configuration from `path` and the process environment, or exit
/// code 2 after saying why not.
pub fn load_config(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(path.as_deref(), std::env::vars()).map_err(|e| {
        eprintln!("berth: {e}");
        ExitCode::from(2)
    })
}
