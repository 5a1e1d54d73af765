//! `berth garbage-collect`: an offline collection of a data dir, as
//! registry:2's `garbage-collect`, plus retention and a dry run.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
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

/// Runs `berth garbage-collect`.
pub fn run(args: Args) -> ExitCode {
    let config = match super::load_config(args.config.or(args.config_pos)) {
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
        hooks: config.gc.test_hooks.clone(),
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
            // Delete events for the server to deliver when it next starts.
            let events = report.delete_events(&berth::notify::source(0));
            if let Err(e) = berth::notify::queue_offline(&config.notifications, root, &events) {
                eprintln!("berth: cannot queue the notification events of this collection: {e}");
            }
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
