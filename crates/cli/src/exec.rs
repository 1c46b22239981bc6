//! `codejail exec`: `safe_exec`, printing the new globals as JSON.

use std::path::PathBuf;

use clap::Args;
use codejail::{SafeExecError, SafeExecOptions};
use serde_json::{Map, Value};

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

pub(crate) fn exec(config: Option<PathBuf>, args: ExecArgs) -> Result<u8, Fail> {
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
    let p = prepare(config, &args.common)?;
    let code = p.code.ok_or_else(|| usage("give --code or --code-file"))?;
    let options = SafeExecOptions {
        python_path: args.python_path,
        call: p.call,
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
