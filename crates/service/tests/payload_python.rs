//! The payload refusals against the real thing: Python's `json.loads` and
//! the `jsonschema` package's `best_match` over codejail-service's payload
//! schema (Draft 2020-12), on hand-picked and generated payloads. Needs a
//! Python with `jsonschema` (`CODEJAIL_TEST_PYTHON`; `cargo xtask ci`
//! makes one); without it this says NOT TESTED, and under CI it fails.

use std::io::Write;
use std::process::{Command, Stdio};

fn python() -> Option<String> {
    let bin = std::env::var("CODEJAIL_TEST_PYTHON").ok()?;
    let ok = Command::new(&bin)
        .args([
            "-c",
            "import jsonschema, sys; assert sys.version_info[:2] == (3, 11)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(bin)
}

/// What codejail-service's view says of each payload: `ok`, or the error
/// text of its 400.
fn python_verdicts(bin: &str, payloads: &[String]) -> Vec<String> {
    // The payload schema of codejail-service's v0 API, as its API defines
    // it.
    const SCRIPT: &str = r#"
import json, sys
from jsonschema.exceptions import best_match
from jsonschema.validators import Draft202012Validator
nullable = lambda schema: {"anyOf": [schema, {"type": "null"}]}
schema = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "globals_dict": {"type": "object"},
        "python_path": nullable({"type": "array", "items": {"type": "string"}}),
        "limit_overrides_context": nullable({"type": "string"}),
        "slug": nullable({"type": "string"}),
        "unsafely": {"type": "boolean"},
    },
    "required": ["code", "globals_dict"],
}
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
out = []
for p in json.loads(sys.stdin.buffer.read().decode("utf-8")):
    try:
        params = json.loads(p)
    except json.JSONDecodeError as e:
        out.append(f"Unable to parse payload JSON: {e}")
        continue
    e = best_match(validator.iter_errors(params))
    if e:
        out.append(f"Payload JSON did not match schema at path {e.json_path}: {e.message}")
    else:
        out.append("ok")
sys.stdout.buffer.write(json.dumps(out).encode("utf-8"))
"#;
    let mut child = Command::new(bin)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python starts");
    let input = serde_json::to_vec(payloads).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ours(payload: &str) -> String {
    match codejail_service::payload::parse(payload) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn corpus() -> Vec<String> {
    let mut payloads: Vec<String> = [
        "Not JSON", "", "{", "[]", "\"s\"", "3", "3.5", "true", "null", "NaN", "-Infinity",
        "[1, {\"a\": \"b\"}]", "\"it's\"", "123456789012345678901234567890", "{}",
        r#"{"code": "x"}"#, r#"{"globals_dict": {}}"#, r#"{"code": 3}"#, r#"{"globals_dict": 3}"#,
        r#"{"code": 3, "globals_dict": 3}"#, r#"{"code": "x", "globals_dict": {}}"#,
        r#"{"code": "x", "globals_dict": {}, "code": 3}"#, r#"{"code": 3, "globals_dict": {}, "code": "x"}"#,
        r#"{"code": "x", "globals_dict": {}, "unsafely": 1, "python_path": 3}"#,
        r#"{"code": "x", "globals_dict": {}, "python_path": ["a", 2, null, ["b"]]}"#,
        r#"{"code": "x", "globals_dict": {}, "python_path": [[]], "slug": {}}"#,
        r#"{"code": "x", "globals_dict": {"a": NaN}, "extra": 1, "slug": "s", "limit_overrides_context": null}"#,
        r#"{"code": "caf\u00e9 \ud800", "globals_dict": [], "slug": "\u2028x"}"#,
        r#"{"code": {"k": "v", "k": [1.0, 1e16, 1E-7, -0, -0.0]}, "globals_dict": {}}"#,
        r#"{"code": ["it's", "say \"hi\"", "tab\there", "\u0000\u007f\u0080\u00ad"], "globals_dict": {}}"#,
        r#"{"code":"x","globals_dict":{},"python_path":["python_lib.zip"],"limit_overrides_context":"c","slug":"s","unsafely":false}"#,
        r#"{"code": "x", "globals_dict": {}, "unsafely": null}"#,
        r#"{"code": "x", "globals_dict": {}, "limit_overrides_context": 3, "slug": 4}"#,
        r#"{"code": "x", "globals_dict": {}, "python_path": {"a": 1}}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every field with valid and invalid values, present or not, at random.
    let values: [(&str, &[&str]); 6] = [
        (
            "code",
            &[
                "\"x = 1\"",
                "3",
                "null",
                "[]",
                "{}",
                "true",
                "1.5",
                "NaN",
                "\"é\"",
            ],
        ),
        (
            "globals_dict",
            &["{}", "{\"a\": [1, 2]}", "[]", "\"g\"", "null", "0", "false"],
        ),
        (
            "python_path",
            &[
                "null",
                "[]",
                "[\"python_lib.zip\"]",
                "3",
                "\"p\"",
                "[1]",
                "[\"a\", {}]",
                "{}",
                "[null, 2]",
            ],
        ),
        (
            "limit_overrides_context",
            &["null", "\"big\"", "3", "[]", "{}", "true"],
        ),
        (
            "slug",
            &["null", "\"hw5\"", "-1", "[\"s\"]", "{\"s\": 1}", "false"],
        ),
        (
            "unsafely",
            &["true", "false", "null", "0", "\"true\"", "[]"],
        ),
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..600 {
        let mut fields: Vec<String> = Vec::new();
        for (name, options) in values {
            if rng.below(4) != 0 {
                fields.push(format!("\"{name}\": {}", options[rng.below(options.len())]));
            }
        }
        // Shuffle a little: order must not matter to the verdict.
        if fields.len() > 1 {
            let i = rng.below(fields.len());
            let j = rng.below(fields.len());
            fields.swap(i, j);
        }
        payloads.push(format!("{{{}}}", fields.join(", ")));
    }
    payloads
}

#[test]
fn refusals_match_json_loads_and_jsonschema() {
    let Some(bin) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs CODEJAIL_TEST_PYTHON: Python 3.11 with jsonschema"
        );
        eprintln!(
            "NOT TESTED on this machine: set CODEJAIL_TEST_PYTHON to a Python 3.11 with jsonschema"
        );
        return;
    };
    let payloads = corpus();
    let theirs = python_verdicts(&bin, &payloads);
    let mut wrong = Vec::new();
    for (p, expected) in payloads.iter().zip(&theirs) {
        let got = ours(p);
        if &got != expected {
            wrong.push(format!("{p}\n  python: {expected}\n  ours:   {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        payloads.len(),
        wrong[..wrong.len().min(15)].join("\n")
    );
    let refused = theirs
        .iter()
        .filter(|v| v.contains("did not match schema"))
        .count();
    assert!(refused > 300, "only {refused} schema refusals exercised");
    assert!(theirs.iter().filter(|v| *v == "ok").count() >= 3);
}
