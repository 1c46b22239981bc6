//! `safe_exec` semantics: Python's `exec` with JSON globals, run in a jail.
//!
//! The jail runs [`program`] as its code, with [`payload`] on stdin: it
//! runs [`DRIVER`], from the bytecode in [`DRIVER_BYTECODE_FILE`] when
//! that is for this interpreter (see [`probe_script`]). The driver executes the
//! code with the globals, then writes the JSON-safe globals (CodeJail's
//! `json_safe`) to stdout, and nothing else: the code's own output is sent
//! to stderr. [`parse_result`] reads them back, size limited;
//! [`error_summary`] picks the line of a traceback worth showing. How the
//! child is confined is not this crate's business.
#![deny(missing_docs)]

use std::path::PathBuf;
use std::sync::LazyLock;

use serde_json::{Map, Value};

/// The driver script: `safe_exec` itself.
pub const DRIVER: &str = include_str!("driver.py");

/// The file, next to [`program`], that holds the driver's bytecode: the
/// interpreter's magic number, then the marshalled code object (the second
/// line of [`probe_script`]'s output).
pub const DRIVER_BYTECODE_FILE: &str = ".codejail-driver";

fn with_driver_source(script: &str) -> String {
    let literal = serde_json::to_string(DRIVER).expect("a string always serializes");
    format!("DRIVER_SOURCE = {literal}\n{script}")
}

/// The program a `safe_exec` run executes as its code: it runs the driver
/// from [`DRIVER_BYTECODE_FILE`] if that holds bytecode for the running
/// interpreter, else from the driver's source, which it carries.
pub fn program() -> &'static str {
    static PROGRAM: LazyLock<String> =
        LazyLock::new(|| with_driver_source(include_str!("program.py")));
    &PROGRAM
}

/// A script, run once by the interpreter when a jail is configured, that
/// prints what the jail needs to know of it: its prefixes (`sys.prefix`,
/// `base_prefix`, `exec_prefix`, `base_exec_prefix`) on one line, tab
/// separated, then the driver's bytecode in hex (empty where the
/// interpreter cannot say which bytecode it runs). See [`parse_probe`].
pub fn probe_script() -> &'static str {
    static PROBE_SCRIPT: LazyLock<String> = LazyLock::new(|| with_driver_source(PROBE_BODY));
    &PROBE_SCRIPT
}

const PROBE_BODY: &str = r#"import marshal, sys
print("\t".join([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))
try:
    from _frozen_importlib_external import MAGIC_NUMBER
    code = compile(DRIVER_SOURCE, "codejail-driver", "exec")
    print((MAGIC_NUMBER + marshal.dumps(code)).hex())
except Exception:
    print("")
"#;

/// What [`probe_script`] printed: the interpreter's prefixes and the
/// driver's bytecode, if any.
pub fn parse_probe(stdout: &[u8]) -> Option<(Vec<PathBuf>, Option<Vec<u8>>)> {
    let text = std::str::from_utf8(stdout).ok()?;
    let mut lines = text.lines();
    let prefixes = lines.next()?.split('\t').map(PathBuf::from).collect();
    let hex = lines.next().unwrap_or("").trim();
    let bytecode = (!hex.is_empty() && hex.len() % 2 == 0)
        .then(|| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten();
    Some((prefixes, bytecode))
}

/// The warm path's zygote: the driver's functions, then the zygote loop
/// (see `zygote.py`). Run inside a fully confined jail as the code, with
/// the path of the unix socket to serve as its argument.
pub const ZYGOTE: &str = concat!(
    "ZYGOTE = True\n",
    include_str!("driver.py"),
    include_str!("zygote.py")
);

/// The most result bytes read back by default (CodeJail has no limit; a
/// flood of globals must not exhaust the caller).
pub const MAX_RESULT_BYTES: usize = 16 << 20;

/// The JSON object the driver reads on stdin.
pub fn payload(code: &str, globals: &Map<String, Value>, python_path: &[String]) -> Vec<u8> {
    let payload = serde_json::json!({
        "code": code,
        "globals": globals,
        "python_path": python_path,
    });
    serde_json::to_vec(&payload).expect("a JSON value always serializes")
}

/// Why the driver's result could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// The result is larger than allowed.
    #[error("the result is larger than {limit} bytes; return smaller globals")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The result is not a JSON object.
    #[error("the sandbox returned malformed globals: {0}")]
    Malformed(String),
}

/// Parses the driver's stdout: one JSON object of globals.
///
/// # Errors
/// [`ResultError`] when it is too large or not a JSON object.
pub fn parse_result(stdout: &[u8], limit: usize) -> Result<Map<String, Value>, ResultError> {
    if stdout.len() > limit {
        return Err(ResultError::TooLarge { limit });
    }
    match serde_json::from_slice(stdout) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ResultError::Malformed(format!(
            "expected an object, got {other}"
        ))),
        Err(e) => Err(ResultError::Malformed(e.to_string())),
    }
}

/// The line of stderr worth showing: the last line of a Python traceback
/// (`ValueError: That's not how you pour soup!`), else the last non-empty
/// line.
pub fn error_summary(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    if let Some(tb) = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
    {
        if let Some(last) = lines[tb..].iter().rev().find(|l| !l.starts_with(' ')) {
            return (*last).to_owned();
        }
    }
    lines
        .last()
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_traceback_line_is_the_summary() {
        let stderr = b"some output\nTraceback (most recent call last):\n  File \"<jailed code>\", line 1, in <module>\n    raise ValueError(\"That's not how you pour soup!\")\nValueError: That's not how you pour soup!\n";
        assert_eq!(
            error_summary(stderr),
            "ValueError: That's not how you pour soup!"
        );
        assert_eq!(error_summary(b"plain failure\n\n"), "plain failure");
        assert_eq!(error_summary(b""), "");
    }

    #[test]
    fn results_are_objects_and_size_limited() {
        assert_eq!(parse_result(br#"{"a": 1}"#, 100).unwrap()["a"], 1);
        assert!(matches!(
            parse_result(b"[1]", 100),
            Err(ResultError::Malformed(_))
        ));
        assert!(matches!(
            parse_result(b"{", 100),
            Err(ResultError::Malformed(_))
        ));
        assert!(matches!(
            parse_result(&[b' '; 101], 100),
            Err(ResultError::TooLarge { limit: 100 })
        ));
    }
}
