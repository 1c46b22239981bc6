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

pub mod json;
mod printable;

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

/// The program a `safe_exec` run executes as its code, for a call with
/// `python_path` entries: it runs the driver from [`DRIVER_BYTECODE_FILE`]
/// if that holds bytecode for the running interpreter, else from the
/// driver's source, which it carries. The code runs where CodeJail's
/// program runs it, `exec(code, g_dict)` at module level on line
/// [`exec_line`], so that its traceback reads as under CodeJail.
pub fn program(python_path: usize) -> String {
    static PROGRAM: LazyLock<String> =
        LazyLock::new(|| with_driver_source(include_str!("program.py")));
    PROGRAM.replacen("#PYTHON_PATH\n", &"\n".repeat(python_path), 1)
}

/// The line of CodeJail's `safe_exec` program that runs the code,
/// `exec(code, g_dict)`: 19, and one more per `python_path` entry (for
/// each, CodeJail writes a `sys.path.append` line above it).
pub fn exec_line(python_path: usize) -> usize {
    19 + python_path
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

/// The JSON object the driver reads on stdin: the code, the caller's
/// globals (`globals_json`, one object of Python's JSON dialect, checked
/// with [`json::check_object`] by the caller), the `sys.path` entries to
/// append, and whether to answer with the caller's globals updated
/// (`merge`) rather than with the code's globals alone.
pub fn payload(code: &str, globals_json: &str, python_path: &[String], merge: bool) -> Vec<u8> {
    let head = serde_json::json!({
        "code": code,
        "python_path": python_path,
        "merge": merge,
    })
    .to_string();
    // `{...}` + `, "globals": <the caller's text>}`: the globals go in as
    // the caller wrote them (NaN, big integers and all).
    let mut out = Vec::with_capacity(head.len() + globals_json.len() + 16);
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b", \"globals\": ");
    out.extend_from_slice(globals_json.as_bytes());
    out.push(b'}');
    out
}

/// Why the driver's result could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The code exited successfully before the driver wrote its result
    /// (`sys.exit(0)`, `os._exit(0)`).
    #[error("the code exited with status 0 before safe_exec could return its globals")]
    Missing,
    /// The result is not one JSON object.
    #[error("the sandbox returned malformed globals: {0}")]
    Malformed(String),
}

/// Reads the driver's result: one JSON object of Python's dialect, as
/// text (see [`json`] for turning it into a map).
///
/// # Errors
/// [`ResultError`] when it is empty or not a JSON object.
pub fn parse_result(stdout: &[u8]) -> Result<&str, ResultError> {
    if stdout.is_empty() {
        return Err(ResultError::Missing);
    }
    let text = std::str::from_utf8(stdout)
        .map_err(|e| ResultError::Malformed(format!("not UTF-8: {e}")))?;
    json::check_object(text).map_err(|e| ResultError::Malformed(e.to_string()))?;
    Ok(text)
}

/// CodeJail's `SafeExecException` text for a failed run, byte for byte:
/// `Couldn't execute jailed code: stdout: b'...', stderr: b'...' with
/// status code: N`, the outputs as Python writes `bytes`.
pub fn safe_exec_exception(stdout: &[u8], stderr: &[u8], status: i32) -> String {
    format!(
        "Couldn't execute jailed code: stdout: {}, stderr: {} with status code: {status}",
        py_bytes_repr(stdout),
        py_bytes_repr(stderr)
    )
}

/// `repr(b)` of a Python `bytes` object.
pub fn py_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(char::from(quote));
    for &c in bytes {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..0x7f => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(char::from(quote));
    out
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
    fn the_program_runs_the_code_on_codejails_line() {
        for entries in [0, 1, 3] {
            let program = program(entries);
            let lines: Vec<&str> = program.lines().collect();
            assert_eq!(lines[exec_line(entries) - 1], "exec(code, g_dict)");
            assert_eq!(
                lines.iter().filter(|l| **l == "exec(code, g_dict)").count(),
                1
            );
            assert!(!lines.contains(&"#PYTHON_PATH"));
        }
        assert_eq!(exec_line(2), 21);
    }

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
    fn bytes_are_written_as_python_writes_them() {
        assert_eq!(py_bytes_repr(b""), "b''");
        assert_eq!(py_bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(py_bytes_repr(b"both ' and \""), "b'both \\' and \"'");
        assert_eq!(
            py_bytes_repr(b"a\tb\nc\rd\\e\x00\x7f\xff~"),
            "b'a\\tb\\nc\\rd\\\\e\\x00\\x7f\\xff~'"
        );
        assert_eq!(
            safe_exec_exception(b"", b"Traceback\n", 1),
            "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback\\n' with status code: 1"
        );
    }

    #[test]
    fn results_are_objects() {
        assert_eq!(parse_result(br#"{"a": NaN}"#).unwrap(), r#"{"a": NaN}"#);
        assert!(matches!(parse_result(b""), Err(ResultError::Missing)));
        for bad in [&b"[1]"[..], b"{", b"\xff{}", b"{} {}"] {
            assert!(
                matches!(parse_result(bad), Err(ResultError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_payload_carries_the_globals_as_written() {
        let p = payload(
            "x = 1",
            r#"{"n": NaN, "big": 123456789012345678901234567890}"#,
            &["lib.zip".into()],
            true,
        );
        let text = std::str::from_utf8(&p).unwrap();
        assert_eq!(
            text,
            r#"{"code":"x = 1","merge":true,"python_path":["lib.zip"], "globals": {"n": NaN, "big": 123456789012345678901234567890}}"#
        );
        assert_eq!(json::check_object(text), Ok(()));
    }
}
