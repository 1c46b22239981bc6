//! Integration tests of `codejail-proc`: one row of the limits table each,
//! the setup-error path, I/O, escapes and concurrency.
//!
//! Programs used are present on a fresh machine: `/bin/sh`, `/usr/bin/env`
//! and `/usr/bin/python3`. Timing assertions are ranges wide enough for a
//! loaded two-core machine.

use std::os::fd::AsRawFd;
use std::time::Duration;

use codejail_proc::{FsRules, KillReason, Limits, Outcome, Spawn, SpawnError};

const PY: &str = "/usr/bin/python3";

fn python(code: &str) -> Spawn {
    let mut s = Spawn::new(PY);
    s.args(["-E", "-B", "-c", code]);
    s
}

fn run(spawn: &Spawn) -> Outcome {
    spawn.run().unwrap_or_else(|e| panic!("run failed: {e}"))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8 output")
}

fn with_limits(mut spawn: Spawn, limits: Limits) -> Spawn {
    spawn.limits(limits);
    spawn
}

/// A token no other process on the machine has in its command line.
fn token() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "codejail-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Host pids of the live processes whose command line contains `token`.
/// (A jailed program sees its pid namespace's numbers, not these.)
fn processes_with(token: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(token) {
            found.push(pid);
        }
    }
    found
}

/// A directory the sandbox identity may write to.
fn writable_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn rules_with_rw(dir: &std::path::Path) -> FsRules {
    let mut rules = FsRules::default();
    rules.read_write.push(dir.to_owned());
    rules
}

#[test]
fn exit_code_and_stdout_come_back() {
    let out = run(Spawn::new("/bin/sh").args(["-c", "echo hello; echo oops >&2; exit 3"]));
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.killed_by, None);
    assert!(!out.truncated.stdout && !out.truncated.stderr);
}

#[test]
fn death_by_signal_is_a_negative_status() {
    let out = run(Spawn::new("/bin/sh").args(["-c", "kill -TERM $$"]));
    assert_eq!(out.status, -libc::SIGTERM);
    assert_eq!(out.killed_by, None);
}

#[test]
fn argv_zero_and_arguments_reach_the_program() {
    let out = run(python("import sys; print(sys.argv)")
        .arg("one")
        .arg("two words"));
    assert_eq!(text(&out.stdout), "['-c', 'one', 'two words']\n");
    let out = run(Spawn::new("/bin/sh")
        .arg0("my-name")
        .args(["-c", "echo $0"]));
    assert_eq!(out.stdout, b"my-name\n");
}

#[test]
fn bare_program_names_are_looked_up_in_path() {
    let out = run(Spawn::new("sh").args(["-c", "echo found"]));
    assert_eq!(out.stdout, b"found\n");
}

#[test]
fn cpu_limit_kills_with_sigxcpu() {
    let spawn = with_limits(
        python("while True: pass"),
        Limits {
            cpu_secs: Some(1),
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        },
    );
    let out = run(&spawn);
    assert_eq!(out.status, -libc::SIGXCPU, "stderr: {}", text(&out.stderr));
    assert_eq!(out.killed_by, Some(KillReason::Cpu));
    assert!(out.cpu >= Duration::from_millis(900), "cpu {:?}", out.cpu);
    assert!(out.cpu < Duration::from_secs(5), "cpu {:?}", out.cpu);
}

#[test]
fn wall_limit_kills_a_sleeper() {
    let spawn = with_limits(
        Spawn::new("/bin/sleep").arg("60").clone(),
        Limits {
            wall: Some(Duration::from_secs(1)),
            ..Limits::default()
        },
    );
    let out = run(&spawn);
    assert_eq!(out.status, -libc::SIGKILL);
    assert_eq!(out.killed_by, Some(KillReason::Wall));
    assert!(out.wall >= Duration::from_secs(1), "wall {:?}", out.wall);
    assert!(out.wall < Duration::from_secs(10), "wall {:?}", out.wall);
}

#[test]
fn vmem_limit_makes_allocation_fail() {
    let code = r#"
try:
    x = bytearray(512 * 1024 * 1024)
    print('allocated')
except MemoryError:
    print('MemoryError')
"#;
    let limited = with_limits(
        python(code),
        Limits {
            vmem_bytes: Some(256 << 20),
            ..Limits::default()
        },
    );
    assert_eq!(text(&run(&limited).stdout), "MemoryError\n");
    // The same program without the limit allocates: the limit is what stops it.
    assert_eq!(text(&run(&python(code)).stdout), "allocated\n");
}

#[test]
fn fsize_zero_forbids_writing_files() {
    let dir = writable_dir();
    let code = r#"
import errno
try:
    with open('f', 'w') as f:
        f.write('x' * 10)
    print('wrote')
except OSError as e:
    print(errno.errorcode[e.errno])
"#;
    let mut spawn = with_limits(
        python(code),
        Limits {
            fsize_bytes: Some(0),
            ..Limits::default()
        },
    );
    spawn.cwd(dir.path()).fs_rules(rules_with_rw(dir.path()));
    assert_eq!(text(&run(&spawn).stdout), "EFBIG\n");
    // A cap of 4 bytes lets the file be created but not hold 10 bytes.
    spawn.limits(Limits {
        fsize_bytes: Some(4),
        ..Limits::default()
    });
    assert_eq!(text(&run(&spawn).stdout), "EFBIG\n");
    spawn.limits(Limits::default());
    assert_eq!(text(&run(&spawn).stdout), "wrote\n");
}

#[test]
fn nofile_limit_caps_open_descriptors() {
    let code = r#"
import os
fds = []
try:
    while True:
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    print(len(fds), e.errno)
"#;
    let out = run(&with_limits(
        python(code),
        Limits {
            nofile: Some(32),
            ..Limits::default()
        },
    ));
    let line = text(&out.stdout).trim().to_owned();
    let (count, errno) = line.split_once(' ').expect("two numbers");
    assert_eq!(errno, libc::EMFILE.to_string());
    assert!(count.parse::<u32>().unwrap() < 32, "{line}");
}

/// With the user namespace layer, RLIMIT_NPROC counts the processes of
/// this run only (Linux >= 5.14 counts per user namespace): three runs at
/// once, as the same uid, each fork exactly up to their own limit.
#[test]
fn nproc_limit_makes_fork_fail_with_eagain_per_run() {
    let code = r#"
import os, errno, time
kids = []
for i in range(20):
    try:
        pid = os.fork()
    except OSError as e:
        print('fork failed', errno.errorcode[e.errno], len(kids))
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
else:
    print('forked', len(kids))
"#;
    let runs: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let limits = Limits {
                    nproc: Some(4),
                    wall: Some(Duration::from_secs(60)),
                    ..Limits::default()
                };
                run(&with_limits(python(code), limits))
            })
        })
        .collect();
    for r in runs {
        let out = r.join().unwrap();
        assert_eq!(
            text(&out.stdout),
            "fork failed EAGAIN 3\n",
            "stderr: {}",
            text(&out.stderr)
        );
    }
    // Without the limit the same program forks all 20.
    assert_eq!(text(&run(&python(code)).stdout), "forked 20\n");
}

#[test]
fn output_cap_truncates_and_kills() {
    let spawn = with_limits(
        python("import sys\nwhile True: sys.stdout.write('x' * 65536)"),
        Limits {
            output_bytes: Some(1000),
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        },
    );
    let out = run(&spawn);
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.truncated.stdout && !out.truncated.stderr);
    assert_eq!(out.killed_by, Some(KillReason::Output));
    assert_eq!(out.status, -libc::SIGKILL);
}

#[test]
fn output_cap_applies_to_stderr_too() {
    let spawn = with_limits(
        python("import sys\nwhile True: sys.stderr.write('y' * 4096)"),
        Limits {
            output_bytes: Some(5000),
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        },
    );
    let out = run(&spawn);
    assert_eq!(out.stderr.len(), 5000);
    assert!(out.truncated.stderr);
    assert_eq!(out.killed_by, Some(KillReason::Output));
}

#[test]
fn missing_program_is_an_error_not_a_status() {
    let err = Spawn::new("/nonexistent/program").run().unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
    let err = Spawn::new("no-such-program-anywhere").run().unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-program-anywhere"));
}

#[test]
fn bad_cwd_is_a_setup_error_with_the_step_and_errno() {
    let err = Spawn::new("/bin/true")
        .cwd("/nonexistent/dir")
        .run()
        .unwrap_err();
    match err {
        SpawnError::Setup { step, source } => {
            assert_eq!(step, "chdir");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[test]
fn nul_bytes_are_refused_before_anything_starts() {
    let err = Spawn::new("/bin/echo").arg("a\0b").run().unwrap_err();
    assert!(
        matches!(err, SpawnError::Nul { what: "argument" }),
        "{err:?}"
    );
}

#[test]
fn three_megabytes_of_binary_round_trip_byte_for_byte() {
    let input: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let code = "import sys\ndata = sys.stdin.buffer.read()\n\
                sys.stdout.buffer.write(data)\nsys.stderr.buffer.write(data[::-1])";
    let mut spawn = with_limits(
        python(code),
        Limits {
            output_bytes: Some(4 << 20),
            ..Limits::default()
        },
    );
    spawn.stdin(input.clone());
    let out = run(&spawn);
    assert_eq!(
        out.status,
        0,
        "stderr head: {:?}",
        &out.stderr[..out.stderr.len().min(200)]
    );
    assert!(out.stdout == input, "stdout differs");
    let reversed: Vec<u8> = input.iter().rev().copied().collect();
    assert!(out.stderr == reversed, "stderr differs");
}

#[test]
fn empty_stdin_is_end_of_file() {
    let out = run(&Spawn::new("/bin/cat"));
    assert_eq!(out.status, 0);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_program_that_ignores_stdin_does_not_block_the_caller() {
    let mut spawn = Spawn::new("/bin/true");
    spawn.stdin(vec![b'z'; 8 << 20]);
    assert_eq!(run(&spawn).status, 0);
}

#[test]
fn setsid_double_fork_grandchild_is_killed_when_the_program_exits() {
    // The program forks; the child calls setsid() and forks again; the
    // grandchild says it is running and sleeps. The program and the child
    // exit at once.
    let code = r#"
import os, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, b"sleeping")
        os.close(w)
        time.sleep(600)
    os._exit(0)
os.close(w)
print(os.read(r, 32).decode())
"#;
    let token = token();
    let mut spawn = python(code);
    spawn.arg(&token).limits(Limits {
        wall: Some(Duration::from_secs(60)),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert_eq!(text(&out.stdout), "sleeping\n");
    assert_eq!(
        processes_with(&token),
        Vec::<i32>::new(),
        "the grandchild outlived the run"
    );
    assert!(
        out.wall < Duration::from_secs(30),
        "the run waited for the grandchild: {:?}",
        out.wall
    );
}

#[test]
fn setsid_grandchild_is_killed_at_the_deadline() {
    let code = r#"
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print("sleeping", flush=True)
        time.sleep(600)
    os._exit(0)
time.sleep(600)
"#;
    let token = token();
    let mut spawn = python(code);
    spawn.arg(&token).limits(Limits {
        wall: Some(Duration::from_secs(1)),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert_eq!(out.killed_by, Some(KillReason::Wall));
    assert_eq!(text(&out.stdout), "sleeping\n");
    assert_eq!(
        processes_with(&token),
        Vec::<i32>::new(),
        "the grandchild outlived the run"
    );
}

#[test]
fn the_callers_environment_does_not_leak() {
    // The test process has a PATH and a HOME of its own; the program must see
    // exactly the one variable it was given.
    assert!(std::env::var_os("PATH").is_some());
    let out = run(Spawn::new("/usr/bin/env").env("ONLY", "this"));
    assert_eq!(text(&out.stdout), "ONLY=this\n");
    let out = run(&Spawn::new("/usr/bin/env"));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn inherited_descriptors_above_two_are_closed() {
    // A descriptor without close-on-exec, as a careless host might leave.
    let file = std::fs::File::open("/etc/hostname").unwrap();
    let leaked = rustix::io::dup(&file).unwrap();
    let code = r#"
import os
open_fds = []
for fd in range(1024):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
print(open_fds)
"#;
    let out = run(&python(code));
    assert_eq!(
        text(&out.stdout),
        "[0, 1, 2]\n",
        "descriptor {} leaked?",
        leaked.as_raw_fd()
    );
}

#[test]
fn eight_threads_run_at_once() {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let code = format!("import sys; data = sys.stdin.read(); print(data * {i})");
                let mut spawn = python(&code);
                spawn.stdin(format!("t{i}-")).limits(Limits {
                    wall: Some(Duration::from_secs(60)),
                    ..Limits::default()
                });
                (i, run(&spawn))
            })
        })
        .collect();
    for h in handles {
        let (i, out) = h.join().unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(
            text(&out.stdout),
            format!("{}\n", format!("t{i}-").repeat(i))
        );
    }
}

#[test]
fn cpu_time_and_peak_rss_are_measured() {
    let code = r#"
x = bytearray(64 * 1024 * 1024)
for i in range(0, len(x), 4096):
    x[i] = 1
n = 0
for i in range(3_000_000):
    n += i
"#;
    let out = run(&python(code));
    assert_eq!(out.status, 0);
    assert!(
        out.max_rss_kib >= 64 * 1024,
        "max rss {} KiB",
        out.max_rss_kib
    );
    assert!(out.cpu > Duration::from_millis(50), "cpu {:?}", out.cpu);
}
