//! `codejail`: run untrusted code in a throw-away jail from any language.
//!
//! Exit codes: `run` passes the program's (128 + N when killed by signal N;
//! 0 with `--json` whenever the program ran); `exec` 0, or 1 when the code
//! failed; 2 for usage errors; 3 when the jail cannot be set up.
//!
//! The binary's `main` is [`main`]; [`command`] gives the clap definitions
//! (for the man page).

#![deny(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// `println!` that never panics: a closed stdout (the reader went away, as
/// with `| head`) ends the output quietly; any other failure (a full disk)
/// is remembered, and the command then exits 74 ([`IO_ERROR`]).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(&e);
        }
    }};
}
/// `print!`, the same way.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(&e);
        }
    }};
}
/// `eprintln!` that never panics: a stderr that cannot be written (a full
/// disk, a closed descriptor) loses the message; the exit status still
/// says what happened.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
use codejail::{LimitName, Settings, SettingsError};

mod api;
mod doctor;
mod exec;
mod log;
mod run;
mod selftest;
mod serve;

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
    /// The least severe log line shown on stderr; RUST_LOG's directives
    /// refine it.
    #[arg(long, value_name = "LEVEL", global = true, default_value = "warn")]
    log_level: log::Level,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_name = "FORMAT", global = true, default_value = "text")]
    log_format: log::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run code (or a copied file) and pass its output and exit code through.
    #[command(after_long_help = concat!(
        "Exit status: the program's exit code, or 128+N when a signal N ended it ",
        "(with --json: 0 whenever it ran); 2 usage (an unknown option or limit, ",
        "malformed settings, a bad file name); 3 the jail cannot be set up; ",
        "74 the result could not be written to stdout; 128+N when signal N ",
        "stopped codejail itself (its run ended, its jail removed)."
    ))]
    Run(run::RunArgs),
    /// Python `exec` with JSON globals (safe_exec); prints the new globals.
    #[command(after_long_help = concat!(
        "Exit status: 0 with the new globals printed; 1 when the code raised, ",
        "crashed or hit a limit (the message on stderr); 2 usage (malformed ",
        "globals, settings or options); 3 the jail cannot be set up; 74 the ",
        "result could not be written to stdout; 128+N when signal N stopped ",
        "codejail (its run ended, its jail removed)."
    ))]
    Exec(exec::ExecArgs),
    /// What this machine offers, layer by layer, and whether the configured
    /// jails would run confined.
    #[command(after_long_help = concat!(
        "Exit status: 0 when every configured jail would run confined; 1 when ",
        "one would not; 2 malformed settings; 74 the report could not be ",
        "written to stdout."
    ))]
    Doctor {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove the jail and warm pool directories, the run cgroups and the
    /// uid leases left by codejail processes that are gone (killed,
    /// crashed); never those of a running one.
    #[command(after_long_help = concat!(
        "Exit status: 0 when everything of a gone process was removed (or, ",
        "with --dry-run, listed); 1 when an entry could not be removed (each ",
        "is named on stderr; as another user than the one that made it, run ",
        "gc as that user, or as root); 2 malformed settings; 74 the list could ",
        "not be written to stdout."
    ))]
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// For programs: one JSON request on stdin, one JSON response on
    /// stdout (protocol v1, see `codejail api --help` and the Python
    /// package's README); exits 2 for a malformed request, 3 when the jail
    /// cannot be set up.
    #[command(after_long_help = concat!(
        "Exit status: 0 with the response written (also when stdin held no ",
        "request at all: nothing is answered); 2 a malformed request; 3 the ",
        "jail cannot be set up (the response says why); 74 the response ",
        "could not be written to stdout."
    ))]
    Api,
    /// Serve openedx/codejail-service's v0 API (POST /api/v0/code-exec,
    /// GET /health/, GET /metrics) from a warm pool, per `[service]`.
    #[command(after_long_help = concat!(
        "Exit status: 0 after a graceful stop (SIGTERM, SIGINT, SIGHUP); 2 ",
        "malformed settings (an unknown jail among them); 3 the service ",
        "cannot start (its address in use or not this host's, no warm pool)."
    ))]
    Serve(serve::ServeArgs),
    /// Run the built-in escape corpus against this host and configuration.
    ///
    /// Each attack is judged on evidence: contained (it showed exactly the
    /// errno or kill its header states for the layer that stops it), NOT
    /// CONTAINED (it got through), inconclusive (it crashed, saw another
    /// error, or showed nothing), or not tested (a layer that could stop it
    /// is missing here). Exits 0 when every attack was contained and the
    /// host is clean; 1 when one was not contained, inconclusive, or not
    /// tested without --accept-missing naming its layer; 2 for an unknown
    /// layer in --accept-missing; 3 when the jail cannot be attacked safely
    /// (unsafe, or no filesystem layer); 74 when the report could not be
    /// written to stdout.
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

/// The command's clap definitions: what `--help` and the man page show.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs the `codejail` command with this process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version: on stdout, which may be full.
        Err(e) if !e.use_stderr() => {
            return match e.print() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    tell!("codejail: could not write to stdout: {e}");
                    ExitCode::from(IO_ERROR)
                }
                _ => ExitCode::SUCCESS,
            };
        }
        Err(e) => {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            tell!("codejail: {first} (see codejail --help)");
            return ExitCode::from(2);
        }
    };
    log::init(cli.log_level, cli.log_format);
    let config = cli.config;
    let stop = match Stop::install() {
        Ok(stop) => stop,
        Err(Fail(code, msg)) => {
            tell!("codejail: {msg}");
            return ExitCode::from(code);
        }
    };
    // Whether the command runs code: a stop then ends its runs.
    let runs = !matches!(cli.command, Command::Doctor { .. } | Command::Gc { .. });
    let result = match cli.command {
        Command::Run(args) => run::run(config, args, &stop),
        Command::Exec(args) => exec::exec(config, args, &stop),
        Command::Doctor { json } => doctor::doctor(config, json),
        Command::Gc { dry_run } => gc(config, dry_run),
        Command::Api => Ok(api::api(&stop)),
        Command::Selftest {
            json,
            jail,
            accept_missing,
        } => selftest::selftest(config, json, &jail, accept_missing.as_deref(), &stop),
        // A stop by SIGTERM is how a service ends: not an error.
        Command::Serve(args) => return exit(serve::serve(config, args, &stop)),
    };
    if let Some(signal) = stop.signal() {
        if runs {
            tell!(
                "codejail: stopped by signal {signal}; its runs were ended and their jails removed"
            );
        } else {
            tell!("codejail: stopped by signal {signal}");
        }
        return ExitCode::from(128 + signal as u8);
    }
    exit(output_written(result))
}

fn exit(result: Result<u8, Fail>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            tell!("codejail: {msg}");
            ExitCode::from(code)
        }
    }
}

/// The most bytes of code `--code-file` may hold.
pub(crate) const MAX_CODE: u64 = 16 << 20;
/// The most bytes `--globals-file` may hold.
pub(crate) const MAX_GLOBALS: u64 = 64 << 20;
/// The most bytes a regular `--stdin-file` or `--extra-file` may hold.
pub(crate) const MAX_INPUT: u64 = 256 << 20;

/// Reads at most `max` bytes of `path` (`what` names the option in the
/// message): a longer input is an error, never a growing buffer (a
/// `/dev/zero` would otherwise take all memory).
pub(crate) fn read_bounded(path: &std::path::Path, max: u64, what: &str) -> Result<Vec<u8>, Fail> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(usage(format!(
            "{what} {} is larger than {} MiB; give a smaller file",
            path.display(),
            max >> 20
        )));
    }
    Ok(bytes)
}

/// [`read_bounded`], as UTF-8 text.
pub(crate) fn read_text(path: &std::path::Path, max: u64, what: &str) -> Result<String, Fail> {
    String::from_utf8(read_bounded(path, max, what)?)
        .map_err(|_| usage(format!("{what} {} is not UTF-8 text", path.display())))
}

/// The exit status when the result could not be written to stdout
/// (sysexits' `EX_IOERR`).
pub(crate) const IO_ERROR: u8 = 74;

/// The first write to stdout that failed other than by a closed pipe
/// ([`say!`], [`write_out`]): the command then exits [`IO_ERROR`].
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Remembers a failed write to stdout, unless the reader went away.
pub(crate) fn stdout_failed(e: &std::io::Error) {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        let _ = STDOUT_FAILED.set(e.to_string());
    }
}

/// `result`, unless what the command printed did not all reach stdout:
/// the one place a lost output becomes the exit status.
fn output_written(result: Result<u8, Fail>) -> Result<u8, Fail> {
    use std::io::Write;
    if let Err(e) = std::io::stdout().flush() {
        stdout_failed(&e);
    }
    match (result, STDOUT_FAILED.get()) {
        (Ok(_), Some(e)) => Err(Fail(
            IO_ERROR,
            format!("could not write the output to stdout: {e}"),
        )),
        (result, _) => result,
    }
}

/// Writes `bytes` on stdout, as [`say!`] writes: never panics, a closed
/// pipe (the reader went away, as with `| head`) ends the output quietly,
/// any other failure (a full disk) ends the command with [`IO_ERROR`].
pub(crate) fn write_out(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// [`write_out`] of one line.
pub(crate) fn print_line(text: &str) {
    write_out(format!("{text}\n").as_bytes());
}

fn gc(config: Option<PathBuf>, dry_run: bool) -> Result<u8, Fail> {
    let settings = settings(config)?;
    let mut report =
        codejail::gc(&settings.jail_parents(), dry_run).and(codejail::gc_cgroups(dry_run));
    // The leases after the jails: a lease is let go after its jail is
    // removed. Only root's runs take leases.
    if rustix::process::geteuid().is_root() {
        for (dir, ranges) in settings.uid_leases() {
            report = report.and(codejail::gc_leases(&dir, &ranges, dry_run));
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for path in &report.removed {
        say!("{verb} {}", path.display());
    }
    for (path, why) in &report.failed {
        tell!("codejail: could not remove {}: {why}", path.display());
    }
    say!(
        "{} {verb}, {} of running processes left alone, {} failed",
        report.removed.len(),
        report.live.len(),
        report.failed.len()
    );
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

/// Ends the runs of this process when it is asked to stop (SIGTERM,
/// SIGINT, SIGHUP, and SIGUSR1, SIGUSR2, SIGALRM), so that they are killed and their jail directories
/// removed before it exits; the exit code is then 128 + the signal.
pub(crate) struct Stop {
    pub cancel: codejail::Cancel,
    signal: std::sync::Arc<std::sync::atomic::AtomicI32>,
}

impl Stop {
    fn install() -> Result<Stop, Fail> {
        use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        // Every signal whose default ends the process without a core,
        // SIGKILL aside: any of them would leave the run's jail and uid
        // lease behind (SIGPIPE is ignored, as Rust programs do).
        const STOPS: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM];
        let cancel = codejail::Cancel::new().map_err(setup)?;
        let signal = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        // Held while their handlers are installed: one that came in the
        // middle would be dropped (see HeldSignals), and the command would
        // go on. Delivered when `held` is dropped, once they are; the
        // thread below keeps them blocked, as it needs.
        let held = codejail::HeldSignals::hold(&STOPS)
            .map_err(|e| setup(format!("could not hold signals back: {e}")))?;
        let mut signals = signal_hook::iterator::Signals::new(STOPS)
            .map_err(|e| setup(format!("could not handle signals: {e}")))?;
        let (c, s) = (cancel.clone(), signal.clone());
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                s.store(sig, std::sync::atomic::Ordering::SeqCst);
                c.cancel();
            }
        });
        drop(held);
        Ok(Stop { cancel, signal })
    }

    /// The signal that stopped the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        Some(self.signal.load(std::sync::atomic::Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

/// The settings file (or the built-in defaults), with its limits applied.
pub(crate) fn settings(config: Option<PathBuf>) -> Result<Settings, Fail> {
    let file = config.or_else(|| std::env::var_os("CODEJAIL_CONFIG").map(PathBuf::from));
    let settings = match file {
        Some(file) => Settings::load(&file).map_err(|e| match e {
            SettingsError::Read { .. } | SettingsError::TooLarge { .. } => {
                usage(format!("cannot read the settings file: {e}"))
            }
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

pub(crate) fn prepare(config: Option<PathBuf>, c: &Common, stop: &Stop) -> Result<Prepared, Fail> {
    let extra_files = c
        .extra_files
        .iter()
        .map(|(name, path)| {
            let bytes = read_bounded(path, MAX_INPUT, &format!("--extra-file {name}:"))?;
            Ok((name.clone(), bytes))
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    let code = match (&c.code, &c.code_file) {
        (Some(code), _) => Some(code.clone()),
        (None, Some(file)) => Some(read_text(file, MAX_CODE, "--code-file")?),
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
            cancel: Some(stop.cancel.clone()),
        },
    })
}
