//! `berth htpasswd`: managing the users of the htpasswd file.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use berth::auth::htpasswd;
use berth::config::Config;

#[derive(clap::Args)]
pub struct HtpasswdArgs {
    /// The htpasswd file (default: auth.htpasswd.path of the config, or
    /// REGISTRY_AUTH_HTPASSWD_PATH).
    #[arg(long, short, global = true)]
    file: Option<PathBuf>,
    /// Config file (TOML) naming the htpasswd file.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: HtpasswdCommand,
}

#[derive(clap::Subcommand)]
enum HtpasswdCommand {
    /// Add a user, or set a user's password (bcrypt). Creates the file.
    Add {
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// bcrypt cost (4-31); each step doubles the time of a login that
        /// is not cached.
        #[arg(long, default_value_t = berth::auth::DEFAULT_COST)]
        cost: u32,
    },
    /// Remove a user.
    Remove { user: String },
    /// List the users, and report lines that are not bcrypt entries.
    List,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("berth htpasswd: {msg}");
    ExitCode::FAILURE
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for the password: use --password-stdin".into());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let again = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
    if first != again {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

/// Runs `berth htpasswd ...`.
pub fn run(args: HtpasswdArgs) -> ExitCode {
    let path = match args.file {
        Some(f) => f,
        None => match Config::load(args.config.as_deref(), std::env::vars()) {
            Err(e) => return fail(e),
            Ok(c) => match c.auth.htpasswd {
                Some(h) => h.path,
                None => {
                    return fail(
                        "which file? give --file, or a config with auth.htpasswd.path (or REGISTRY_AUTH_HTPASSWD_PATH)",
                    )
                }
            },
        },
    };
    match args.command {
        HtpasswdCommand::Add {
            user,
            password_stdin,
            cost,
        } => {
            if let Err(e) = htpasswd::check_user(&user) {
                return fail(e);
            }
            let password = match read_password(password_stdin) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match htpasswd::add_user(&path, &user, &password, cost) {
                Ok(true) => eprintln!("updated the password of {user} in {}", path.display()),
                Ok(false) => eprintln!("added {user} to {}", path.display()),
                Err(e) => return fail(e),
            }
            ExitCode::SUCCESS
        }
        HtpasswdCommand::Remove { user } => match htpasswd::remove_user(&path, &user) {
            Ok(()) => {
                eprintln!("removed {user} from {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        HtpasswdCommand::List => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => return fail(format!("{}: {e}", path.display())),
            };
            let (entries, problems) = htpasswd::parse(&text);
            let mut users: Vec<&String> = entries.users.keys().collect();
            users.sort();
            for u in users {
                println!("{u}");
            }
            for p in &problems {
                eprintln!("{}: ignored {p}", path.display());
            }
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
    }
}
