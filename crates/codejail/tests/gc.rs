//! What a killed caller leaves in the cgroup tree: run cgroups carry their
//! owner (`codejail-<pid>.<start>-<n>`), and `gc_cgroups` removes those of
//! a dead owner, and only those.

use std::path::PathBuf;

use codejail::Layer;

/// The first directory this process's runs make their cgroups in; said
/// when there is none.
fn run_parent() -> Option<PathBuf> {
    let probe = codejail::Probe::get();
    if !codejail_tests::require("cgroup", probe.availability(Layer::Cgroup).why_not()) {
        return None;
    }
    Some(probe.cgroups.run_parents()[0].to_owned())
}

/// A run cgroup left by a caller that was killed is removed by
/// `gc_cgroups` (a dry run only names it); one of a running caller (this
/// process) stays. Shown able to fail: without the removal the dead
/// owner's cgroup would still be there.
#[test]
fn support_gc_removes_the_run_cgroups_of_a_dead_owner_only() {
    let Some(parent) = run_parent() else {
        return;
    };
    // A dead owner: a child whose start time is read while it runs.
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = codejail::owner::start_time(pid).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!codejail::owner::alive(pid, start));

    let dead = parent.join(format!("codejail-{pid}.{start}-gctest"));
    let live = parent.join(format!(
        "codejail-{}-gctest{}",
        codejail::owner::stamp(),
        pid
    ));
    std::fs::create_dir(&dead).unwrap();
    std::fs::create_dir(&live).unwrap();

    let dry = codejail::gc_cgroups(true);
    assert!(dry.removed.contains(&dead), "{dry:?}");
    assert!(dry.live.contains(&live), "{dry:?}");
    assert!(dead.is_dir() && live.is_dir());

    let report = codejail::gc_cgroups(false);
    let left = dead.is_dir();
    let _ = std::fs::remove_dir(&live);
    let _ = std::fs::remove_dir(&dead);
    assert!(report.removed.contains(&dead), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!left, "the dead owner's cgroup is still there");
    assert!(!report.removed.contains(&live), "{report:?}");
}
