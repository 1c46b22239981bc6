//! `codejail api`: the machine interface. One JSON request on stdin, one
//! JSON response on stdout, for programs (the Python package `codejail-rs`
//! drives every call through it), not for people.
//!
//! # Protocol, version 1
//!
//! The request is one JSON object, at most 256 MiB (read to the end of
//! stdin). Every field but `v`, `op` and `jail.bin` may be left out.
//!
//! ```text
//! {
//!   "v": 1,
//!   "op": "jail_code" | "safe_exec",
//!   "jail": {
//!     "name": "python",                  label in logs and messages
//!     "bin": "/usr/bin/python3",         the program (a bare name is looked up on PATH)
//!     "user": "sandbox" | null,          sandbox user, name or uid (root callers)
//!     "lang": {"name": "python3", "args": ["-E", "-B"], "safe_exec": true},
//!                                        default: python3; "safe_exec": true needs
//!                                        exactly python3's args
//!     "policy": "auto" | "unsafe" | "require:landlock,seccomp",
//!     "apparmor_profile": null, "jail_parent": null, "allow_root_user": false,
//!     "allow_exec": false                the code may start other programs
//!   },
//!   "code": "print(1)" | null,           written as `jailed_code`, argv then starts with it
//!   "argv": ["a", "b"],
//!   "stdin_b64": "<base64>",             jail_code only
//!   "files": ["/path/file", "/path/dir"],  copied in (links stay links)
//!   "extra_files": [["name", "<base64>"]],
//!   "python_path": ["lib.zip"],          safe_exec only: staged like files unless an
//!                                        extra file has that name, added to sys.path
//!   "globals_json": "{\"x\": 1}",        safe_exec only: the globals, as the TEXT of one
//!                                        object in Python's JSON dialect (NaN, Infinity,
//!                                        integers of any size, \ud800 escapes)
//!   "limits": {"cpu": 1, "realtime": 1, "vmem": 0, "fsize": 0, "nproc": 15},
//!                                        the effective limits, applied exactly; a limit
//!                                        left out has its built-in default (see the
//!                                        README's table); names are case-insensitive
//!   "slug": "course-42/p1" | null,
//!   "unsafe": false                      no confinement (not_safe_exec), logged loudly
//! }
//! ```
//!
//! The response, when the request was understood (exit code 0, also when the
//! code failed or was killed):
//!
//! ```text
//! {
//!   "v": 1,
//!   "status": 0,                         exit code, or minus the signal (CodeJail's);
//!                                        null when safe_exec's result was unreadable
//!   "stdout_b64": "...", "stderr_b64": "...",
//!   "killed_by": null | "realtime" | "cpu" | "memory" | "output" | "disk" | "cancelled",
//!   "truncated": {"stdout": false, "stderr": false},
//!   "wall_ms": 17, "cpu_ms": 12, "max_rss_kib": 9000, "layers": ["identity", ...],
//!   "landlock": "full" | "partial" | null,  how much of what codejail asks of
//!                                        Landlock the kernel enforced (null: no Landlock)
//!   "pid": 1234,                         the run's supervisor (as in "Killing process N")
//!   "jail_dir": "/tmp/codejail-.../codejail-...",  where it ran (removed since)
//!   "globals_json": "{\"x\": 2}",        safe_exec that succeeded: json_safe(namespace)
//!                                        as Python's json.dumps writes it
//!   "codejail_message": "Couldn't execute jailed code: stdout: b'', stderr: b'...' with status code: 1",
//!   "message": "ValueError: ...",        safe_exec that failed: CodeJail's exception text,
//!                                        and the short one (last traceback line, kill)
//!   "logs": [{"level": "warn", "message": "Killing process 1234: ...", "fields": {...}}]
//! }
//! ```
//!
//! No request at all (stdin closed before its first byte) is not an
//! error: the command exits 0 and prints nothing. A caller may start the
//! command ahead of its next call (it learns what the machine offers
//! meanwhile) and close its stdin if that call never comes.
//!
//! A request that is not understood (malformed JSON, an unknown field or
//! op, a limit out of range, a bad file name, a missing file, globals that
//! are not one object, a larger request than 256 MiB) exits 2; a jail that
//! cannot be set up (interpreter missing, unknown user, a required layer
//! missing, no filesystem confinement) exits 3. Either way stdout holds
//! `{"v": 1, "error": "<one line>", "kind": "usage" | "setup"}`.
//!
//! SIGTERM, SIGINT and SIGHUP end the run, remove its jail and exit 128 +
//! the signal, after the response (`killed_by: "cancelled"`); before a
//! request has come, they exit 128 + the signal at once. The command
//! also asks the kernel for SIGTERM when the process that started it dies,
//! so an abandoned call ends its run. `--config` plays no part: the
//! request says everything.
//!
//! Each request gets a private parent directory for its jail,
//! `<jail_parent or $TMPDIR>/codejail-<pid>.<start>-api` (mode 0711, named
//! so that `codejail gc` removes it after a killed command), which is how
//! the response knows `jail_dir`. The one under `$TMPDIR` is made while
//! the command waits for its request.
//!
//! Here: the command and its refusals; `request`: the request read and
//! checked; `answer`: the run and its response; `parent`: the request's
//! jail parent; `capture`: the run's log lines kept for the response.

mod answer;
mod capture;
mod parent;
mod request;

use base64::Engine;
use codejail::JailError;
use serde_json::json;

use answer::answer;
use parent::Parent;
use request::read_request;

/// The protocol version this command speaks.
const VERSION: u64 = 1;
/// The largest request read.
const MAX_REQUEST: u64 = 256 << 20;

/// Why a request got no answer: `usage` (exit 2) or `setup` (exit 3).
struct Refusal {
    code: u8,
    message: String,
}

fn usage(message: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 2,
        message: one_line(&message.to_string()),
    }
}

fn setup(message: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 3,
        message: one_line(&message.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn jail_refusal(e: JailError) -> Refusal {
    match e {
        JailError::NoSafeExec { .. } => usage(e),
        e if e.is_bad_input() => usage(e),
        e => setup(e),
    }
}

/// `codejail api`: answers one request; the exit code is 0, 2 or 3.
pub(crate) fn api(stop: &crate::Stop) -> u8 {
    // The caller going away ends the run (SIGTERM, which `Stop` handles).
    // A parent that died before this line is seen by the pipe instead.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    // What this machine offers is asked of the kernel while the request is
    // read and parsed (a few namespaces tried; about 2 ms).
    let probe = std::thread::spawn(|| {
        codejail::Probe::get();
    });
    // The usual jail parent is made while waiting too.
    let mut ready = Parent::create(None).ok();
    let ready_path = ready.as_ref().map(|p| p.path.clone());
    let waiting = std::sync::atomic::AtomicBool::new(true);
    let request = std::thread::scope(|scope| {
        // Stopped while waiting for a request (a process started ahead):
        // exit now rather than answer a later request with "cancelled".
        let watcher = scope.spawn(|| {
            while waiting.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(signal) = stop.signal() {
                    if let Some(path) = &ready_path {
                        let _ = std::fs::remove_dir(path);
                    }
                    // Not while the probe runs, which would leave its trial
                    // cgroup: this returns once it is made (a few ms).
                    codejail::Probe::get();
                    std::process::exit(128 + signal);
                }
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
        });
        let request = read_request();
        waiting.store(false, std::sync::atomic::Ordering::SeqCst);
        watcher.thread().unpark();
        request
    });
    // Waited for even when the request is refused and the probe is not
    // needed: exiting while it runs would leave its trial cgroup behind.
    let _ = probe.join();
    let answer = request.and_then(|request| answer(request, stop, &mut ready));
    if let Some(parent) = ready {
        parent.remove();
    }
    match answer {
        // No request at all: a process started ahead of a call that never
        // came (its caller exited). Nothing to answer.
        Err(Refusal { code: 0, .. }) => 0,
        Ok(response) => {
            crate::print_line(&response.to_string());
            0
        }
        Err(Refusal { code, message }) => {
            let kind = if code == 2 { "usage" } else { "setup" };
            let line = json!({"v": VERSION, "error": message, "kind": kind}).to_string();
            crate::print_line(&line);
            code
        }
    }
}

fn b64_decode(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| usage(format!("{what} is not base64: {e}")))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
