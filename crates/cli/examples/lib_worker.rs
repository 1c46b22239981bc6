//! The Rust library's cold `safe_exec`, one call per line, for
//! `python/bench/bench.py`: a long-lived process (its probe and its jail
//! made once, as a Rust caller's are) that answers each `go` line on stdin
//! with `ok` after one `Jail::safe_exec("x = 1 + 1")`, so that the bench
//! can time it next to the Python package in the same run.
//!
//! ```text
//! cargo build --release -p codejail-cli --example lib_worker
//! printf 'go\ngo\n' | target/release/examples/lib_worker /usr/bin/python3
//! ```

use std::io::{BufRead, Write};

fn main() {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/usr/bin/python3".into());
    let jail =
        codejail::Jail::new("python", codejail::JailConfig::new(bin)).expect("configure the jail");
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        if line.expect("read a line").trim() != "go" {
            continue;
        }
        let mut globals = serde_json::Map::new();
        jail.safe_exec(
            "x = 1 + 1",
            &mut globals,
            &codejail::SafeExecOptions::default(),
        )
        .expect("safe_exec");
        assert_eq!(globals["x"], 2);
        writeln!(out, "ok")
            .and_then(|()| out.flush())
            .expect("answer");
    }
}
