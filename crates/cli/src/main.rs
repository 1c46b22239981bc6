//! `codejail`: run untrusted code in a throw-away jail from any language.
//!
//! Exit codes: `run` passes the program's (128 + N when killed by signal N;
//! 0 with `--json` whenever the program ran); `exec` 0, or 1 when the code
//! failed; 2 for usage errors; 3 when the jail cannot be set up.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::{Args, Parser, Subcommand};
use codejail::{
    Jail, JailCode, JailError, LimitName, SafeExecError, SafeExecOptions, Settings, SettingsError,
};
use serde_json::{Map, Value, json};

#[derive(Parser)]
#[command(
    name = "codejail",
    version,
    about = "Run untrusted code in a throw-away jail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run code (or a copied file) and pass its output and exit code through.
    Run(RunArgs),
    /// Python `exec` with JSON globals (safe_exec); prints the new globals.
    Exec(ExecArgs),
    /// What this machine offers, layer by layer, and whether the configured
    /// jails would run confined.
    Doctor {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Settings file (default: $CODEJAIL_CONFIG, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the built-in escape corpus against this host and configuration;
    /// exits 1 if any attack was not contained.
    Selftest {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Settings file (default: $CODEJAIL_CONFIG, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which configured jail.
        #[arg(long, value_name = "NAME", default_value = "python")]
        jail: String,
    },
}

#[derive(Args)]
struct Common {
    /// Settings file (default: $CODEJAIL_CONFIG, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Which configured jail.
    #[arg(long, value_name = "NAME", default_value = "python")]
    jail: String,
    /// The code.
    #[arg(long, value_name = "TEXT", conflicts_with = "code_file")]
    code: Option<String>,
    /// The code, from a file.
    #[arg(long, value_name = "FILE")]
    code_file: Option<PathBuf>,
    /// Copy a file or directory into the jail (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Create NAME in the jail with the bytes of PATH (repeatable).
    #[arg(long = "extra-file", value_name = "NAME=PATH")]
    extra_files: Vec<String>,
    /// A limit for this run: cpu, realtime, vmem, fsize, nproc, memory,
    /// disk, files, output (repeatable).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
    /// Limit override context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Label for logs.
    #[arg(long, value_name = "TEXT")]
    slug: Option<String>,
    /// No confinement (not_safe_exec), with a warning on stderr.
    #[arg(long = "unsafe")]
    unconfined: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Feed this file to stdin (`-` for this command's own stdin).
    #[arg(long, value_name = "FILE")]
    stdin_file: Option<PathBuf>,
    /// Print one JSON object instead of passing output through.
    #[arg(long)]
    json: bool,
    /// The program's arguments after `jailed_code`; without --code, the
    /// first is the file to run.
    #[arg(last = true, value_name = "ARG")]
    args: Vec<String>,
}

#[derive(Args)]
struct ExecArgs {
    #[command(flatten)]
    common: Common,
    /// The globals, a JSON object (default `{}`).
    #[arg(long, value_name = "JSON", conflicts_with = "globals_file")]
    globals: Option<String>,
    /// The globals, from a file.
    #[arg(long, value_name = "FILE")]
    globals_file: Option<PathBuf>,
    /// A directory or zip file to put on sys.path (repeatable).
    #[arg(long = "python-path", value_name = "PATH")]
    python_path: Vec<PathBuf>,
}

/// A failure and its exit code: 2 for usage, 3 for set-up.
struct Fail(u8, String);

fn usage(msg: impl std::fmt::Display) -> Fail {
    Fail(2, msg.to_string())
}

fn setup(msg: impl std::fmt::Display) -> Fail {
    Fail(3, msg.to_string())
}

fn jail_error(e: JailError) -> Fail {
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
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Exec(args) => exec(args),
        Command::Doctor { json, config } => doctor(json, config),
        Command::Selftest { json, config, jail } => selftest(json, config, &jail),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("codejail: {msg}");
            ExitCode::from(code)
        }
    }
}

fn settings(config: Option<PathBuf>) -> Result<Settings, Fail> {
    let file = config.or_else(|| std::env::var_os("CODEJAIL_CONFIG").map(PathBuf::from));
    let settings = match file {
        Some(file) => Settings::load(&file).map_err(|e| match e {
            SettingsError::Read { .. } => usage(format!("cannot read the settings file: {e}")),
            SettingsError::Invalid { .. } => usage(e),
        })?,
        None => Settings::defaults(),
    };
    settings.apply_limits();
    Ok(settings)
}

fn jail(settings: &Settings, name: &str) -> Result<Arc<Jail>, Fail> {
    let config = settings.jails.get(name).cloned().ok_or_else(|| {
        setup(format!(
            "no jail `{name}` is configured; add [jails.{name}] to the settings file"
        ))
    })?;
    codejail::configure_with(name, config).map_err(setup)
}

struct Prepared {
    jail: Arc<Jail>,
    code: Option<String>,
    extra_files: Vec<(String, Vec<u8>)>,
    limits: Vec<(LimitName, u64)>,
}

fn prepare(c: &Common) -> Result<Prepared, Fail> {
    let limits = c
        .limits
        .iter()
        .map(|l| codejail::parse_assignment(l).map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let extra_files = c
        .extra_files
        .iter()
        .map(|spec| {
            let (name, path) = spec
                .split_once('=')
                .ok_or_else(|| usage(format!("--extra-file takes NAME=PATH, not `{spec}`")))?;
            codejail::validate_file_name(std::ffi::OsStr::new(name))
                .map_err(|e| usage(format!("--extra-file: {e}")))?;
            let bytes = std::fs::read(path)
                .map_err(|e| usage(format!("--extra-file {name}: cannot read {path}: {e}")))?;
            Ok((name.to_owned(), bytes))
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
    let settings = settings(c.config.clone())?;
    let jail = jail(&settings, &c.jail)?;
    Ok(Prepared {
        jail,
        code,
        extra_files,
        limits,
    })
}

fn run(args: RunArgs) -> Result<u8, Fail> {
    let p = prepare(&args.common)?;
    if p.code.is_none() && args.args.is_empty() {
        return Err(usage(
            "give --code, --code-file, or the file to run after `--`",
        ));
    }
    let stdin = match &args.stdin_file {
        None => Vec::new(),
        Some(f) if f.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
            buf
        }
        Some(f) => std::fs::read(f)
            .map_err(|e| usage(format!("cannot read --stdin-file {}: {e}", f.display())))?,
    };
    let request = JailCode {
        code: p.code,
        files: args.common.files.clone(),
        extra_files: p.extra_files,
        argv: args.args,
        stdin,
        limits_context: args.common.context.clone(),
        limits: p.limits,
        slug: args.common.slug.clone(),
        policy: None,
    };
    let result = if args.common.unconfined {
        p.jail.not_safe_jail_code(&request)
    } else {
        p.jail.jail_code(&request)
    }
    .map_err(jail_error)?;
    let o = &result.outcome;
    if args.json {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let out = json!({
            "status": o.status,
            "stdout": String::from_utf8_lossy(&o.stdout),
            "stderr": String::from_utf8_lossy(&o.stderr),
            "stdout_base64": b64(&o.stdout),
            "stderr_base64": b64(&o.stderr),
            "killed_by": o.killed_by.map(|k| k.as_str()),
            "wall_ms": o.wall.as_millis() as u64,
            "cpu_ms": o.cpu.as_millis() as u64,
            "max_rss_kib": o.max_rss_kib,
            "truncated": {"stdout": o.truncated.stdout, "stderr": o.truncated.stderr},
            "layers": o.layers.names(),
        });
        println!("{out}");
        return Ok(0);
    }
    let _ = std::io::stdout().write_all(&o.stdout);
    let _ = std::io::stderr().write_all(&o.stderr);
    let _ = std::io::stdout().flush();
    Ok(if o.status < 0 {
        (128 + (-o.status)).clamp(0, 255) as u8
    } else {
        o.status.clamp(0, 255) as u8
    })
}

fn exec(args: ExecArgs) -> Result<u8, Fail> {
    let text = match (&args.globals, &args.globals_file) {
        (Some(g), _) => g.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| usage(format!("cannot read --globals-file {}: {e}", f.display())))?,
        (None, None) => "{}".into(),
    };
    let mut globals: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(usage(
                "malformed JSON globals: expected an object such as {\"x\": 1}",
            ));
        }
        Err(e) => return Err(usage(format!("malformed JSON globals: {e}"))),
    };
    let p = prepare(&args.common)?;
    let code = p.code.ok_or_else(|| usage("give --code or --code-file"))?;
    let options = SafeExecOptions {
        files: args.common.files.clone(),
        extra_files: p.extra_files,
        python_path: args.python_path,
        limits_context: args.common.context.clone(),
        limits: p.limits,
        slug: args.common.slug.clone(),
        policy: None,
    };
    let result = if args.common.unconfined {
        p.jail.not_safe_exec(&code, &mut globals, &options)
    } else {
        p.jail.safe_exec(&code, &mut globals, &options)
    };
    match result {
        Ok(()) => {
            println!("{}", Value::Object(globals));
            Ok(0)
        }
        Err(SafeExecError::Jail(e)) => Err(jail_error(e)),
        Err(e) => Err(Fail(1, e.to_string())),
    }
}

fn doctor(as_json: bool, config: Option<PathBuf>) -> Result<u8, Fail> {
    let settings = settings(config)?;
    let probe = codejail::Probe::get();
    let jails: Vec<Value> = settings
        .jails
        .iter()
        .map(|(name, config)| {
            let planned = codejail::configure_with(name, config.clone())
                .map_err(|e| e.to_string())
                .and_then(|j| j.planned_layers().map_err(|e| e.to_string()));
            match planned {
                Ok(layers) => json!({"name": name, "bin": config.bin, "confined": !layers.is_empty(), "layers": layers.names(), "reason": null}),
                Err(why) => json!({"name": name, "bin": config.bin, "confined": false, "layers": [], "reason": why}),
            }
        })
        .collect();
    if as_json {
        let layers: Vec<Value> = probe
            .layers
            .iter()
            .map(|(l, a)| match a {
                codejail::Availability::Yes => {
                    json!({"name": l.name(), "available": true, "reason": null})
                }
                codejail::Availability::No(why) => {
                    json!({"name": l.name(), "available": false, "reason": why})
                }
            })
            .collect();
        let out = json!({
            "layers": layers,
            "landlock_abi": probe.landlock_abi,
            "cgroup": probe.cgroups.version(),
            "jails": jails,
        });
        println!("{out}");
        return Ok(0);
    }
    print!("{probe}");
    println!();
    for j in &jails {
        let name = j["name"].as_str().unwrap_or("");
        let bin = j["bin"].as_str().unwrap_or("");
        if j["confined"] == true {
            let layers: Vec<&str> = j["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            println!("jail {name} ({bin}): confined by {}", layers.join(", "));
        } else {
            println!(
                "jail {name} ({bin}): NOT confined: {}",
                j["reason"].as_str().unwrap_or("unsafe mode")
            );
        }
    }
    Ok(0)
}

fn selftest(as_json: bool, config: Option<PathBuf>, name: &str) -> Result<u8, Fail> {
    use codejail::selftest;
    let settings = settings(config)?;
    let mut config = settings.jails.get(name).cloned().ok_or_else(|| {
        setup(format!(
            "no jail `{name}` is configured; add [jails.{name}] to the settings file"
        ))
    })?;
    // A parent of its own, so that leftovers are the selftest's.
    let parent = std::env::temp_dir().join(format!("codejail-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&parent).map_err(|e| setup(format!("{}: {e}", parent.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755));
    config.jail_parent = Some(parent.clone());
    let jail = codejail::configure_with(&format!("{name}-selftest"), config).map_err(setup);
    let report = jail.and_then(|jail| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        selftest::run_suite(
            &jail,
            None,
            &parent,
            &selftest::corpus(),
            &|_| Some(None),
            threads,
        )
        .map_err(setup)
    });
    let _ = std::fs::remove_dir(&parent);
    let report = report?;
    if as_json {
        let attacks: Vec<Value> = report
            .verdicts
            .iter()
            .map(|v| json!({"class": v.class, "attack": v.name, "contained": v.contained, "stopped_by": v.stopped_by, "detail": v.detail}))
            .collect();
        let skipped: Vec<Value> = report
            .skipped
            .iter()
            .map(|(n, why)| json!({"attack": n, "why": why}))
            .collect();
        println!(
            "{}",
            json!({"contained": report.all_contained(), "attacks": attacks, "skipped": skipped, "host": report.host})
        );
    } else {
        println!(
            "{:<12} {:<30} {:<14} stopped by",
            "class", "attack", "result"
        );
        for v in &report.verdicts {
            let result = if v.contained {
                "contained"
            } else {
                "NOT CONTAINED"
            };
            let by = if v.contained {
                v.stopped_by.join(", ")
            } else {
                v.detail.clone()
            };
            println!("{:<12} {:<30} {:<14} {by}", v.class, v.name, result);
        }
        for (n, why) in &report.skipped {
            println!("{:<12} {:<30} {:<14} {why}", "-", n, "skipped");
        }
        let bad = report.verdicts.iter().filter(|v| !v.contained).count();
        println!(
            "\n{} attacks: {} contained, {bad} NOT CONTAINED, {} skipped",
            report.verdicts.len() + report.skipped.len(),
            report.verdicts.len() - bad,
            report.skipped.len()
        );
        if report.host.is_empty() {
            println!(
                "host: clean (no process, jail directory or cgroup left; descriptors and files unchanged)"
            );
        } else {
            for h in &report.host {
                println!("host: NOT CLEAN: {h}");
            }
        }
    }
    Ok(if report.all_contained() { 0 } else { 1 })
}
