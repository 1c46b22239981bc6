//! The namespace holder is gone with its run, whatever the run's end: a
//! test binary of its own, so that no other test's run is going on while
//! it looks for children of this process.

use std::time::Duration;

use codejail_proc::{KillReason, Layer, Limits, Policy, Probe, Spawn, SpawnError};

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
    let why = match Probe::get().availability(Layer::PidNs) {
        codejail_proc::Availability::No(why) => Some(why.as_str()),
        codejail_proc::Availability::Yes => None,
    };
    if !codejail_tests::require("pidns", why) {
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
