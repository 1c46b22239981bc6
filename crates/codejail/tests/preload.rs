//! A warm pool's preload: each zygote imports the jail's modules inside
//! its confinement, with one thread, before it serves; a call that changes
//! a preloaded module changes nothing the next call sees; a preload that
//! cannot be had is a start-up error naming the module.

use std::path::PathBuf;
use std::sync::Arc;

use codejail::{
    CallOptions, JailCode, JailConfig, JailError, LimitName, Warm, WarmError, WarmOptions,
};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A private jail parent, readable by the sandbox uid.
fn parent() -> tempfile::TempDir {
    let parent = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    parent
}

/// The warm pool of `config` (its runs in a private parent); `Err` is the
/// pool's start error. `None` (said) where this machine cannot have one.
fn start(
    name: &str,
    mut config: JailConfig,
    size: usize,
) -> Option<(tempfile::TempDir, Result<Warm, JailError>)> {
    let parent = parent();
    config.jail_parent = Some(parent.path().to_owned());
    let jail = Arc::new(codejail::Jail::new(name, config).unwrap());
    let started = jail.warm_with(WarmOptions::new(size));
    if let Err(JailError::Warm(WarmError::NeedsLandlockScopes { .. })) = &started {
        codejail_tests::require("landlock_scopes", Some(&started.err().unwrap().to_string()));
        return None;
    }
    Some((parent, started))
}

/// The sandbox virtualenv's jail preloading what Open edX's problems
/// import, through the gate (`None`: said, or failed when declared).
fn sandbox_config(preload: &[&str]) -> Option<JailConfig> {
    let bin = codejail_tests::sandbox_python()?;
    let mut config = JailConfig::new(bin);
    config.user = std::env::var("CODEJAIL_SANDBOX_USER").ok();
    config.preload = preload.iter().map(|m| (*m).to_owned()).collect();
    Some(config)
}

fn run(warm: &Warm, code: &str) -> codejail::JailResult {
    let r = warm
        .jail_code(&JailCode {
            call: CallOptions {
                limits: vec![(LimitName::Realtime, 10)],
                ..CallOptions::default()
            },
            ..JailCode::code(code)
        })
        .unwrap();
    assert!(r.warm, "the call went cold");
    assert_eq!(r.status, 0, "{}", text(&r.stderr));
    r
}

/// The same code run cold, in one interpreter: what "without the fork"
/// would show.
fn run_cold(config: &JailConfig, code: &str) -> String {
    let parent = parent();
    let mut config = config.clone();
    config.jail_parent = Some(parent.path().to_owned());
    config.preload = Vec::new();
    let jail = codejail::Jail::new("preload-cold", config).unwrap();
    let r = jail
        .jail_code(&JailCode {
            call: CallOptions {
                limits: vec![(LimitName::Realtime, 10)],
                ..CallOptions::default()
            },
            ..JailCode::code(code)
        })
        .unwrap();
    assert_eq!(r.status, 0, "{}", text(&r.stderr));
    text(&r.stdout)
}

#[test]
fn support_preloaded_modules_are_there_before_the_call() {
    let Some(config) = sandbox_config(&["numpy", "random2", "six"]) else {
        return;
    };
    let Some((_parent, warm)) = start("preload-there", config, 1) else {
        return;
    };
    let warm = warm.unwrap();
    let r = run(
        &warm,
        "import sys\nprint(sorted(m for m in ('numpy', 'random2', 'six') if m in sys.modules))\n\
         import numpy as np\nprint(float(np.sqrt(16)))\n",
    );
    assert_eq!(
        text(&r.stdout),
        "['numpy', 'random2', 'six']\n4.0\n",
        "{}",
        text(&r.stderr)
    );
}

/// What a call changes in the preloaded modules: a C extension
/// monkeypatched (numpy), generators seeded (random2, numpy's, Python's
/// own), a pure-Python module's global written (six).
const CHANGE: &str = "import numpy as np, random, random2, six\n\
np.sqrt = lambda x: -1.0\n\
np.random.seed(42)\nrandom2.seed(42)\nrandom.seed(42)\n\
six.PY3 = 'changed'\n";

/// What the next call sees of them.
const LOOK: &str = "import numpy as np, random, random2, six\n\
print(float(np.sqrt(16)), six.PY3, repr(random2.random()), repr(float(np.random.random())), repr(random.random()))\n";

/// The first draws after seeding with 42, as `LOOK` prints them.
const SEEDED: &str = "import numpy as np, random, random2\n\
np.random.seed(42)\nrandom2.seed(42)\nrandom.seed(42)\n\
print(repr(random2.random()), repr(float(np.random.random())), repr(random.random()))\n";

/// Why `look` (what `LOOK` printed) shows a change made by `CHANGE`, if it does.
fn changed(look: &str, seeded: &str) -> Option<String> {
    let fields: Vec<&str> = look.split_whitespace().collect();
    let seeded: Vec<&str> = seeded.split_whitespace().collect();
    let mut why = Vec::new();
    if fields.first() != Some(&"4.0") {
        why.push("numpy.sqrt is monkeypatched");
    }
    if fields.get(1) != Some(&"True") {
        why.push("six.PY3 was written");
    }
    for (i, name) in ["random2", "numpy.random", "random"]
        .into_iter()
        .enumerate()
    {
        if fields.get(2 + i) == seeded.get(i) {
            why.push(name);
        }
    }
    (!why.is_empty()).then(|| format!("{why:?} in {look:?}"))
}

/// A call that monkeypatches numpy (a C extension), seeds random2,
/// numpy's and Python's generators (modules holding state) and writes a
/// pure-Python module's global (six) changes nothing the next call sees,
/// on the same zygote. Shown able to fail: the two calls run in one
/// interpreter (the warm path without its fork) see every change.
#[test]
fn deny_a_call_changing_preloaded_modules_for_the_next_one() {
    let Some(config) = sandbox_config(&["numpy", "numpy.random", "random2", "six"]) else {
        return;
    };
    let seeded = run_cold(&config, SEEDED);
    let Some((_parent, warm)) = start("preload-isolation", config.clone(), 1) else {
        return;
    };
    let warm = warm.unwrap();
    run(&warm, CHANGE);
    let look = text(&run(&warm, LOOK).stdout);
    assert_eq!(changed(&look, &seeded), None);
    assert_eq!(
        warm.health().restarts,
        0,
        "the call did not reuse the zygote"
    );

    let without_fork = run_cold(&config, &format!("{CHANGE}{LOOK}"));
    let why = changed(&without_fork, &seeded).expect("one interpreter shows the change");
    for change in [
        "numpy.sqrt",
        "six.PY3",
        "random2",
        "numpy.random",
        "\"random\"",
    ] {
        assert!(why.contains(change), "{change}: {why}");
    }
}

/// Two calls that draw from the preloaded generators without seeding them
/// draw different numbers: each worker reseeds random2 and numpy's global
/// generator (Python's own reseeds itself at a fork), as two cold runs
/// would. (`numpy` alone does not import `numpy.random`: the preload names
/// it, so that its generator is made in the zygote.) Shown able to fail: two forks of one interpreter that imported
/// them (a zygote that does not reseed) draw the same numbers.
#[test]
fn deny_two_calls_drawing_the_same_random_numbers() {
    let Some(config) = sandbox_config(&["numpy", "numpy.random", "random2"]) else {
        return;
    };
    let draw = "import numpy as np, random2\nprint(repr(random2.random()), repr(float(np.random.random())))\n";
    let Some((_parent, warm)) = start("preload-reseed", config.clone(), 1) else {
        return;
    };
    let warm = warm.unwrap();
    let first = text(&run(&warm, draw).stdout);
    let second = text(&run(&warm, draw).stdout);
    let (a, b): (Vec<&str>, Vec<&str>) = (
        first.split_whitespace().collect(),
        second.split_whitespace().collect(),
    );
    assert_eq!((a.len(), b.len()), (2, 2), "{first}{second}");
    assert_ne!(a[0], b[0], "random2 drew the same: {first}{second}");
    assert_ne!(a[1], b[1], "numpy.random drew the same: {first}{second}");

    let forks = run_cold(
        &config,
        &format!(
            "import os, sys\nimport numpy.random, random2\nfor _ in range(2):\n    pid = os.fork()\n    if pid == 0:\n        exec({draw:?})\n        sys.stdout.flush()\n        os._exit(0)\n    os.waitpid(pid, 0)\n"
        ),
    );
    let lines: Vec<&str> = forks.lines().collect();
    assert_eq!(lines.len(), 2, "{forks}");
    assert_eq!(
        lines[0], lines[1],
        "forks without a reseed drew differently"
    );
}

/// A module of the preload that does not import is the pool's start
/// error, naming it, in one line; nothing of the pool is left.
#[test]
fn deny_a_preload_that_does_not_import() {
    let mut config = JailConfig::new("/usr/bin/python3");
    config.preload = vec!["json".into(), "codejail_no_such_module".into()];
    let Some((parent, started)) = start("preload-missing", config, 1) else {
        return;
    };
    let Err(err) = started else {
        panic!("the pool started")
    };
    assert!(
        matches!(&err, JailError::Warm(WarmError::Preload { module, error })
            if module == "codejail_no_such_module" && error.starts_with("ModuleNotFoundError: ")),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains("could not import `codejail_no_such_module`")
            && message.contains("take it out of `preload`"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

/// An interpreter of its own: a virtualenv (`pyvenv.cfg` beside a link to
/// the system's Python) whose site-packages hold `modules`.
fn venv(modules: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let version = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys; print('python%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .unwrap();
    let version = text(&version.stdout).trim().to_owned();
    let site = dir.path().join("lib").join(version).join("site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", dir.path().join("bin/python")).unwrap();
    std::fs::write(
        dir.path().join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = false\n",
    )
    .unwrap();
    for (name, source) in modules {
        std::fs::write(site.join(format!("{name}.py")), source).unwrap();
    }
    let mut walk = vec![dir.path().to_owned()];
    while let Some(d) = walk.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
                walk.push(e.path());
            } else if e.file_type().unwrap().is_file() {
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
    let bin = dir.path().join("bin/python");
    (dir, bin)
}

/// Modules that start a thread at import, one Python knows of and one it
/// does not (`_thread`, which `threading` does not count).
const THREADERS: &[(&str, &str)] = &[
    (
        "codejail_starts_thread",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
    ),
    (
        "codejail_starts_native_thread",
        "import _thread, time\n_thread.start_new_thread(time.sleep, (3600,))\n",
    ),
    ("codejail_quiet", "VALUE = 1\n"),
];

/// A preload that leaves a second thread in the zygote is refused, with
/// the count and the module: the one `threading` sees (counted by the
/// zygote, which names the module) and the one it does not (counted by
/// the kernel, from the caller's side). Shown able to fail: a module
/// that starts no thread gives a pool that serves.
#[test]
fn deny_a_preload_that_leaves_a_thread() {
    let (_venv, bin) = venv(THREADERS);
    for (module, named) in [
        ("codejail_starts_thread", true),
        ("codejail_starts_native_thread", false),
    ] {
        let mut config = JailConfig::new(&bin);
        config.preload = vec!["codejail_quiet".into(), module.into()];
        let Some((parent, started)) = start("preload-threads", config, 1) else {
            return;
        };
        let Err(err) = started else {
            panic!("the pool started")
        };
        match &err {
            JailError::Warm(WarmError::Threads { threads, modules }) => {
                assert_eq!(*threads, 2, "{err}");
                let expected: Vec<String> = if named {
                    vec![module.into()]
                } else {
                    vec!["codejail_quiet".into(), module.into()]
                };
                assert_eq!(*modules, expected, "{err}");
            }
            other => panic!("{module}: {other:?}"),
        }
        let message = err.to_string();
        assert!(
            !message.contains('\n') && message.contains(module),
            "{message}"
        );
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
    let mut config = JailConfig::new(&bin);
    config.preload = vec!["codejail_quiet".into()];
    let Some((_parent, started)) = start("preload-quiet", config, 1) else {
        return;
    };
    let warm = started.unwrap();
    let r = run(
        &warm,
        "import sys\nprint(sys.modules['codejail_quiet'].VALUE)",
    );
    assert_eq!(text(&r.stdout), "1\n");
}

/// `Rss` and `Pss` of `pid`, in KiB, from `/proc/<pid>/smaps_rollup`.
fn rss_pss(pid: i32) -> (u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {rollup}"))
    };
    (field("Rss:"), field("Pss:"))
}

/// What a zygote costs with and without the preload, and what a worker
/// forked from a preloaded zygote adds (its pages are the zygote's until
/// written): said on stderr (`--nocapture`), for the README's table. The
/// preload's pages are there (RSS grows by numpy's), shared between the
/// zygotes of a pool (PSS below RSS), and a worker that uses numpy
/// shares most of its pages with its zygote.
#[test]
fn support_what_a_preloaded_zygote_costs() {
    let Some(plain) = sandbox_config(&[]) else {
        return;
    };
    let Some(preloaded) = sandbox_config(&["numpy", "random2", "six"]) else {
        return;
    };
    let mut seen = Vec::new();
    for (what, config) in [("no preload", plain), ("preload", preloaded)] {
        let Some((_parent, warm)) = start("preload-memory", config, 2) else {
            return;
        };
        let warm = Arc::new(warm.unwrap());
        let pids = warm.zygote_pids();
        assert_eq!(pids.len(), 2);
        let zygotes: Vec<(u64, u64)> = pids.iter().map(|&p| rss_pss(p)).collect();
        // A worker in the middle of a call that used numpy.
        let call = {
            let warm = warm.clone();
            std::thread::spawn(move || {
                run(
                    &warm,
                    "import time\nimport numpy as np\nx = float(np.sqrt(16))\ntime.sleep(2)\n",
                )
            })
        };
        let mut worker = None;
        let started = std::time::Instant::now();
        while worker.is_none() && started.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(300));
            worker = pids.iter().find_map(|&z| {
                let children =
                    std::fs::read_to_string(format!("/proc/{z}/task/{z}/children")).ok()?;
                children.split_whitespace().next()?.parse::<i32>().ok()
            });
        }
        let worker = rss_pss(worker.expect("the call's worker"));
        call.join().unwrap();
        eprintln!(
            "{what}: zygotes (RSS, PSS KiB) {zygotes:?}; a worker during a numpy call {worker:?}"
        );
        seen.push((zygotes, worker));
    }
    let (plain, preloaded) = (&seen[0], &seen[1]);
    assert!(
        preloaded.0[0].0 > plain.0[0].0 + 8 * 1024,
        "the preload is not in the zygote: {seen:?}"
    );
    for (rss, pss) in &preloaded.0 {
        assert!(pss < rss, "nothing shared: {seen:?}");
    }
    let (worker_rss, worker_pss) = preloaded.1;
    assert!(
        worker_pss * 2 < worker_rss,
        "the worker shares little with its zygote: {seen:?}"
    );
}

/// A preloaded module that starts a program at import: the zygote is past
/// its first program, so `no_exec` refuses it (EACCES) and the pool does
/// not start, naming the module and the refusal. Shown able to fail: with
/// `allow_exec` the same preload starts.
#[test]
fn deny_a_preload_that_starts_a_program() {
    let (_venv, bin) = venv(&[(
        "codejail_starts_program",
        "import subprocess\nsubprocess.run(['/bin/true'], check=True)\n",
    )]);
    let mut config = JailConfig::new(&bin);
    config.preload = vec!["codejail_starts_program".into()];
    let layers = codejail::Jail::new("preload-exec", config.clone())
        .unwrap()
        .planned_layers()
        .unwrap();
    if !codejail_tests::require(
        "no_exec",
        (!layers.contains(codejail::Layer::NoExec)).then_some("the jail's runs would not have it"),
    ) {
        return;
    }
    let Some((parent, started)) = start("preload-exec", config.clone(), 1) else {
        return;
    };
    let Err(err) = started else {
        panic!("the pool started")
    };
    assert!(
        matches!(&err, JailError::Warm(WarmError::Preload { module, error })
            if module == "codejail_starts_program" && error.starts_with("PermissionError: [Errno 13]")),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);

    config.allow_exec = true;
    let Some((_parent, started)) = start("preload-exec-allowed", config, 1) else {
        return;
    };
    let warm = started.unwrap();
    assert_eq!(text(&run(&warm, "print(2)").stdout), "2\n");
}
