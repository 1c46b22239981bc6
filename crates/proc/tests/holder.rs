//! The namespace holder is gone with its run, whatever the run's end (a
//! set-up that hangs past the wall-clock limit among them), and what it
//! does for the run (the network namespace it makes) fails the run with
//! the kernel's errno when it cannot: a test binary of its own, whose
//! tests take turns, so that no other test's run is going on while one
//! looks for children of this process.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use codejail_proc::{
    KillReason, Layer, LayerSet, Limits, Outcome, Policy, Probe, Spawn, SpawnError, Tmpfs,
};

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

/// A FUSE file system whose server never answers, mounted on a temporary
/// directory. With [`Server::None`] nobody reads `/dev/fuse`: every
/// request in it (the lookup of a name under it) waits for the
/// connection's first answer, killably, as a lookup on a network file
/// system that stopped answering does. With [`Server::Swallows`] a thread
/// answers the connection's `INIT` and reads every later request without
/// answering it: the process that made it waits in uninterruptible sleep,
/// which no signal ends, until [`HungMount::answer_held`]. Dropping it
/// unmounts it (lazily: a process that still waits keeps its copy), which
/// ends the connection once nothing uses it.
struct HungMount {
    dir: tempfile::TempDir,
    fuse: std::sync::Arc<std::fs::File>,
    /// The requests the server read and holds: their `unique` ids.
    held: std::sync::Arc<Mutex<Vec<u64>>>,
}

/// What answers the mount's requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Nobody: the connection is never initialised.
    None,
    /// A thread that answers `INIT` and holds every other request.
    Swallows,
}

/// `FUSE_INIT` and `FUSE_INTERRUPT`, from `<linux/fuse.h>`.
const FUSE_INIT: u32 = 26;
const FUSE_INTERRUPT: u32 = 36;

impl HungMount {
    /// The mount, or why this caller cannot make one (the `fuse` gate).
    fn new(server: Server) -> Result<HungMount, String> {
        use rustix::mount::{MountFlags, mount};
        use std::os::unix::fs::PermissionsExt;
        if !rustix::process::geteuid().is_root() {
            return Err("mounting a FUSE file system needs root".into());
        }
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| format!("/dev/fuse: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        // The program's identity must get through to the mount.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod the temporary directory: {e}"))?;
        // `allow_other`: the run's uid is not the mounter's.
        let data = std::ffi::CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            fuse.as_raw_fd()
        ))
        .unwrap();
        mount(
            "codejail-test-hung",
            dir.path(),
            "fuse",
            MountFlags::NOSUID | MountFlags::NODEV,
            data.as_c_str(),
        )
        .map_err(|e| format!("mount a FUSE file system: {e}"))?;
        let mount = HungMount {
            dir,
            fuse: std::sync::Arc::new(fuse),
            held: std::sync::Arc::default(),
        };
        if server == Server::Swallows {
            let (fuse, held) = (mount.fuse.clone(), mount.held.clone());
            std::thread::spawn(move || serve(&fuse, &held));
        }
        Ok(mount)
    }

    /// Answers every request the server holds with `ENOENT`; how many.
    fn answer_held(&self) -> usize {
        use std::io::Write;
        let held: Vec<u64> = std::mem::take(&mut *self.held.lock().unwrap());
        for unique in &held {
            let mut reply = Vec::with_capacity(16);
            reply.extend_from_slice(&16u32.to_ne_bytes());
            reply.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
            reply.extend_from_slice(&unique.to_ne_bytes());
            (&*self.fuse).write_all(&reply).unwrap();
        }
        held.len()
    }
}

/// The [`Server::Swallows`] thread: answers `INIT` (protocol 7.31, no
/// features), holds every other request but interrupts, until the
/// connection ends.
fn serve(fuse: &std::fs::File, held: &Mutex<Vec<u64>>) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match (&*fuse).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return, // ENODEV: the connection ended
        };
        if n < 40 {
            continue;
        }
        let opcode = u32::from_ne_bytes(buf[4..8].try_into().unwrap());
        let unique = u64::from_ne_bytes(buf[8..16].try_into().unwrap());
        match opcode {
            FUSE_INIT => {
                // fuse_out_header, then a 64-byte fuse_init_out: major,
                // minor, max_readahead, flags, max_background,
                // congestion_threshold, max_write; the rest zero.
                let mut reply = Vec::with_capacity(80);
                reply.extend_from_slice(&80u32.to_ne_bytes());
                reply.extend_from_slice(&0i32.to_ne_bytes());
                reply.extend_from_slice(&unique.to_ne_bytes());
                reply.extend_from_slice(&7u32.to_ne_bytes());
                reply.extend_from_slice(&31u32.to_ne_bytes());
                reply.extend_from_slice(&0u32.to_ne_bytes());
                reply.extend_from_slice(&0u32.to_ne_bytes());
                reply.extend_from_slice(&0u16.to_ne_bytes());
                reply.extend_from_slice(&0u16.to_ne_bytes());
                reply.extend_from_slice(&4096u32.to_ne_bytes());
                reply.resize(80, 0);
                if (&*fuse).write_all(&reply).is_err() {
                    return;
                }
            }
            FUSE_INTERRUPT => {}
            _ => held.lock().unwrap().push(unique),
        }
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// The hung mount, through the workspace's gate.
fn hung_mount(server: Server) -> Option<HungMount> {
    match HungMount::new(server) {
        Ok(mount) => Some(mount),
        Err(why) => {
            codejail_tests::require("fuse", Some(&why));
            None
        }
    }
}

/// Every layer this caller has but AppArmor (which needs a profile) and
/// the private root: its plan looks up the working directory on the
/// caller's own thread, before any process of the run exists, where no
/// deadline applies (decision 0016).
fn every_layer_but_the_root() -> LayerSet {
    let probe = Probe::get();
    Layer::ALL
        .into_iter()
        .filter(|l| !matches!(l, Layer::RootFs | Layer::AppArmor))
        .filter(|l| probe.availability(*l).is_yes())
        .collect()
}

/// The cgroup directories of this process's runs, in every hierarchy a
/// run may use (their names carry this process's owner stamp; its
/// probe's trial cgroup too, which is not a run's).
fn run_cgroups() -> Vec<String> {
    let prefix = format!("codejail-{}-", codejail_proc::owner::stamp());
    Probe::get()
        .cgroups
        .run_parents()
        .into_iter()
        .filter_map(|base| std::fs::read_dir(base).ok())
        .flat_map(|dir| dir.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix) && !name.contains("probe"))
        .collect()
}

/// `/bin/true` under `policy`, its working directory inside `mount`: the
/// program's `chdir` waits as the mount's server makes it.
fn chdir_into(mount: &HungMount, policy: Policy) -> Spawn {
    let mut spawn = Spawn::new("/bin/true");
    spawn.cwd(mount.dir.path().join("sub")).policy(policy);
    spawn
}

/// Runs `spawn` on a thread of its own and waits for its end at most
/// `limit`: a run that hangs fails the test instead of hanging it. Also
/// how long the run took.
fn run_within(spawn: Spawn, limit: Duration) -> (Result<Outcome, SpawnError>, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let result = spawn.run();
        let _ = tx.send((result, start.elapsed()));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the run had not ended {limit:?} after it started: it hangs"))
}

/// A set-up step that waits in the kernel (here the program's `chdir`
/// into a file system that does not answer) ends at the run's wall-clock
/// limit: the caller gets `SetupTimeout` with that limit, not a hang, its
/// processes are killed at once (not after the kill request's grace
/// period, 2 s), and neither a process nor a cgroup of the run is left.
/// Under every layer but the private root, and under none. Without the
/// deadline on the error pipe the run waits as long as the file system
/// does.
#[test]
fn support_a_set_up_step_that_hangs_ends_at_the_wall_limit() {
    let _turn = one_at_a_time();
    let Some(mount) = hung_mount(Server::None) else {
        return;
    };
    let wall = Duration::from_millis(500);
    let limits = Limits {
        wall: Some(wall),
        ..Limits::default()
    };
    for policy in [Policy::Only(every_layer_but_the_root()), Policy::None] {
        let mut spawn = chdir_into(&mount, policy);
        spawn.limits(limits.clone());
        ends_at_the_wall_limit(spawn, wall, &format!("{policy:?}"));
    }
    // The supervisor's own set-up hangs (its tmpfs's mount point is
    // there): it reads no kill request yet, and is killed.
    let mut spawn = Spawn::new("/bin/true");
    spawn
        .tmpfs(Tmpfs {
            target: mount.dir.path().join("sub"),
            bytes: 1 << 20,
            inodes: 16,
            mode: 0o700,
            uid: 0,
            gid: 0,
        })
        .policy(Policy::Only(every_layer_but_the_root()))
        .limits(limits);
    ends_at_the_wall_limit(spawn, wall, "the supervisor's set-up");
}

/// Runs `spawn`, whose set-up hangs: `SetupTimeout` with `wall`, after
/// `wall` and before the kill request's grace period (2 s) more, and
/// nothing of the run left.
fn ends_at_the_wall_limit(spawn: Spawn, wall: Duration, what: &str) {
    let (result, took) = run_within(spawn, Duration::from_secs(30));
    match result {
        Err(SpawnError::SetupTimeout { wall: limit }) => assert_eq!(limit, wall),
        other => panic!("{what}: not a set-up timeout: {other:?}"),
    }
    assert!(
        took >= wall,
        "{what}: ended after {took:?}, before its limit"
    );
    assert!(
        took < wall + Duration::from_secs(2),
        "{what}: ended after {took:?}: the kill waited for a grace period"
    );
    nothing_left(what);
    println!("{what}: set-up timeout after {took:?}");
}

/// No child of this process and no cgroup of its runs is left.
#[track_caller]
fn nothing_left(what: &str) {
    assert_eq!(children(), Vec::<String>::new(), "{what}: children left");
    assert_eq!(run_cgroups(), Vec::<String>::new(), "{what}: cgroups left");
}

/// A run cancelled while its set-up waits in the kernel ends as
/// cancelled, with no process left, though it has no wall-clock limit.
#[test]
fn support_a_run_cancelled_while_its_set_up_hangs_ends_as_cancelled() {
    let _turn = one_at_a_time();
    let Some(mount) = hung_mount(Server::None) else {
        return;
    };
    let (cancel_r, cancel_w) = std::io::pipe().unwrap();
    let mut spawn = chdir_into(&mount, Policy::Only(every_layer_but_the_root()));
    spawn.cancel_on(cancel_r.into());
    let cancel = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(cancel_w);
    });
    let (result, took) = run_within(spawn, Duration::from_secs(30));
    cancel.join().unwrap();
    let out = result.unwrap_or_else(|e| panic!("the cancelled run failed: {e}"));
    assert_eq!(out.killed_by, Some(KillReason::Cancelled), "{out:?}");
    assert_eq!(out.status, -libc::SIGKILL, "{out:?}");
    nothing_left("the cancelled run");
    println!("cancelled after {took:?}");
}

/// A program in uninterruptible sleep (its lookup taken by a file system
/// server that does not answer) outlives `SIGKILL`: the run still ends in
/// bounded time with `SetupTimeout`, and once the wait ends (the server
/// answers) the program dies of the kill it was sent, and its holder is
/// reaped and its cgroup removed in the background. Without that, the
/// holder stays a zombie of this process and the cgroup stays for good.
#[test]
fn support_a_process_no_signal_ends_is_reaped_and_its_cgroup_removed_once_its_wait_ends() {
    let _turn = one_at_a_time();
    let Some(mount) = hung_mount(Server::Swallows) else {
        return;
    };
    let wall = Duration::from_millis(500);
    let mut spawn = chdir_into(&mount, Policy::Only(every_layer_but_the_root()));
    spawn.limits(Limits {
        wall: Some(wall),
        ..Limits::default()
    });
    let (result, took) = run_within(spawn, Duration::from_secs(60));
    match result {
        Err(SpawnError::SetupTimeout { wall: limit }) => assert_eq!(limit, wall),
        other => panic!("not a set-up timeout: {other:?}"),
    }
    // The program still waits, and keeps its holder and cgroup: no signal
    // ends it (else this test would not reach the leftovers at all).
    assert!(
        !children().is_empty() && !run_cgroups().is_empty(),
        "nothing of the run was left to end: children {:?}, cgroups {:?}",
        children(),
        run_cgroups()
    );
    let answered = mount.answer_held();
    assert!(answered > 0, "the server held no request");
    let start = Instant::now();
    while (!children().is_empty() || !run_cgroups().is_empty())
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    nothing_left("once the wait ended");
    println!(
        "set-up timeout after {took:?}; {answered} held requests answered; all gone {:?} later",
        start.elapsed()
    );
}
