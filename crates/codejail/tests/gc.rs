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

/// A dead owner's pid and start time: a child whose start time is read
/// while it runs, then killed and reaped.
fn dead_owner() -> (u32, u64) {
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = codejail::owner::start_time(pid).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!codejail::owner::alive(pid, start));
    (pid, start)
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
    let (pid, start) = dead_owner();

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

/// Two `gc` at once on the same leftovers both succeed: a tree the other
/// is emptying is walked again on what is left (each failed on the
/// entries the other had removed first).
#[test]
fn support_two_gc_at_once_both_succeed() {
    let (pid, start) = dead_owner();
    let parent = tempfile::tempdir().unwrap();
    let parents = [parent.path().to_owned()];
    for round in 0..6 {
        for jail in 0..4 {
            let home = parent
                .path()
                .join(format!("codejail-{pid}.{start}-r{round}j{jail}"));
            for dir in 0..20 {
                let d = home.join(format!("d{dir}")).join("deeper");
                std::fs::create_dir_all(&d).unwrap();
                for file in 0..40 {
                    std::fs::write(d.join(format!("f{file}")), b"x").unwrap();
                }
            }
        }
        let both: Vec<_> = (0..2)
            .map(|_| {
                let parents = parents.clone();
                std::thread::spawn(move || codejail::gc(&parents, false))
            })
            .collect();
        let mut removed = 0;
        for gc in both {
            let report = gc.join().unwrap();
            assert!(
                report.failed.is_empty(),
                "round {round}: {:?}",
                report.failed
            );
            removed += report.removed.len();
        }
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
        // Each tree counted once: one found gone is not said removed.
        assert!(removed <= 4, "round {round}: {removed} removals of 4 trees");
    }
}
