//! The facade end to end: CodeJail's semantics, confined.

use std::path::PathBuf;
use std::sync::Arc;

use codejail::{
    CallOptions, Confinement, JailCode, JailConfig, JailError, KillReason, Layer, LimitName,
    Runner, SafeExecError, SafeExecOptions,
};
use serde_json::{Map, Value, json};

fn python() -> Arc<codejail::Jail> {
    codejail::configure("python", "/usr/bin/python3", None).unwrap()
}

fn code(text: &str) -> JailCode {
    JailCode {
        code: Some(text.to_owned()),
        ..JailCode::default()
    }
}

/// A contract test on the cold path and on the warm path (a pool of one,
/// which must have served every call itself and have no process of any
/// call left afterwards).
macro_rules! both_paths {
    ($check:ident) => {
        mod $check {
            #[test]
            fn cold() {
                super::$check(&*super::python());
            }

            #[test]
            fn warm() {
                let pool = super::python().warm(1).unwrap();
                super::$check(&pool);
                assert_eq!(pool.cold_fallbacks(), 0, "a call went down the cold path");
                assert_eq!(pool.stray_processes(), 0);
            }
        }
    };
}

/// A contract test of calls the warm path cannot serve (limits that need a
/// cgroup or a tmpfs): on the cold path, and through a warm pool that sends
/// each of them down the cold path, which the test asserts.
macro_rules! cold_and_warm_fallback {
    ($check:ident, $calls:expr) => {
        mod $check {
            #[test]
            fn cold() {
                super::$check(&*super::python());
            }

            #[test]
            fn warm_pool_falls_back_to_cold() {
                let pool = super::python().warm(1).unwrap();
                super::$check(&pool);
                assert_eq!(
                    pool.cold_fallbacks(),
                    $calls,
                    "calls sent down the cold path"
                );
                assert_eq!(pool.stray_processes(), 0);
            }
        }
    };
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn globals(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn hello_world(path: &dyn Runner) {
    let r = path.jail_code(&code("print('Hello, world!')")).unwrap();
    assert_eq!(
        (r.status, text(&r.stdout), text(&r.stderr)),
        (0, "Hello, world!\n".into(), String::new())
    );
    assert!(r.layers.contains(Layer::Landlock), "{}", r.layers);
}
both_paths!(hello_world);

fn argv_follows_jailed_code(path: &dyn Runner) {
    let mut req = code("import sys; print(sys.argv)");
    req.argv = vec!["10".into(), "20".into()];
    let r = path.jail_code(&req).unwrap();
    assert_eq!(text(&r.stdout), "['jailed_code', '10', '20']\n");
}
both_paths!(argv_follows_jailed_code);

fn exceptions_mention_jailed_code(path: &dyn Runner) {
    let r = path.jail_code(&code("1/0")).unwrap();
    assert_eq!(r.status, 1);
    let err = text(&r.stderr);
    assert!(
        err.contains("jailed_code") && err.contains("ZeroDivisionError"),
        "{err}"
    );
}
both_paths!(exceptions_mention_jailed_code);

fn stdin_reaches_the_code(path: &dyn Runner) {
    let mut req = code("import sys; print(sys.stdin.read().upper())");
    req.stdin = b"quiet please".to_vec();
    assert_eq!(
        text(&path.jail_code(&req).unwrap().stdout),
        "QUIET PLEASE\n"
    );
}
both_paths!(stdin_reaches_the_code);

/// A directory with a script, a data directory and a link to a data file.
fn files_to_copy() -> (tempfile::TempDir, Vec<PathBuf>) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("doit.py"),
        "import sys\nprint('doit', sys.argv[1:])\nprint(open('data/hello.txt').read())",
    )
    .unwrap();
    std::fs::create_dir(src.path().join("data")).unwrap();
    std::fs::write(src.path().join("data/hello.txt"), "hi there").unwrap();
    std::os::unix::fs::symlink("data/hello.txt", src.path().join("link.txt")).unwrap();
    let files = ["doit.py", "data", "link.txt"]
        .iter()
        .map(|f| src.path().join(f))
        .collect();
    (src, files)
}

fn files_directories_and_links_are_copied(path: &dyn Runner) {
    let (_src, files) = files_to_copy();
    let mut req = code(
        "import os\nprint(open('data/hello.txt').read(), os.readlink('link.txt'), open('link.txt').read(), os.path.isfile('doit.py'))",
    );
    req.call.files = files;
    let r = path.jail_code(&req).unwrap();
    assert_eq!(
        text(&r.stdout),
        "hi there data/hello.txt hi there True\n",
        "{}",
        text(&r.stderr)
    );
    let r = path
        .jail_code(&code(
            "import os; print(os.readlink('link.txt'), open('link.txt').read())",
        ))
        .unwrap();
    assert_eq!(r.status, 1, "no file was staged in this run");
}
both_paths!(files_directories_and_links_are_copied);

/// A run without code runs a copied file: the warm path sends it down the
/// cold path.
fn a_copied_file_runs_without_code(path: &dyn Runner) {
    let (_src, files) = files_to_copy();
    let req = JailCode {
        argv: vec!["doit.py".into(), "1".into(), "2".into(), "3".into()],
        call: CallOptions {
            files,
            ..CallOptions::default()
        },
        ..JailCode::default()
    };
    let r = path.jail_code(&req).unwrap();
    assert_eq!(
        (text(&r.stdout).as_str(), r.warm),
        ("doit ['1', '2', '3']\nhi there\n", false),
        "{}",
        text(&r.stderr)
    );
}
cold_and_warm_fallback!(a_copied_file_runs_without_code, 1);

fn extra_files_with_binary_content(path: &dyn Runner) {
    let mut req = code("print(list(open('blob', 'rb').read()))");
    req.call.extra_files = vec![("blob".into(), vec![0, 1, 255, 10])];
    assert_eq!(
        text(&path.jail_code(&req).unwrap().stdout),
        "[0, 1, 255, 10]\n"
    );
}
both_paths!(extra_files_with_binary_content);

#[test]
fn bad_extra_file_names_are_refused_and_leave_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let mut config = JailConfig::new("/usr/bin/python3");
    config.jail_parent = Some(parent.path().to_owned());
    let jail = codejail::configure_with("python-bad-names", config).unwrap();
    for name in ["../evil", "", "tmp", "a/b"] {
        let mut req = code("print(1)");
        req.call.extra_files = vec![(name.into(), b"x".to_vec())];
        let err = jail.jail_code(&req).unwrap_err();
        assert!(
            matches!(err, JailError::Stage(_)) && err.is_bad_input(),
            "{name:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

fn two_and_a_half_megabytes_of_binary_round_trip(path: &dyn Runner) {
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let mut req = code(
        "import sys\nd = sys.stdin.buffer.read()\nsys.stdout.buffer.write(d)\nsys.stderr.buffer.write(d[::-1])",
    );
    req.stdin = data.clone();
    req.call.limits = vec![(LimitName::Output, 4 << 20), (LimitName::Realtime, 10)];
    let r = path.jail_code(&req).unwrap();
    assert_eq!(
        r.status,
        0,
        "{}",
        text(&r.stderr[..r.stderr.len().min(300)])
    );
    assert!(r.stdout == data);
    assert!(r.stderr.iter().rev().eq(data.iter()));
}
both_paths!(two_and_a_half_megabytes_of_binary_round_trip);

fn safe_exec_sets_values(path: &dyn Runner) {
    let mut g = globals(json!({"a": 17}));
    path.safe_exec("b = a + 25\nc = 'hi'", &mut g, &SafeExecOptions::default())
        .unwrap();
    assert_eq!(Value::Object(g), json!({"a": 17, "b": 42, "c": "hi"}));
}
both_paths!(safe_exec_sets_values);

fn safe_exec_complex_globals_with_bytes_and_nested_tuples(path: &dyn Runner) {
    let mut g = globals(json!({"x": [1, {"y": "z"}]}));
    let code = "t = (1, (b'two', [3.5]))\nd = {'k': b'v'}\nimport os\nf = lambda: 1";
    path.safe_exec(code, &mut g, &SafeExecOptions::default())
        .unwrap();
    assert_eq!(
        Value::Object(g),
        json!({"x": [1, {"y": "z"}], "t": [1, ["two", [3.5]]], "d": {"k": "v"}})
    );
}
both_paths!(safe_exec_complex_globals_with_bytes_and_nested_tuples);

fn safe_exec_printing_does_not_corrupt_the_result(path: &dyn Runner) {
    let mut g = Map::new();
    path.safe_exec(
        "print('{\"bad\": 1}')\nprint('}')\nx = 1",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(Value::Object(g), json!({"x": 1}));
}
both_paths!(safe_exec_printing_does_not_corrupt_the_result);

fn safe_exec_functions_call_each_other(path: &dyn Runner) {
    let mut g = Map::new();
    path.safe_exec(
        "def f(x): return g(x) * 2\ndef g(x): return x + 1\nr = f(20)",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(g["r"], 42);
}
both_paths!(safe_exec_functions_call_each_other);

fn safe_exec_python_path_with_a_directory_and_with_a_zip_extra_file(path: &dyn Runner) {
    let lib = tempfile::tempdir().unwrap();
    let pkg = lib.path().join("mylib");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::write(pkg.join("helper.py"), "def twice(x): return 2 * x\n").unwrap();
    // A zip made by Python's zipfile, as bytes for an extra file.
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import io, sys, zipfile\nb = io.BytesIO()\nz = zipfile.ZipFile(b, 'w')\nz.writestr('zipped.py', 'def thrice(x): return 3 * x\\n')\nz.close()\nsys.stdout.buffer.write(b.getvalue())"])
        .output()
        .unwrap();
    let options = SafeExecOptions {
        python_path: vec![pkg.clone(), PathBuf::from("lib.zip")],
        call: CallOptions {
            extra_files: vec![("lib.zip".into(), out.stdout)],
            ..CallOptions::default()
        },
    };
    let mut g = Map::new();
    path.safe_exec(
        "import helper, zipped\nr = helper.twice(zipped.thrice(7))",
        &mut g,
        &options,
    )
    .unwrap();
    assert_eq!(g["r"], 42);
}
both_paths!(safe_exec_python_path_with_a_directory_and_with_a_zip_extra_file);

fn safe_exec_exceptions_raise_safe_exec_error_with_the_last_line(path: &dyn Runner) {
    let mut g = Map::new();
    let err = path
        .safe_exec(
            "raise ValueError(\"That's not how you pour soup!\")",
            &mut g,
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, SafeExecError::Failed { .. }));
    assert_eq!(err.to_string(), "ValueError: That's not how you pour soup!");
}
both_paths!(safe_exec_exceptions_raise_safe_exec_error_with_the_last_line);

fn safe_exec_with_files(path: &dyn Runner) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("data.txt"), "file contents").unwrap();
    let options = SafeExecOptions {
        call: CallOptions {
            files: vec![src.path().join("data.txt")],
            ..CallOptions::default()
        },
        ..SafeExecOptions::default()
    };
    let mut g = Map::new();
    path.safe_exec("x = open('data.txt').read()", &mut g, &options)
        .unwrap();
    assert_eq!(g["x"], "file contents");
}
both_paths!(safe_exec_with_files);

fn safe_exec_kill_reason_is_in_the_message(path: &dyn Runner) {
    let mut g = Map::new();
    let options = SafeExecOptions {
        call: CallOptions {
            limits: vec![(LimitName::Realtime, 1), (LimitName::Cpu, 5)],
            ..CallOptions::default()
        },
        ..Default::default()
    };
    let err = path
        .safe_exec("import time\ntime.sleep(30)", &mut g, &options)
        .unwrap_err();
    assert!(err.to_string().contains("killed: realtime limit"), "{err}");
}
both_paths!(safe_exec_kill_reason_is_in_the_message);

#[test]
fn unsafe_mode_runs_unconfined() {
    let mut config = JailConfig::new("/usr/bin/python3");
    config.confinement = Confinement::Unsafe;
    let jail = codejail::configure_with("python-unsafe", config).unwrap();
    assert!(jail.is_unsafe());
    let mut g = Map::new();
    jail.safe_exec(
        "import os\nhost_files = len(os.listdir('/etc')) > 0",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(g["host_files"], true);
    let r = jail.jail_code(&code("print(1)")).unwrap();
    assert!(r.layers.is_empty());
    // The confined jail cannot list /etc.
    let mut g = Map::new();
    let err = python()
        .safe_exec(
            "import os\nx = os.listdir('/etc')",
            &mut g,
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("PermissionError"), "{err}");
}

#[test]
fn not_safe_exec_has_the_same_contract() {
    let mut g = globals(json!({"a": 1}));
    python()
        .not_safe_exec("b = a + 1", &mut g, &SafeExecOptions::default())
        .unwrap();
    assert_eq!(g["b"], 2);
}

#[test]
fn an_unknown_jail_is_an_error() {
    assert!(!codejail::is_configured("cobol"));
    let err = codejail::jail_code("cobol", &code("x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "safe_exec has not been configured for cobol"
    );
    let mut g = Map::new();
    let err =
        codejail::safe_exec("cobol", "x = 1", &mut g, &SafeExecOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "safe_exec has not been configured for cobol"
    );
}

#[test]
fn a_missing_interpreter_is_a_config_error() {
    let err = codejail::configure("ruby", "/nonexistent/ruby", None).unwrap_err();
    assert!(
        matches!(err, codejail::ConfigError::InterpreterMissing { .. }),
        "{err}"
    );
    assert!(!codejail::is_configured("ruby"));
    let err =
        codejail::configure("python", "/usr/bin/python3", Some("no-such-user-here")).unwrap_err();
    assert!(
        matches!(err, codejail::ConfigError::UnknownUser { .. }),
        "{err}"
    );
}

#[test]
fn the_free_functions_use_the_registry() {
    python();
    assert!(codejail::is_configured("python"));
    let r = codejail::jail_code("python", &code("print(2 + 2)")).unwrap();
    assert_eq!(text(&r.stdout), "4\n");
}

// Limits: each row, through the facade.

fn limited(path: &dyn Runner, text: &str, limits: Vec<(LimitName, u64)>) -> codejail::JailResult {
    let mut req = code(text);
    req.call.limits = limits;
    path.jail_code(&req).unwrap()
}

fn limit_cpu(path: &dyn Runner) {
    let r = limited(
        path,
        "while True: pass",
        vec![(LimitName::Cpu, 1), (LimitName::Realtime, 20)],
    );
    assert_eq!((r.status, r.killed_by), (-24, Some(KillReason::Cpu)));
}
both_paths!(limit_cpu);

fn limit_realtime(path: &dyn Runner) {
    let r = limited(
        path,
        "import time; time.sleep(30)",
        vec![(LimitName::Realtime, 1)],
    );
    assert_eq!((r.status, r.killed_by), (-9, Some(KillReason::Wall)));
}
both_paths!(limit_realtime);

fn limit_vmem(path: &dyn Runner) {
    let c = "try:\n    x = bytearray(500 * 1024 * 1024)\n    print('ok')\nexcept MemoryError:\n    print('MemoryError')";
    assert_eq!(
        text(&limited(path, c, vec![(LimitName::Vmem, 300 << 20)]).stdout),
        "MemoryError\n"
    );
    assert_eq!(
        text(
            &limited(
                path,
                c,
                vec![
                    (LimitName::Vmem, 0),
                    (LimitName::Realtime, 20),
                    (LimitName::Cpu, 20)
                ]
            )
            .stdout
        ),
        "ok\n"
    );
}
both_paths!(limit_vmem);

fn limit_fsize(path: &dyn Runner) {
    let c = "import os\ntry:\n    with open(os.environ['TMPDIR'] + '/f', 'w') as f:\n        f.write('x' * 100)\n    print('wrote')\nexcept OSError as e:\n    print(e.errno)";
    assert_eq!(
        text(&limited(path, c, vec![]).stdout),
        "27\n",
        "FSIZE 0 by default: no file may be written"
    );
    assert_eq!(
        text(&limited(path, c, vec![(LimitName::Fsize, 1000)]).stdout),
        "wrote\n"
    );
}
both_paths!(limit_fsize);

fn limit_nproc(path: &dyn Runner) {
    let c = "import os\nn = 0\ntry:\n    for i in range(10):\n        if os.fork() == 0:\n            import time; time.sleep(2); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('EAGAIN', e.errno == 11)\nprint(n)";
    assert_eq!(
        text(
            &limited(
                path,
                c,
                vec![(LimitName::Nproc, 3), (LimitName::Realtime, 10)]
            )
            .stdout
        ),
        "EAGAIN True\n2\n"
    );
}
both_paths!(limit_nproc);

/// A memory limit needs a cgroup memory controller (`cgroup_memory` for
/// the gate): the warm path sends the call down the cold path.
fn limit_memory(path: &dyn Runner) {
    let probe = codejail::Probe::get();
    let missing = match probe.availability(Layer::Cgroup) {
        codejail::Availability::No(why) => Some(format!("no cgroup for this caller: {why}")),
        codejail::Availability::Yes if !probe.cgroups.has_memory() => {
            Some("no memory controller for this caller".to_owned())
        }
        codejail::Availability::Yes => None,
    };
    if !codejail_tests::require("cgroup_memory", missing.as_deref()) {
        // Nothing was called: the warm test's count of cold calls must
        // still hold, so make the one call it counts, which fails to plan.
        let err = path
            .jail_code(&JailCode {
                call: CallOptions {
                    limits: vec![(LimitName::Memory, 100 << 20)],
                    ..CallOptions::default()
                },
                ..code("print(1)")
            })
            .unwrap_err();
        // Nothing was required: the limit needs the layer, and the
        // message says what to do.
        let text = err.to_string();
        assert!(
            text.starts_with("the memory limit needs the `cgroup` layer")
                && text.contains("set the memory limit to 0"),
            "{text}"
        );
        return;
    }
    let c = "x = bytearray(300 * 1024 * 1024)\nprint('ok')";
    let r = limited(
        path,
        c,
        vec![(LimitName::Memory, 100 << 20), (LimitName::Realtime, 20)],
    );
    assert_eq!((r.killed_by, r.warm), (Some(KillReason::Memory), false));
    assert!(r.layers.contains(Layer::Cgroup), "{}", r.layers);
}
cold_and_warm_fallback!(limit_memory, 1);

/// Disk and file quotas need a tmpfs in a mount namespace: the warm path
/// sends both calls down the cold path.
fn limit_disk_and_files(path: &dyn Runner) {
    let big = "import os\ntry:\n    open(os.environ['TMPDIR'] + '/f', 'wb').write(b'x' * 3000000)\n    print('wrote')\nexcept OSError as e:\n    print(e.errno)";
    let r = limited(
        path,
        big,
        vec![(LimitName::Fsize, 10 << 20), (LimitName::Disk, 1 << 20)],
    );
    assert_eq!(
        (text(&r.stdout).as_str(), r.killed_by, r.warm),
        ("28\n", Some(KillReason::Disk), false)
    );
    let many = "import os\ntry:\n    for i in range(500): open(os.environ['TMPDIR'] + '/f%d' % i, 'w').close()\n    print('made')\nexcept OSError as e:\n    print(e.errno)";
    let r = limited(
        path,
        many,
        vec![(LimitName::Fsize, 1000), (LimitName::Files, 50)],
    );
    assert_eq!(
        (text(&r.stdout).as_str(), r.killed_by, r.warm),
        ("28\n", Some(KillReason::Disk), false)
    );
}
cold_and_warm_fallback!(limit_disk_and_files, 2);

fn limit_output(path: &dyn Runner) {
    let r = limited(path, "print('x' * 100000)", vec![(LimitName::Output, 1000)]);
    assert_eq!(
        (r.stdout.len(), r.truncated.stdout, r.killed_by),
        (1000, true, Some(KillReason::Output))
    );
}
both_paths!(limit_output);

fn limit_overrides_by_context(path: &dyn Runner) {
    codejail::override_limit(LimitName::Realtime, 5, "slow-course-test").unwrap();
    let c = "import time; time.sleep(2); print('done')";
    let mut req = code(c);
    assert_eq!(
        path.jail_code(&req).unwrap().killed_by,
        Some(KillReason::Wall)
    );
    req.call.limits_context = Some("slow-course-test".into());
    assert_eq!(text(&path.jail_code(&req).unwrap().stdout), "done\n");
    let effective =
        codejail::effective_limits(Some("slow-course-test"), &[(LimitName::Cpu, 3)]).unwrap();
    assert_eq!(
        (
            effective.get(LimitName::Realtime),
            effective.get(LimitName::Cpu)
        ),
        (5, 3)
    );
}
both_paths!(limit_overrides_by_context);

/// CodeJail's "import lots of things" case, in the sandbox virtualenv made
/// by `cargo xtask setup-sandbox` (CI sets `CODEJAIL_SANDBOX_PYTHON`),
/// under every layer the machine offers.
#[test]
fn numpy_imports_in_the_sandbox_venv_under_every_layer() {
    let Some(bin) = codejail_tests::sandbox_python() else {
        return;
    };
    // A Python jail (CodeJail's `configure` makes only the jail called
    // `python` one: under another name the interpreter's own directories
    // would not be among Landlock's rules, and its exec would be refused).
    let mut config = JailConfig::new(&bin);
    config.user = std::env::var("CODEJAIL_SANDBOX_USER").ok();
    let jail = codejail::Jail::new("python-sandbox-venv", config).unwrap();
    let mut req = code(
        "import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\nfrom numpy import *\nprint(array([1, 2, 3]).sum())",
    );
    req.call.limits = vec![(LimitName::Realtime, 10)];
    let r = jail.jail_code(&req).unwrap();
    assert_eq!(
        (r.status, text(&r.stdout)),
        (0, "6\n".to_owned()),
        "{}",
        text(&r.stderr)
    );
    let probe = codejail::Probe::get();
    for layer in Layer::ALL {
        let offered = probe.availability(layer).is_yes() && layer != Layer::AppArmor;
        let applied = r.layers.contains(layer);
        // Cgroup and AppArmor apply only when something asks for them.
        if layer != Layer::Cgroup && layer != Layer::AppArmor {
            assert_eq!(applied, offered, "layer {layer}");
        }
    }
}

#[test]
fn many_jail_code_calls_run_at_once() {
    let jail = python();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let jail = jail.clone();
            std::thread::spawn(move || {
                let mut g = globals(json!({"i": i}));
                jail.safe_exec("sq = i * i", &mut g, &SafeExecOptions::default())
                    .unwrap();
                (i, g["sq"].as_i64().unwrap())
            })
        })
        .collect();
    for h in handles {
        let (i, sq) = h.join().unwrap();
        assert_eq!(sq, i * i);
    }
}

fn code_runs_as_main_with_argv_and_stdin_in_its_own_directory(path: &dyn Runner) {
    let mut req = code(
        "import sys, os\nprint(__name__, sys.argv, sys.stdin.read(), os.getcwd().split('/')[-1].startswith('codejail-'))",
    );
    req.argv = vec!["a".into()];
    req.stdin = b"in".to_vec();
    let r = path.jail_code(&req).unwrap();
    assert_eq!(
        text(&r.stdout),
        "__main__ ['jailed_code', 'a'] in True\n",
        "{}",
        text(&r.stderr)
    );
}
both_paths!(code_runs_as_main_with_argv_and_stdin_in_its_own_directory);

// The embedding API: jails without the registry, narrowing only, typed
// errors.

fn jail_of(name: &str, config: JailConfig) -> codejail::Jail {
    codejail::Jail::new(name, config).unwrap()
}

#[test]
fn a_jail_needs_no_registry() {
    let jail = jail_of("standalone-jail", JailConfig::new("/usr/bin/python3"));
    assert!(!codejail::is_configured("standalone-jail"));
    let r = jail.jail_code(&code("print('alone')")).unwrap();
    assert_eq!(text(&r.stdout), "alone\n");
    assert!(!r.warm);
}

#[test]
fn a_call_may_narrow_the_layers_but_never_drop_them() {
    let jail = python();
    let only = |layers: codejail::LayerSet| JailCode {
        call: CallOptions {
            layers: Some(layers),
            ..CallOptions::default()
        },
        ..code("import os; print(os.getuid())")
    };
    let err = jail
        .jail_code(&only(codejail::LayerSet::empty()))
        .unwrap_err();
    assert!(
        matches!(err, JailError::LayersNotNarrowed { .. }) && err.is_bad_input(),
        "{err}"
    );
    let landlock: codejail::LayerSet = [Layer::Landlock].into_iter().collect();
    let r = jail.jail_code(&only(landlock)).unwrap();
    assert!(r.layers.contains(Layer::Landlock), "{}", r.layers);
    assert!(!r.layers.contains(Layer::NetNs), "{}", r.layers);
    // A layer the jail does not apply cannot be asked for.
    let mut config = JailConfig::new("/usr/bin/python3");
    config.confinement = Confinement::Unsafe;
    let unsafe_jail = jail_of("python-unsafe-narrow", config);
    let err = unsafe_jail.jail_code(&only(landlock)).unwrap_err();
    assert!(matches!(err, JailError::LayersNotNarrowed { .. }), "{err}");
}

#[test]
fn a_jail_of_another_language_has_no_safe_exec() {
    let mut config = JailConfig::new("/bin/sh");
    config.lang = codejail::Lang::other();
    let jail = jail_of("shell", config);
    let r = jail
        .jail_code(&JailCode {
            argv: vec!["-c".into(), "echo $0 from sh".into()],
            ..JailCode::default()
        })
        .unwrap();
    assert_eq!(text(&r.stdout), "/bin/sh from sh\n", "{}", text(&r.stderr));
    let err = jail
        .safe_exec("x = 1", &mut Map::new(), &SafeExecOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, SafeExecError::Jail(JailError::NoSafeExec { .. })),
        "{err}"
    );
    // CodeJail's configure: only the jail called `python` gets -E -B.
    let other = codejail::configure("not-python", "/usr/bin/python3", None).unwrap();
    assert_eq!(other.lang().name(), "other");
    assert_eq!(python().lang().args(), ["-E", "-B"]);
}

#[test]
fn limits_out_of_range_are_typed_bad_input() {
    assert!(codejail::set_limit(LimitName::Realtime, u64::MAX).is_err());
    let mut req = code("print(1)");
    req.call.limits = vec![(LimitName::Nproc, 1 << 32)];
    let err = python().jail_code(&req).unwrap_err();
    assert!(
        matches!(err, JailError::Limit(_)) && err.is_bad_input(),
        "{err}"
    );
    assert!(err.to_string().contains("nproc"), "{err}");
}

#[test]
fn an_empty_warm_pool_is_refused() {
    let err = python().warm(0).unwrap_err();
    assert!(
        matches!(err, JailError::Warm(codejail::WarmError::EmptyPool)),
        "{err}"
    );
}

#[test]
fn a_failure_message_is_bounded_and_escaped() {
    let mut g = Map::new();
    let err = python()
        .safe_exec(
            "raise ValueError('\\x1b[2J' + 'x' * 200000)",
            &mut g,
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    let message = err.to_string();
    assert!(message.len() < 1100, "{} bytes", message.len());
    assert!(!message.contains('\u{1b}'), "{message:?}");
}

// Faithful results: CodeJail's update, and every value its json round
// trip carries.

fn safe_exec_updates_the_globals_as_codejail_does(path: &dyn Runner) {
    let mut g = globals(json!({"gone": 1, "opaque": 2, "kept": [1, 2], "n": 5}));
    path.safe_exec(
        "del gone\nopaque = object()\nkept.append(3)\nnew = n * 2",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(
        Value::Object(g),
        json!({"gone": 1, "opaque": 2, "kept": [1, 2, 3], "n": 5, "new": 10})
    );
}
both_paths!(safe_exec_updates_the_globals_as_codejail_does);

fn safe_exec_json_carries_what_pythons_json_carries(path: &dyn Runner) {
    let out = path
        .safe_exec_json(
            "big = given * 2\nhuge = 10**400\nnan = float('nan')\ninf = -float('inf')\nsur = '\\ud800'\nglobals()[chr(0xDC00)] = 'key'\ndeep = []\nx = deep\nfor _ in range(126): x.append([]); x = x[0]",
            r#"{"given": 18446744073709551617, "f": NaN}"#,
            &SafeExecOptions::default(),
        )
        .unwrap();
    for part in [
        r#""given": 18446744073709551617"#,
        r#""f": NaN"#,
        r#""big": 36893488147419103234"#,
        r#""nan": NaN"#,
        r#""inf": -Infinity"#,
        r#""sur": "\ud800""#,
        r#""\udc00": "key""#,
        &format!(r#""huge": 1{}"#, "0".repeat(400)),
        &format!(r#""deep": {}{}"#, "[".repeat(127), "]".repeat(127)),
    ] {
        assert!(out.contains(part), "{part} is missing from {out}");
    }
    // Through the map: integers exact, the rest as documented.
    let mut g = globals(json!({}));
    path.safe_exec(
        "big = 2**64 + 1\nnan = float('nan')",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(g["big"].to_string(), "18446744073709551617");
    assert_eq!(g["nan"], Value::Null);
}
both_paths!(safe_exec_json_carries_what_pythons_json_carries);

fn safe_exec_failure_has_codejails_exception_text(path: &dyn Runner) {
    let err = path
        .safe_exec(
            "import sys\nprint('quiet')\nsys.stderr.write('it\\'s bad\\n')\nsys.exit(3)",
            &mut Map::new(),
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.codejail_message(),
        "Couldn't execute jailed code: stdout: b'', stderr: b\"it's bad\\n\" with status code: 3"
    );
}
both_paths!(safe_exec_failure_has_codejails_exception_text);

/// The text with each `File "<dir>/jailed_code"` path of a traceback as
/// `File "HOME/jailed_code"` (the run's directory is its own).
fn homeless(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("File \"/") {
        out.push_str(&rest[..at + 6]);
        let after = &rest[at + 6..];
        let end = after
            .find("/jailed_code\"")
            .expect("a frame of the jailed program");
        out.push_str("HOME");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A traceback reads as under CodeJail, whose program runs the code at
/// module level, `exec(code, g_dict)` on line 19 (one line later per
/// python_path entry), and shows no frame of codejail's own: chained
/// exceptions, the interpreter's suggestions, a python_path.
fn safe_exec_traceback_reads_as_codejails(path: &dyn Runner) {
    let message = |code: &str, options: &SafeExecOptions| {
        let err = path.safe_exec(code, &mut Map::new(), options).unwrap_err();
        homeless(&err.codejail_message())
    };
    let none = SafeExecOptions::default();
    assert_eq!(
        message("def f():\n    1/0\nf()", &none),
        "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n  File \"HOME/jailed_code\", line 19, in <module>\\n    exec(code, g_dict)\\n  File \"<string>\", line 3, in <module>\\n  File \"<string>\", line 2, in f\\nZeroDivisionError: division by zero\\n' with status code: 1"
    );
    assert_eq!(
        message("try:\n    1/0\nexcept Exception:\n    nme", &none),
        "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n  File \"<string>\", line 2, in <module>\\nZeroDivisionError: division by zero\\n\\nDuring handling of the above exception, another exception occurred:\\n\\nTraceback (most recent call last):\\n  File \"HOME/jailed_code\", line 19, in <module>\\n    exec(code, g_dict)\\n  File \"<string>\", line 4, in <module>\\nNameError: name \\'nme\\' is not defined\\n' with status code: 1"
    );
    assert_eq!(
        message("x = ", &none),
        "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n  File \"HOME/jailed_code\", line 19, in <module>\\n    exec(code, g_dict)\\n  File \"<string>\", line 1\\n    x = \\n        ^\\nSyntaxError: invalid syntax\\n' with status code: 1"
    );
    assert!(
        message("__file__", &none).ends_with(
            "NameError: name \\'__file__\\' is not defined. Did you mean: \\'__name__\\'?\\n' with status code: 1"
        ),
        "the interpreter's suggestion is kept"
    );
    let lib = tempfile::tempdir().unwrap();
    let options = SafeExecOptions {
        python_path: vec![lib.path().to_owned(), PathBuf::from("lib.zip")],
        call: CallOptions {
            extra_files: vec![("lib.zip".into(), b"not a zip".to_vec())],
            ..CallOptions::default()
        },
    };
    assert_eq!(
        message("1/0", &options),
        "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n  File \"HOME/jailed_code\", line 21, in <module>\\n    exec(code, g_dict)\\n  File \"<string>\", line 1, in <module>\\nZeroDivisionError: division by zero\\n' with status code: 1"
    );
}
both_paths!(safe_exec_traceback_reads_as_codejails);

/// The code ends as a program the interpreter runs ends: exit functions
/// run after an uncaught exception's traceback, and a KeyboardInterrupt
/// ends it by SIGINT.
fn safe_exec_ends_as_the_interpreter_ends(path: &dyn Runner) {
    let err = path
        .safe_exec(
            "import atexit, sys\natexit.register(lambda: sys.stderr.write('bye\\n'))\nraise KeyboardInterrupt",
            &mut Map::new(),
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    let result = err.result().expect("the code ran");
    assert_eq!(result.status, -libc::SIGINT);
    assert!(
        text(&result.stderr).ends_with("KeyboardInterrupt\nbye\n"),
        "{}",
        text(&result.stderr)
    );
}
both_paths!(safe_exec_ends_as_the_interpreter_ends);

/// `jail_code`'s program is `jailed_code` in the run's directory, by its
/// full path (`__file__`, its frames), as when Python runs a file: no
/// frame of codejail's own, none for a syntax error, a KeyboardInterrupt
/// ends it by SIGINT after the exit functions.
fn jail_code_traceback_reads_as_a_programs(path: &dyn Runner) {
    let r = path
        .jail_code(&code(
            "import os\nassert os.path.isabs(__file__), __file__\ndef f():\n    1/0\nf()",
        ))
        .unwrap();
    assert_eq!(r.status, 1);
    assert_eq!(
        homeless(&text(&r.stderr)),
        "Traceback (most recent call last):\n  File \"HOME/jailed_code\", line 5, in <module>\n    f()\n  File \"HOME/jailed_code\", line 4, in f\n    1/0\n    ~^~\nZeroDivisionError: division by zero\n"
    );
    let r = path.jail_code(&code("x = ")).unwrap();
    assert_eq!(r.status, 1);
    assert_eq!(
        homeless(&text(&r.stderr)),
        "  File \"HOME/jailed_code\", line 1\n    x = \n        ^\nSyntaxError: invalid syntax\n"
    );
    let r = path
        .jail_code(&code("import atexit, sys\natexit.register(lambda: sys.stderr.write('bye\\n'))\nraise KeyboardInterrupt"))
        .unwrap();
    assert_eq!(r.status, -libc::SIGINT);
    assert!(
        text(&r.stderr).ends_with("KeyboardInterrupt\nbye\n"),
        "{}",
        text(&r.stderr)
    );
}
both_paths!(jail_code_traceback_reads_as_a_programs);

/// Code that ends in every way the interpreter ends a program ends the
/// same in a warm interpreter as on the cold path (whose program is
/// CodeJail's: the tests above), for `jail_code` and `safe_exec`: the
/// code's `sys.excepthook` (set, raising, None, deleted, exiting),
/// `sys.last_type`, exit functions and threads after a failure, the depth
/// of recursion, odd `SystemExit` codes, a program's coding cookie and
/// byte order mark.
#[test]
fn support_the_warm_path_ends_as_the_cold_path_ends() {
    let jail = python();
    let warm = jail.warm(1).unwrap();
    let hooks = [
        "import sys\nsys.excepthook = lambda t, v, tb: sys.stderr.write('hooked %s\\n' % t.__name__)\n1/0",
        "import sys\ndef h(*a):\n    raise RuntimeError('hook failed')\nsys.excepthook = h\n1/0",
        "import sys\nsys.excepthook = None\n1/0",
        "import sys\ndel sys.excepthook\n1/0",
        "import sys\ndef h(*a):\n    sys.exit(5)\nsys.excepthook = h\n1/0",
        "import sys\ndef h(*a):\n    sys.exit('bye from hook')\nsys.excepthook = h\n1/0",
        "import sys\ndef h(*a):\n    sys.exit(3)\nsys.excepthook = h\nraise KeyboardInterrupt",
        "import sys\ndef h(t, v, tb):\n    sys.stderr.write(repr(getattr(sys, 'last_type', None)) + '\\n')\nsys.excepthook = h\n1/0",
        "def f(n):\n    try:\n        return f(n + 1)\n    except RecursionError:\n        return n\nx = f(0)\nprint(x)\n1/0",
        "def f():\n    f()\nf()",
        "import atexit, sys\natexit.register(lambda: sys.stderr.write('bye\\n'))\n1/0",
        "import sys, threading, time\ndef t():\n    time.sleep(0.2)\n    sys.stderr.write('thread done\\n')\nthreading.Thread(target=t).start()\n1/0",
        "raise SystemExit(2**70)",
        "class I(int):\n    def __and__(self, o):\n        return 0\nraise SystemExit(I(3))",
        "class S:\n    def __str__(self):\n        raise ValueError\nraise SystemExit(S())",
        "import sys\nsys.stderr = None\nraise SystemExit('m')",
    ];
    for code in hooks {
        let cold = path_ends(&*jail, code);
        let hot = path_ends(&warm, code);
        assert_eq!(hot, cold, "{code}");
    }
    for program in [
        "# -*- coding: latin-1 -*-\nprint(repr('\u{e9}'))",
        "# coding: nosuchcodec\nprint(1)",
        "\u{feff}print('bom')",
    ] {
        let run = |path: &dyn Runner| {
            let r = path.jail_code(&code(program)).unwrap();
            (r.status, text(&r.stdout), homeless(&text(&r.stderr)))
        };
        assert_eq!(run(&warm), run(&*jail), "{program}");
    }
    assert_eq!(warm.cold_fallbacks(), 0);
}

/// How `code` ended under `jail_code` and under `safe_exec` on `path`.
fn path_ends(path: &dyn Runner, code_text: &str) -> ((i32, String, String), String) {
    let r = path.jail_code(&code(code_text)).unwrap();
    let run = (r.status, text(&r.stdout), homeless(&text(&r.stderr)));
    let mut g = Map::new();
    let exec = match path.safe_exec(code_text, &mut g, &SafeExecOptions::default()) {
        Ok(()) => Value::Object(g).to_string(),
        Err(e) => homeless(&e.codejail_message()),
    };
    (run, exec)
}

fn safe_exec_exit_zero_before_the_globals_is_the_codes_failure(path: &dyn Runner) {
    let err = path
        .safe_exec(
            "import sys\nsys.exit(0)",
            &mut Map::new(),
            &SafeExecOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the code exited with status 0 before safe_exec could return its globals"
    );
}
both_paths!(safe_exec_exit_zero_before_the_globals_is_the_codes_failure);

#[test]
fn safe_exec_json_refuses_globals_that_are_not_one_object() {
    for bad in ["[1]", "{", "{\"a\": nan}", "{} {}"] {
        let err = python()
            .safe_exec_json("x = 1", bad, &SafeExecOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, SafeExecError::Jail(ref e @ JailError::BadGlobals { .. }) if e.is_bad_input()),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_root_sandbox_user_is_refused_unless_allowed() {
    for user in ["root", "0"] {
        let mut config = JailConfig::new("/usr/bin/python3");
        config.user = Some(user.into());
        let err = codejail::Jail::new("as-root", config.clone()).unwrap_err();
        assert!(
            matches!(err, codejail::ConfigError::RootUser { .. }),
            "{err}"
        );
        config.allow_root_user = true;
        assert!(codejail::Jail::new("as-root", config).is_ok());
    }
}

// ---------------------------------------------------------------------------
// No new programs: CodeJail's AppArmor posture, on both paths.
// ---------------------------------------------------------------------------

/// Whether this machine has the `no_exec` layer, through the gate.
fn have_no_exec() -> bool {
    let why = codejail::Probe::get().availability(Layer::NoExec).why_not();
    codejail_tests::require("no_exec", why)
}

/// CodeJail's three cases: a program, the interpreter itself, and the
/// code replacing itself. Each line says what the code saw.
const START_PROGRAMS: &str = r#"
import os, subprocess, sys
def attempt(name, fn):
    try:
        fn()
        print(name, "ran")
    except OSError as e:
        print(name, "%s: %s" % (type(e).__name__, e))
attempt("true", lambda: subprocess.run(["/usr/bin/true"], check=True))
attempt("python", lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
sys.stdout.flush()
attempt("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", "print('execv ran')"]))
"#;

/// What the code sees where it may not start programs: CodeJail's text.
fn refused_starts(python: &str) -> String {
    format!(
        "true PermissionError: [Errno 13] Permission denied: '/usr/bin/true'\n\
         python PermissionError: [Errno 13] Permission denied: '{python}'\n\
         execv PermissionError: [Errno 13] Permission denied\n"
    )
}

const ALLOWED_STARTS: &str = "true ran\npython ran\nexecv ran\n";

fn deny_exec_of_other_programs(path: &dyn Runner) {
    if !have_no_exec() {
        return;
    }
    let r = path.jail_code(&code(START_PROGRAMS)).unwrap();
    assert_eq!(
        text(&r.stdout),
        refused_starts("/usr/bin/python3"),
        "{}",
        text(&r.stderr)
    );
    assert_eq!(r.status, 0);
    assert!(r.layers.contains(Layer::NoExec), "{}", r.layers);
    // safe_exec too, and from a child process of the code.
    let mut g = Map::new();
    path.safe_exec(
        "import os, subprocess\n\
         try:\n    subprocess.run(['/usr/bin/true'])\nexcept OSError as e:\n    seen = str(e)\n\
         pid = os.fork()\n\
         if pid == 0:\n    \
             try:\n        os.execv('/usr/bin/true', ['true'])\n    \
             except OSError as e:\n        os._exit(e.errno)\n\
         child = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])",
        &mut g,
        &SafeExecOptions::default(),
    )
    .unwrap();
    assert_eq!(
        g["seen"],
        json!("[Errno 13] Permission denied: '/usr/bin/true'")
    );
    assert_eq!(g["child"], json!(libc_eacces()));
}
both_paths!(deny_exec_of_other_programs);

fn libc_eacces() -> i64 {
    13
}

/// The sabotage: the same code in the same jail, narrowed to every layer
/// but `no_exec`, starts every program.
#[test]
fn deny_exec_is_the_no_exec_layers_doing() {
    if !have_no_exec() {
        return;
    }
    let jail = python();
    let mut layers = jail.planned_layers().unwrap();
    layers.remove(Layer::NoExec);
    let r = jail
        .jail_code(&JailCode {
            call: CallOptions {
                layers: Some(layers),
                ..CallOptions::default()
            },
            ..code(START_PROGRAMS)
        })
        .unwrap();
    assert!(!r.layers.contains(Layer::NoExec), "{}", r.layers);
    assert_eq!(text(&r.stdout), ALLOWED_STARTS, "{}", text(&r.stderr));
}

fn exec_jail() -> Arc<codejail::Jail> {
    let mut config = JailConfig::new("/usr/bin/python3");
    config.allow_exec = true;
    Arc::new(jail_of("python-allow-exec", config))
}

#[test]
fn allow_exec_lets_the_code_start_programs_cold() {
    let jail = exec_jail();
    assert!(!jail.planned_layers().unwrap().contains(Layer::NoExec));
    let r = jail.jail_code(&code(START_PROGRAMS)).unwrap();
    assert_eq!(text(&r.stdout), ALLOWED_STARTS, "{}", text(&r.stderr));
    assert!(!r.layers.contains(Layer::NoExec), "{}", r.layers);
}

#[test]
fn allow_exec_lets_the_code_start_programs_warm() {
    let pool = exec_jail().warm(1).unwrap();
    let r = pool.jail_code(&code(START_PROGRAMS)).unwrap();
    assert!(r.warm);
    assert_eq!(text(&r.stdout), ALLOWED_STARTS, "{}", text(&r.stderr));
    assert_eq!(pool.stray_processes(), 0);
}

/// Landlock's execute right still applies where exec is allowed: nothing
/// the code writes in `tmp/` runs.
#[test]
fn allow_exec_still_runs_nothing_from_tmp() {
    let r = exec_jail()
        .jail_code(&JailCode {
            call: CallOptions {
                limits: vec![(LimitName::Fsize, 1 << 20)],
                ..CallOptions::default()
            },
            ..code(
                "import os, shutil, subprocess\n\
                 path = os.path.join(os.environ['TMPDIR'], 'mine')\n\
                 shutil.copy('/usr/bin/true', path)\n\
                 os.chmod(path, 0o755)\n\
                 try:\n    subprocess.run([path])\n    print('ran')\n\
                 except OSError as e:\n    print(e.errno)",
            )
        })
        .unwrap();
    assert_eq!(text(&r.stdout), "13\n", "{}", text(&r.stderr));
}

/// Another language: the shell's builtins work, its commands do not.
#[test]
fn deny_exec_from_a_jail_of_another_language() {
    if !have_no_exec() {
        return;
    }
    let mut config = JailConfig::new("/bin/sh");
    config.lang = codejail::Lang::custom("sh", vec!["-c".into()]);
    let jail = jail_of("shell-no-exec", config.clone());
    let run = |jail: &codejail::Jail| {
        jail.jail_code(&JailCode {
            argv: vec!["echo builtin; /usr/bin/true; echo status $?".into()],
            ..JailCode::default()
        })
        .unwrap()
    };
    let r = run(&jail);
    assert_eq!(
        text(&r.stdout),
        "builtin\nstatus 126\n",
        "{}",
        text(&r.stderr)
    );
    assert!(text(&r.stderr).contains("/usr/bin/true: Permission denied"));
    config.allow_exec = true;
    let r = run(&jail_of("shell-exec", config));
    assert_eq!(
        text(&r.stdout),
        "builtin\nstatus 0\n",
        "{}",
        text(&r.stderr)
    );
}

/// What jailed code sees when it reaches for the host, as CodeJail's
/// users see it under AppArmor and codejail-service's API tests check it:
/// `PermissionError: [Errno 13] Permission denied: '<path>'`, never
/// `FileNotFoundError` or `EROFS`, with or without a private root.
fn deny_host_paths_as_codejail_does(path: &dyn Runner) {
    let probe = r#"
import os
def tell(what, f):
    try:
        f()
        print(what, "allowed")
    except Exception as e:
        print(what, "%s: %s" % (type(e).__name__, e))
for d in ["/", "/tmp", "/sys", "/proc", "../"]:
    tell("list " + d, lambda: os.listdir(d))
for f in ["/etc/hosts", "/proc/1/cmdline"]:
    tell("read " + f, lambda: open(f).read())
for f in ["/tmp/x", "/var/tmp/x", "../x"]:
    tell("write " + f, lambda: open(f, "w"))
"#;
    let r = path.jail_code(&code(probe)).unwrap();
    // One exception: a warm call's `..` is its zygote's home, which an
    // unprivileged caller's program owns (one uid), so the private root
    // binds it read-only (CodeJail has no unprivileged mode to compare).
    let unprivileged_warm =
        r.warm && r.layers.contains(Layer::RootFs) && !rustix::process::geteuid().is_root();
    let expected = [
        ("list /", "'/'"),
        ("list /tmp", "'/tmp'"),
        ("list /sys", "'/sys'"),
        ("list /proc", "'/proc'"),
        ("list ../", "'../'"),
        ("read /etc/hosts", "'/etc/hosts'"),
        ("read /proc/1/cmdline", "'/proc/1/cmdline'"),
        ("write /tmp/x", "'/tmp/x'"),
        ("write /var/tmp/x", "'/var/tmp/x'"),
        ("write ../x", "'../x'"),
    ]
    .map(|(what, name)| {
        if unprivileged_warm && what == "write ../x" {
            format!("{what} OSError: [Errno 30] Read-only file system: {name}\n")
        } else {
            format!("{what} PermissionError: [Errno 13] Permission denied: {name}\n")
        }
    })
    .concat();
    assert_eq!(text(&r.stdout), expected, "{}", text(&r.stderr));
}
both_paths!(deny_host_paths_as_codejail_does);

/// A jail's `read_paths`: its code reads them (bound read-only in the
/// private root), cold and warm; another jail's code does not see them;
/// a path that does not exist is refused when the jail is made.
#[test]
fn allow_read_paths_for_the_jails_code_only() {
    let data = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.path().join("answers.txt"), "42").unwrap();
    std::fs::set_permissions(
        data.path().join("answers.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut config = JailConfig::new("/usr/bin/python3");
    config.read_paths = vec![data.path().to_owned()];
    let jail = Arc::new(codejail::Jail::new("with-data", config).unwrap());
    let read = format!(
        "print(open({:?}).read())\ntry:\n    open({:?}, 'w')\nexcept OSError as e:\n    print(e.errno)",
        data.path().join("answers.txt"),
        data.path().join("new.txt"),
    );
    // Refused: by ownership and Landlock (EACCES) where the program is not
    // the directory's owner; an unprivileged caller's program owns it, and
    // its bind is read-only (EROFS).
    let refused = |r: &codejail::JailResult| {
        if !rustix::process::geteuid().is_root() && r.layers.contains(Layer::RootFs) {
            "42\n30\n"
        } else {
            "42\n13\n"
        }
    };
    let cold = jail.jail_code(&code(&read)).unwrap();
    assert_eq!(text(&cold.stdout), refused(&cold), "{}", text(&cold.stderr));
    let warm = jail.warm(1).unwrap();
    let r = warm.jail_code(&code(&read)).unwrap();
    assert!(r.warm);
    assert_eq!(text(&r.stdout), refused(&r), "{}", text(&r.stderr));
    // Without the setting the same code cannot read it.
    let other = python().jail_code(&code(&read)).unwrap();
    assert_ne!(other.status, 0, "{}", text(&other.stdout));
    // A path that does not exist: refused when the jail is made.
    let mut config = JailConfig::new("/usr/bin/python3");
    config.read_paths = vec![data.path().join("missing")];
    let err = codejail::Jail::new("bad-data", config).unwrap_err();
    assert!(
        matches!(err, codejail::ConfigError::ReadPath(_)) && err.to_string().contains("missing"),
        "{err}"
    );
}
