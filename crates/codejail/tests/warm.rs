//! The warm pool holds: its channel has no name, a call cannot change its
//! zygote, nothing of a call survives it, a pool never hangs its callers,
//! and it comes back after its zygotes are killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codejail::{CallOptions, JailCode, LimitName, Warm, WarmError, WarmOptions};

mod common;
use common::pool;

fn run(warm: &Warm, code: &str) -> codejail::JailResult {
    let r = warm.jail_code(&JailCode::code(code)).unwrap();
    assert!(r.warm, "the call went cold");
    r
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The pool's directory: the caller's, closed to others; it holds no
/// socket file (the channel is a socketpair: the zygote's stdin is a unix
/// socket with no name, which no other process can connect to).
#[test]
fn the_channel_has_no_name_and_the_pool_is_private() {
    let Some((parent, warm)) = pool("warm-private", WarmOptions::new(1)) else {
        return;
    };
    let dir = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("codejail-warm-"))
        .expect("the pool's directory");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(
        meta.mode() & 0o007,
        0,
        "others may enter the pool: {:o}",
        meta.mode()
    );
    let mut sockets = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if std::os::unix::fs::FileTypeExt::is_socket(&t) {
                sockets.push(e.path());
            }
        }
    }
    assert_eq!(sockets, Vec::<std::path::PathBuf>::new());
    // The zygote's stdin: a socket whose inode /proc/net/unix lists with
    // no path.
    let zygotes = warm.zygote_pids();
    assert_eq!(zygotes.len(), 1, "{zygotes:?}");
    let zygote = zygotes[0];
    let link = std::fs::read_link(format!("/proc/{zygote}/fd/0")).unwrap();
    let inode = link
        .to_string_lossy()
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the zygote's stdin is {}", link.display()));
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let row = table
        .lines()
        .find(|l| l.split_whitespace().nth(6) == Some(inode.as_str()))
        .expect("the zygote's socket in /proc/net/unix");
    assert_eq!(
        row.split_whitespace().count(),
        7,
        "the socket has a name: {row}"
    );
    drop(warm);
}

const TAMPER: &str = r#"
import ctypes, os, resource
libc = ctypes.CDLL(None, use_errno=True)
zygote = os.getppid()
results = []
def attempt(what, f):
    try:
        f()
        results.append(what + ": done")
    except OSError as e:
        results.append(what + ": " + os.strerror(e.errno))
def ioprio():
    if libc.syscall(251, 1, zygote, (3 << 13) | 7) != 0:  # ioprio_set(IOPRIO_WHO_PROCESS, zygote, IDLE)
        raise OSError(ctypes.get_errno(), "ioprio_set")
attempt("prlimit", lambda: resource.prlimit(zygote, resource.RLIMIT_NOFILE, (7, 7)))
attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, zygote, 19))
attempt("setpriority of the uid", lambda: os.setpriority(os.PRIO_USER, 0, 19))
attempt("sched_setscheduler", lambda: os.sched_setscheduler(zygote, os.SCHED_IDLE, os.sched_param(0)))
attempt("sched_setaffinity", lambda: os.sched_setaffinity(zygote, {0}))
attempt("ioprio_set", ioprio)
print("\n".join(results))
"#;

const CHECK: &str = r#"
import os, resource
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 7, os.getpriority(os.PRIO_PROCESS, 0),
      os.sched_getscheduler(0) == os.SCHED_OTHER, len(os.sched_getaffinity(0)) == os.cpu_count())
"#;

/// A call cannot act on its zygote by pid (seccomp refuses each call on
/// another process, with EPERM), and the next call on the same zygote has
/// the configured limits and scheduling. Shown able to fail: the same
/// program run by a plain child of a plain parent (no codejail) changes
/// its parent.
#[test]
fn a_call_cannot_change_its_zygote_for_the_next_one() {
    let Some((_parent, warm)) = pool("warm-tamper", WarmOptions::new(1)) else {
        return;
    };
    let tamper = run(&warm, TAMPER);
    let out = text(&tamper.stdout);
    for line in out.lines() {
        assert!(
            line.ends_with(": Operation not permitted"),
            "{line}\n{out}\n{}",
            text(&tamper.stderr)
        );
    }
    assert_eq!(out.lines().count(), 6, "{out}\n{}", text(&tamper.stderr));
    // The next call sees what this test's own process has: the nice value
    // and the CPUs are inherited from whoever started the tests (a CI
    // runner may start them at nice 19), so the same check run outside the
    // jail is the expectation.
    let expected = std::process::Command::new("/usr/bin/python3")
        .args(["-c", CHECK])
        .output()
        .unwrap();
    let check = run(&warm, CHECK);
    assert_eq!(
        text(&check.stdout),
        text(&expected.stdout),
        "{}",
        text(&check.stderr)
    );
    assert!(
        text(&expected.stdout).starts_with("True "),
        "{}",
        text(&expected.stderr)
    );
    assert_eq!(warm.health().restarts, 0);

    // Without the filter: a child of a parent of its own uid does it. (Not
    // the PRIO_USER attempt: outside a jail it would renice every process
    // of this uid on the machine.)
    let on_parent_only: String = TAMPER
        .lines()
        .filter(|l| !l.contains("PRIO_USER"))
        .map(|l| format!("{l}\n"))
        .collect();
    let outside = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!(
                "import subprocess, sys\nsubprocess.run([sys.executable, '-c', {on_parent_only:?}])"
            ),
        ])
        .output()
        .unwrap();
    let out = text(&outside.stdout);
    assert!(
        out.contains("prlimit: done") && out.contains("setpriority: done"),
        "{out}"
    );
}

/// Nothing of a call outlives it: a stopped child, a thread and a child
/// blocked in a system call, a child that left the session; and a call
/// that spends its memory and descriptors leaves the next one whole.
#[test]
fn nothing_of_a_call_survives_it() {
    let Some((_parent, warm)) = pool("warm-leftovers", WarmOptions::new(1)) else {
        return;
    };
    let r = run(
        &warm,
        "import os, signal, threading, time\n\
         if os.fork() == 0:\n    os.kill(os.getpid(), signal.SIGSTOP)\n    os._exit(0)\n\
         if os.fork() == 0:\n    os.setsid()\n    os.read(os.pipe()[0], 1)\n    os._exit(0)\n\
         threading.Thread(target=lambda: time.sleep(60), daemon=True).start()\n\
         fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(200)]\n\
         hog = bytearray(200 << 20)\n\
         print('left')\n",
    );
    assert_eq!(text(&r.stdout), "left\n", "{}", text(&r.stderr));
    assert_eq!(warm.stray_processes(), 0);
    let next = run(
        &warm,
        "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 200)",
    );
    assert_eq!(text(&next.stdout), "True\n");
    assert_eq!(warm.health().restarts, 0);
}

/// A pool never hangs its callers: a second caller of a busy pool of one
/// gets `Busy` within the take timeout.
#[test]
fn a_busy_pool_answers_within_its_bound() {
    let mut options = WarmOptions::new(1);
    options.take_timeout = Duration::from_millis(500);
    let Some((_parent, warm)) = pool("warm-busy", options) else {
        return;
    };
    let warm = Arc::new(warm);
    let busy = {
        let warm = warm.clone();
        std::thread::spawn(move || {
            warm.jail_code(&JailCode {
                call: CallOptions {
                    limits: vec![(LimitName::Realtime, 10)],
                    ..CallOptions::default()
                },
                ..JailCode::code("import time; time.sleep(3)")
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let err = warm.jail_code(&JailCode::code("print(1)")).unwrap_err();
    assert!(
        matches!(err, codejail::JailError::Warm(WarmError::Busy { .. })),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    busy.join().unwrap().unwrap();
}

/// A call waiting for an interpreter of a busy pool stops waiting when it
/// is cancelled (a server shutting down cancels its calls), rather than at
/// the end of its take timeout: `Cancelled`, and nothing of it ran. The
/// busy call is not touched. Without the cancel in the wait, the call
/// waits for the busy one to end, seconds after the cancel.
#[test]
fn support_a_call_waiting_for_an_interpreter_ends_when_cancelled() {
    let Some((_parent, warm)) = pool("warm-wait-cancel", WarmOptions::new(1)) else {
        return;
    };
    let cancel = codejail::Cancel::new().unwrap();
    let mut busy = JailCode::code("import time; time.sleep(4); print('busy')");
    busy.call.limits = vec![(LimitName::Realtime, 20)];
    let mut waiting = JailCode::code("print('ran')");
    waiting.call.cancel = Some(cancel.clone());
    std::thread::scope(|s| {
        let busy = s.spawn(|| warm.jail_code(&busy));
        until_taken(&warm, 0, "the busy call");
        let waiting = s.spawn(|| warm.jail_code(&waiting));
        // Time for the call to wait for the busy zygote; a cancel before
        // it waits also ends it with `Cancelled`, so a slow start cannot
        // make this test fail, only miss the wait.
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel();
        let cancelled = Instant::now();
        let result = waiting.join().unwrap();
        let took = cancelled.elapsed();
        assert!(
            matches!(result, Err(codejail::JailError::Cancelled)),
            "{result:?}"
        );
        assert!(
            took < Duration::from_secs(1),
            "it ended {took:?} after the cancel"
        );
        let busy = busy.join().unwrap().unwrap();
        assert_eq!(text(&busy.stdout), "busy\n", "{busy:?}");
    });
    assert_eq!(warm.health().failures, 0, "{:?}", warm.health());
}

/// Every zygote of the pool killed from outside: the next call finds them
/// gone, the pool starts new ones, and the call is served within the take
/// timeout; nothing of the dead ones is left.
#[test]
fn a_pool_whose_zygotes_are_killed_recovers() {
    let Some((parent, warm)) = pool("warm-killed", WarmOptions::new(2)) else {
        return;
    };
    assert_eq!(text(&run(&warm, "print(1)").stdout), "1\n");
    let dir = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("codejail-warm-"))
        .unwrap();
    let token = dir.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&token) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(text(&run(&warm, "print(2)").stdout), "2\n");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(warm.health().restarts >= 1, "{:?}", warm.health());
    // The dead zygotes' homes are gone: the pool holds its live zygotes'.
    let homes = std::fs::read_dir(&dir).unwrap().count();
    assert!(homes <= 2, "{homes} entries in the pool");
    drop(warm);
    assert!(!dir.exists(), "the pool's directory outlived it");
}

/// A zygote retires after its share of calls and is replaced.
#[test]
fn a_zygote_retires_after_its_calls() {
    let mut options = WarmOptions::new(1);
    options.max_calls = 2;
    let Some((_parent, warm)) = pool("warm-retire", options) else {
        return;
    };
    for i in 0..5 {
        assert_eq!(
            text(&run(&warm, &format!("print({i})")).stdout),
            format!("{i}\n")
        );
    }
    assert!(warm.health().restarts >= 2, "{:?}", warm.health());
}

/// One caller's calls in a row go to the interpreter idle longest, not to
/// the one just given back (which may still be forking its next worker).
/// Which interpreter served a call shows in `hash('abc')`: every call of
/// a zygote has its zygote's hash secret, and two zygotes have two.
#[test]
fn support_calls_in_a_row_go_to_the_interpreter_idle_longest() {
    let Some((_parent, warm)) = pool("warm-fifo", WarmOptions::new(2)) else {
        return;
    };
    let served: Vec<String> = (0..4)
        .map(|_| text(&run(&warm, "print(hash('abc'))").stdout))
        .collect();
    assert_ne!(served[0], served[1], "{served:?}");
    assert_eq!(served[0], served[2], "{served:?}");
    assert_eq!(served[1], served[3], "{served:?}");
    assert_eq!(warm.health().restarts, 0, "{:?}", warm.health());
}

/// A call's wall-clock limit starts when it has its interpreter: a call
/// that waited for one behind a longer call in a busy pool runs its
/// whole second, rather than being killed for the time it waited.
#[test]
fn support_a_calls_wall_limit_starts_when_it_has_an_interpreter() {
    let Some((_parent, warm)) = pool("warm-queue-wall", WarmOptions::new(1)) else {
        return;
    };
    let warm = Arc::new(warm);
    let long = {
        let warm = warm.clone();
        std::thread::spawn(move || {
            let mut req = JailCode::code("import time; time.sleep(1.5)");
            req.call.limits = vec![(LimitName::Realtime, 5)];
            warm.jail_code(&req).unwrap()
        })
    };
    let taken = Instant::now();
    while warm.health().idle != 0 {
        assert!(
            taken.elapsed() < Duration::from_secs(10),
            "the first call never took the interpreter"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let waited = Instant::now();
    let mut req = JailCode::code("print(1)");
    req.call.limits = vec![(LimitName::Realtime, 1)];
    let r = warm.jail_code(&req).unwrap();
    assert!(
        waited.elapsed() > Duration::from_millis(1200),
        "it did not wait: {:?}",
        waited.elapsed()
    );
    assert_eq!((r.status, r.killed_by), (0, None), "{}", text(&r.stderr));
    assert_eq!(text(&r.stdout), "1\n");
    assert!(r.wall < Duration::from_secs(1), "{:?}", r.wall);
    let first = long.join().unwrap();
    assert_eq!((first.status, first.killed_by), (0, None));
}

/// The first interpreters of a pool retire in turn, not together: of two
/// with four calls each, the second started retires after two. Calls in a
/// row alternate (above), so it retires at the fourth call, and the first
/// is still serving; without the turn both would retire at the seventh
/// and eighth calls, one after the other.
#[test]
fn support_the_first_interpreters_retire_in_turn() {
    let mut options = WarmOptions::new(2);
    options.max_calls = 4;
    let Some((_parent, warm)) = pool("warm-turns", options) else {
        return;
    };
    let restarts: Vec<u64> = (0..4)
        .map(|i| {
            assert_eq!(
                text(&run(&warm, &format!("print({i})")).stdout),
                format!("{i}\n")
            );
            warm.health().restarts
        })
        .collect();
    assert_eq!(restarts, [0, 0, 0, 1], "{:?}", warm.health());
}

/// Sends `signal` to process `pid`.
fn signal(pid: i32, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), signal).unwrap();
}

/// Waits (20 s at most) until at most `still_idle` zygotes of `warm` are
/// idle: a call has taken the one it waits for (`what`, in the failure's
/// words).
fn until_taken(warm: &Warm, still_idle: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while warm.health().idle > still_idle {
        assert!(Instant::now() < deadline, "{what} never took a zygote");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills the pool's one `zygote`, stopped, once a call has taken it (none
/// is idle) and had a moment to send: before the send, the send fails;
/// after it, the request waits unread. Either way the call was given to
/// this zygote, which never read it.
fn kill_once_sent(warm: &Warm, zygote: i32) {
    until_taken(warm, 0, "the call");
    std::thread::sleep(Duration::from_millis(50));
    signal(zygote, rustix::process::Signal::KILL);
}

/// A pool of one (`pool`) whose zygote has served a call, and that
/// zygote's pid.
fn served_once(name: &str) -> Option<(tempfile::TempDir, Warm, i32)> {
    let (parent, warm) = pool(name, WarmOptions::new(1))?;
    assert_eq!(text(&run(&warm, "print(1)").stdout), "1\n");
    let zygote = warm.zygote_pids()[0];
    Some((parent, warm, zygote))
}

/// A call of `code` whose stdin is a file `marks` in `dir`, open to
/// append: the code leaves a mark there with `os.write(0, ...)`, to show
/// whether (and how often) it ran. FSIZE is raised: the jail's default (0,
/// as in CodeJail) refuses every write to a file.
fn marking(dir: &std::path::Path, code: &str) -> (JailCode, std::path::PathBuf) {
    let marks = dir.join("marks");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&marks)
        .unwrap();
    let mut request = JailCode {
        stdin_fd: Some(codejail::StdinFd::new(file.into())),
        ..JailCode::code(code)
    };
    request.call.limits = vec![(LimitName::Realtime, 20), (LimitName::Fsize, 1 << 20)];
    (request, marks)
}

/// A zygote that dies before it has read a call (killed from outside in
/// the moment between the pool's look at it and the call's sending) has
/// run nothing of it: the call goes to another interpreter rather than
/// failing, with its stdin descriptor. The zygote is stopped, so that the
/// call waits in its channel, unread, then killed. Without the second try
/// the call fails (`WarmError::Lost`, the channel reset).
#[test]
fn support_a_call_its_interpreter_never_read_goes_to_another() {
    let Some((_parent, warm, zygote)) = served_once("warm-unread") else {
        return;
    };
    let (r, w) = rustix::pipe::pipe().unwrap();
    rustix::io::write(&w, b"from the caller").unwrap();
    drop(w);
    let request = JailCode {
        stdin_fd: Some(codejail::StdinFd::new(r)),
        ..JailCode::code("import sys; print(sys.stdin.read())")
    };
    signal(zygote, rustix::process::Signal::STOP);
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| warm.jail_code(&request));
        kill_once_sent(&warm, zygote);
        call.join().unwrap()
    });
    let result = result.unwrap_or_else(|e| panic!("the call failed: {e}"));
    assert!(result.warm, "the call went cold");
    assert_eq!(text(&result.stdout), "from the caller\n");
    let health = warm.health();
    assert_eq!(health.failures, 0, "{health:?}");
    assert!(health.restarts >= 1, "{health:?}");
    assert!(
        !warm.zygote_pids().contains(&zygote),
        "the call went to the killed zygote"
    );
}

/// A call its zygote has read may have run: it is never sent again, even
/// when the zygote dies before it answers (the call fails with
/// `WarmError::Lost`). The call's stdin is a file it appends to when its
/// code starts; the zygote is killed once that is seen. Sent again, the
/// code would run twice (two marks) and the call come back with status 0.
#[test]
fn deny_a_call_its_interpreter_read_is_sent_again() {
    let Some((_parent, warm, zygote)) = served_once("warm-read") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (request, marks) = marking(
        dir.path(),
        "import os, time; os.write(0, b'x'); time.sleep(10)",
    );
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| warm.jail_code(&request));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&marks).unwrap().len() == 0 {
            assert!(Instant::now() < deadline, "the call's code never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(zygote, rustix::process::Signal::KILL);
        call.join().unwrap()
    });
    match result {
        Err(codejail::JailError::Warm(WarmError::Lost(why))) => {
            assert!(!why.is_empty());
        }
        other => panic!("expected a lost call, got {other:?}"),
    }
    assert_eq!(std::fs::read(&marks).unwrap(), b"x", "the code ran again");
    assert_eq!(warm.health().failures, 1, "{:?}", warm.health());
}

/// A call sent to another interpreter keeps its wall-clock limit and its
/// `wall` from when it first had one: the failed try counts. Here the
/// first zygote holds the call, unread, for 1.5 s of its 2 s; the second
/// runs it, and the limit ends it half a second later. Counted again from
/// the second try, the call would end by itself with status 0 and a
/// `wall` of about a second.
#[test]
fn support_a_call_sent_again_keeps_its_wall_limit() {
    let Some((_parent, warm, zygote)) = served_once("warm-again-wall") else {
        return;
    };
    let mut request = JailCode::code("import time; time.sleep(1)");
    request.call.limits = vec![(LimitName::Realtime, 2)];
    signal(zygote, rustix::process::Signal::STOP);
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| warm.jail_code(&request));
        std::thread::sleep(Duration::from_millis(1500));
        signal(zygote, rustix::process::Signal::KILL);
        call.join().unwrap()
    });
    let result = result.unwrap_or_else(|e| panic!("the call failed: {e}"));
    assert_eq!(
        result.killed_by,
        Some(codejail::KillReason::Wall),
        "{result:?}"
    );
    assert!(result.wall >= Duration::from_millis(1900), "{result:?}");
}

/// A call its first interpreter never read, cancelled while it waits for
/// another, ends `Cancelled` and never runs: its code would append a mark
/// to its stdin file. The pool's one zygote is stopped, then killed once
/// the call has sent to it; the cancel comes once the call has given that
/// zygote up, while the pool starts another. Sent on regardless, the call
/// would run there and come back killed by the cancel, or with a mark.
#[test]
fn support_a_call_sent_again_and_cancelled_meanwhile_never_runs() {
    let Some((_parent, warm, zygote)) = served_once("warm-again-cancel") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cancel = codejail::Cancel::new().unwrap();
    let (mut request, marks) = marking(dir.path(), "import os; os.write(0, b'x')");
    request.call.cancel = Some(cancel.clone());
    let restarts = warm.health().restarts;
    signal(zygote, rustix::process::Signal::STOP);
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| warm.jail_code(&request));
        kill_once_sent(&warm, zygote);
        let deadline = Instant::now() + Duration::from_secs(20);
        while warm.health().restarts == restarts {
            assert!(
                Instant::now() < deadline,
                "the call never gave the zygote up"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        cancel.cancel();
        call.join().unwrap()
    });
    assert!(
        matches!(result, Err(codejail::JailError::Cancelled)),
        "{result:?}"
    );
    assert_eq!(std::fs::metadata(&marks).unwrap().len(), 0, "the call ran");
    assert_eq!(warm.health().failures, 0, "{:?}", warm.health());
}

/// A waiting call that leaves the line (cancelled) while the zygote it was
/// woken for comes back passes the wake on: the call behind it, which has
/// no cancel handle and sleeps until woken, is served at once, not at the
/// end of its take timeout with the zygote idle all along. Each round:
/// the pool's zygote held by a call reading its stdin, three cancellable
/// calls and one other waiting, then the three cancelled and the holder
/// released together. Waking one call per zygote given back, a cancelled
/// call took the wake and the other slept on (a reviewer saw 15 of 40
/// rounds wait 3 s).
#[test]
fn support_a_call_that_leaves_the_line_wakes_the_next() {
    let mut options = WarmOptions::new(1);
    options.take_timeout = Duration::from_secs(3);
    let Some((_parent, warm)) = pool("warm-line-wake", options) else {
        return;
    };
    for round in 0..10u64 {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut holder = JailCode {
            stdin_fd: Some(codejail::StdinFd::new(r)),
            ..JailCode::code("import os; os.read(0, 1)")
        };
        holder.call.limits = vec![(LimitName::Realtime, 20)];
        let cancel = codejail::Cancel::new().unwrap();
        let mut leaving = JailCode::code("print('ran')");
        leaving.call.cancel = Some(cancel.clone());
        let staying = JailCode::code("print('served')");
        std::thread::scope(|s| {
            let holder = s.spawn(|| warm.jail_code(&holder));
            until_taken(&warm, 0, "the holder");
            let leaving: Vec<_> = (0..3)
                .map(|_| s.spawn(|| warm.jail_code(&leaving)))
                .collect();
            std::thread::sleep(Duration::from_millis(30));
            let staying = s.spawn(|| warm.jail_code(&staying));
            std::thread::sleep(Duration::from_millis(round % 8));
            cancel.cancel();
            let released = Instant::now();
            rustix::io::write(&w, b"x").unwrap();
            holder.join().unwrap().unwrap();
            for call in leaving {
                let result = call.join().unwrap();
                assert!(
                    matches!(result, Err(codejail::JailError::Cancelled)),
                    "{result:?}"
                );
            }
            let served = staying.join().unwrap().unwrap();
            let took = released.elapsed();
            assert_eq!(text(&served.stdout), "served\n");
            assert!(
                took < Duration::from_secs(1),
                "round {round}: served {took:?} after the zygote was given back"
            );
        });
    }
}

/// Calls that carry a cancel handle (never cancelled) and calls that do
/// not, waiting on one busy zygote, are served alike: first come, first
/// served. A call that looks at its handle between waits of 10 ms went to
/// the back of the waiters at each look, and the calls without one took
/// nearly every zygote given back (a reviewer measured 43 calls, 18 of
/// them `Busy`, against 1,118 in 30 s).
#[test]
fn support_calls_with_and_without_a_cancel_handle_are_served_alike() {
    let mut options = WarmOptions::new(1);
    options.take_timeout = Duration::from_secs(3);
    let Some((_parent, warm)) = pool("warm-line-fair", options) else {
        return;
    };
    let end = Instant::now() + Duration::from_secs(4);
    let (with, without) = std::thread::scope(|s| {
        let caller = |handle: bool| {
            let warm = &warm;
            s.spawn(move || {
                let (mut served, mut busy) = (0u32, 0u32);
                while Instant::now() < end {
                    let mut call = JailCode::code("import time; time.sleep(0.02)");
                    call.call.limits = vec![(LimitName::Realtime, 20)];
                    if handle {
                        call.call.cancel = Some(codejail::Cancel::new().unwrap());
                    }
                    match warm.jail_code(&call) {
                        Ok(r) => {
                            assert_eq!(r.status, 0, "{r:?}");
                            served += 1;
                        }
                        Err(codejail::JailError::Warm(WarmError::Busy { .. })) => busy += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (served, busy)
            })
        };
        let with: Vec<_> = (0..3).map(|_| caller(true)).collect();
        let without: Vec<_> = (0..3).map(|_| caller(false)).collect();
        let sum = |hs: Vec<std::thread::ScopedJoinHandle<'_, (u32, u32)>>| {
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        (sum(with), sum(without))
    });
    let (few, many) = (with.0.min(without.0), with.0.max(without.0));
    assert!(
        few * 3 >= many * 2 && with.1 == 0 && without.1 == 0,
        "served (busy): with a cancel handle {} ({}), without {} ({})",
        with.0,
        with.1,
        without.0,
        without.1
    );
}

/// Calls sent again keep their places in the line: they came before the
/// calls that queued behind them while their zygotes held them unread,
/// and go first, in their own order. The pool's two zygotes are stopped
/// with a call sent to each (A, then B), three more calls queue (a second
/// each), then both zygotes are killed. Sent to the back of the line, A
/// waited for the three and its wall limit, counted from its first try,
/// ended it before it ran (marks `B C D`); put at the front as they came
/// back, B often went before A.
#[test]
fn support_calls_sent_again_keep_their_places_in_line() {
    let mut options = WarmOptions::new(2);
    options.take_timeout = Duration::from_secs(20);
    let Some((_parent, warm)) = pool("warm-again-place", options) else {
        return;
    };
    assert_eq!(text(&run(&warm, "print(1)").stdout), "1\n");
    let zygotes = warm.zygote_pids();
    assert_eq!(zygotes.len(), 2, "{zygotes:?}");
    let dir = tempfile::tempdir().unwrap();
    // The same file, opened again for each call: one line of marks.
    let sent_again: Vec<JailCode> = ["A", "B"]
        .iter()
        .map(|n| {
            let (mut call, _) = marking(dir.path(), &format!("import os; os.write(0, b'{n} ')"));
            call.call.limits = vec![(LimitName::Realtime, 4), (LimitName::Fsize, 1 << 20)];
            call
        })
        .collect();
    let later: Vec<JailCode> = ["C", "D", "E"]
        .iter()
        .map(|n| {
            let code = format!("import os, time; os.write(0, b'{n} '); time.sleep(1)");
            marking(dir.path(), &code).0
        })
        .collect();
    for &zygote in &zygotes {
        signal(zygote, rustix::process::Signal::STOP);
    }
    let results = std::thread::scope(|s| {
        let mut calls = Vec::new();
        for (i, call) in sent_again.iter().enumerate() {
            calls.push(s.spawn(|| warm.jail_code(call)));
            until_taken(&warm, 1 - i, &format!("call {i}"));
        }
        std::thread::sleep(Duration::from_millis(50));
        for call in &later {
            calls.push(s.spawn(|| warm.jail_code(call)));
            std::thread::sleep(Duration::from_millis(30));
        }
        for &zygote in &zygotes {
            signal(zygote, rustix::process::Signal::KILL);
        }
        calls
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let order = std::fs::read_to_string(dir.path().join("marks")).unwrap();
    for result in results {
        let result = result.unwrap_or_else(|e| panic!("a call failed: {e} (order {order:?})"));
        assert_eq!(
            (result.status, result.killed_by),
            (0, None),
            "{result:?} (order {order:?})"
        );
    }
    assert!(order.starts_with("A B "), "{order:?}");
}
