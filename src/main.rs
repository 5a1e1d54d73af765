//! The `berth` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth::config::{Config, LogFormat};

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
    /// Validate a configuration (file plus REGISTRY_* environment) and print it.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage the users of the htpasswd file (bcrypt): add, remove, list.
    Htpasswd(berth::auth::cli::HtpasswdArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn init_logging(config: &Config, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("berth={},warn", config.log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(path.as_deref(), std::env::vars()).map_err(|e| {
        eprintln!("berth: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            config_pos,
            log_format,
        } => {
            let config = match load(config.or(config_pos)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let format = match log_format {
                Some(Format::Json) => LogFormat::Json,
                Some(Format::Text) => LogFormat::Text,
                None => config.log.formatter,
            };
            init_logging(&config, format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("berth: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(berth::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("berth: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Htpasswd(args) => berth::auth::cli::run(args),
        Command::CheckConfig { config } => match load(config) {
            Ok(c) => {
                println!("{c:#?}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}
