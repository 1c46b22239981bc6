//! `json::loads_check`, `json::top_level` and `json::py_repr` against
//! Python 3.11 itself: the same verdicts, messages, positions and reprs on
//! a corpus of hand-picked and generated texts. Needs `/usr/bin/python3` 3.11
//! (`CODEJAIL_TEST_PYTHON311` names another); elsewhere it says NOT TESTED,
//! and under CI it fails.

use std::io::Write;
use std::process::{Command, Stdio};

use codejail_pyexec::json::{self, Kind};

fn python311() -> Option<String> {
    let bin =
        std::env::var("CODEJAIL_TEST_PYTHON311").unwrap_or_else(|_| "/usr/bin/python3".into());
    let out = Command::new(&bin)
        .args(["-c", "import sys; print(sys.version_info[:2] == (3, 11))"])
        .output()
        .ok()?;
    if String::from_utf8_lossy(&out.stdout).trim() == "True" {
        Some(bin)
    } else {
        None
    }
}

/// Python's answers for each text: `ok <repr>` or `err <str(exception)>`.
fn python_answers(bin: &str, texts: &[String]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys
texts = json.loads(sys.stdin.buffer.read().decode("utf-8"))
out = []
for t in texts:
    try:
        v = json.loads(t)
        out.append("ok " + repr(v))
    except (ValueError, RecursionError) as e:
        out.append("err " + str(e))
sys.stdout.buffer.write(json.dumps(out).encode("utf-8"))
"#;
    let mut child = Command::new(bin)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let input = serde_json::to_vec(texts).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ours(text: &str) -> String {
    match json::loads_check(text) {
        Ok(()) => format!("ok {}", json::py_repr(text)),
        Err(e) => format!("err {e}"),
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = [
        "Not JSON", "", " ", "\n", "{", "[", "]", "}", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,",
        "{\"a\":1,}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{a:1}", "{'a':1}", "{,}", "[1,]", "[1 2]", "[,1]",
        "[1,,2]", "\"abc", "\"a\u{1}b\"", "\"a\tb\"", "\"\\x\"", "\"\\", "\"\\u12\"", "\"\\u123",
        "\"\\u1234", "\"\\u1234\"", "\"\\u12G4\"", "\"\\ud800\"", "\"\\ud800\\u12\"", "\"\\ud800\\u12G4\"",
        "\"\\ud800\\udc00\"", "\"\\ud800\\udc00", "\"\\ud800\\u0041\"", "\"\\udc00\\ud800\"",
        "\"\\ud83c\\udf89 party\"", "1.", "1.5", "01", "-", "-x", "--1", "1e", "1e+", "1e+5", "1E5",
        "1e5x", "2.e3", ".5", "+1", "-0", "-0.0", "0.0", "1e400", "-1e400", "1e-400", "tru", "nul",
        "fals", "true", "false", "null", "NaN", "-NaN", "nan", "Infinity", "-Infinity", "infinity",
        "-Inf", "{} x", "{}  ", " {} ", "[] []", "\u{feff}{}", "é{", "{\"é\":\n  x}", "{\"a\":\r\n 1,\n\"b\"}",
        "\"line\nbreak\"", "[\"é\", \"\u{7f}\", \"\u{80}\", \"\u{a0}\", \"\u{ad}\", \"\u{2028}\", \"\u{e000}\", \"\u{1f389}\"]",
        "[\"it's\", \"say \\\"hi\\\"\", \"both ' and \\\"\", \"back\\\\slash\"]",
        "{\"a\": 1, \"b\": 2, \"a\": 3}", "{\"a\": {\"x\": 1, \"x\": [1, {\"y\": 2, \"y\": 3}]}, \"b\": []}",
        "[1, 2.5, -0.5e-3, 1E+9, true, false, null, NaN, Infinity, -Infinity]",
        "[1e16, 1e15, 0.0001, 0.00001, 123456789012345678, 1.5e300, 5e-324, 1.7976931348623157e308]",
        "[0.1, 0.2, 0.30000000000000004, 100.0, 1e22, 1e21, 123.456e-7, 2.5E-05]",
        "{\"code\": 3, \"globals_dict\": []}", "[[[[[]]]]]", "[{}, {\"\": \"\"}]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Integers at Python's digit limit.
    texts.push("9".repeat(4300));
    texts.push("9".repeat(4301));
    texts.push(format!("-{}", "1".repeat(4301)));
    texts.push(format!("[1, {}]", "2".repeat(5000)));
    texts.push(format!("{}.5", "1".repeat(5000)));
    // Mutations of valid documents: a character deleted, replaced or
    // inserted, at random places.
    let seeds = [
        r#"{"code": "x = 1", "globals_dict": {"a": [1, 2.5, NaN, "s\u00e9"]}, "slug": null}"#,
        r#"[{"k": "v\n"}, -1.5e-3, true, "\ud83c\udf89", {"": []}]"#,
        "{\"a\":\n [1,\n  2],\n \"b\": \"é\"}",
    ];
    let alphabet: Vec<char> = "{}[]\":,.-+eE0123456789 \n\\utfnaNIy'é\u{1}x"
        .chars()
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let seed: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        let mut t = seed.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(t.len() + 1);
            match rng.below(3) {
                0 if at < t.len() => {
                    t.remove(at);
                }
                1 if at < t.len() => t[at] = alphabet[rng.below(alphabet.len())],
                _ => t.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        texts.push(t.into_iter().collect());
    }
    // Random floats, and strings of random code points.
    for _ in 0..500 {
        let bits = rng.next();
        let x = f64::from_bits(bits);
        if x.is_finite() {
            texts.push(format!("[{x:e}, {x}]"));
        }
    }
    for _ in 0..300 {
        let mut s = String::from("\"");
        for _ in 0..8 {
            let cp = match rng.below(4) {
                0 => rng.below(0x100) as u32,
                1 => rng.below(0x3000) as u32,
                2 => rng.below(0x110000) as u32,
                _ => 0xD800 + rng.below(0x800) as u32,
            };
            match char::from_u32(cp) {
                Some('"') => s.push_str("\\\""),
                Some('\\') => s.push_str("\\\\"),
                Some(c) if (c as u32) >= 0x20 => s.push(c),
                _ => s.push_str(&format!("\\u{cp:04x}")),
            }
        }
        s.push('"');
        texts.push(s);
    }
    texts
}

#[test]
fn loads_and_repr_agree_with_python_311() {
    let Some(bin) = python311() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs python3 3.11 for this test"
        );
        eprintln!("NOT TESTED on this machine: no python3 3.11");
        return;
    };
    let texts = corpus();
    let theirs = python_answers(&bin, &texts);
    let mut wrong = Vec::new();
    for (text, expected) in texts.iter().zip(&theirs) {
        let got = ours(text);
        if &got != expected {
            wrong.push(format!("{text:?}\n  python: {expected}\n  ours:   {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        texts.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    // Both kinds of answer were exercised.
    assert!(theirs.iter().filter(|a| a.starts_with("ok ")).count() > 500);
    assert!(theirs.iter().filter(|a| a.starts_with("err ")).count() > 1000);
}

#[test]
fn the_printable_table_is_python_311s() {
    let Some(bin) = python311() else {
        eprintln!("NOT TESTED on this machine: no python3 3.11");
        return;
    };
    // Every code point's repr, through a string of them all.
    let script = "import sys\nfor lo in range(0x80, 0x110000, 0x1000):\n    print(repr(''.join(chr(c) + '.' for c in range(lo, min(lo + 0x1000, 0x110000)))))\n";
    let out = Command::new(bin).args(["-c", script]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let mut lo = 0x80u32;
    while lo < 0x110000 {
        let hi = (lo + 0x1000).min(0x110000);
        let mut s = String::from("\"");
        for c in lo..hi {
            if c >= 0x10000 {
                // Above U+FFFF: a surrogate pair.
                let v = c - 0x10000;
                s.push_str(&format!(
                    "\\u{:04x}\\u{:04x}.",
                    0xD800 + (v >> 10),
                    0xDC00 + (v & 0x3FF)
                ));
            } else {
                s.push_str(&format!("\\u{c:04x}."));
            }
        }
        let s = format!("{s}\"");
        let (ours, theirs) = (json::py_repr(&s), lines.next().unwrap().to_owned());
        if ours != theirs {
            let at = ours
                .chars()
                .zip(theirs.chars())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let show = |t: &str| {
                t.chars()
                    .skip(at.saturating_sub(5))
                    .take(30)
                    .collect::<String>()
            };
            panic!(
                "block {lo:#x} differs at char {at}: ours {:?}, python {:?}",
                show(&ours),
                show(&theirs)
            );
        }
        lo = hi;
    }
}

#[test]
fn the_top_level_members_keep_their_text() {
    let text = r#" {"code": "x = 1", "g": {"a": NaN, "b": [1, 2]}, "n": 123456789012345678901234567890, "s": "\ud800", "code": null} "#;
    let (top, members) = json::top_level(text).unwrap();
    assert_eq!(top.kind, Kind::Object);
    assert_eq!(top.text, text.trim());
    let got: Vec<(String, &str, Kind)> = members
        .iter()
        .map(|m| (m.key.to_string_lossy(), m.value.text, m.value.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("code".into(), "\"x = 1\"", Kind::String),
            ("g".into(), r#"{"a": NaN, "b": [1, 2]}"#, Kind::Object),
            ("n".into(), "123456789012345678901234567890", Kind::Int),
            ("s".into(), "\"\\ud800\"", Kind::String),
            ("code".into(), "null", Kind::Null),
        ]
    );
    let lone = json::decode_string(members[3].value.text);
    assert_eq!(lone.as_str(), None);
    assert_eq!(lone.code_points().collect::<Vec<_>>(), [0xD800]);
    assert_eq!(
        json::decode_string(r#""a\"\\\/\n\u00e9\ud83c\udf89""#).as_str(),
        Some("a\"\\/\né🎉")
    );
    let (top, members) = json::top_level("[1, {\"a\": 2}]").unwrap();
    assert_eq!((top.kind, members.len()), (Kind::Array, 0));
    // Deep nesting is refused without a crash, like Python's RecursionError.
    let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    assert_eq!(
        json::loads_check(&deep).unwrap_err().to_string(),
        "maximum recursion depth exceeded while decoding a JSON array from a unicode string"
    );
}
