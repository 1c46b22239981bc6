//! A warm call's kill is logged, with its slug. A test binary of its own:
//! the log is a tracing subscriber scoped to the test's thread, and
//! tracing-core computes a callsite's cached interest with the registering
//! thread's subscriber while only one scoped subscriber exists, so a
//! kill logged first by another test's thread (a pool dropped elsewhere)
//! while this test runs would silence the callsite for it.

use codejail::{CallOptions, JailCode, LimitName, WarmOptions};

mod common;
use common::pool;

/// A warm call killed at its deadline is said at warning level, as a cold
/// run's kill is (`Killing process <pid>: wall-clock limit reached`, the
/// pid of the process that kills the call's processes: here its zygote),
/// on a line that names the call's slug.
#[test]
fn support_a_warm_kill_is_logged_with_its_slug() {
    let Some((_parent, warm)) = pool("warm-kill-log", WarmOptions::new(1)) else {
        return;
    };
    let (r, log) = codejail_tests::logged(tracing::Level::WARN, || {
        warm.jail_code(&JailCode {
            call: CallOptions {
                limits: vec![(LimitName::Realtime, 1)],
                slug: Some("course-7/answer".into()),
                ..CallOptions::default()
            },
            ..JailCode::code("import time; time.sleep(10)")
        })
        .unwrap()
    });
    assert!(r.warm, "the call went cold");
    assert_eq!(r.killed_by, Some(codejail::KillReason::Wall));
    let kill = log
        .lines()
        .find(|l| l.contains("Killing process "))
        .unwrap_or_else(|| panic!("no kill warning in {log:?}; {r:?}"));
    assert!(kill.contains("WARN"), "{kill}");
    assert!(kill.contains("slug=course-7/answer"), "{kill}");
    assert!(kill.ends_with(": wall-clock limit reached"), "{kill}");
}
