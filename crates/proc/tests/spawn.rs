//! Integration tests of `codejail-proc`: one row of the limits table each,
//! the setup-error path, I/O, escapes and concurrency.
//!
//! Programs used are present on a fresh machine: `/bin/sh`, `/usr/bin/env`
//! and `/usr/bin/python3`. Timing assertions are ranges wide enough for a
//! loaded two-core machine.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use codejail_proc::owner::processes_with;
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
    // The kernel sends SIGXCPU on its precise run time; rusage reports a
    // tick-sampled split of it, which on a loaded machine reads lower
    // (855 ms was seen): the bounds say "measured", not "exactly 1 s".
    assert!(out.cpu >= Duration::from_millis(500), "cpu {:?}", out.cpu);
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

/// A program that ends by itself as its deadline passes was not killed:
/// its outcome gives its own status and no kill reason, never a status of
/// 0 killed by `realtime`. Limits of 1 to 20 ms put the deadline around
/// the program's end; one that passes before `execve` is a set-up
/// timeout.
#[test]
fn deny_a_program_that_ended_by_itself_is_reported_killed_at_its_deadline() {
    let (mut ended, mut killed, mut timed_out) = (0, 0, 0);
    for round in 0..300u64 {
        let spawn = with_limits(
            Spawn::new("/bin/true").policy(Policy::None).clone(),
            Limits {
                wall: Some(Duration::from_millis(1 + round % 20)),
                ..Limits::default()
            },
        );
        match spawn.run() {
            Ok(out) if out.killed_by.is_none() => {
                assert_eq!(out.status, 0, "{out:?}");
                ended += 1;
            }
            Ok(out) => {
                assert_eq!(out.killed_by, Some(KillReason::Wall), "{out:?}");
                assert_eq!(out.status, -libc::SIGKILL, "killed, but {out:?}");
                killed += 1;
            }
            Err(SpawnError::SetupTimeout { .. }) => timed_out += 1,
            Err(e) => panic!("run failed: {e}"),
        }
    }
    println!("{ended} ended, {killed} killed, {timed_out} set-up timeouts");
}

/// A wall limit too far away to be an instant (CodeJail's REALTIME of
/// `u64::MAX` seconds) is no limit, not a panic.
#[test]
fn a_wall_limit_past_any_instant_is_no_limit() {
    for wall in [Duration::from_secs(u64::MAX), Duration::MAX] {
        let spawn = with_limits(
            Spawn::new("/bin/true"),
            Limits {
                wall: Some(wall),
                ..Limits::default()
            },
        );
        let out = run(&spawn);
        assert_eq!(out.status, 0);
        assert_eq!(out.killed_by, None);
    }
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

/// A rule for a path that does not exist, or a relative one, is an error
/// naming it, under every policy: not a rule silently dropped.
#[test]
fn a_misspelled_or_relative_filesystem_rule_is_an_error() {
    for (path, policy) in [
        ("/no/such/codejail-dir", Policy::Auto),
        ("/no/such/codejail-dir", Policy::None),
        ("tmp", Policy::Auto),
    ] {
        let mut rules = FsRules::default();
        rules.read_write.push(path.into());
        let err = Spawn::new("/bin/true")
            .fs_rules(rules)
            .policy(policy)
            .run()
            .unwrap_err();
        assert!(matches!(err, SpawnError::FsRules(_)), "{err:?}");
        assert!(err.to_string().contains(path), "{err}");
    }
    // Listed as optional, a missing path is skipped.
    let mut rules = FsRules::default();
    rules.read.push("/no/such/codejail-dir".into());
    rules.optional.push("/no/such/codejail-dir".into());
    assert_eq!(run(Spawn::new("/bin/true").fs_rules(rules)).status, 0);
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

/// The supervisor alone must get escaped grandchildren, without the pid
/// namespace (whose end would kill them anyway): each escape test runs with
/// every layer and with none.
const SUPERVISOR_ALONE_AND_ALL: [Policy; 2] = [Policy::None, Policy::Auto];

#[test]
fn setsid_double_fork_grandchild_is_killed_when_the_program_exits() {
    for policy in SUPERVISOR_ALONE_AND_ALL {
        setsid_double_fork_grandchild_exits_with_the_program(policy);
    }
}

fn setsid_double_fork_grandchild_exits_with_the_program(policy: Policy) {
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
    spawn.arg(&token).policy(policy).limits(Limits {
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
    for policy in SUPERVISOR_ALONE_AND_ALL {
        setsid_grandchild_dies_at_the_deadline(policy);
    }
}

fn setsid_grandchild_dies_at_the_deadline(policy: Policy) {
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
    spawn.arg(&token).policy(policy).limits(Limits {
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

/// Without `cwd`, a run starts in `/` under every policy, not in the
/// caller's directory.
#[test]
fn the_default_working_directory_is_the_root() {
    assert_ne!(std::env::current_dir().unwrap(), std::path::Path::new("/"));
    for policy in [Policy::Auto, Policy::None] {
        let mut spawn = python("import os; print(os.getcwd())");
        spawn.policy(policy);
        assert_eq!(text(&run(&spawn).stdout), "/\n");
    }
}

#[test]
fn the_callers_environment_does_not_leak() {
    // The test process has a PATH and a HOME of its own; the program must see
    // exactly the variable it was given, and the default PATH.
    assert!(std::env::var_os("PATH").is_some());
    let out = run(Spawn::new("/usr/bin/env").env("ONLY", "this"));
    assert_eq!(
        text(&out.stdout),
        "ONLY=this\nPATH=/usr/local/bin:/usr/bin:/bin\n"
    );
    let out = run(&Spawn::new("/usr/bin/env"));
    assert_eq!(text(&out.stdout), "PATH=/usr/local/bin:/usr/bin:/bin\n");
}

/// A PATH given with `env` is the program's PATH, and the one a bare
/// program name is looked up in.
#[test]
fn a_path_given_with_env_replaces_the_default() {
    let out = run(Spawn::new("env").env("PATH", "/usr/bin"));
    assert_eq!(text(&out.stdout), "PATH=/usr/bin\n");
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

// ---------------------------------------------------------------------------
// Confinement layers: each test attacks one layer, and shows the attack
// succeeding when the layer is off.
// ---------------------------------------------------------------------------

use codejail_proc::{Availability, Layer, Policy, Probe};

/// True when every layer is available, through the workspace's one gate
/// (`codejail_tests::require`): a missing layer that CI declares in
/// `CODEJAIL_EXPECT_LAYERS` fails the test; one it does not is said on
/// stderr as not tested here.
#[track_caller]
fn have(layers: &[Layer]) -> bool {
    layers.iter().all(|&layer| {
        codejail_tests::require(layer.name(), Probe::get().availability(layer).why_not())
    })
}

/// Landlock at ABI `abi` or later (the gate's `feature`), through the gate.
#[track_caller]
fn landlock_abi(abi: i32, feature: &str) -> bool {
    if !have(&[Layer::Landlock]) {
        return false;
    }
    let found = Probe::get().landlock_abi;
    let why = (found < Some(abi)).then(|| format!("Landlock ABI {found:?}, not {abi} or later"));
    codejail_tests::require(feature, why.as_deref())
}

fn only(layers: &[Layer]) -> Policy {
    Policy::Only(layers.iter().copied().collect())
}

/// The namespaces a caller needs for `ns`: without privilege, a user
/// namespace too.
fn ns(layer: Layer) -> Vec<Layer> {
    if rustix::process::geteuid().is_root() {
        vec![layer]
    } else {
        vec![Layer::UserNs, layer]
    }
}

fn confined(code: &str, policy: Policy) -> Outcome {
    let mut spawn = python(code);
    spawn.policy(policy).limits(Limits {
        wall: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    run(&spawn)
}

const READ_HOST_FILES: &str = r#"
import os
for path in ["/etc/passwd", "/", "/tmp", "/home", "/root", "/proc/1/environ"]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read()
        print(path, "ok")
    except OSError as e:
        print(path, e.strerror)
"#;

#[test]
fn landlock_denies_reading_host_files() {
    if !have(&[Layer::Landlock]) {
        return;
    }
    let out = confined(READ_HOST_FILES, only(&[Layer::Landlock]));
    assert_eq!(
        text(&out.stdout),
        "/etc/passwd Permission denied\n/ Permission denied\n/tmp Permission denied\n\
         /home Permission denied\n/root Permission denied\n/proc/1/environ Permission denied\n"
    );
    assert!(out.layers.contains(Layer::Landlock) && out.layers.contains(Layer::NoNewPrivs));
    assert!(out.landlock.is_some());
    // The attack is real: without the layer /etc/passwd and / are readable.
    let open = confined(READ_HOST_FILES, Policy::None);
    assert!(
        text(&open.stdout).contains("/etc/passwd ok\n/ ok\n"),
        "{}",
        text(&open.stdout)
    );
}

#[test]
fn landlock_lets_the_program_write_tmp_but_not_home() {
    if !have(&[Layer::Landlock]) {
        return;
    }
    let home = writable_dir();
    let tmp = home.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let code = r#"
import sys
for path in [sys.argv[1] + "/home-file", sys.argv[1] + "/tmp/tmp-file"]:
    try:
        with open(path, "w") as f:
            f.write("x")
        print("wrote")
    except OSError as e:
        print(e.strerror)
"#;
    let mut rules = FsRules::default();
    rules.read.push(home.path().to_owned());
    rules.read_write.push(tmp.clone());
    let mut spawn = python(code);
    spawn
        .arg(home.path())
        .fs_rules(rules)
        .policy(only(&[Layer::Landlock]));
    assert_eq!(text(&run(&spawn).stdout), "Permission denied\nwrote\n");
    spawn.policy(Policy::None);
    assert_eq!(
        text(&run(&spawn).stdout),
        "wrote\nwrote\n",
        "without Landlock both writes work"
    );
}

/// Copies `/bin/true` into the directory `argv[1]` (made executable) and
/// runs it: "ran", or why not.
const RUN_A_NEW_PROGRAM: &str = r#"
import os, shutil, subprocess, sys
path = os.path.join(sys.argv[1], "new-program")
try:
    shutil.copyfile("/bin/true", path)
    os.chmod(path, 0o755)
    subprocess.run([path], check=True)
    print("ran")
except OSError as e:
    print(e.strerror)
"#;

/// A writable place is not an executable one: `read_write` grants no
/// execute, so the program cannot bring programs of its own;
/// `read_write_exec` does. Nor is the tmpfs the run mounts.
#[test]
fn landlock_forbids_running_new_programs_from_writable_places() {
    if !have(&[Layer::Landlock]) {
        return;
    }
    let dir = writable_dir();
    let mut spawn = python(RUN_A_NEW_PROGRAM);
    spawn.arg(dir.path()).policy(only(&[Layer::Landlock]));
    spawn.fs_rules(rules_with_rw(dir.path()));
    assert_eq!(text(&run(&spawn).stdout), "Permission denied\n");
    let mut rules = FsRules::default();
    rules.read_write_exec.push(dir.path().to_owned());
    spawn.fs_rules(rules);
    assert_eq!(text(&run(&spawn).stdout), "ran\n");
    spawn
        .policy(Policy::None)
        .fs_rules(rules_with_rw(dir.path()));
    assert_eq!(
        text(&run(&spawn).stdout),
        "ran\n",
        "without Landlock it runs"
    );

    if !have(&ns(Layer::MountNs)) {
        return;
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // Ids mapped in the run's user namespace: the sandbox's, or the caller's.
    let (uid, gid) = if rustix::process::geteuid().is_root() {
        codejail_proc::NOBODY
    } else {
        let ids = (rustix::process::geteuid(), rustix::process::getegid());
        (ids.0.as_raw(), ids.1.as_raw())
    };
    let mut spawn = python(RUN_A_NEW_PROGRAM);
    // Exec allowed: the refusal must be the tmpfs's rule, not the guard's.
    spawn
        .arg(&tmp)
        .allow_exec(true)
        .fs_rules(FsRules::default())
        .tmpfs(codejail_proc::Tmpfs {
            target: tmp.clone(),
            bytes: 4 << 20,
            inodes: 64,
            mode: 0o1777,
            uid,
            gid,
        });
    let out = run(&spawn);
    assert!(out.layers.contains(Layer::Landlock), "{}", out.layers);
    assert_eq!(
        text(&out.stdout),
        "Permission denied\n",
        "{}",
        text(&out.stderr)
    );
}

const TCP_CONNECT: &str = r#"
import socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print(e.strerror)
"#;

fn tcp_connect(policy: Policy) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut spawn = python(TCP_CONNECT);
    spawn.arg(port).policy(policy);
    text(&run(&spawn).stdout).trim().to_owned()
}

#[test]
fn tcp_to_the_host_is_stopped_by_each_network_layer_alone() {
    assert_eq!(
        tcp_connect(Policy::None),
        "connected",
        "the attack works without confinement"
    );
    if have(&[Layer::Seccomp]) {
        // EACCES, as AppArmor answers (see seccomp::ANSWERED_EACCES).
        assert_eq!(tcp_connect(only(&[Layer::Seccomp])), "Permission denied");
    }
    if landlock_abi(4, "landlock_net") {
        assert_eq!(tcp_connect(only(&[Layer::Landlock])), "Permission denied");
    }
    if have(&ns(Layer::NetNs)) {
        assert_eq!(
            tcp_connect(only(&ns(Layer::NetNs))),
            "Network is unreachable"
        );
    }
    if have(&[Layer::Seccomp, Layer::Landlock]) {
        assert_ne!(tcp_connect(Policy::Auto), "connected");
    }
}

#[cfg(target_arch = "x86_64")]
const KERNEL_SURFACE: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else ctypes.get_errno()
params = ctypes.create_string_buffer(120)
print("ptrace", call(101, 0, 0, 0, 0))                     # PTRACE_TRACEME
print("unshare", call(272, 0x10000000))                    # CLONE_NEWUSER
print("io_uring", call(425, 1, ctypes.addressof(params)))  # io_uring_setup
print("keyctl", call(250, 0, -2, 1))                       # KEYCTL_GET_KEYRING_ID
print("bpf", call(321, 0, 0, 0))                            # BPF_MAP_CREATE, no attr
# TIOCSTI with a high bit set: the kernel reads the request as 32 bits.
print("tiocsti_high", call(16, 0, (1 << 32) | 0x5412, 0))
"#;

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_refuses_ptrace_unshare_io_uring_keyctl_bpf() {
    if !have(&[Layer::Seccomp]) {
        return;
    }
    let eperm = libc::EPERM;
    let out = confined(KERNEL_SURFACE, only(&[Layer::Seccomp]));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ptrace {eperm}\nunshare {eperm}\nio_uring {eperm}\nkeyctl {eperm}\nbpf {eperm}\n\
             tiocsti_high {eperm}\n"
        )
    );
    let open = confined(KERNEL_SURFACE, Policy::None);
    let open = text(&open.stdout);
    let enotty = format!("tiocsti_high {}", libc::ENOTTY);
    for call in [
        "ptrace ok",
        "unshare ok",
        "io_uring ok",
        "keyctl ok",
        &enotty,
    ] {
        assert!(
            open.contains(call),
            "without seccomp `{call}` should work:\n{open}"
        );
    }
}

/// An x32 syscall (getpid with the x32 bit) kills the process under the
/// filter; without it the call merely fails or works.
#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_kills_a_foreign_abi_syscall() {
    if !have(&[Layer::Seccomp]) {
        return;
    }
    let code = "import ctypes\nctypes.CDLL(None).syscall(0x40000000 | 39)\nprint('survived')";
    let out = confined(code, only(&[Layer::Seccomp]));
    assert_eq!(out.status, -libc::SIGSYS, "stdout {}", text(&out.stdout));
    assert_eq!(text(&confined(code, Policy::None).stdout), "survived\n");
}

#[test]
fn the_program_never_runs_as_host_root() {
    let out = confined(
        "import os; print(os.getuid(), os.geteuid(), os.getgid())",
        Policy::Auto,
    );
    let ids: Vec<u32> = text(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|&id| id != 0),
        "ids {ids:?}, layers {}",
        out.layers
    );
    if rustix::process::geteuid().is_root() {
        assert!(have(&[Layer::Identity]));
        assert_eq!(ids, [65534, 65534, 65534]);
        let open = confined("import os; print(os.getuid())", Policy::None);
        assert_eq!(
            text(&open.stdout),
            "0\n",
            "unconfined, a root caller's program is root"
        );
    }
}

/// The id 4294967295 is -1 to setresuid(2), "leave unchanged": the
/// identity layer must refuse it, not run the program as the caller (host
/// root, for a root caller).
#[test]
fn the_identity_layer_refuses_the_id_that_means_unchanged() {
    if !have(&[Layer::Identity]) {
        return;
    }
    for (uid, gid, step) in [(u32::MAX, 65534, "setuid"), (65534, u32::MAX, "setgid")] {
        let mut spawn = Spawn::new("/usr/bin/id");
        spawn.identity(uid, gid).policy(only(&[Layer::Identity]));
        match spawn.run() {
            Err(SpawnError::Setup { step: s, source }) => {
                assert_eq!(s, step);
                assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
            }
            other => panic!("expected a refused {step}, got {other:?}"),
        }
    }
}

#[test]
fn signals_cannot_reach_pid_1_or_the_host() {
    if !have(&ns(Layer::PidNs)) {
        return;
    }
    let mut victim = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let code = r#"
import os, signal, sys
for target in [1, int(sys.argv[1])]:
    try:
        os.kill(target, signal.SIGKILL)
        print(target == 1 and "init" or "host", "sent")
    except OSError as e:
        print(target == 1 and "init" or "host", e.strerror)
print("still running")
"#;
    let mut spawn = python(code);
    spawn.arg(victim.id().to_string());
    let out = run(&spawn);
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with("still running\n"), "{stdout}");
    assert!(!stdout.contains("host sent"), "{stdout}");
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the host process was killed"
    );
    assert_eq!(out.status, 0);
    // The attack is real: without confinement a root caller's program
    // kills the host process. (Only that one: kill(1) unconfined would aim
    // at the host's init.)
    if rustix::process::geteuid().is_root() {
        let mut spawn = python(
            "import os, signal, sys; os.kill(int(sys.argv[1]), signal.SIGKILL); print('sent')",
        );
        spawn.arg(victim.id().to_string()).policy(Policy::None);
        assert_eq!(text(&run(&spawn).stdout), "sent\n");
        assert_eq!(victim.wait().unwrap().signal(), Some(libc::SIGKILL));
    } else {
        let _ = victim.kill();
        let _ = victim.wait();
    }
}

/// Runs `spawn` on a thread of its own that blocks `SIGTERM`, as a host
/// application's worker threads often do.
fn run_holding_sigterm(spawn: Spawn) -> std::thread::JoinHandle<Result<Outcome, SpawnError>> {
    std::thread::spawn(move || {
        let _held = codejail_proc::HeldSignals::hold(&[libc::SIGTERM]).unwrap();
        spawn.run()
    })
}

/// The supervisor is a copy of the caller that never execs: a signal sent
/// to it from outside ends it, whatever the caller's thread blocks or the
/// caller's process handles; the run comes back lost (as for `SIGKILL`)
/// and its program dies with it. Without dispositions and a mask of the
/// supervisor's own, the blocked `SIGTERM` waited and the handled
/// `SIGUSR1` ran the caller's handler in the supervisor: both runs went
/// on to their wall limit.
#[test]
fn support_a_signal_to_the_supervisor_ends_it_whatever_the_caller_handles() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let handled = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(libc::SIGUSR1, Arc::clone(&handled)).unwrap();
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pids");
        // The program's parent, without a pid namespace, is the supervisor.
        let script = format!(
            "echo $PPID $$ > {f}.tmp && mv {f}.tmp {f}; exec sleep 60",
            f = file.display()
        );
        let mut spawn = Spawn::new("/bin/sh");
        spawn
            .args(["-c", &script])
            .policy(only(&[]))
            .limits(Limits {
                wall: Some(Duration::from_secs(10)),
                ..Limits::default()
            });
        let run = run_holding_sigterm(spawn);
        let pids: Vec<i32> = codejail_tests::written(&file, Duration::from_secs(20))
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        let pidfd = |pid: i32| {
            let pid = rustix::process::Pid::from_raw(pid).unwrap();
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap()
        };
        let (supervisor, program) = (pidfd(pids[0]), pidfd(pids[1]));
        let sent = rustix::process::Signal::from_named_raw(signal).unwrap();
        rustix::process::pidfd_send_signal(&supervisor, sent).unwrap();
        match run.join().unwrap() {
            Err(SpawnError::SupervisorLost { wait_status }) => {
                assert_eq!(wait_status & 0x7f, signal, "signal {signal}");
            }
            other => panic!("signal {signal}: expected a lost supervisor, got {other:?}"),
        }
        assert!(
            codejail_tests::ended_within(program.as_fd(), Duration::from_secs(5)),
            "signal {signal}: the program outlived its supervisor"
        );
    }
    assert!(
        !handled.load(Ordering::Relaxed),
        "the signal reached the test's own process"
    );
}

/// The holder and the program, cloned from the caller and from its copy,
/// keep nothing of the caller's signals: what the caller ignores (the
/// Rust runtime's `SIGPIPE`; a test harness may ignore 32, which glibc's
/// `sigaction` cannot change) or its thread blocks. The holder also
/// leaves the caller's session, so that a terminal's `^C` for the
/// caller's process group does not reach it. The holder is found on the
/// host as the `cat` in the program's network namespace. Without its
/// reset it showed `SIGTERM` blocked, `SIGPIPE` ignored and the caller's
/// session; without the program's, the program showed `SIGPIPE` ignored.
#[test]
fn support_the_holder_and_the_program_keep_nothing_of_the_callers_signals() {
    let layers = ns(Layer::NetNs);
    if !have(&layers) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, done) = (dir.path().join("net"), dir.path().join("done"));
    let script = format!(
        "readlink /proc/self/ns/net > {f}.tmp && mv {f}.tmp {f}; \
         while [ ! -e {d} ]; do sleep 0.05; done; grep -E '^Sig(Blk|Ign)' /proc/self/status",
        f = file.display(),
        d = done.display()
    );
    let mut spawn = Spawn::new("/bin/sh");
    spawn
        .args(["-c", &script])
        .policy(only(&layers))
        .limits(Limits {
            wall: Some(Duration::from_secs(20)),
            ..Limits::default()
        });
    let run = run_holding_sigterm(spawn);
    let net = codejail_tests::written(&file, Duration::from_secs(20))
        .trim()
        .to_owned();
    let holder = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap_or_default();
            comm == "cat\n" && ns.to_string_lossy() == net
        })
        .expect("no holder in the program's network namespace");
    let status = std::fs::read_to_string(format!("/proc/{holder}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    let (blocked, ignored) = (field("SigBlk:"), field("SigIgn:"));
    let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap();
    // After the command's closing parenthesis: state, ppid, pgrp, session.
    let after = stat.rsplit_once(')').unwrap().1;
    let session: i32 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
    std::fs::write(&done, "").unwrap();
    let out = run.join().unwrap().unwrap();
    assert_eq!(out.status, 0, "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "the program's signals"
    );
    assert_eq!(blocked, 0, "the holder's blocked signals: {blocked:#x}");
    assert_eq!(ignored, 0, "the holder's ignored signals: {ignored:#x}");
    assert_eq!(session, holder, "the holder is not in a session of its own");
}

/// A signal sent to the caller's process group (a terminal's `^C`) while
/// runs start does not end them when the caller handles it: the
/// supervisor and the holder, born in that group with every signal held,
/// leave it, then discard what it was sent before they unblock. The test
/// runs itself again as the caller, in a process group of its own that a
/// thread floods with `SIGINT` while it starts runs, so that the flood
/// reaches nothing else. Without the discard, or with it before the
/// `setsid`, most runs failed (`SupervisorLost` with `SIGINT`, the
/// holder's network namespace gone).
#[test]
fn support_a_signal_to_the_callers_process_group_spares_its_runs() {
    const AS_CALLER: &str = "CODEJAIL_TEST_SIGINT_FLOOD";
    let name = "support_a_signal_to_the_callers_process_group_spares_its_runs";
    if std::env::var_os(AS_CALLER).is_some() {
        return flood_the_callers_group();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(AS_CALLER, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the caller's runs failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("runs under SIGINT: "),
        "the caller did not run: {}",
        text(&out.stdout)
    );
}

/// The caller's side of the test above: a process group of its own,
/// `SIGINT` handled (a flag), a thread sending it to the group every
/// 200 µs, and runs of `/bin/true` under layer sets with and without a
/// pid namespace (the holder is init there, which ignores what it does
/// not handle).
fn flood_the_callers_group() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    rustix::process::setpgid(None, None).unwrap();
    let group = rustix::process::getpgrp();
    signal_hook::flag::register(libc::SIGINT, Arc::new(AtomicBool::new(false))).unwrap();
    let mut policies = vec![("no layer", only(&[]))];
    for (name, layers) in [
        ("network namespace", ns(Layer::NetNs)),
        ("pid namespace", ns(Layer::PidNs)),
    ] {
        if have(&layers) {
            policies.push((name, only(&layers)));
        }
    }
    policies.push(("every layer", Policy::Auto));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::INT);
                sent += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            sent
        })
    };
    let mut failed = Vec::new();
    let mut runs = 0;
    for (name, policy) in &policies {
        for _ in 0..40 {
            let mut spawn = Spawn::new("/bin/true");
            spawn.policy(*policy);
            runs += 1;
            match spawn.run() {
                Ok(out) if out.status == 0 => {}
                other => failed.push(format!("{name}: {other:?}")),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    println!("runs under SIGINT: {runs}, signals sent: {sent}");
    assert!(sent > 100, "the flood sent {sent} signals only");
    assert!(
        failed.is_empty(),
        "{} of {runs} runs failed: {:#?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[test]
fn sigxcpu_still_arrives_inside_a_pid_namespace() {
    if !have(&ns(Layer::PidNs)) {
        return;
    }
    let mut spawn = python("while True: pass");
    spawn.policy(only(&ns(Layer::PidNs))).limits(Limits {
        cpu_secs: Some(1),
        wall: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert!(out.layers.contains(Layer::PidNs));
    assert_eq!(out.status, -libc::SIGXCPU);
    assert_eq!(out.killed_by, Some(KillReason::Cpu));
}

#[test]
fn the_host_name_does_not_leak() {
    if !have(&ns(Layer::UtsNs)) {
        return;
    }
    let out = confined(
        "import socket; print(socket.gethostname())",
        only(&ns(Layer::UtsNs)),
    );
    assert_eq!(text(&out.stdout), "codejail\n");
}

#[test]
fn cgroup_memory_bomb_is_reported_as_a_memory_kill() {
    let no_memory = (!Probe::get().cgroups.has_memory())
        .then_some("no memory controller this caller can write (v2 memory or v1 memory)");
    if !have(&[Layer::Cgroup]) || !codejail_tests::require("cgroup_memory", no_memory) {
        return;
    }
    let code = "x = bytearray(256 * 1024 * 1024)\nprint('allocated')";
    let mut spawn = python(code);
    spawn.limits(Limits {
        memory_bytes: Some(64 << 20),
        wall: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert_eq!(
        out.killed_by,
        Some(KillReason::Memory),
        "status {} stderr {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(out.status, -libc::SIGKILL);
    assert!(out.layers.contains(Layer::Cgroup));
    spawn.limits(Limits {
        wall: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    assert_eq!(
        text(&run(&spawn).stdout),
        "allocated\n",
        "without the limit it fits"
    );
}

/// The memory limit holds the program only: a tiny one (1 MiB, or one
/// byte) kills the program, reported as a memory kill, and never the
/// supervisor (which would end the run with `SupervisorLost`).
#[test]
fn a_tiny_memory_limit_kills_the_program_not_the_supervisor() {
    let no_memory = Probe::get().cgroups.why_no_memory();
    if !have(&[Layer::Cgroup]) || !codejail_tests::require("cgroup_memory", no_memory.as_deref()) {
        return;
    }
    for bytes in [1, 1 << 20] {
        let mut spawn = python("print('started')");
        spawn.limits(Limits {
            memory_bytes: Some(bytes),
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        });
        let out = spawn
            .run()
            .unwrap_or_else(|e| panic!("memory {bytes}: the run failed: {e}"));
        assert_eq!(
            out.killed_by,
            Some(KillReason::Memory),
            "memory {bytes}: status {} stderr {}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(out.status, -libc::SIGKILL);
        assert_eq!(out.stdout, b"");
    }
}

/// The program is in the run's cgroups and its supervisor (its parent,
/// without a pid namespace) in none of them.
#[test]
fn the_supervisor_stays_out_of_the_run_cgroup() {
    let no_memory = Probe::get().cgroups.why_no_memory();
    if !have(&[Layer::Cgroup]) || !codejail_tests::require("cgroup_memory", no_memory.as_deref()) {
        return;
    }
    let mut spawn = Spawn::new("/bin/sh");
    spawn
        .args([
            "-c",
            "cat /proc/self/cgroup; echo --; cat /proc/$PPID/cgroup",
        ])
        .policy(only(&[Layer::Cgroup]))
        .limits(Limits {
            memory_bytes: Some(256 << 20),
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        });
    let out = run(&spawn);
    let t = text(&out.stdout);
    let (program, supervisor) = t.split_once("--\n").unwrap();
    let run_cgroup = format!("/codejail-{}-", codejail_proc::owner::stamp());
    assert!(program.contains(&run_cgroup), "{t}");
    assert!(!supervisor.contains(&run_cgroup), "{t}");
}

#[test]
fn cgroup_fork_bomb_fails_with_eagain_and_leaves_nothing() {
    if !have(&[Layer::Cgroup]) {
        return;
    }
    let code = r#"
import os, time
for i in range(200):
    try:
        os.fork()
    except BlockingIOError:
        print("EAGAIN", flush=True)
        time.sleep(30)
        break
"#;
    let token = token();
    let mut spawn = python(code);
    spawn.arg(&token).limits(Limits {
        nproc: Some(20),
        memory_bytes: Some(512 << 20),
        wall: Some(Duration::from_secs(3)),
        output_bytes: Some(1 << 20),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert!(
        text(&out.stdout).contains("EAGAIN"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.killed_by, Some(KillReason::Wall));
    assert_eq!(processes_with(&token), Vec::<i32>::new());
}

#[test]
fn a_required_layer_that_is_missing_is_an_error_naming_it() {
    // The cgroup layer is unavailable to a caller that cannot write a
    // cgroup; pretend otherwise with a memory limit under a policy that
    // leaves cgroups out.
    let mut spawn = python("print(1)");
    spawn.policy(only(&[])).limits(Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    });
    match spawn.run() {
        Err(
            e @ SpawnError::LayerNeeded {
                layer: Layer::Cgroup,
                by: "the memory limit",
                ..
            },
        ) => {
            let message = e.to_string();
            assert!(message.contains("set the memory limit to 0"), "{message}");
        }
        other => panic!("expected a missing cgroup layer, got {other:?}"),
    }
}

#[test]
fn landlock_scopes_signals_to_the_run() {
    if !landlock_abi(6, "landlock_scopes") {
        return;
    }
    let mut victim = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let code = r#"
import os, signal, sys
try:
    os.kill(int(sys.argv[1]), signal.SIGKILL)
    print("sent")
except OSError as e:
    print(e.strerror)
"#;
    let mut spawn = python(code);
    // Landlock alone: same uid (and, for root, no identity switch), same
    // pid namespace, so only the signal scope stands in the way.
    spawn
        .arg(victim.id().to_string())
        .policy(only(&[Layer::Landlock]));
    assert_eq!(text(&run(&spawn).stdout), "Operation not permitted\n");
    assert!(victim.try_wait().unwrap().is_none());
    spawn.policy(Policy::None);
    assert_eq!(
        text(&run(&spawn).stdout),
        "sent\n",
        "without Landlock the signal goes through"
    );
    assert_eq!(victim.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn landlock_scopes_abstract_unix_sockets_to_the_run() {
    if !landlock_abi(6, "landlock_scopes") {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = token();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let code = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0" + sys.argv[1])
    print("connected")
except OSError as e:
    print(e.strerror)
"#;
    let mut spawn = python(code);
    spawn.arg(&name).policy(only(&[Layer::Landlock]));
    assert_eq!(text(&run(&spawn).stdout), "Operation not permitted\n");
    spawn.policy(Policy::None);
    assert_eq!(
        text(&run(&spawn).stdout),
        "connected\n",
        "without Landlock the host socket answers"
    );
}

#[test]
fn apparmor_required_without_kernel_support_or_profile_is_an_error() {
    let mut spawn = python("print(1)");
    spawn
        .apparmor_profile("codejail-python")
        .policy(Policy::Require([Layer::AppArmor].into_iter().collect()));
    match (Probe::get().availability(Layer::AppArmor), spawn.run()) {
        (
            Availability::No(why),
            Err(SpawnError::LayerUnavailable {
                layer: Layer::AppArmor,
                reason,
            }),
        ) => {
            assert_eq!(&reason, why);
        }
        (Availability::Yes, _) => {}
        (_, other) => panic!("expected the AppArmor layer to be missing, got {other:?}"),
    }
    // Without a profile the layer cannot apply, wherever the kernel has it.
    let mut spawn = python("print(1)");
    spawn.policy(Policy::Require([Layer::AppArmor].into_iter().collect()));
    assert!(matches!(
        spawn.run(),
        Err(SpawnError::LayerUnavailable {
            layer: Layer::AppArmor,
            ..
        })
    ));
    // Auto with a profile on a kernel without AppArmor still runs, confined
    // by the other layers, and says so.
    let mut spawn = python("print(1)");
    spawn.apparmor_profile("codejail-python");
    let out = run(&spawn);
    assert_eq!(out.status, 0);
    assert_eq!(
        out.layers.contains(Layer::AppArmor),
        Probe::get().availability(Layer::AppArmor).is_yes()
    );
}

/// `stdin_fd`: the program reads the descriptor itself, under the run's
/// deadline: a socket the caller writes to later, and a FIFO nobody
/// writes to, which ends at the deadline instead of hanging the caller.
#[test]
fn stdin_can_be_a_descriptor_read_under_the_deadline() {
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut spawn = python("import sys; print(sys.stdin.readline().strip().upper())");
    spawn.stdin_fd(theirs.into()).limits(Limits {
        wall: Some(Duration::from_secs(10)),
        ..Limits::default()
    });
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        std::io::Write::write_all(&mut &mine, b"hello\n").unwrap();
        mine
    });
    let out = run(&spawn);
    drop(writer.join().unwrap());
    assert_eq!(
        (out.status, text(&out.stdout)),
        (0, "HELLO\n"),
        "{}",
        text(&out.stderr)
    );
    // The descriptor went to that run: a second one reads an empty stdin.
    let again = run(&spawn);
    assert_eq!(text(&again.stdout), "\n");

    let dir = writable_dir();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        c.as_c_str(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    // Its writer end is held open and never written: a read would wait.
    let _writer = rustix::fs::open(
        c.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let reader = rustix::fs::open(
        c.as_c_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut spawn = python("import sys; sys.stdin.read()");
    spawn.stdin_fd(reader).limits(Limits {
        wall: Some(Duration::from_millis(500)),
        ..Limits::default()
    });
    let out = run(&spawn);
    assert_eq!(out.killed_by, Some(KillReason::Wall));
}

// ---------------------------------------------------------------------------
// The private root (`rootfs`).

/// The layers of a private root alone: the mount namespace it is built in,
/// the pid namespace its procfs shows, and (without privilege) the user
/// namespace they hang off.
fn root_only() -> Policy {
    let mut layers = vec![Layer::MountNs, Layer::RootFs, Layer::PidNs];
    if !rustix::process::geteuid().is_root() {
        layers.push(Layer::UserNs);
    }
    only(&layers)
}

const REACH_THE_HOST: &str = r#"
import os, sys
for path in sys.argv[1:]:
    try:
        st = os.lstat(path)
        print(path, "there", st.st_size)
    except OSError as e:
        print(path, e.strerror)
"#;

#[test]
fn deny_host_paths_are_not_in_the_private_root() {
    if !have(&[Layer::MountNs, Layer::RootFs, Layer::PidNs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("caller-secret");
    std::fs::write(&secret, "secret").unwrap();
    let socket_path = dir.path().join("host.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let run_with = |policy: Policy| {
        let mut spawn = python(REACH_THE_HOST);
        spawn
            .arg(&secret)
            .arg(&socket_path)
            .arg(dir.path())
            .policy(policy);
        text(&run(&spawn).stdout).to_owned()
    };
    let out = run_with(root_only());
    let gone = |p: &std::path::Path| format!("{} No such file or directory\n", p.display());
    assert_eq!(
        out,
        format!(
            "{}{}{}",
            gone(&secret),
            gone(&socket_path),
            gone(dir.path())
        )
    );
    // The attack is real: without the layer the caller's file, its socket
    // and its directory are there to stat (and to chmod, connect to).
    let open = run_with(only(&ns(Layer::MountNs)));
    assert!(
        open.contains(&format!("{} there 6\n", secret.display())),
        "{open}"
    );
}

#[test]
fn deny_the_private_proc_shows_only_the_run() {
    if !have(&[Layer::MountNs, Layer::RootFs, Layer::PidNs]) {
        return;
    }
    let code = r#"
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(pids, os.getpid(), os.readlink("/proc/self"))
for name in ["sys", "kcore", "sysrq-trigger", "mounts"]:
    print(name, os.path.exists("/proc/" + name))
"#;
    let out = confined(code, root_only());
    // The holder is pid 1, the program 2: nothing of the host.
    assert_eq!(
        text(&out.stdout),
        "[1, 2] 2 2\nsys False\nkcore False\nsysrq-trigger False\nmounts False\n",
        "{}",
        text(&out.stderr)
    );
    // Without the layer, the pid namespace alone leaves the host's procfs.
    let open = confined(code, only(&ns(Layer::PidNs)));
    assert!(
        text(&open.stdout).contains("sys True"),
        "{}",
        text(&open.stdout)
    );
}

#[test]
fn deny_names_of_the_host_are_refused_not_read() {
    if !have(&[Layer::MountNs, Layer::RootFs, Layer::PidNs]) {
        return;
    }
    // The host's top-level names and /etc/passwd are there, without their
    // contents: whiteouts on a nodev tmpfs, refused whoever opens them.
    let code = r#"
import os, stat
for path in ["/etc/passwd", "/etc/shadow"]:
    st = os.lstat(path)
    print(path, stat.S_ISCHR(st.st_mode), st.st_rdev, st.st_size)
    try:
        open(path).read()
    except OSError as e:
        print(path, e.strerror)
print(sorted(os.listdir("/var")), os.listdir("/var/tmp"), os.listdir("/home"))
"#;
    let out = confined(code, root_only());
    // `/var`'s names are there too (so that a write to `/var/tmp` is
    // refused, not missing), each without contents.
    let mut var: Vec<String> = std::fs::read_dir("/var")
        .unwrap()
        .map(|e| format!("'{}'", e.unwrap().file_name().to_string_lossy()))
        .collect();
    var.sort();
    assert_eq!(
        text(&out.stdout),
        format!(
            "/etc/passwd True 0 0\n/etc/passwd Permission denied\n\
             /etc/shadow True 0 0\n/etc/shadow Permission denied\n[{}] [] []\n",
            var.join(", ")
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn support_the_interpreter_devices_and_links_are_there() {
    if !have(&[Layer::MountNs, Layer::RootFs, Layer::PidNs]) {
        return;
    }
    let code = r#"
import os
print(sorted(os.listdir("/dev")))
print(os.readlink("/bin"), os.path.exists("/usr/bin/python3"))
open("/dev/null", "w").write("x")
print(len(os.urandom(8)), open("/dev/zero", "rb").read(3))
try:
    os.write(os.open("/dev/full", os.O_WRONLY), b"x")
except OSError as e:
    print("full:", e.strerror)
"#;
    let out = confined(code, root_only());
    let bin = std::fs::read_link("/bin")
        .map_or_else(|_| "not a link".to_owned(), |t| t.display().to_string());
    assert_eq!(
        text(&out.stdout),
        format!(
            "['fd', 'full', 'null', 'random', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']\n\
             {bin} True\n8 b'\\x00\\x00\\x00'\nfull: No space left on device\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deny_a_program_outside_every_rule_is_an_error_before_anything_starts() {
    if !have(&[Layer::MountNs, Layer::RootFs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("true");
    std::fs::copy("/bin/true", &program).unwrap();
    let err = Spawn::new(&program).policy(root_only()).run().unwrap_err();
    assert!(
        matches!(
            &err,
            SpawnError::Root(codejail_proc::root::RootError::Outside {
                what: "program",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("FsRules::read_exec"), "{err}");
}

#[test]
fn deny_rootfs_without_its_mount_namespace_is_an_error_naming_it() {
    let err = Spawn::new("/bin/true")
        .policy(only(&[Layer::RootFs]))
        .run()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SpawnError::LayerUnavailable {
                layer: Layer::RootFs,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// No new programs (`no_exec`): the program's own execve is the only one.
// ---------------------------------------------------------------------------

/// Every way a Python program starts another: subprocess (a new program,
/// the interpreter itself), fork then execv, fexecve (execveat on a
/// descriptor), from a thread, and the program replacing itself.
const START_PROGRAMS: &str = r#"
import os, subprocess, sys, threading

def attempt(name, fn):
    try:
        fn()
        print(name, "ran")
    except OSError as e:
        print(name, "%s: %s" % (type(e).__name__, e))

def in_child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        except OSError as e:
            os._exit(e.errno)
        os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

attempt("true", lambda: subprocess.run(["/usr/bin/true"], check=True))
attempt("python", lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
print("fork+execv", in_child(lambda: os.execv("/usr/bin/true", ["true"])))
fd = os.open("/usr/bin/true", os.O_RDONLY)
print("fexecve", in_child(lambda: os.execve(fd, ["true"], {})))
out = []
t = threading.Thread(target=lambda: attempt("thread", lambda: subprocess.run(["/usr/bin/true"], check=True)))
t.start(); t.join()
sys.stdout.flush()
attempt("execv", lambda: os.execv("/usr/bin/true", ["true"]))
"#;

const NO_EXEC_SEEN: &str = "\
true PermissionError: [Errno 13] Permission denied: '/usr/bin/true'
python PermissionError: [Errno 13] Permission denied: '/usr/bin/python3'
fork+execv 13
fexecve 13
thread PermissionError: [Errno 13] Permission denied: '/usr/bin/true'
execv PermissionError: [Errno 13] Permission denied
";

/// What the program prints where it may start programs: the last line is
/// never printed (it became /usr/bin/true, which exits 0).
const EXEC_ALLOWED_SEEN: &str = "true ran\npython ran\nfork+execv 0\nfexecve 0\nthread ran\n";

#[test]
fn deny_exec_of_any_program_but_the_runs_own() {
    if !have(&[Layer::NoExec]) {
        return;
    }
    let out = confined(START_PROGRAMS, Policy::Auto);
    assert!(out.layers.contains(Layer::NoExec), "{}", out.layers);
    assert_eq!(text(&out.stdout), NO_EXEC_SEEN, "{}", text(&out.stderr));
    assert_eq!(out.status, 0);
    // The layer alone.
    let out = confined(START_PROGRAMS, only(&[Layer::NoExec]));
    assert_eq!(out.layers, "no_exec,no_new_privs".parse().unwrap());
    assert_eq!(text(&out.stdout), NO_EXEC_SEEN, "{}", text(&out.stderr));
    // Every other layer, and not this one: every program starts.
    let mut others = Probe::get().available();
    others.remove(Layer::NoExec);
    others.remove(Layer::Cgroup);
    others.remove(Layer::AppArmor);
    let out = confined(START_PROGRAMS, Policy::Only(others));
    assert_eq!(
        text(&out.stdout),
        EXEC_ALLOWED_SEEN,
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status, 0);
}

#[test]
fn allow_exec_leaves_the_layer_out() {
    let mut spawn = python(START_PROGRAMS);
    spawn.allow_exec(true);
    let out = run(&spawn);
    assert!(!out.layers.contains(Layer::NoExec), "{}", out.layers);
    assert_eq!(
        text(&out.stdout),
        EXEC_ALLOWED_SEEN,
        "{}",
        text(&out.stderr)
    );
    // Required and allowed at once: refused, naming why.
    spawn.policy(Policy::Require([Layer::NoExec].into_iter().collect()));
    match spawn.run() {
        Err(SpawnError::LayerUnavailable {
            layer: Layer::NoExec,
            reason,
        }) => assert!(reason.contains("allow_exec"), "{reason}"),
        other => panic!("expected no_exec refused, got {other:?}"),
    }
}

/// A shell can run its builtins, not programs; the run's own program
/// still starts, a script's interpreter included (`#!` is part of that
/// one `execve`).
#[test]
fn deny_exec_from_a_shell_and_allow_the_first_through_a_script() {
    if !have(&[Layer::NoExec]) {
        return;
    }
    let out = run(Spawn::new("/bin/sh").args(["-c", "echo builtin; /bin/true; echo status $?"]));
    assert_eq!(text(&out.stdout), "builtin\nstatus 126\n");
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\necho from the script\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(dir.path()).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut rules = FsRules::default();
    rules.read_exec.push(dir.path().to_owned());
    let out = run(Spawn::new(&script).fs_rules(rules));
    assert_eq!(
        text(&out.stdout),
        "from the script\n",
        "{}",
        text(&out.stderr)
    );
}

/// The guard checks the ABI as the main filter does: an x32 call (another
/// number for execve) kills the process even without the main filter.
#[cfg(target_arch = "x86_64")]
#[test]
fn deny_foreign_abi_calls_under_the_exec_guard_alone() {
    if !have(&[Layer::NoExec]) {
        return;
    }
    let code = "import ctypes\nctypes.CDLL(None).syscall(0x40000000 | 39)\nprint('survived')";
    let out = confined(code, only(&[Layer::NoExec]));
    assert_eq!(out.status, -libc::SIGSYS, "stdout {}", text(&out.stdout));
    assert_eq!(text(&confined(code, Policy::None).stdout), "survived\n");
}

// ---------------------------------------------------------------------------
// Pathname unix sockets of the host, where the run has no mount namespace.
// ---------------------------------------------------------------------------

/// A stream and a datagram socket the host binds in a directory of its
/// own that anyone may enter, each socket writable by anyone (as
/// `/run/dbus/system_bus_socket` is): only confinement keeps a jailed
/// program from them.
struct HostSockets {
    dir: tempfile::TempDir,
    _stream: std::os::unix::net::UnixListener,
    dgram: std::os::unix::net::UnixDatagram,
}

impl HostSockets {
    fn bind() -> HostSockets {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let stream = std::os::unix::net::UnixListener::bind(dir.path().join("stream")).unwrap();
        let dgram = std::os::unix::net::UnixDatagram::bind(dir.path().join("dgram")).unwrap();
        dgram.set_nonblocking(true).unwrap();
        for name in ["stream", "dgram"] {
            std::fs::set_permissions(
                dir.path().join(name),
                std::fs::Permissions::from_mode(0o777),
            )
            .unwrap();
        }
        HostSockets {
            dir,
            _stream: stream,
            dgram,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Datagrams that reached the host.
    fn received(&self) -> usize {
        let mut buf = [0u8; 64];
        std::iter::from_fn(|| self.dgram.recv(&mut buf).ok()).count()
    }
}

const REACH_HOST_SOCKETS: &str = r#"
import socket, sys

def attempt(name, fn):
    try:
        fn()
        print(name, "reached")
    except OSError as e:
        print(name, "%s: %s" % (type(e).__name__, e))

def stream():
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(sys.argv[1])

def dgram():
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"jailed", sys.argv[2])

def dgram_pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.sendto(b"jailed", sys.argv[2])

def stream_pair():
    a, b = socket.socketpair()
    a.sendall(b"x")
    assert b.recv(1) == b"x"

attempt("stream", stream)
attempt("dgram", dgram)
attempt("dgram pair", dgram_pair)
attempt("stream pair", stream_pair)
"#;

fn reach_host_sockets(sockets: &HostSockets, policy: Policy) -> Outcome {
    let mut spawn = python(REACH_HOST_SOCKETS);
    spawn
        .arg(sockets.path("stream"))
        .arg(sockets.path("dgram"))
        .policy(policy);
    run(&spawn)
}

/// Without a mount namespace nothing hides the host's sockets, and
/// Landlock before ABI 9 does not mediate `connect`: seccomp refuses unix
/// sockets (EACCES), stream socket pairs still work. With seccomp off too
/// (and Landlock, where its unix-socket right would refuse), the host's
/// sockets answer.
#[test]
fn deny_host_unix_sockets_without_a_mount_namespace() {
    if !have(&[Layer::Seccomp]) {
        return;
    }
    let sockets = HostSockets::bind();
    let mut narrowed = Probe::get()
        .plan(Policy::Auto, codejail_proc::Needs::default())
        .unwrap();
    // No mount namespace, hence no private root either.
    narrowed.remove(Layer::MountNs);
    narrowed.remove(Layer::RootFs);
    let out = reach_host_sockets(&sockets, Policy::Only(narrowed));
    let by_landlock = narrowed.contains(Layer::Landlock)
        && Probe::get()
            .landlock_abi
            .is_some_and(codejail_proc::refuses_unix_sockets);
    let refused = "PermissionError: [Errno 13] Permission denied";
    let want =
        format!("stream {refused}\ndgram {refused}\ndgram pair {refused}\nstream pair reached\n");
    if !by_landlock {
        assert_eq!(text(&out.stdout), want, "{}", text(&out.stderr));
    } else {
        // Landlock refuses the connection, not seccomp the socket.
        assert!(text(&out.stdout).ends_with("stream pair reached\n"));
        assert!(
            !text(&out.stdout).contains(" reached\nd"),
            "{}",
            text(&out.stdout)
        );
    }
    assert_eq!(sockets.received(), 0, "a datagram reached the host");
    // The sabotage: no seccomp either (nor Landlock where it has the
    // right): every one of them gets through.
    let mut open = narrowed.without(Layer::Seccomp);
    if by_landlock {
        open.remove(Layer::Landlock);
    }
    let out = reach_host_sockets(&sockets, Policy::Only(open));
    assert_eq!(
        text(&out.stdout),
        "stream reached\ndgram reached\ndgram pair reached\nstream pair reached\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sockets.received(), 2);
}

/// With a mount namespace the program keeps unix sockets for its own use
/// (a server and a client in a writable directory).
#[test]
fn allow_unix_sockets_of_its_own_with_a_mount_namespace() {
    if !have(&ns(Layer::MountNs)) || !have(&[Layer::Seccomp]) {
        return;
    }
    let dir = writable_dir();
    let code = r#"
import os, socket, sys
path = os.path.join(sys.argv[1], "own")
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen()
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(path)
print("own socket works")
"#;
    let mut spawn = python(code);
    spawn.arg(dir.path()).fs_rules(rules_with_rw(dir.path()));
    let out = run(&spawn);
    assert!(out.layers.contains(Layer::MountNs), "{}", out.layers);
    assert_eq!(
        text(&out.stdout),
        "own socket works\n",
        "{}",
        text(&out.stderr)
    );
}

const HOLDERS_EXECUTABLE: &str = r#"
def attempt(what, f):
    try:
        print(what, f())
    except OSError as e:
        print(what, e.strerror)

def write():
    # Opened for writing, never written: where nothing refuses it, the
    # file is the host's.
    with open("/proc/1/exe", "r+b"):
        return "opened"

attempt("pid 1", lambda: open("/proc/1/comm").read().strip())
attempt("read", lambda: open("/proc/1/exe", "rb").read(4))
attempt("write", write)
"#;

/// The holder is the init of the run's pid namespace: its executable,
/// `/proc/1/exe`, is a way to the host's `/bin/cat` (runc's CVE-2019-5736
/// overwrote the runtime's binary this way). With every layer nothing of
/// pid 1 can be opened (Landlock confines ptrace-like access to the
/// program's own domain, and the program runs as another uid). With only
/// the pid and mount namespaces and the private root, the attack reaches
/// the file (it reads it); whether it may then open it for writing is the
/// host's to say (a file being executed, its owner, a read-only mount),
/// and is only shown.
#[test]
fn deny_the_program_changes_the_holders_executable() {
    if !have(&ns(Layer::PidNs)) || !have(&[Layer::MountNs, Layer::RootFs, Layer::Landlock]) {
        return;
    }
    let out = confined(HOLDERS_EXECUTABLE, Policy::Auto);
    assert_eq!(
        text(&out.stdout),
        "pid 1 Permission denied\nread Permission denied\nwrite Permission denied\n",
        "{}",
        text(&out.stderr)
    );
    let mut layers = ns(Layer::PidNs);
    layers.extend([Layer::MountNs, Layer::RootFs]);
    let open = confined(HOLDERS_EXECUTABLE, only(&layers));
    let shown = text(&open.stdout);
    assert!(
        shown.starts_with("pid 1 cat\nread b'\\x7fELF'\nwrite "),
        "{shown}{}",
        text(&open.stderr)
    );
    eprintln!("without the layers, pid 1's executable: {shown}");
}

/// Runs at the same time never share namespaces: each run's program is
/// in a pid and a network namespace of its own (the ids the kernel shows
/// in `/proc/self/ns`). The kernel reuses the number of a namespace that
/// is gone, so ids are compared only within a round whose programs were
/// all alive at once: each prints its ids and the monotonic clock, then
/// sleeps; a round counts when every print came before every run's end.
/// A holder handed to two runs (one made ahead and kept for the next run,
/// say) would show here as two runs in one namespace.
#[test]
fn deny_two_runs_share_namespaces() {
    if !have(&ns(Layer::PidNs)) || !have(&ns(Layer::NetNs)) {
        return;
    }
    let code = "import os, time\n\
                ids = [os.readlink('/proc/self/ns/' + k) for k in ('pid', 'net')]\n\
                print(*ids, time.monotonic(), flush=True)\n\
                time.sleep(0.5)";
    let now = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let mut counted = 0;
    for _round in 0..6 {
        let seen = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let out = confined(code, Policy::Auto);
                    let ended = now();
                    assert_eq!(out.status, 0, "{}", text(&out.stderr));
                    let line = text(&out.stdout).trim().to_owned();
                    seen.lock().unwrap().push((line, ended));
                });
            }
        });
        let seen = seen.into_inner().unwrap();
        let printed = |line: &str| -> f64 {
            line.split(' ')
                .nth(2)
                .and_then(|t| t.parse().ok())
                .unwrap_or(f64::MAX)
        };
        let last_print = seen.iter().map(|(l, _)| printed(l)).fold(0.0, f64::max);
        let first_end = seen.iter().map(|(_, e)| *e).fold(f64::MAX, f64::min);
        if last_print >= first_end {
            continue;
        }
        counted += 1;
        for (i, kind) in ["pid", "net"].into_iter().enumerate() {
            let mut ids: Vec<&str> = seen
                .iter()
                .map(|(line, _)| line.split(' ').nth(i).unwrap_or(""))
                .collect();
            assert!(ids.iter().all(|id| id.starts_with(kind)), "{seen:?}");
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                seen.len(),
                "two runs in one {kind} namespace: {seen:?}"
            );
        }
        if counted == 2 {
            return;
        }
    }
    panic!("in six rounds, {counted} had their four runs alive at once");
}

/// In a run with a private root the holder makes the run's network
/// namespace after its clone, while the program builds the root, and the
/// program joins it last, once the holder says it exists; without a root
/// the holder is cloned into it. Either way no program may reach `execve`
/// in the caller's network namespace, however the processes race. Runs
/// eight at a time, with every layer, with the network namespace alone,
/// and with it and a private root; without it the program is in the
/// caller's (the check can fail).
#[test]
fn deny_the_program_runs_in_the_callers_network_namespace() {
    if !have(&ns(Layer::NetNs)) {
        return;
    }
    let callers = std::fs::read_link("/proc/self/ns/net").unwrap();
    let callers = callers.to_string_lossy().into_owned();
    let code = "import os; print(os.readlink('/proc/self/ns/net'))";
    let seen = |policy: Policy| -> Vec<String> {
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(move || {
                        let out = confined(code, policy);
                        assert_eq!(out.status, 0, "{}", text(&out.stderr));
                        text(&out.stdout).trim().to_owned()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        })
    };
    // With a private root (and the pid namespace its procfs needs), for a
    // root caller without a user namespace: the holder makes the
    // namespace after its clone.
    let mut with_root = ns(Layer::NetNs);
    with_root.extend([Layer::MountNs, Layer::RootFs, Layer::PidNs]);
    if !have(&with_root) {
        return;
    }
    for _round in 0..5 {
        for policy in [Policy::Auto, only(&ns(Layer::NetNs)), only(&with_root)] {
            for id in seen(policy) {
                assert!(id.starts_with("net:["), "{id}");
                assert_ne!(
                    id, callers,
                    "{policy:?}: a program in the caller's network namespace"
                );
            }
        }
    }
    let without = if rustix::process::geteuid().is_root() {
        only(&[Layer::PidNs])
    } else {
        only(&[Layer::UserNs, Layer::PidNs])
    };
    assert!(seen(without).iter().all(|id| *id == callers));
}
