//! A uid of its own per run at the same time (a root caller): cold runs
//! and warm zygotes never share one, a uid is free again once its run is
//! over, an unusable lock directory is a typed error that leaves nothing,
//! and `RLIMIT_NPROC` counts one run even without a user namespace.
//!
//! Each test has a range and a lock directory of its own: a range must
//! be used through one lock directory only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codejail::{
    CallOptions, JailCode, JailConfig, JailError, Layer, LayerSet, LimitName, UidError, UidRange,
    Uids, WarmError,
};

/// Whether this caller switches uid; said when not.
fn switches_uid() -> bool {
    let probe = codejail::Probe::get();
    codejail_tests::require("identity", probe.availability(Layer::Identity).why_not())
}

/// A jail parent the sandbox uids may enter, a lock directory, and a
/// config of `/usr/bin/python3` with the range `first..=first + len - 1`.
struct Setup {
    parent: tempfile::TempDir,
    locks: tempfile::TempDir,
    config: JailConfig,
}

impl Setup {
    fn new(first: u32, len: u32) -> Setup {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let locks = tempfile::tempdir().unwrap();
        let mut config = JailConfig::new("/usr/bin/python3");
        config.jail_parent = Some(parent.path().to_owned());
        config.uids = Uids::Range(UidRange::new(first, first + len - 1).unwrap());
        config.uid_lock_dir = Some(locks.path().join("uids"));
        Setup {
            parent,
            locks,
            config,
        }
    }

    fn lock_dir(&self) -> PathBuf {
        self.locks.path().join("uids")
    }

    /// The uids whose lock files exist now.
    fn held(&self) -> Vec<u32> {
        let mut uids: Vec<u32> = match std::fs::read_dir(self.lock_dir()) {
            Ok(dir) => dir
                .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        uids.sort_unstable();
        uids
    }

    fn entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.parent.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Code that says it is running (`tmp/ready`), waits for `tmp/go` (at
/// most 30 s), then prints its uid and gid.
const WAIT_FOR_GO: &str = "\
import os, time
tmp = os.environ['TMPDIR']
open(tmp + '/ready', 'w').close()
start = time.time()
while not os.path.exists(tmp + '/go') and time.time() - start < 30:
    time.sleep(0.01)
print(os.getuid(), os.getgid())
";

/// A request whose `tmp/` is on the disk (no quota, so no mount of its
/// own): the test sees its files.
fn on_disk(code: &str, mut limits: Vec<(LimitName, u64)>) -> JailCode {
    limits.extend([
        (LimitName::Disk, 0),
        (LimitName::Files, 0),
        (LimitName::Realtime, 60),
        (LimitName::Fsize, 1 << 20),
    ]);
    JailCode {
        code: Some(code.to_owned()),
        call: CallOptions {
            limits,
            ..CallOptions::default()
        },
        ..JailCode::default()
    }
}

/// Waits (at most 30 s) until `n` runs in `parent` have made
/// `tmp/<marker>`, and returns their `tmp/` directories.
fn wait_for(parent: &Path, marker: &str, n: usize) -> Vec<PathBuf> {
    let start = Instant::now();
    loop {
        let found: Vec<PathBuf> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().path().join("tmp"))
            .filter(|tmp| tmp.join(marker).exists())
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{n} runs did not make {marker} within 30 s (found {})",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn go(tmps: &[PathBuf]) {
    for tmp in tmps {
        std::fs::write(tmp.join("go"), "").unwrap();
    }
}

fn ids_of(out: &codejail::JailResult) -> (u32, u32) {
    let t = text(&out.stdout);
    let mut it = t.split_whitespace().map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Two cold runs at the same time get two different uids of the range (a
/// range of two: a third run then finds none, at once, and leaves
/// nothing); the jail user's group is the group of both; once they are
/// over, their uids are free again.
#[test]
fn support_concurrent_cold_runs_have_uids_of_their_own() {
    if !switches_uid() {
        return;
    }
    let setup = Setup::new(2_100_000_000, 2);
    let jail = Arc::new(codejail::Jail::new("uids-cold", setup.config.clone()).unwrap());
    assert_eq!(
        jail.uid_range(),
        Some(UidRange::new(2_100_000_000, 2_100_000_001).unwrap())
    );
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let jail = jail.clone();
            std::thread::spawn(move || jail.jail_code(&on_disk(WAIT_FOR_GO, vec![])).unwrap())
        })
        .collect();
    let tmps = wait_for(setup.parent.path(), "ready", 2);
    // Both runs hold their uid now: the directory lists them.
    assert_eq!(setup.held(), [2_100_000_000, 2_100_000_001]);
    let owners: Vec<u32> = tmps
        .iter()
        .map(|t| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(t).unwrap()))
        .collect();
    let before = setup.entries().len();
    match jail.jail_code(&on_disk("print(1)", vec![])) {
        Err(JailError::Uid(UidError::Exhausted { range })) => assert_eq!(range.len(), 2),
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(
        setup.entries().len(),
        before,
        "the refused run left a directory"
    );
    go(&tmps);
    let mut uids: Vec<(u32, u32)> = runs
        .into_iter()
        .map(|h| {
            let out = h.join().unwrap();
            assert_eq!(out.status, 0, "{}", text(&out.stderr));
            ids_of(&out)
        })
        .collect();
    uids.sort_unstable();
    let gid = jail.identity().1;
    assert_eq!(uids, [(2_100_000_000, gid), (2_100_000_001, gid)]);
    let mut owners = owners;
    owners.sort_unstable();
    assert_eq!(owners, [2_100_000_000, 2_100_000_001], "tmp/ is the run's");
    // Released: nothing held, nothing left, and a later run takes one.
    assert_eq!(setup.held(), Vec::<u32>::new());
    assert!(setup.entries().is_empty(), "{:?}", setup.entries());
    let out = jail
        .jail_code(&on_disk(
            "import os; print(os.getuid(), os.getgid())",
            vec![],
        ))
        .unwrap();
    assert!(jail.uid_range().unwrap().contains(ids_of(&out).0));
    assert_eq!(setup.held(), Vec::<u32>::new());
}

/// `uids = "off"`: every run is the jail user's uid, as before ranges.
#[test]
fn support_uids_off_runs_as_the_user() {
    if !switches_uid() {
        return;
    }
    let mut setup = Setup::new(2_100_000_100, 2);
    setup.config.uids = Uids::Off;
    let jail = codejail::Jail::new("uids-off", setup.config.clone()).unwrap();
    assert_eq!(jail.uid_range(), None);
    let out = jail
        .jail_code(&on_disk(
            "import os; print(os.getuid(), os.getgid())",
            vec![],
        ))
        .unwrap();
    assert_eq!(ids_of(&out), jail.identity());
    assert!(!setup.lock_dir().exists(), "no lock is taken");
}

/// Each warm zygote holds a uid of its own for its life: a pool of two
/// holds two, two calls at the same time run as two different uids (each
/// its zygote's), and dropping the pool frees both.
#[test]
fn support_warm_zygotes_have_uids_of_their_own() {
    if !switches_uid() {
        return;
    }
    let setup = Setup::new(2_100_000_200, 4);
    let jail = Arc::new(codejail::Jail::new("uids-warm", setup.config.clone()).unwrap());
    let pool = match jail.warm(2) {
        Ok(pool) => Arc::new(pool),
        Err(e) => {
            codejail_tests::require("landlock_scopes", Some(&e.to_string()));
            return;
        }
    };
    let zygotes = setup.held();
    assert_eq!(zygotes.len(), 2, "{zygotes:?}");
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let code = "import os, time; time.sleep(1.5); print(os.getuid(), os.getgid())";
                let mut req = JailCode::code(code);
                req.call.limits = vec![(LimitName::Realtime, 20)];
                let out = pool.jail_code(&req).unwrap();
                assert!(out.warm, "the call went cold");
                assert_eq!(out.status, 0, "{}", text(&out.stderr));
                ids_of(&out)
            })
        })
        .collect();
    let mut seen: Vec<u32> = calls
        .into_iter()
        .map(|h| {
            let (uid, gid) = h.join().unwrap();
            assert_eq!(gid, jail.identity().1);
            uid
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, zygotes, "the calls' uids are their zygotes'");
    assert_eq!(pool.stray_processes(), 0);
    drop(Arc::into_inner(pool).expect("no other owner"));
    assert_eq!(setup.held(), Vec::<u32>::new(), "a zygote kept its uid");
}

/// A lock directory others may write (anyone could take a run's uid
/// away) or that cannot be made: the run fails with the typed error, at
/// once, and leaves no directory, no lock and no process.
#[test]
fn deny_runs_when_the_uid_lock_directory_is_unusable() {
    if !switches_uid() {
        return;
    }
    let setup = Setup::new(2_100_000_300, 2);
    let jail = Arc::new(codejail::Jail::new("uids-bad-dir", setup.config.clone()).unwrap());
    // Made (by the interpreter's probe or here), then opened to everyone.
    std::fs::create_dir_all(setup.lock_dir()).unwrap();
    std::fs::set_permissions(setup.lock_dir(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = jail.jail_code(&on_disk("print(1)", vec![])).unwrap_err();
    match &err {
        JailError::Uid(UidError::LockDirNotPrivate { mode, dir, .. }) => {
            assert_eq!((*mode, dir.as_path()), (0o1777, setup.lock_dir().as_path()));
        }
        other => panic!("expected LockDirNotPrivate, got {other:?}"),
    }
    assert!(!err.is_bad_input(), "a set-up failure, not bad input");
    assert!(err.to_string().contains("chmod 0700"), "{err}");
    assert!(setup.entries().is_empty(), "{:?}", setup.entries());
    assert_eq!(setup.held(), Vec::<u32>::new());
    // A warm pool cannot start either, and removes its directory.
    match jail.warm(1) {
        Err(JailError::Warm(WarmError::Uid(UidError::LockDirNotPrivate { .. }))) => {}
        Err(JailError::Warm(WarmError::NeedsLandlockScopes { .. })) => {}
        other => panic!("expected a uid error, got {other:?}"),
    }
    assert!(setup.entries().is_empty(), "{:?}", setup.entries());

    // A directory that cannot be made: its parent is a file.
    let blocker = setup.locks.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let mut config = setup.config.clone();
    config.uid_lock_dir = Some(blocker.join("uids"));
    config.uids = Uids::Off;
    let jail = codejail::Jail::new("uids-no-dir", config.clone()).unwrap();
    config.uids = Uids::Range(UidRange::new(2_100_000_300, 2_100_000_301).unwrap());
    // Configuring asks the interpreter (as a uid of the range) unless its
    // answer is cached: either way the error is the typed one.
    drop(jail);
    let err = match codejail::Jail::new("uids-no-dir", config) {
        Err(codejail::ConfigError::Uid(e)) => e,
        Err(other) => panic!("expected a uid error, got {other}"),
        Ok(jail) => match jail.jail_code(&on_disk("print(1)", vec![])) {
            Err(JailError::Uid(e)) => e,
            other => panic!("expected a uid error, got {other:?}"),
        },
    };
    match err {
        UidError::LockDir { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::ENOTDIR)),
        other => panic!("expected LockDir, got {other:?}"),
    }
    assert!(setup.entries().is_empty(), "{:?}", setup.entries());
}

/// A range that holds an account's uid is refused when the jail is made.
#[test]
fn deny_a_range_that_holds_an_account() {
    let mut config = JailConfig::new("/usr/bin/python3");
    config.uids = Uids::Range(UidRange::new(1, 100).unwrap());
    match codejail::Jail::new("uids-taken", config) {
        Err(e @ codejail::ConfigError::UidRangeTaken { uid: 1..=100, .. }) => {
            assert!(
                e.to_string().contains("choose a range no account uses"),
                "{e}"
            );
        }
        other => panic!("expected UidRangeTaken, got {other:?}"),
    }
}

/// The fork bomb: a run fills its `RLIMIT_NPROC` with processes that
/// wait, and a run at the same time starts processes of its own. Without
/// a user namespace `RLIMIT_NPROC` counts the processes of a uid: with a
/// shared uid the second run cannot start a process (`EAGAIN`); with a
/// uid of its own it forks as it likes.
#[test]
fn deny_a_fork_bomb_starving_a_concurrent_run_without_a_user_namespace() {
    if !switches_uid() {
        return;
    }
    let probe = codejail::Probe::get();
    for layer in [Layer::NoNewPrivs, Layer::Landlock, Layer::Seccomp] {
        if !codejail_tests::require(layer.name(), probe.availability(layer).why_not()) {
            return;
        }
    }
    // No namespace at all: the uid is what separates the runs.
    let layers: LayerSet = [
        Layer::Identity,
        Layer::NoNewPrivs,
        Layer::Landlock,
        Layer::Seccomp,
    ]
    .into_iter()
    .collect();
    const NPROC: u64 = 8;
    let bomb = "\
import os, time
tmp = os.environ['TMPDIR']
kids = 0
try:
    while kids < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        kids += 1
except OSError as e:
    refused = e.errno
open(tmp + '/count', 'w').write(str(kids))
os.rename(tmp + '/count', tmp + '/full')
start = time.time()
while not os.path.exists(tmp + '/go') and time.time() - start < 30:
    time.sleep(0.01)
print(kids, refused)
";
    let victim = "\
import os
n = 0
try:
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        n += 1
    print('forked', n, os.getuid())
except OSError as e:
    print('refused', e.errno)
";
    let narrowed = |code: &str| {
        let mut req = on_disk(code, vec![(LimitName::Nproc, NPROC)]);
        req.call.layers = Some(layers);
        req
    };
    for shared in [true, false] {
        // Shared: one uid, taken through two lock directories, which is
        // what `uids = "off"` does (every run is `user`); the test does
        // not use `nobody`, whose processes elsewhere on the host count
        // too. Own: one range, one lock directory.
        let setup = Setup::new(2_100_000_400, if shared { 1 } else { 4 });
        let other_locks = tempfile::tempdir().unwrap();
        let mut victim_config = setup.config.clone();
        if shared {
            victim_config.uid_lock_dir = Some(other_locks.path().join("uids"));
        }
        let name = if shared { "nproc-shared" } else { "nproc-own" };
        let jail = Arc::new(codejail::Jail::new(name, setup.config.clone()).unwrap());
        let victim_jail = codejail::Jail::new(name, victim_config).unwrap();
        let bomber = {
            let (jail, req) = (jail.clone(), narrowed(bomb));
            std::thread::spawn(move || jail.jail_code(&req).unwrap())
        };
        let tmps = wait_for(setup.parent.path(), "full", 1);
        let kids: u64 = std::fs::read_to_string(tmps[0].join("full"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(kids, NPROC - 1, "the bomb filled its limit");
        let victim_run = victim_jail.jail_code(&narrowed(victim));
        go(&tmps);
        let bomb_out = bomber.join().unwrap();
        assert_eq!(
            text(&bomb_out.stdout),
            format!("{} {}\n", NPROC - 1, libc::EAGAIN),
            "{}",
            text(&bomb_out.stderr)
        );
        assert!(!bomb_out.layers.contains(Layer::UserNs));
        if shared {
            // Starved: the victim cannot start a process (EAGAIN at its
            // fork; on kernels that count the switch of uid against the
            // limit, already at its execve).
            match victim_run {
                Err(JailError::Spawn(codejail::SpawnError::Setup { step, source })) => {
                    assert_eq!(
                        (step, source.raw_os_error()),
                        ("execve", Some(libc::EAGAIN))
                    );
                }
                Ok(out) => assert_eq!(
                    text(&out.stdout),
                    format!("refused {}\n", libc::EAGAIN),
                    "{}",
                    text(&out.stderr)
                ),
                Err(other) => panic!("expected EAGAIN, got {other}"),
            }
        } else {
            let out = victim_run.unwrap();
            assert_eq!(out.status, 0, "{}", text(&out.stderr));
            let t = text(&out.stdout);
            assert!(t.starts_with("forked 3 "), "{t}");
            let uid: u32 = t.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(jail.uid_range().unwrap().contains(uid));
            assert!(!out.layers.contains(Layer::UserNs));
        }
    }
}

/// `gc_leases` removes the lock files no run holds (a killed caller's),
/// and only what a run leaves: a held one stays, listed as live; a name
/// that is no uid of the range, a file that is not empty, a file just made
/// (a run's, about to lock it) stay; a directory that is not this user's
/// alone is refused, as runs refuse it; a dry run only names them, and
/// takes no lock (the held one is live by the kernel's list of locks).
#[test]
fn support_gc_removes_the_leases_no_run_holds() {
    use std::os::unix::fs::PermissionsExt;
    let range: codejail::UidRange = "2000000000-2000000009".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let at = |name: &str| dir.path().join(name);
    let (stale, held, fresh, full, outside, other) = (
        at("2000000001"),
        at("2000000002"),
        at("2000000003"),
        at("2000000004"),
        at("5"),
        at("notes"),
    );
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for file in [&stale, &held, &fresh, &full, &outside, &other] {
        std::fs::write(file, if file == &full { &b"keep"[..] } else { b"" }).unwrap();
        if file != &fresh {
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
    }
    let lock = std::fs::File::open(&held).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();

    let dry = codejail::gc_leases(dir.path(), &[range], true);
    assert_eq!(dry.removed, std::slice::from_ref(&stale), "{dry:?}");
    assert_eq!(dry.live, std::slice::from_ref(&held), "{dry:?}");
    assert!(stale.exists());

    let report = codejail::gc_leases(dir.path(), &[range], false);
    assert_eq!(report.removed, std::slice::from_ref(&stale), "{report:?}");
    // What is no lease file is left, with a warning, and is no failure.
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!stale.exists(), "the stale lease is still there");
    for kept in [&held, &fresh, &full, &outside, &other] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    drop(lock);
    assert_eq!(
        codejail::gc_leases(&dir.path().join("missing"), &[range], false),
        codejail::GcReport::default()
    );
    // Not this user's alone: refused, as a run refuses it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = codejail::gc_leases(dir.path(), &[range], false);
    assert_eq!(refused.failed.len(), 1, "{refused:?}");
    assert!(refused.removed.is_empty() && held.exists());
}
