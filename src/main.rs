//! The `berth` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth::config::{Config, LogFormat};

mod healthcheck;

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
    GarbageCollect(GcArgs),
    /// Validate a configuration (file plus REGISTRY_* environment) and print it.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Exit 0 if the registry answers on /v2/ (200 or 401), 1 if not.
    Healthcheck(healthcheck::Args),
    /// Manage the users of the htpasswd file (bcrypt): add, remove, list.
    Htpasswd(berth::auth::cli::HtpasswdArgs),
}

#[derive(clap::Args)]
struct GcArgs {
    /// Config file (TOML); `berth garbage-collect FILE` works too, as in registry:2.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(value_name = "CONFIG", conflicts_with = "config")]
    config_pos: Option<PathBuf>,
    /// Report what would be removed, remove nothing.
    #[arg(long, short = 'd')]
    dry_run: bool,
    /// Also remove manifests that no tag reaches (directly, through an index,
    /// or as a referrer of a live manifest).
    #[arg(long, short = 'm')]
    delete_untagged: bool,
    /// Remove upload sessions started longer ago than this (default: gc.purge_uploads_older_than, 168h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    purge_uploads_older_than: Option<std::time::Duration>,
    /// Keep anything modified less than this long ago.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    grace: std::time::Duration,
    /// Apply the `[[gc.retention]]` rules of the config first (deleting tags).
    #[arg(long)]
    apply_retention: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run even though a server holds the data-dir lock (unsafe if it writes).
    #[arg(long)]
    force: bool,
}

fn garbage_collect(args: GcArgs) -> ExitCode {
    let config = match load(args.config.or(args.config_pos)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let retention = if args.apply_retention {
        match berth::gc::Retention::from_config(&config.gc.retention) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("berth: invalid retention rule: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Vec::new()
    };
    let opts = berth::gc::Options {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace: args.grace,
        purge_uploads_older_than: Some(
            args.purge_uploads_older_than
                .unwrap_or(config.gc.purge_uploads_older_than),
        ),
        retention,
        hooks: berth::gc::Hooks::from_env(),
    };
    let root = &config.storage.filesystem.rootdirectory;
    let store = match berth::storage::FsStore::open_for_gc(root, args.force, args.dry_run) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::FAILURE;
        }
    };
    match berth::gc::collect(&store, &opts) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth: garbage collection failed: {e}");
            ExitCode::FAILURE
        }
    }
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
        Command::GarbageCollect(args) => garbage_collect(args),
        Command::Healthcheck(args) => healthcheck::run(args),
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
