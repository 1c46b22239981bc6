//! The namespace holder is gone with its run, whatever the run's end, and
//! what it does for the run (the network namespace it makes) fails the
//! run with the kernel's errno when it cannot: a test binary of its own,
//! whose tests take turns, so that no other test's run is going on while
//! one looks for children of this process.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use codejail_proc::{KillReason, Layer, Limits, Policy, Probe, Spawn, SpawnError};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `layer` is available, through the workspace's gate.
fn have(layer: Layer) -> bool {
    codejail_tests::require(layer.name(), Probe::get().availability(layer).why_not())
}

/// Children of this process, zombies included, from `/proc/*/stat`.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?;
            (ppid == me && e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .then(|| stat.trim().to_owned())
        })
        .collect()
}

#[test]
fn no_holder_outlives_its_run() {
    let _turn = one_at_a_time();
    if !have(Layer::PidNs) {
        return;
    }
    assert_eq!(children(), Vec::<String>::new(), "children before any run");
    // Ends by itself.
    let out = Spawn::new("/bin/true").policy(Policy::Auto).run().unwrap();
    assert_eq!(out.status, 0);
    // Killed at its deadline, with a child that double-forked away (the
    // shell runs `sleep`: exec allowed).
    let out = Spawn::new("/bin/sh")
        .args(["-c", "(sleep 30 &) ; sleep 30"])
        .policy(Policy::Auto)
        .allow_exec(true)
        .limits(Limits {
            wall: Some(Duration::from_millis(300)),
            ..Limits::default()
        })
        .run()
        .unwrap();
    assert_eq!(out.killed_by, Some(KillReason::Wall));
    // A setup step that fails after the namespaces were made.
    let err = Spawn::new("/bin/true")
        .cwd("/nonexistent-codejail-dir")
        .policy(Policy::Auto)
        .run()
        .unwrap_err();
    assert!(matches!(err, SpawnError::Setup { .. }), "{err}");
    assert_eq!(children(), Vec::<String>::new(), "children after the runs");
}

/// The inner test's name, and the variable that tells it it runs inside
/// the user namespace the outer test made for it.
const INNER: &str = "inner_a_holder_that_cannot_make_the_network_namespace";
const INNER_VAR: &str = "CODEJAIL_TEST_INNER_NETNS";

/// In a run with a private root the holder makes the run's network
/// namespace itself, after its clone (`unshare`), while the program builds
/// the root; the program joins it last. When the kernel refuses the
/// holder, the run fails with the holder's errno and its step, and leaves
/// no process; without a private root the holder's clone makes the
/// namespace, and its refusal fails the clone. This runs the inner test
/// in a user namespace of its own, where it may lower the namespace's
/// limit of network namespaces to none after the probe (`ENOSPC` then).
#[test]
fn support_a_network_namespace_its_holder_cannot_make_fails_the_run_with_its_errno() {
    let _turn = one_at_a_time();
    if !have(Layer::UserNs) || !have(Layer::NetNs) {
        return;
    }
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([INNER, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(INNER_VAR, "1")
        .output()
        .expect("run unshare(1) (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("refused with ENOSPC"),
        "the inner test failed: {}\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
#[ignore = "run by the test above, inside a user namespace of its own"]
fn inner_a_holder_that_cannot_make_the_network_namespace() {
    assert!(
        std::env::var_os(INNER_VAR).is_some(),
        "{INNER} runs inside the user namespace its outer test makes"
    );
    assert!(
        Probe::get().availability(Layer::NetNs).is_yes(),
        "{:?}",
        Probe::get().availability(Layer::NetNs)
    );
    // This namespace's own limit (a child user namespace's, which the
    // kernel checks for every namespace made beneath it); the probe's
    // trial clone came before.
    std::fs::write("/proc/sys/user/max_net_namespaces", "0").unwrap();
    let run = |layers: &[Layer]| {
        Spawn::new("/bin/true")
            .policy(Policy::Only(layers.iter().copied().collect()))
            .run()
    };
    let holders_step = |err: &SpawnError| match err {
        SpawnError::Setup { step, source } => {
            assert_eq!(
                *step, "unshare (the run's network namespace, made by its holder)",
                "{err}"
            );
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err}");
        }
        other => panic!("not the holder's step: {other}"),
    };
    let with_root = [Layer::NetNs, Layer::MountNs, Layer::RootFs];
    let err = run(&with_root).unwrap_err();
    holders_step(&err);
    assert_eq!(children(), Vec::<String>::new(), "children after the run");
    // With a pid namespace too, whose init the holder is (its exit would
    // end the program before it could report), sixteen at a time.
    let with_pid_ns = [
        Layer::NetNs,
        Layer::MountNs,
        Layer::RootFs,
        Layer::PidNs,
        Layer::IpcNs,
        Layer::UtsNs,
    ];
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..16).map(|_| s.spawn(|| run(&with_pid_ns))).collect();
        for r in runs {
            holders_step(&r.join().unwrap().unwrap_err());
        }
    });
    assert_eq!(children(), Vec::<String>::new(), "children after the runs");
    match run(&[Layer::NetNs]).unwrap_err() {
        SpawnError::Parent { step, source } => {
            assert_eq!(step, "clone the namespace holder");
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
        }
        other => panic!("not the holder's clone: {other}"),
    }
    assert_eq!(children(), Vec::<String>::new(), "children after the run");
    // The limit back: the same runs go through.
    std::fs::write("/proc/sys/user/max_net_namespaces", "1000").unwrap();
    assert_eq!(run(&with_root).unwrap().status, 0);
    assert_eq!(run(&with_pid_ns).unwrap().status, 0);
    assert_eq!(run(&[Layer::NetNs]).unwrap().status, 0);
    println!("refused with ENOSPC: {err}");
}
