//! Runs one command under codejail-proc's limits and prints the outcome.
//!
//! ```text
//! cargo run -p codejail-proc --example run -- /usr/bin/python3 -c 'print(1)'
//! ```
//!
//! Limits: 1 CPU second, 5 wall-clock seconds, 1 MiB of output per stream,
//! no core dumps. The program's stdout and stderr are passed through, then a
//! summary line goes to stderr.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use codejail_proc::{Limits, Spawn};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: run PROGRAM [ARG]...");
        return ExitCode::from(2);
    };
    let mut spawn = Spawn::new(program);
    spawn
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .limits(Limits {
            cpu_secs: Some(1),
            wall: Some(Duration::from_secs(5)),
            ..Limits::default()
        });
    match spawn.run() {
        Ok(out) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            eprintln!(
                "status={} killed_by={} wall={:?} cpu={:?} max_rss={}KiB truncated={:?} layers={}",
                out.status,
                out.killed_by.map_or("none", |r| r.as_str()),
                out.wall,
                out.cpu,
                out.max_rss_kib,
                out.truncated,
                out.layers,
            );
            ExitCode::from(u8::try_from(out.status).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("run: {e}");
            ExitCode::from(3)
        }
    }
}
