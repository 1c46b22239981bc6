//! The driver script, run by a plain interpreter (no jail): its semantics
//! on their own, and the program that loads it from bytecode.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use codejail_pyexec::{
    DRIVER, DRIVER_BYTECODE_FILE, error_summary, json, parse_probe, parse_result, payload,
    probe_script, program,
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
    /// The result as the driver wrote it.
    text: Option<String>,
    globals: Option<Map<String, Value>>,
    stderr: String,
}

fn exec(code: &str, globals: Value) -> Ran {
    exec_text(code, &globals.to_string(), Some(&bytecode()), false)
}

fn exec_with(code: &str, globals: Value, driver: Option<&[u8]>) -> Ran {
    exec_text(code, &globals.to_string(), driver, false)
}

/// Runs the program as a jail would, with `driver` as the bytecode file
/// and `globals` (JSON text of Python's dialect) as the caller's globals.
fn exec_text(code: &str, globals: &str, driver: Option<&[u8]>, merge: bool) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jailed_code"), program(0)).unwrap();
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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&payload(code, globals, &[], merge))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = parse_result(&out.stdout).ok().map(str::to_owned);
    Ran {
        status: out.status.code().unwrap_or(-1),
        globals: text.as_deref().and_then(|t| json::to_map(t).ok()),
        text,
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
    std::fs::write(dir.path().join("jailed_code"), program(0)).unwrap();
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
    let code = "import os\ndef f(): pass\nclass C: pass\nbad = b'\\xff'\ntk = {(1, 2): 3}\nobj = object()\nkeep = 1";
    let g = globals(code, json!({}));
    assert_eq!(Value::Object(g), json!({"keep": 1}));
}

/// What CodeJail's json round trip carries, the driver carries: NaN and
/// the infinities, lone surrogates in keys and values, integers of any
/// size, deep nesting.
#[test]
fn what_pythons_json_carries_is_kept_exactly() {
    let code = "nan = float('nan')\ninf = [float('inf'), -float('inf')]\nsur = '\\ud800'\nglobals()[chr(0xD800)] = 1\nbig = 2**64 + 1\nhuge = 10**400\ndeep = []\nx = deep\nfor _ in range(126): x.append([]); x = x[0]";
    let ran = exec_text(
        code,
        r#"{"in": NaN, "given": 123456789012345678901234567890}"#,
        Some(&bytecode()),
        false,
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    let text = ran.text.unwrap();
    for part in [
        r#""in": NaN"#,
        r#""given": 123456789012345678901234567890"#,
        r#""nan": NaN"#,
        r#""inf": [Infinity, -Infinity]"#,
        r#""sur": "\ud800""#,
        r#""\ud800": 1"#,
        r#""big": 18446744073709551617"#,
        &format!(r#""huge": 1{}"#, "0".repeat(400)),
        &format!(r#""deep": {}{}"#, "[".repeat(127), "]".repeat(127)),
    ] {
        assert!(text.contains(part), "{part} is missing from {text}");
    }
    // The map keeps what serde_json can hold, exactly, and the rest
    // changed as documented.
    let g = ran.globals.unwrap();
    assert_eq!(g["big"].to_string(), "18446744073709551617");
    assert_eq!(g["nan"], Value::Null);
    assert_eq!(g["sur"], "\u{fffd}");
}

/// The driver's json_safe, dumps and loads against CodeJail's json_safe
/// on the standard library's json, on thousands of generated namespaces
/// (tests/py/json_safe_reference.py).
#[test]
fn json_safe_is_codejails_on_generated_globals() {
    let mut child = Command::new(PYTHON)
        .args([
            "-E",
            "-B",
            "tests/py/json_safe_reference.py",
            "20261129",
            "4000",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(DRIVER.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checked 4000"));
}

/// As in CodeJail: the code's printing goes nowhere (sys.stdout is a
/// DevNull), so it neither corrupts the result nor shows in stderr; a
/// write to descriptor 1 from C goes to /dev/null.
#[test]
fn printing_does_not_corrupt_the_result() {
    let code = "import os, sys\nprint('{\"evil\": 1}')\nsys.stdout.write('noise')\nos.write(1, b'raw fd noise')\nx = 5";
    let ran = exec(code, json!({}));
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(Value::Object(ran.globals.unwrap()), json!({"x": 5}));
    assert_eq!(ran.stderr, "");
}

/// CodeJail's caller does `globals_dict.update(result)`: with `merge`, the
/// driver answers with that (a deleted key keeps its old value).
#[test]
fn merge_answers_with_the_callers_globals_updated() {
    let ran = exec_text(
        "del a\nb = 2\nc = object()",
        r#"{"a": 1, "c": 3}"#,
        Some(&bytecode()),
        true,
    );
    assert_eq!(
        ran.text.as_deref(),
        Some(r#"{"a": 1, "c": 3, "b": 2}"#),
        "{}",
        ran.stderr
    );
    let ran = exec_text("del a\nb = 2", r#"{"a": 1}"#, Some(&bytecode()), false);
    assert_eq!(ran.text.as_deref(), Some(r#"{"b": 2}"#), "{}", ran.stderr);
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
    assert_eq!(g["in"], "\u{1f600}");
    assert_eq!(g["s"], "h\u{e9}llo \u{2603}");
    assert_eq!(g["big"].to_string(), format!("1{}", "0".repeat(30)));
    assert!(!g.contains_key("loop"));
}

/// `py_bytes_repr` is Python's `repr(bytes)`: every byte alone, each quote
/// mix, and pseudo-random strings, against the interpreter.
#[test]
fn bytes_repr_is_pythons() {
    let mut cases: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    cases.extend([
        b"it's".to_vec(),
        b"say \"hi\"".to_vec(),
        b"both ' and \"".to_vec(),
        b"".to_vec(),
    ]);
    let mut x: u32 = 2_463_534_242;
    for _ in 0..300 {
        let len = (x % 40) as usize;
        let mut case = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            case.push(if x % 3 == 0 {
                b"'\"\\"[(x % 3) as usize]
            } else {
                x as u8
            });
        }
        cases.push(case);
    }
    let input: String = cases
        .iter()
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let mut child = Command::new(PYTHON)
        .args([
            "-E",
            "-B",
            "-c",
            "import sys\nfor line in sys.stdin:\n    print(repr(bytes.fromhex(line.strip())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let want = String::from_utf8(out.stdout).unwrap();
    for (case, want) in cases.iter().zip(want.lines()) {
        assert_eq!(codejail_pyexec::py_bytes_repr(case), want, "{case:?}");
    }
    assert_eq!(want.lines().count(), cases.len());
}
