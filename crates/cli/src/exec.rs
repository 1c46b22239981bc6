//! `codejail exec`: `safe_exec`, printing the new globals as JSON.

use std::path::PathBuf;

use clap::Args;
use codejail::{SafeExecError, SafeExecOptions};

use crate::{Common, Fail, jail_error, prepare, usage};

#[derive(Args)]
pub(crate) struct ExecArgs {
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

pub(crate) fn exec(
    config: Option<PathBuf>,
    args: ExecArgs,
    stop: &crate::Stop,
) -> Result<u8, Fail> {
    let globals = match (&args.globals, &args.globals_file) {
        (Some(g), _) => g.clone(),
        (None, Some(f)) => crate::read_text(f, crate::MAX_GLOBALS, "--globals-file")?,
        (None, None) => "{}".into(),
    };
    codejail_pyexec_check(&globals)?;
    let p = prepare(config, &args.common, stop)?;
    let code = p.code.ok_or_else(|| usage("give --code or --code-file"))?;
    let options = SafeExecOptions {
        python_path: args.python_path,
        call: p.call,
    };
    let result = if args.common.unconfined {
        p.jail.not_safe_exec_json_updated(&code, &globals, &options)
    } else {
        p.jail.safe_exec_json_updated(&code, &globals, &options)
    };
    match result {
        Ok(text) => {
            crate::print_line(&text);
            Ok(0)
        }
        Err(SafeExecError::Jail(e)) => Err(jail_error(e)),
        Err(e) => {
            let status = e.result().map(|r| r.status);
            let message = match status {
                Some(status) if !e.to_string().contains("ended with status") => {
                    format!("{e} (exit status {status})")
                }
                _ => e.to_string(),
            };
            Err(Fail(1, message))
        }
    }
}

/// The globals must be one JSON object (Python's dialect: NaN, Infinity
/// and integers of any size are fine).
fn codejail_pyexec_check(globals: &str) -> Result<(), Fail> {
    codejail::check_globals(globals).map_err(|e| {
        usage(format!(
            "malformed JSON globals: {e}; give an object such as {{\"x\": 1}}"
        ))
    })
}
