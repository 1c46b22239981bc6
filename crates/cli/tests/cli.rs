//! The `codejail` command, end to end over the built binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn codejail(args: &[&str]) -> Output {
    codejail_with_stdin(args, b"")
}

fn codejail_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .args(args)
        .env_remove("CODEJAIL_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// Asserts exit code 2 and a one-line message.
fn usage_error(args: &[&str]) -> String {
    let out = codejail(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

#[test]
fn hello_world() {
    let out = codejail(&["run", "--code", "print('Hello, world!')"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "Hello, world!\n".into())
    );
}

#[test]
fn argv_exit_code_and_json() {
    let out = codejail(&[
        "run",
        "--json",
        "--code",
        "import sys; print(sys.argv[1:]); sys.exit(3)",
        "--",
        "a",
        "b c",
    ]);
    let v = json_of(&out);
    assert_eq!(v["status"], 3);
    assert_eq!(v["stdout"], "['a', 'b c']\n");
    assert_eq!(v["killed_by"], Value::Null);
    assert_eq!(v["truncated"], json!({"stdout": false, "stderr": false}));
    assert!(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "landlock"),
        "{v}"
    );
    for key in ["wall_ms", "cpu_ms", "max_rss_kib"] {
        assert!(v[key].is_u64(), "{key}: {v}");
    }
    let out = codejail(&["run", "--code", "import sys; sys.exit(3)"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn death_by_signal_exits_128_plus_n() {
    let out = codejail(&[
        "run",
        "--limit",
        "realtime=1",
        "--code",
        "import time; time.sleep(30)",
    ]);
    assert_eq!(out.status.code(), Some(128 + 9));
    let v = json_of(&codejail(&[
        "run",
        "--json",
        "--limit",
        "realtime=1",
        "--code",
        "import time; time.sleep(30)",
    ]));
    assert_eq!(
        (v["status"].clone(), v["killed_by"].clone()),
        (json!(-9), json!("realtime"))
    );
}

#[test]
fn exceptions_mention_jailed_code() {
    let out = codejail(&["run", "--code", "raise KeyError('k')"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("jailed_code") && err.contains("KeyError"),
        "{err}"
    );
}

#[test]
fn stdin_from_a_file_and_from_our_own_stdin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in"), "from a file").unwrap();
    let code = "import sys; print(sys.stdin.read())";
    let file = dir.path().join("in");
    let out = codejail(&[
        "run",
        "--stdin-file",
        file.to_str().unwrap(),
        "--code",
        code,
    ]);
    assert_eq!(text(&out.stdout), "from a file\n");
    let out = codejail_with_stdin(&["run", "--stdin-file", "-", "--code", code], b"piped in");
    assert_eq!(text(&out.stdout), "piped in\n");
}

#[test]
fn binary_stdin_stdout_stderr_of_two_and_a_half_megabytes() {
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let code = "import sys\nd = sys.stdin.buffer.read()\nsys.stdout.buffer.write(d)\nsys.stderr.buffer.write(d[::-1])";
    let args = [
        "run",
        "--stdin-file",
        "-",
        "--limit",
        "output=4000000",
        "--limit",
        "realtime=10",
        "--code",
        code,
    ];
    let out = codejail_with_stdin(&args, &data);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == data, "stdout differs");
    assert!(out.stderr.iter().rev().eq(data.iter()), "stderr differs");
    let mut json_args = args.to_vec();
    json_args.insert(1, "--json");
    let v = json_of(&codejail_with_stdin(&json_args, &data));
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v["stdout_base64"].as_str().unwrap())
        .unwrap();
    assert!(decoded == data);
}

#[test]
fn files_directories_links_and_running_a_copied_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("doit.py"),
        "import sys, os\nprint(sys.argv, sorted(os.listdir('pkg')), os.readlink('pkg/link'))",
    )
    .unwrap();
    std::fs::create_dir(d.join("pkg")).unwrap();
    std::fs::write(d.join("pkg/a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("pkg/link")).unwrap();
    let (doit, pkg) = (d.join("doit.py"), d.join("pkg"));
    let out = codejail(&[
        "run",
        "--file",
        doit.to_str().unwrap(),
        "--file",
        pkg.to_str().unwrap(),
        "--",
        "doit.py",
        "1",
        "2",
        "3",
    ]);
    assert_eq!(
        text(&out.stdout),
        "['doit.py', '1', '2', '3'] ['a.txt', 'link'] a.txt\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn extra_files_with_binary_content() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob");
    std::fs::write(&blob, [0u8, 200, 255, 10]).unwrap();
    let spec = format!("data.bin={}", blob.display());
    let out = codejail(&[
        "run",
        "--extra-file",
        &spec,
        "--code",
        "print(list(open('data.bin','rb').read()))",
    ]);
    assert_eq!(text(&out.stdout), "[0, 200, 255, 10]\n");
}

#[test]
fn exec_sets_values_and_keeps_complex_globals() {
    let v = json_of(&codejail(&[
        "exec",
        "--globals",
        r#"{"a": [1, {"b": 2}]}"#,
        "--code",
        "c = a[1]['b'] + 40\nt = (1, b'x', (2,))",
    ]));
    assert_eq!(v, json!({"a": [1, {"b": 2}], "c": 42, "t": [1, "x", [2]]}));
}

#[test]
fn exec_printing_does_not_corrupt_the_result_and_functions_call_each_other() {
    let code =
        "print('{\"x\": 666}')\ndef f(n): return g(n) + 1\ndef g(n): return n * 2\nx = f(20)";
    assert_eq!(
        json_of(&codejail(&["exec", "--code", code])),
        json!({"x": 41})
    );
}

#[test]
fn exec_globals_from_a_file_and_python_path_with_a_dir_and_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("lib")).unwrap();
    std::fs::write(d.join("lib/helper.py"), "def twice(x): return 2 * x\n").unwrap();
    let made = Command::new("/usr/bin/python3")
        .args(["-c", "import zipfile, sys\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('zipped.py', 'def thrice(x): return 3 * x\\n')\nz.close()"])
        .arg(d.join("made.zip"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(d.join("globals.json"), r#"{"n": 7}"#).unwrap();
    let zip_spec = format!("code.zip={}", d.join("made.zip").display());
    let (lib, globals) = (d.join("lib"), d.join("globals.json"));
    let v = json_of(&codejail(&[
        "exec",
        "--globals-file",
        globals.to_str().unwrap(),
        "--python-path",
        lib.to_str().unwrap(),
        "--python-path",
        "code.zip",
        "--extra-file",
        &zip_spec,
        "--code",
        "import helper, zipped\nr = helper.twice(zipped.thrice(n))",
    ]));
    assert_eq!(v, json!({"n": 7, "r": 42}));
}

#[test]
fn exec_exceptions_exit_one_with_the_message() {
    let out = codejail(&[
        "exec",
        "--code",
        "raise ValueError(\"That's not how you pour soup!\")",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "codejail: ValueError: That's not how you pour soup! (exit status 1)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn exec_with_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.txt"), "one two three").unwrap();
    let file = dir.path().join("words.txt");
    let v = json_of(&codejail(&[
        "exec",
        "--file",
        file.to_str().unwrap(),
        "--code",
        "n = len(open('words.txt').read().split())",
    ]));
    assert_eq!(v["n"], 3);
}

#[test]
fn unsafe_mode_warns_and_is_unconfined() {
    let out = codejail(&[
        "run",
        "--unsafe",
        "--json",
        "--code",
        "import os; print(len(os.listdir('/etc')) > 0)",
    ]);
    let v = json_of(&out);
    assert_eq!(v["stdout"], "True\n");
    assert_eq!(v["layers"], json!([]));
    assert!(
        text(&out.stderr).contains("WITHOUT confinement"),
        "{}",
        text(&out.stderr)
    );
    let confined = json_of(&codejail(&[
        "run",
        "--json",
        "--code",
        "import os; os.listdir('/etc')",
    ]));
    assert!(
        confined["stderr"]
            .as_str()
            .unwrap()
            .contains("PermissionError")
    );
}

#[test]
fn an_unknown_jail_exits_three() {
    let out = codejail(&["run", "--jail", "cobol", "--code", "x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("no jail `cobol`"));
}

#[test]
fn a_missing_interpreter_exits_three_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("codejail.toml");
    std::fs::write(&config, "[jails.python]\nbin = \"/nonexistent/python3\"\n").unwrap();
    let out = codejail(&["run", "--config", config.to_str().unwrap(), "--code", "1"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr)
            .contains("/nonexistent/python3 not found (no file of that name); install it"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_settings_file_sets_limits_overrides_and_jails() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("codejail.toml");
    std::fs::write(
        &config,
        "[jails.snake]\nbin = \"/usr/bin/python3\"\n\n[limits]\nrealtime = 1\n\n[limit_overrides.slow]\nrealtime = 5\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let code = "import time; time.sleep(2); print('done')";
    let v = json_of(&codejail(&[
        "run", "--json", "--config", c, "--jail", "snake", "--code", code,
    ]));
    assert_eq!(v["killed_by"], "realtime");
    let v = json_of(&codejail(&[
        "run",
        "--json",
        "--config",
        c,
        "--jail",
        "snake",
        "--context",
        "slow",
        "--code",
        code,
    ]));
    assert_eq!(v["stdout"], "done\n");
}

#[test]
fn every_limit_through_the_command_line() {
    let run = |limits: &[&str], code: &str| {
        let mut args = vec!["run", "--json"];
        for l in limits {
            args.extend(["--limit", l]);
        }
        args.extend(["--code", code]);
        json_of(&codejail(&args))
    };
    assert_eq!(
        run(&["cpu=1", "realtime=20"], "while True: pass")["killed_by"],
        "cpu"
    );
    assert_eq!(
        run(&["REALTIME=1"], "import time; time.sleep(20)")["killed_by"],
        "realtime"
    );
    let alloc = "try:\n    b = bytearray(500 << 20)\n    print('ok')\nexcept MemoryError:\n    print('MemoryError')";
    assert_eq!(
        run(&["vmem=300000000", "realtime=10"], alloc)["stdout"],
        "MemoryError\n"
    );
    let write = "import os\ntry:\n    with open(os.environ['TMPDIR'] + '/f', 'w') as f: f.write('x' * 100)\n    print('ok')\nexcept OSError as e:\n    print(e.errno)";
    assert_eq!(run(&["fsize=0"], write)["stdout"], "27\n");
    assert_eq!(run(&["fsize=1000"], write)["stdout"], "ok\n");
    let fork = "import os\ntry:\n    for i in range(5):\n        if os.fork() == 0:\n            import time; time.sleep(1); os._exit(0)\n    print('forked')\nexcept OSError as e:\n    print(e.errno)";
    assert_eq!(run(&["nproc=2", "realtime=5"], fork)["stdout"], "11\n");
    if codejail::Probe::get()
        .availability(codejail::Layer::Cgroup)
        .is_yes()
    {
        assert_eq!(
            run(
                &["memory=100000000", "realtime=20"],
                "b = bytearray(300 << 20)"
            )["killed_by"],
            "memory"
        );
    }
    let big = "import os\ntry:\n    with open(os.environ['TMPDIR'] + '/f', 'wb') as f: f.write(b'x' * 3000000)\n    print('ok')\nexcept OSError as e:\n    print(e.errno)";
    let v = run(&["fsize=10000000", "disk=1000000"], big);
    assert_eq!(
        (v["stdout"].clone(), v["killed_by"].clone()),
        (json!("28\n"), json!("disk"))
    );
    let many = "import os\ntry:\n    for i in range(300): open(os.environ['TMPDIR'] + '/f%d' % i, 'w').close()\n    print('ok')\nexcept OSError as e:\n    print(e.errno)";
    assert_eq!(run(&["fsize=10", "files=20"], many)["killed_by"], "disk");
    let v = run(&["output=100"], "print('y' * 5000)");
    assert_eq!(
        (v["killed_by"].clone(), v["truncated"]["stdout"].clone()),
        (json!("output"), json!(true))
    );
    assert_eq!(v["stdout"].as_str().unwrap().len(), 100);
}

#[test]
fn usage_errors_exit_two_with_one_line() {
    assert!(usage_error(&["run", "--no-such-option"]).contains("--no-such-option"));
    assert!(
        usage_error(&["run", "--limit", "walltime=3", "--code", "1"])
            .contains("unknown limit `walltime`")
    );
    assert!(usage_error(&["run", "--limit", "cpu=lots", "--code", "1"]).contains("whole seconds"));
    assert!(
        usage_error(&["exec", "--globals", "{not json", "--code", "1"]).contains("malformed JSON")
    );
    assert!(
        usage_error(&["exec", "--globals", "[1, 2]", "--code", "1"]).contains("expected an object")
    );
    assert!(
        usage_error(&[
            "run",
            "--extra-file",
            "../escape=/etc/hostname",
            "--code",
            "1"
        ])
        .contains("`/`")
    );
    assert!(
        usage_error(&["run", "--extra-file", "tmp=/etc/hostname", "--code", "1"])
            .contains("reserved")
    );
    assert!(
        usage_error(&["run", "--extra-file", "no-equals-sign", "--code", "1"])
            .contains("NAME=PATH")
    );
    assert!(
        usage_error(&["run", "--file", "/nonexistent/file", "--code", "1"])
            .contains("/nonexistent/file")
    );
    assert!(usage_error(&["run"]).contains("--code"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[limits]\nwalltime = 5\n").unwrap();
    let err = usage_error(&["run", "--config", config.to_str().unwrap(), "--code", "1"]);
    assert!(err.contains("bad.toml:2: limits.walltime"), "{err}");
}

#[test]
fn doctor_prints_every_layer_and_the_jails() {
    let out = codejail(&["doctor"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    for layer in ["identity", "userns", "landlock", "seccomp", "apparmor"] {
        assert!(t.lines().any(|l| l.starts_with(layer)), "{layer}: {t}");
    }
    assert!(t.contains("jail python (/usr/bin/python3)"), "{t}");
    let v = json_of(&codejail(&["doctor", "--json"]));
    assert_eq!(
        v["layers"].as_array().unwrap().len(),
        codejail::Layer::ALL.len()
    );
    assert_eq!(v["jails"][0]["name"], "python");
    assert_eq!(v["jails"][0]["confined"], true, "{v}");
}

#[test]
fn the_default_configuration_needs_only_python() {
    assert!(Path::new("/usr/bin/python3").exists());
    let out = codejail(&["exec", "--code", "y = x * 2", "--globals", r#"{"x": 21}"#]);
    assert_eq!(json_of(&out), json!({"x": 21, "y": 42}));
}

/// The layers this host lacks, each through the gate (said, or a failure
/// where CI declares it), as `--accept-missing` takes them; `None` when it
/// has every one.
fn lacking_layers() -> Option<String> {
    let probe = codejail::Probe::get();
    let lacking: Vec<&str> = codejail::Layer::ALL
        .iter()
        .filter_map(|l| match probe.availability(*l) {
            codejail::Availability::Yes => None,
            codejail::Availability::No(why) => {
                codejail_tests::not_tested(l.name(), &format!("codejail selftest: {why}"));
                Some(l.name())
            }
        })
        .collect();
    (!lacking.is_empty()).then(|| lacking.join(","))
}

#[test]
fn selftest_judges_every_attack_on_evidence_and_names_the_layers() {
    // What this host lacks is accepted (the attacks only it stops are
    // then not tested, and said so); nothing else is.
    let mut args = vec!["selftest"];
    let lacking = lacking_layers();
    if let Some(list) = &lacking {
        args.extend(["--accept-missing", list]);
    }
    let out = codejail(&args);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}\n{}", text(&out.stderr));
    assert!(t.starts_with("class"), "{t}");
    let row = t
        .lines()
        .find(|l| l.contains("fs_read_etc_passwd"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        row.contains(" contained ")
            && row.ends_with("CONTAINED: open: EACCES (landlock or rootfs)"),
        "{row}"
    );
    assert!(
        t.contains(" contained, 0 NOT CONTAINED, 0 inconclusive, "),
        "{t}"
    );
    assert!(t.contains("\nverdicts rest on: identity, userns,"), "{t}");
    assert!(t.contains("host: clean"), "{t}");
    args.push("--json");
    let v = json_of(&codejail(&args));
    assert_eq!(v["passed"], true);
    let attacks = v["attacks"].as_array().unwrap();
    assert!(attacks.len() >= 80, "{}", attacks.len());
    let mut contained = 0;
    for a in attacks {
        if a["verdict"] == "not tested" {
            // Only where this host lacks what stops it, or what it goes for.
            assert_eq!(a["accepted"], true, "{a}");
            continue;
        }
        assert_eq!(a["verdict"], "contained", "{a}");
        assert!(!a["evidence_from"].as_array().unwrap().is_empty(), "{a}");
        assert!(!a["layers"].as_array().unwrap().is_empty(), "{a}");
        contained += 1;
    }
    assert!(contained >= 80, "{contained}");
    assert_eq!(v["counts"]["contained"], contained);
    assert!(
        v["planned_layers"]
            .as_array()
            .unwrap()
            .contains(&json!("landlock"))
    );
    assert!(v["layers"].as_array().unwrap().contains(&json!("seccomp")));
}

/// Names of `codejail-*` entries where an attack run for real would leave
/// them, and the mounts with codejail in their path.
fn traces() -> Vec<String> {
    let mut out: Vec<String> = ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(move |e| format!("{d}/{}", e.file_name().to_string_lossy()))
        })
        .filter(|n| n.contains("codejail") || n.contains("escape"))
        .collect();
    out.extend(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains("codejail"))
            .map(|l| format!("mount: {l}")),
    );
    out.sort();
    out
}

#[test]
fn selftest_refuses_an_unsafe_jail_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("codejail.toml");
    std::fs::write(
        &config,
        "[jails.python]\nbin = \"/usr/bin/python3\"\npolicy = \"unsafe\"\n",
    )
    .unwrap();
    let before = traces();
    let out = codejail(&["selftest", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("refusing to attack jail `python`: it is configured unsafe"),
        "{err}"
    );
    assert_eq!(text(&out.stdout), "");
    // Others may make codejail directories meanwhile: only new ones with
    // this selftest's pid, or escape files, would be its.
    let after: Vec<String> = traces()
        .into_iter()
        .filter(|t| !before.contains(t))
        .filter(|t| t.contains("escape") || t.contains("selftest") || t.starts_with("mount: "))
        .collect();
    assert_eq!(after, Vec::<String>::new());
}

/// SIGTERM ends a selftest at once: the attacks under way are cancelled
/// and no more start; it exits 143 with no (partial) report, and leaves
/// no jail or selftest directory. Before, it ran the whole corpus first
/// (5–8 s after the signal) and printed a verdict.
#[test]
fn support_sigterm_stops_a_selftest_and_its_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .arg("selftest")
        .env_remove("CODEJAIL_CONFIG")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Some attacks under way (the corpus takes seconds).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the corpus ended within 1.5 s: nothing left to stop"
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let signalled = std::time::Instant::now();
    assert!(
        codejail_tests::exit_within(&mut child, std::time::Duration::from_secs(30)).is_some(),
        "the selftest still ran 30 s after SIGTERM"
    );
    let took = signalled.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "it took {took:?} to stop"
    );
    assert!(err.contains("codejail: stopped by signal 15"), "{err}");
    assert_eq!(text(&out.stdout), "", "a partial report was printed");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn selftest_accept_missing_takes_layer_names() {
    let err = usage_error(&["selftest", "--accept-missing", "apparmor,landlok"]);
    assert!(
        err.contains("--accept-missing") && err.contains("landlok"),
        "{err}"
    );
}

#[test]
fn inputs_are_bounded_and_reserved_names_refused() {
    let err = usage_error(&["run", "--code-file", "/dev/zero"]);
    assert!(err.contains("larger than 16 MiB"), "{err}");
    let err = usage_error(&["exec", "--code", "x = 1", "--globals-file", "/dev/zero"]);
    assert!(err.contains("larger than 64 MiB"), "{err}");
    // An endless settings file is not read to its end (it took gigabytes
    // a second).
    let err = usage_error(&["run", "--config", "/dev/zero", "--code", "1"]);
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    for name in [".codejail-driver", ".codejail-argv.json"] {
        let err = usage_error(&[
            "run",
            "--extra-file",
            &format!("{name}=/etc/hostname"),
            "--code",
            "1",
        ]);
        assert!(err.contains("is reserved by the jail"), "{err}");
    }
}

/// `--file DIR` where the jails are made inside DIR would copy the jail
/// into itself: a one-line usage error, nothing left behind.
#[test]
fn a_file_that_contains_the_jail_parent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let jails = dir.path().join("jails");
    std::fs::create_dir(&jails).unwrap();
    std::fs::write(dir.path().join("data.txt"), "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .args(["run", "--code", "print(1)", "--file"])
        .arg(dir.path())
        .env_remove("CODEJAIL_CONFIG")
        .env("TMPDIR", &jails)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("contains the jail directory"), "{err}");
    assert_eq!(std::fs::read_dir(&jails).unwrap().count(), 0);
}

/// Output to a reader that went away ends quietly: no panic, no 101.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [
        &["exec", "--code", "x = 'y' * 100000"][..],
        &["run", "--json", "--code", "print(1)"][..],
        &["doctor"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codejail"))
            .args(args)
            .env_remove("CODEJAIL_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_ne!(
            out.status.code(),
            Some(101),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// The interpreter's facts are asked once, confined, and cached in a
/// directory only the caller can write: a run reads them from there.
#[test]
fn the_interpreter_facts_are_cached_privately_and_a_bad_entry_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("codejail");
    let exec = |code: &str| {
        Command::new(env!("CARGO_BIN_EXE_codejail"))
            .args(["exec", "--code", code])
            .env_remove("CODEJAIL_CONFIG")
            .env("CODEJAIL_CACHE_DIR", &dir)
            .output()
            .unwrap()
    };
    let out = exec("x = 1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("an entry was written");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&dir), mode(&entry)), (0o700, 0o600));

    // An entry whose driver is a marker: a run that uses the cache says so.
    let marker = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import marshal, sys\nfrom importlib.util import MAGIC_NUMBER\nsys.stdout.write((MAGIC_NUMBER + marshal.dumps(compile('raise SystemExit(\"from the cache\")', 'm', 'exec'))).hex())",
        ])
        .output()
        .unwrap();
    let mut v: Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    v["driver"] = Value::String(text(&marker.stdout));
    std::fs::write(&entry, v.to_string()).unwrap();
    let out = exec("x = 1");
    assert!(
        text(&out.stderr).contains("from the cache"),
        "{}",
        text(&out.stderr)
    );

    // The same entry, writable by others: ignored, asked again, rewritten.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = exec("x = 1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(mode(&entry), 0o600);

    // A corrupt entry: ignored and rebuilt.
    std::fs::write(&entry, "{not json").unwrap();
    let out = exec("x = 1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    assert!(v["read_exec"].is_array(), "{v}");
}

/// The interpreter is asked as the sandbox user, under the jail's layers:
/// one that user cannot run is a set-up error naming the path and the uid
/// (not a run that fails later with a bare `execve` errno).
#[test]
fn an_interpreter_the_sandbox_user_cannot_run_is_named_with_the_uid() {
    if !rustix::process::geteuid().is_root() {
        let note = "NOT TESTED as this user: only root switches to the sandbox uid\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let python = dir.path().join("python3");
    std::fs::copy("/usr/bin/python3", &python).unwrap();
    let config = dir.path().join("codejail.toml");
    std::fs::write(
        &config,
        format!("[jails.python]\nbin = \"{}\"\n", python.display()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--code", "print(1)"])
        .env("CODEJAIL_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&python.display().to_string()) && err.contains("does not run as uid 20000"),
        "{err}"
    );
}

/// doctor is a health check: a jail that is unsafe, runs as root, or whose
/// jail parent the sandbox user cannot enter makes it exit 1, and each
/// failure names the path and the user.
#[test]
fn doctor_exits_one_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("private");
    std::fs::create_dir(&parent).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.path().join("codejail.toml");
    let root = rustix::process::geteuid().is_root();
    std::fs::write(
        &config,
        format!(
            "[jails.unsafe]\nbin = \"/usr/bin/python3\"\npolicy = \"unsafe\"\n\n\
             [jails.asroot]\nbin = \"/usr/bin/python3\"\nuser = \"root\"\n\n\
             [jails.noparent]\nbin = \"/usr/bin/python3\"\njail_parent = \"{}\"\n",
            parent.display()
        ),
    )
    .unwrap();
    let out = codejail(&["doctor", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let t = text(&out.stdout);
    assert!(
        t.contains("jail unsafe (/usr/bin/python3): NOT confined"),
        "{t}"
    );
    assert!(t.contains("sandbox user `root` is root (uid 0)"), "{t}");
    // In a private root the jail's home is bound where the sandbox finds
    // it, whatever the jail parent's mode; without one, the sandbox must
    // be able to enter the parent.
    let rootfs = codejail::Probe::get()
        .availability(codejail::Layer::RootFs)
        .is_yes();
    if root && rootfs {
        assert!(
            t.contains("jail noparent (/usr/bin/python3): confined by"),
            "{t}"
        );
    } else if root {
        assert!(
            t.contains(&format!(
                "a uid of 2000000000-2000065535 with gid 65534 cannot enter the jail directories made in {}",
                parent.display()
            )),
            "{t}"
        );
    }
    let v = json_of_status(
        &codejail(&["doctor", "--json", "--config", config.to_str().unwrap()]),
        1,
    );
    assert_eq!(v["healthy"], false);
    for j in v["jails"].as_array().unwrap() {
        let fine = j["name"] == "noparent" && rootfs;
        assert!(j["confined"] == fine || !root, "{v}");
    }
}

fn json_of_status(out: &Output, code: i32) -> Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// Logs: the slug is on every line of a run; a kill is logged with the pid
/// and the reason; RUST_LOG and --log-level choose what is shown;
/// --log-format json gives one object per line; plain run says why it
/// killed the program.
#[test]
fn logs_name_the_slug_and_every_kill() {
    let out = codejail(&[
        "run",
        "--slug",
        "course-42/p1",
        "--limit",
        "realtime=1",
        "--code",
        "import time; time.sleep(5)",
    ]);
    assert_eq!(out.status.code(), Some(137));
    let err = text(&out.stderr);
    assert!(
        err.lines().any(
            |l| l.starts_with("codejail: warn: [jail=python slug=course-42/p1")
                && l.contains("Killing process")
        ),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l == "codejail: killed: realtime limit (1 s)"),
        "{err}"
    );
    // Named once a line, though the run inside the call has a span too
    // (its lines are at debug level).
    let out = codejail(&[
        "--log-level",
        "debug",
        "run",
        "--slug",
        "course-42/p2",
        "--code",
        "pass",
    ]);
    let debug = text(&out.stderr);
    assert!(
        debug.lines().any(|l| l
            .starts_with("codejail: debug: [jail=python slug=course-42/p2 pid=")
            && l.contains("] started")),
        "{debug}"
    );
    assert!(
        debug
            .lines()
            .filter(|l| l.contains('['))
            .all(|l| l.matches("slug=").count() == 1),
        "{debug}"
    );
    let out = codejail(&[
        "run",
        "--limit",
        "cpu=1",
        "--limit",
        "realtime=10",
        "--code",
        "while True: pass",
    ]);
    assert_eq!(out.status.code(), Some(152));
    assert!(
        text(&out.stderr).contains("codejail: killed: cpu limit (1 s)"),
        "{}",
        text(&out.stderr)
    );

    let out = codejail(&[
        "--log-level",
        "info",
        "--log-format",
        "json",
        "run",
        "--slug",
        "s9",
        "--code",
        "print(1)",
    ]);
    let line = text(&out.stderr);
    let v: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["message"], "ran jailed code");
    assert_eq!(v["spans"][0]["slug"], "s9");
    let quiet = codejail(&["run", "--code", "print(1)"]);
    assert_eq!(text(&quiet.stderr), "");
    let out = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .args(["run", "--code", "print(1)"])
        .env_remove("CODEJAIL_CONFIG")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("ran jailed code"),
        "{}",
        text(&out.stderr)
    );
}

/// Nothing outlives the command: SIGTERM, SIGINT (and the other signals
/// that end a process by default) end the run, remove its jail directory
/// and exit 128 + the signal; after a SIGKILL, `gc`
/// removes what the dead command left, and nothing of a live one.
#[test]
fn a_stopped_command_leaves_nothing_and_gc_cleans_after_a_killed_one() {
    let jails = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(jails.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Each command is killed if the test fails before it ends it (its
    // program would sleep on for 30 s).
    let start = || {
        let child = Command::new(env!("CARGO_BIN_EXE_codejail"))
            .args([
                "run",
                "--limit",
                "realtime=30",
                "--code",
                "import time; time.sleep(30)",
            ])
            .env_remove("CODEJAIL_CONFIG")
            .env("TMPDIR", jails.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        codejail_tests::Guarded::new(child)
    };
    let count = || std::fs::read_dir(jails.path()).unwrap().count();
    let wait_for_jail = || {
        for _ in 0..200 {
            if count() == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no jail directory appeared");
    };
    for (signal, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        // Signals that end a process by default: they ended the command
        // with the jail left behind.
        (libc::SIGUSR1, 138),
        (libc::SIGALRM, 142),
    ] {
        let child = start();
        wait_for_jail();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(
            pid,
            rustix::process::Signal::from_named_raw(signal).unwrap(),
        )
        .unwrap();
        let out = child.into_inner().wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert_eq!(count(), 0, "the jail directory outlived the command");
    }
    let killed = start();
    wait_for_jail();
    drop(killed);
    let alive = start();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..200 {
        if count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let gc = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codejail"))
            .arg("gc")
            .args(extra)
            .env_remove("CODEJAIL_CONFIG")
            .env("TMPDIR", jails.path())
            .output()
            .unwrap()
    };
    // What gc names in this test's jail parent. The cgroups it also
    // sweeps are shared with the tests that run beside this one (their
    // live runs and probes), so of the summary only the live count is
    // checked, and only to take in this test's live jail.
    let named_here = |stdout: &str, verb: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(verb)?.strip_prefix(' '))
            .filter(|p| std::path::Path::new(p).starts_with(jails.path()))
            .map(str::to_owned)
            .collect()
    };
    // The summary's count of live owners' entries (this test's live
    // command's jail among them).
    let live = |stdout: &str, verb: &str| -> usize {
        let summary = stdout.lines().last().unwrap_or_default();
        let (_, rest) = summary
            .split_once(&format!(" {verb}, "))
            .unwrap_or_else(|| panic!("{summary}"));
        rest.strip_suffix(" of running processes left alone, 0 failed")
            .unwrap_or_else(|| panic!("{summary}"))
            .parse()
            .unwrap()
    };
    let dry = gc(&["--dry-run"]);
    let dry_out = text(&dry.stdout);
    assert_eq!(named_here(&dry_out, "would remove").len(), 1, "{dry_out}");
    assert!(live(&dry_out, "would remove") >= 1, "{dry_out}");
    assert_eq!(count(), 2);
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out_text = text(&out.stdout);
    assert_eq!(
        named_here(&out_text, "removed"),
        named_here(&dry_out, "would remove"),
        "{out_text}"
    );
    assert!(live(&out_text, "removed") >= 1, "{out_text}");
    assert_eq!(
        count(),
        1,
        "gc removed the live command's jail, or not the dead one's"
    );
    let pid = rustix::process::Pid::from_raw(alive.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    alive.into_inner().wait_with_output().unwrap();
    assert_eq!(count(), 0);
}

/// stdin from a FIFO: a writer that comes later is waited for; one that
/// never comes costs at most the wall-clock limit, never a hang; `-` is
/// this command's own stdin, read by the program itself.
#[test]
fn stdin_from_a_fifo_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("late");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        c.as_c_str(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(path, "late data\n").unwrap();
    });
    let out = codejail(&[
        "run",
        "--stdin-file",
        fifo.to_str().unwrap(),
        "--limit",
        "realtime=10",
        "--code",
        "import sys; print(sys.stdin.read().upper(), end='')",
    ]);
    writer.join().unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "LATE DATA\n".into())
    );

    let never = dir.path().join("never");
    let c = std::ffi::CString::new(never.as_os_str().as_encoded_bytes()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        c.as_c_str(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let out = codejail(&[
        "run",
        "--stdin-file",
        never.to_str().unwrap(),
        "--limit",
        "realtime=1",
        "--code",
        "import sys; print(repr(sys.stdin.read()))",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "''\n");

    let out = codejail_with_stdin(
        &[
            "run",
            "--stdin-file",
            "-",
            "--code",
            "import sys; print(sys.stdin.read()[::-1])",
        ],
        b"olleh",
    );
    assert_eq!(text(&out.stdout), "hello\n");
}

/// CodeJail's three cases, each line what the code saw.
const START_PROGRAMS: &str = "import os, subprocess, sys\n\
def attempt(name, fn):\n    \
    try:\n        fn()\n        print(name, 'ran')\n    \
    except OSError as e:\n        print(name, '%s: %s' % (type(e).__name__, e))\n\
attempt('true', lambda: subprocess.run(['/usr/bin/true'], check=True))\n\
attempt('python', lambda: subprocess.run([sys.executable, '-c', 'pass'], check=True))\n\
sys.stdout.flush()\n\
attempt('execv', lambda: os.execv(sys.executable, [sys.executable, '-c', 'print(\"execv ran\")']))\n";

/// Through the binary: no program but the jail's starts, with CodeJail's
/// message; a settings file's `allow_exec = true` lets them start.
#[test]
fn deny_exec_through_the_binary_and_allow_it_in_the_settings() {
    let why = codejail::Probe::get()
        .availability(codejail::Layer::NoExec)
        .why_not();
    if !codejail_tests::require("no_exec", why) {
        return;
    }
    let v = json_of(&codejail(&["run", "--json", "--code", START_PROGRAMS]));
    assert_eq!(
        v["stdout"],
        "true PermissionError: [Errno 13] Permission denied: '/usr/bin/true'\n\
         python PermissionError: [Errno 13] Permission denied: '/usr/bin/python3'\n\
         execv PermissionError: [Errno 13] Permission denied\n",
        "{v}"
    );
    assert!(
        v["layers"].as_array().unwrap().contains(&json!("no_exec")),
        "{v}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("codejail.toml");
    std::fs::write(
        &config,
        "[jails.python]\nbin = \"/usr/bin/python3\"\nallow_exec = true\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let v = json_of(&codejail(&[
        "run",
        "--json",
        "--config",
        c,
        "--code",
        START_PROGRAMS,
    ]));
    assert_eq!(v["stdout"], "true ran\npython ran\nexecv ran\n", "{v}");
    assert!(
        !v["layers"].as_array().unwrap().contains(&json!("no_exec")),
        "{v}"
    );
    // doctor says so.
    let out = codejail(&["doctor", "--config", c]);
    assert!(
        text(&out.stdout).contains("allow_exec = true: the code may start other programs"),
        "{}",
        text(&out.stdout)
    );
}

/// How much of Landlock the kernel enforces, as the probe's real
/// restriction found it, in `run --json` and `doctor --json`.
#[test]
fn landlock_enforcement_is_reported() {
    let probe = codejail::Probe::get();
    let Some(abi) = probe.landlock_abi else {
        codejail_tests::not_tested("landlock", "the kernel has no Landlock");
        return;
    };
    let want = if abi >= codejail::LANDLOCK_ABI {
        "full"
    } else {
        "partial"
    };
    let v = json_of(&codejail(&["run", "--json", "--code", "pass"]));
    assert_eq!(v["landlock"], want, "{v}");
    let v = json_of(&codejail(&["doctor", "--json"]));
    assert_eq!(v["landlock"]["enforcement"], want, "{v}");
    assert_eq!(v["landlock"]["abi"], abi);
    assert_eq!(v["landlock"]["pinned_abi"], codejail::LANDLOCK_ABI);
    assert_eq!(
        v["landlock"]["unenforced"].as_array().unwrap().is_empty(),
        want == "full",
        "{v}"
    );
}

/// doctor says whether user namespaces can be made, read from the host;
/// on a host where they cannot, why and what to do (the cases are the
/// process layer's unit tests, on a fake /proc).
#[test]
fn doctor_reports_user_namespaces_from_the_host() {
    let out = codejail(&["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    let userns = &v["userns"];
    let available = userns["available"].as_bool().unwrap();
    let layers = v["layers"].as_array().unwrap();
    let layer = |name: &str| {
        layers
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no layer {name}: {v}"))["available"]
            .as_bool()
            .unwrap()
    };
    if !rustix::process::geteuid().is_root() {
        assert_eq!(available, layer("userns") && layer("mountns"), "{v}");
    }
    if available {
        assert_eq!(userns["cause"], "Available", "{v}");
        assert!(userns["fix"].is_null(), "{v}");
    } else {
        assert!(userns["fix"].as_str().is_some_and(|f| !f.is_empty()), "{v}");
        let t = text(&codejail(&["doctor"]).stdout);
        assert!(t.contains("user namespaces: missing: "), "{t}");
    }
}

/// The command with its stdout and stderr on the given files (stdout
/// `None`: a pipe whose reader is gone), and one request on stdin (for
/// `api`).
fn codejail_to(args: &[&str], stdout: Option<Stdio>, stderr: Stdio) -> std::process::ExitStatus {
    let closed = stdout.is_none();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codejail"))
        .args(args)
        .env_remove("CODEJAIL_CONFIG")
        .stdin(Stdio::piped())
        .stdout(stdout.unwrap_or_else(Stdio::piped))
        .stderr(stderr)
        .spawn()
        .unwrap();
    if closed {
        drop(child.stdout.take());
    }
    let mut request = child.stdin.take().unwrap();
    let _ = request.write_all(b"{}");
    drop(request);
    child.wait().unwrap()
}

fn full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

/// A stderr that cannot be written loses the message, never the exit
/// status: it panicked (exit 101) on every error.
#[test]
fn support_a_stderr_that_cannot_be_written_keeps_the_exit_status() {
    let status = codejail_to(&["run", "--limit", "foo=1"], Some(Stdio::null()), full());
    assert_eq!(status.code(), Some(2));
    let status = codejail_to(
        &["run", "--jail", "nope", "--code", "1"],
        Some(Stdio::null()),
        full(),
    );
    assert_eq!(status.code(), Some(3));
    let status = codejail_to(
        &["exec", "--code", "raise ValueError(1)"],
        Some(Stdio::null()),
        full(),
    );
    assert_eq!(status.code(), Some(1));
    // Log lines too (the log subscriber reported its failed write with a
    // panicking eprintln!).
    let status = codejail_to(
        &["run", "--log-level", "info", "--code", "print(1)"],
        Some(Stdio::null()),
        full(),
    );
    assert_eq!(status.code(), Some(0));
}

/// A result that cannot be written (a full disk) is an error, 74: it was
/// exit 0, the result lost. A reader that went away (a closed pipe) ends
/// the output quietly.
#[test]
fn support_a_result_that_cannot_be_written_is_an_error() {
    for args in [
        &["exec", "--code", "x = 1"][..],
        &["run", "--code", "print(1)"],
        &["run", "--json", "--code", "print(1)"],
    ] {
        let status = codejail_to(args, Some(full()), Stdio::null());
        assert_eq!(status.code(), Some(74), "{args:?}");
    }
    let status = codejail_to(&["api"], Some(full()), Stdio::null());
    assert_eq!(status.code(), Some(74), "api's answer");
    // Commands whose output is their result (they exited 0).
    for args in [
        &["gc", "--dry-run"][..],
        &["doctor"],
        &["doctor", "--json"],
        &["--help"],
        &["--version"],
    ] {
        let status = codejail_to(args, Some(full()), Stdio::null());
        assert_eq!(status.code(), Some(74), "{args:?}");
    }
    let status = codejail_to(&["exec", "--code", "x = 1"], None, Stdio::null());
    assert_eq!(status.code(), Some(0), "a closed pipe");
}

/// One event, one log line: a slug's line break is escaped, not a new
/// line a log reader takes for another event.
#[test]
fn deny_a_slug_forges_a_log_line() {
    let out = codejail(&[
        "run",
        "--slug",
        "a\ncodejail: error: forged",
        "--log-level",
        "info",
        "--code",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("slug=a\\ncodejail: error: forged]"), "{err}");
}
