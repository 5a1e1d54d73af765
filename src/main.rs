//! The `berth` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth::config::LogFormat;

mod cmd;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A fast OCI container registry, drop-in for registry:2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        /// Config file (TOML). registry:2 style `berth serve FILE` works too.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(value_name = "CONFIG", conflicts_with = "config")]
        config_pos: Option<PathBuf>,
        /// Log format (overrides log.formatter).
        #[arg(long, value_enum)]
        log_format: Option<Format>,
    },
    /// Delete unreferenced blobs, manifests and links (offline: refuses to
    /// run while a server uses the data dir; see `[gc]` for online collection).
    GarbageCollect(cmd::gc::Args),
    /// Validate a configuration (file plus REGISTRY_* environment) and print it.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Exit 0 if the registry answers on /v2/ (200 or 401), 1 if not.
    Healthcheck(cmd::healthcheck::Args),
    /// Manage the users of the htpasswd file (bcrypt): add, remove, list.
    Htpasswd(cmd::htpasswd::HtpasswdArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            config_pos,
            log_format,
        } => {
            let path = config.or(config_pos);
            let config = match cmd::load_config(path.clone()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let format = match log_format {
                Some(Format::Json) => LogFormat::Json,
                Some(Format::Text) => LogFormat::Text,
                None => config.log.formatter,
            };
            cmd::serve::run(config, format, path)
        }
        Command::GarbageCollect(args) => cmd::gc::run(args),
        Command::Healthcheck(args) => cmd::healthcheck::run(args),
        Command::Htpasswd(args) => cmd::htpasswd::run(args),
        Command::CheckConfig { config } => match cmd::load_config(config) {
            Ok(c) => {
                // The TLS files are read as `serve` would read them.
                if let Err(e) = berth::server::check_tls(&c.http) {
                    eprintln!("berth: {e:#}");
                    return ExitCode::from(2);
                }
                println!("{c:#?}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}
