//! The `berth` subcommands other than option parsing: each reads what it
//! needs from the environment and calls the library.

pub mod gc;
pub mod healthcheck;
pub mod htpasswd;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth::config::{Config, ConfigError};

/// The configuration from `path` and the process environment, or exit
/// code 2 after saying why not.
pub fn load_config(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    read_config(path.as_deref()).map_err(|e| {
        eprintln!("berth: {e}");
        ExitCode::from(2)
    })
}

/// The configuration from `path` and the process environment, validated:
/// what `berth serve` starts with and re-reads on SIGHUP.
pub fn read_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    Config::load(path, std::env::vars())
}
