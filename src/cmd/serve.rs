//! `berth serve`: logging, the runtime, the listener and the signals around
//! [`berth::server::serve`]: SIGINT and SIGTERM stop it, SIGHUP re-reads
//! the configuration and applies what can change while serving.

use std::path::PathBuf;
use std::process::ExitCode;

use berth::config::{Config, LogFormat};
use berth::server::Reloader;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Changes the log filter of the running subscriber.
type LogFilter = reload::Handle<EnvFilter, Registry>;

/// Runs the registry until SIGINT or SIGTERM; on SIGHUP, re-reads the
/// configuration (`path` and the environment, as at start-up) and applies it.
pub fn run(config: Config, format: LogFormat, path: Option<PathBuf>) -> ExitCode {
    let log_filter = init_logging(&config, format);
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
    let served = runtime.block_on(async {
        // Listening for SIGHUP from the start: its default action ends the
        // process, which must not happen to a reload sent early.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        let registry = berth::server::Registry::new(&config)?;
        let listener = berth::server::bind(&config).await?;
        let reloads = match hangups {
            Ok(hangups) => Some(tokio::spawn(reload_on_sighup(
                hangups,
                registry.reloader(),
                path,
                log_filter,
                config.log.level.clone(),
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: configuration reload is off");
                None
            }
        };
        let served = registry.serve(listener, shutdown_signal()).await;
        if let Some(r) = reloads {
            r.abort();
        }
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The filter for `log.level`: Berth's own events at that level, other
/// crates' warnings.
fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!("berth={level},warn"))
}

/// Installs the subscriber; the handle that changes its filter, unless
/// `RUST_LOG` sets it (then `log.level` is not used, at start or on reload).
fn init_logging(config: &Config, format: LogFormat) -> Option<LogFilter> {
    let from_env = EnvFilter::try_from_default_env().ok();
    let set_by_env = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| level_filter(&config.log.level));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let output = match format {
        LogFormat::Json => output.json().flatten_event(true).boxed(),
        LogFormat::Text => output.boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    (!set_by_env).then_some(handle)
}

/// At every SIGHUP: loads the configuration as at start-up and hands it to
/// the registry; one that does not load or validate is logged and the
/// running configuration stays entirely.
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Reloader,
    path: Option<PathBuf>,
    log: Option<LogFilter>,
    mut level: String,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || super::read_config(p.as_deref())).await;
        let config = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::error!("configuration not reloaded, the running one stays: {e}");
                continue;
            }
            Err(e) => {
                tracing::error!("configuration not reloaded, the running one stays: {e}");
                continue;
            }
        };
        let mut report = match reloader.reload(config) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("configuration not reloaded, the running one stays: {e}");
                continue;
            }
        };
        match (report.log_level.take(), &log) {
            (Some(new), Some(handle)) => {
                report.applied.push("log.level".into());
                // The summary goes out at the more verbose of the two levels,
                // so that whoever asked for the reload sees it.
                let quieter = verbosity(&new) < verbosity(&level);
                if quieter {
                    report.log();
                }
                match handle.reload(level_filter(&new)) {
                    Ok(()) => level = new,
                    Err(e) => tracing::warn!(error = %e, "log.level not applied"),
                }
                if !quieter {
                    report.log();
                }
            }
            (Some(_), None) => {
                tracing::info!("log.level changed but RUST_LOG is set: RUST_LOG decides");
                report.log();
            }
            (None, _) => report.log(),
        }
    }
}

/// How much `log.level` lets through (a validated level; 0 for others).
fn verbosity(level: &str) -> usize {
    ["error", "warn", "info", "debug", "trace"]
        .iter()
        .position(|l| *l == level)
        .map_or(0, |i| i + 1)
}

/// Completes at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
