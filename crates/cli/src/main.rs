//! `codejail`: run untrusted code in a throw-away jail from any language.
//!
//! Exit codes: `run` passes the program's (128 + N when killed by signal N;
//! 0 with `--json` whenever the program ran); `exec` 0, or 1 when the code
//! failed; 2 for usage errors; 3 when the jail cannot be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use codejail::{LimitName, Settings, SettingsError};

mod doctor;
mod exec;
mod run;
mod selftest;

#[derive(Parser)]
#[command(
    name = "codejail",
    version,
    about = "Run untrusted code in a throw-away jail"
)]
struct Cli {
    /// Settings file (default: $CODEJAIL_CONFIG, else built-in defaults).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run code (or a copied file) and pass its output and exit code through.
    Run(run::RunArgs),
    /// Python `exec` with JSON globals (safe_exec); prints the new globals.
    Exec(exec::ExecArgs),
    /// What this machine offers, layer by layer, and whether the configured
    /// jails would run confined.
    Doctor {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the built-in escape corpus against this host and configuration.
    ///
    /// Each attack is judged on evidence: contained (it showed exactly the
    /// errno or kill its header states for the layer that stops it), NOT
    /// CONTAINED (it got through), inconclusive (it crashed, saw another
    /// error, or showed nothing), or not tested (a layer that could stop it
    /// is missing here). Exits 0 when every attack was contained and the
    /// host is clean; 1 when one was not contained, inconclusive, or not
    /// tested without --accept-missing naming its layer; 3 when the jail
    /// cannot be attacked safely (unsafe, or no filesystem layer).
    Selftest {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Which configured jail.
        #[arg(long, value_name = "NAME", default_value = "python")]
        jail: String,
        /// Missing layers you accept, e.g. `apparmor,cgroup`: an attack that
        /// could be judged only with one of them is reported `not tested`
        /// without failing the run. Without it, anything not tested fails.
        #[arg(long, value_name = "LAYER,...")]
        accept_missing: Option<String>,
    },
}

/// What `run` and `exec` share.
#[derive(Args)]
pub(crate) struct Common {
    /// Which configured jail.
    #[arg(long, value_name = "NAME", default_value = "python")]
    pub jail: String,
    /// The code.
    #[arg(long, value_name = "TEXT", conflicts_with = "code_file")]
    pub code: Option<String>,
    /// The code, from a file.
    #[arg(long, value_name = "FILE")]
    pub code_file: Option<PathBuf>,
    /// Copy a file or directory into the jail (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Create NAME in the jail with the bytes of PATH (repeatable).
    #[arg(long = "extra-file", value_name = "NAME=PATH", value_parser = parse_extra_file)]
    pub extra_files: Vec<(String, PathBuf)>,
    /// A limit for this run: cpu, realtime, vmem, fsize, nproc, memory,
    /// disk, files, output; with units where they fit (64M, 2s)
    /// (repeatable).
    #[arg(long = "limit", value_name = "NAME=VALUE", value_parser = parse_limit)]
    pub limits: Vec<(LimitName, u64)>,
    /// Limit override context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Label for logs.
    #[arg(long, value_name = "TEXT")]
    pub slug: Option<String>,
    /// No confinement (not_safe_exec), with a warning on stderr.
    #[arg(long = "unsafe")]
    pub unconfined: bool,
}

fn parse_limit(text: &str) -> Result<(LimitName, u64), String> {
    codejail::parse_assignment(text).map_err(|e| e.to_string())
}

fn parse_extra_file(spec: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("takes NAME=PATH, not `{spec}`"))?;
    codejail::validate_file_name(std::ffi::OsStr::new(name)).map_err(|e| e.to_string())?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

/// A failure and its exit code: 2 for usage, 3 for set-up.
pub(crate) struct Fail(pub u8, pub String);

pub(crate) fn usage(msg: impl std::fmt::Display) -> Fail {
    Fail(2, msg.to_string())
}

pub(crate) fn setup(msg: impl std::fmt::Display) -> Fail {
    Fail(3, msg.to_string())
}

pub(crate) fn jail_error(e: codejail::JailError) -> Fail {
    if e.is_bad_input() { usage(e) } else { setup(e) }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .without_time()
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("codejail: {first} (see codejail --help)");
            return ExitCode::from(2);
        }
    };
    let config = cli.config;
    let result = match cli.command {
        Command::Run(args) => run::run(config, args),
        Command::Exec(args) => exec::exec(config, args),
        Command::Doctor { json } => doctor::doctor(config, json),
        Command::Selftest {
            json,
            jail,
            accept_missing,
        } => selftest::selftest(config, json, &jail, accept_missing.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("codejail: {msg}");
            ExitCode::from(code)
        }
    }
}

/// The settings file (or the built-in defaults), with its limits applied.
pub(crate) fn settings(config: Option<PathBuf>) -> Result<Settings, Fail> {
    let file = config.or_else(|| std::env::var_os("CODEJAIL_CONFIG").map(PathBuf::from));
    let settings = match file {
        Some(file) => Settings::load(&file).map_err(|e| match e {
            SettingsError::Read { .. } => usage(format!("cannot read the settings file: {e}")),
            _ => usage(e),
        })?,
        None => Settings::defaults(),
    };
    settings.apply_limits();
    Ok(settings)
}

/// The configured jail called `name`.
pub(crate) fn jail(settings: &Settings, name: &str) -> Result<codejail::Jail, Fail> {
    let config = settings.jails.get(name).cloned().ok_or_else(|| {
        setup(format!(
            "no jail `{name}` is configured; add [jails.{name}] to the settings file"
        ))
    })?;
    codejail::Jail::new(name, config).map_err(setup)
}

/// The code, the extra files and the call options of `run` and `exec`.
pub(crate) struct Prepared {
    pub jail: codejail::Jail,
    pub code: Option<String>,
    pub call: codejail::CallOptions,
}

pub(crate) fn prepare(config: Option<PathBuf>, c: &Common) -> Result<Prepared, Fail> {
    let extra_files = c
        .extra_files
        .iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(path).map_err(|e| {
                usage(format!(
                    "--extra-file {name}: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            Ok((name.clone(), bytes))
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    let code = match (&c.code, &c.code_file) {
        (Some(code), _) => Some(code.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| usage(format!("cannot read --code-file {}: {e}", file.display())))?,
        ),
        (None, None) => None,
    };
    let settings = settings(config)?;
    let jail = jail(&settings, &c.jail)?;
    Ok(Prepared {
        jail,
        code,
        call: codejail::CallOptions {
            files: c.files.clone(),
            extra_files,
            limits_context: c.context.clone(),
            limits: c.limits.clone(),
            slug: c.slug.clone(),
            layers: None,
        },
    })
}
