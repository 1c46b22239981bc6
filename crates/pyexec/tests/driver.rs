//! The driver script, run by a plain interpreter (no jail): its semantics
//! on their own, and the program that loads it from bytecode.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use codejail_pyexec::{
    DRIVER, DRIVER_BYTECODE_FILE, MAX_RESULT_BYTES, error_summary, parse_probe, parse_result,
    payload, probe_script, program,
};
use serde_json::{Map, Value, json};

const PYTHON: &str = "/usr/bin/python3";

/// What the interpreter's probe says: its prefixes and the driver's
/// bytecode.
static PROBED: LazyLock<(Vec<std::path::PathBuf>, Option<Vec<u8>>)> = LazyLock::new(|| {
    let out = Command::new(PYTHON)
        .args(["-E", "-B", "-c", probe_script()])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_probe(&out.stdout).expect("the probe's output")
});

fn bytecode() -> Vec<u8> {
    PROBED
        .1
        .clone()
        .expect("CPython says which bytecode it runs")
}

struct Ran {
    status: i32,
    globals: Option<Map<String, Value>>,
    stderr: String,
}

fn exec(code: &str, globals: Value) -> Ran {
    exec_with(code, globals, Some(&bytecode()))
}

/// Runs the program as a jail would, with `driver` as the bytecode file.
fn exec_with(code: &str, globals: Value, driver: Option<&[u8]>) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jailed_code"), program()).unwrap();
    if let Some(driver) = driver {
        std::fs::write(dir.path().join(DRIVER_BYTECODE_FILE), driver).unwrap();
    }
    let mut child = Command::new(PYTHON)
        .args(["-E", "-B", "jailed_code"])
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let globals = globals.as_object().unwrap().clone();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&payload(code, &globals, &[]))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Ran {
        status: out.status.code().unwrap_or(-1),
        globals: parse_result(&out.stdout, MAX_RESULT_BYTES).ok(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn globals(code: &str, input: Value) -> Map<String, Value> {
    let ran = exec(code, input);
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    ran.globals.unwrap()
}

#[test]
fn the_probe_gives_the_prefixes_and_bytecode_with_the_magic_number() {
    let (prefixes, bytecode) = &*PROBED;
    assert_eq!(prefixes.len(), 4, "{prefixes:?}");
    assert!(prefixes.iter().all(|p| p.is_absolute()), "{prefixes:?}");
    let out = Command::new(PYTHON)
        .args([
            "-E",
            "-B",
            "-c",
            "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())",
        ])
        .output()
        .unwrap();
    let magic = String::from_utf8(out.stdout).unwrap();
    let bytecode = bytecode.as_ref().unwrap();
    assert!(bytecode.len() > 1000);
    let hex: String = bytecode[..4].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, magic);
}

/// The program runs what the bytecode file holds when its magic number is
/// this interpreter's: a marker driver, compiled here, says so.
#[test]
fn the_program_runs_the_staged_bytecode() {
    let out = Command::new(PYTHON)
        .args([
            "-E",
            "-B",
            "-c",
            "import marshal, sys\n\
             from _frozen_importlib_external import MAGIC_NUMBER\n\
             sys.stdout.buffer.write(MAGIC_NUMBER + marshal.dumps(compile('print(\"from bytecode\")', 'm', 'exec')))",
        ])
        .output()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jailed_code"), program()).unwrap();
    std::fs::write(dir.path().join(DRIVER_BYTECODE_FILE), &out.stdout).unwrap();
    let printed = Command::new(PYTHON)
        .args(["-E", "-B", "jailed_code"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(printed.stdout, b"from bytecode\n");
}

/// Bytecode for another interpreter, or none, and the program compiles the
/// driver's source instead.
#[test]
fn without_usable_bytecode_the_program_compiles_the_source() {
    let mut foreign = bytecode();
    foreign[0] ^= 0xff;
    for driver in [None, Some(&foreign[..]), Some(&b"\0\0"[..])] {
        let ran = exec_with("y = x * 2", json!({"x": 21}), driver);
        assert_eq!(ran.status, 0, "{}", ran.stderr);
        assert_eq!(
            Value::Object(ran.globals.unwrap()),
            json!({"x": 21, "y": 42})
        );
    }
}

#[test]
fn values_are_set_and_read() {
    let g = globals("a = 17\nb = a * 2\nc = 'hi'", json!({"x": 1}));
    assert_eq!(
        Value::Object(g),
        json!({"x": 1, "a": 17, "b": 34, "c": "hi"})
    );
}

#[test]
fn bytes_tuples_and_nested_values_become_json() {
    let code = "t = (1, b'two', [b'three', (4,)])\nd = {b'k': b'v', 1: 'one'}\nb = b'bytes'\nf = 1.5\nn = None\nok = True";
    let g = globals(code, json!({}));
    assert_eq!(
        Value::Object(g),
        json!({"t": [1, "two", ["three", [4]]], "d": {"k": "v", "1": "one"}, "b": "bytes", "f": 1.5, "n": null, "ok": true})
    );
}

#[test]
fn what_does_not_survive_json_is_dropped() {
    let code = "import os\ndef f(): pass\nclass C: pass\nbad = b'\\xff'\nsur = '\\ud800'\nnan = float('nan')\ntk = {(1, 2): 3}\nobj = object()\nkeep = 1";
    let g = globals(code, json!({}));
    assert_eq!(Value::Object(g), json!({"keep": 1}));
}

#[test]
fn printing_does_not_corrupt_the_result() {
    let code = "import os, sys\nprint('{\"evil\": 1}')\nsys.stdout.write('noise')\nos.write(1, b'raw fd noise')\nx = 5";
    let ran = exec(code, json!({}));
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(Value::Object(ran.globals.unwrap()), json!({"x": 5}));
    assert!(
        ran.stderr.contains("noise") && ran.stderr.contains("raw fd noise"),
        "{}",
        ran.stderr
    );
}

#[test]
fn functions_can_call_each_other() {
    let code = "def f(x): return g(x) + 1\ndef g(x): return x * 2\nr = f(10)";
    assert_eq!(globals(code, json!({}))["r"], 21);
}

#[test]
fn exceptions_end_the_run_with_a_summary() {
    let ran = exec(
        "raise ValueError(\"That's not how you pour soup!\")",
        json!({}),
    );
    assert_eq!(ran.status, 1);
    assert_eq!(
        error_summary(ran.stderr.as_bytes()),
        "ValueError: That's not how you pour soup!"
    );
}

#[test]
fn the_driver_imports_nothing_but_the_standard_library() {
    for line in DRIVER
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
    {
        assert!(
            matches!(line, "import _json" | "import os" | "import sys"),
            "{line}"
        );
    }
}

#[test]
fn unicode_and_circular_values() {
    let g = globals(
        "s = 'h\u{e9}llo \u{2603}'\nloop = []\nloop.append(loop)\nbig = 10 ** 30",
        json!({"in": "\u{1f600}"}),
    );
    assert_eq!(
        Value::Object(g),
        json!({"in": "\u{1f600}", "s": "h\u{e9}llo \u{2603}", "big": 1_000_000_000_000_000_000_000_000_000_000_f64})
    );
}
