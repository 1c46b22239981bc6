//! cgroup v2 delegation on this machine's real v2 tree, with the code
//! paths a systemd host's `memory` and `pids` take.
//!
//! The outer test makes a scratch cgroup below the v2 tree's root, with a
//! controller offered to it (`hugetlb`, which a hybrid host's v2 tree has;
//! else `pids`), and runs the inner test in a child process of this binary
//! that it moves into the scratch cgroup: this process stays where it is.
//! The child is then what a service in a delegated cgroup is: inside a
//! non-root cgroup that holds a process. The inner test shows the kernel's
//! "no internal processes" refusal (`EBUSY`), then the probe configured
//! with that cgroup: the leaf move, the controller enabled, a run's program
//! cloned into a cgroup of its own beside the leaf with the controller's
//! setting in force, the supervisor left in the leaf, a process that
//! escaped the supervisor killed with the run's cgroup, and every run's
//! cgroup removed. A guard kills and removes every cgroup the test made,
//! whether it passes or not.

use std::fs;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codejail_proc::{
    CGROUP_LEAF, CgroupOptions, DelegatedBy, Layer, Limits, Policy, Probe, Spawn, SpawnError,
};

/// The scratch cgroup, for the inner test.
const SCRATCH: &str = "CODEJAIL_TEST_V2_SCRATCH";
/// The controller the inner test asks for.
const CONTROLLER: &str = "CODEJAIL_TEST_V2_CONTROLLER";
/// The controller file it sets, and the value.
const SETTING: &str = "CODEJAIL_TEST_V2_SETTING";
const INNER: &str = "inner_delegation_in_a_scratch_cgroup";

/// The cgroup v2 mount whose root is the hierarchy's.
fn v2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut f = left.split(' ');
        let root = f.nth(3)?;
        let point = f.next()?;
        (right.starts_with("cgroup2 ") && root == "/").then(|| PathBuf::from(point))
    })
}

/// This process's cgroup v2 directory.
fn own_v2(mount: &Path) -> PathBuf {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    mount.join(path.trim_start_matches('/'))
}

fn words(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The controller to ask for, offered at `root`, and a setting of it.
fn controller(root: &Path) -> Option<(String, String, String)> {
    let offered = words(&root.join("cgroup.controllers"));
    if offered.iter().any(|c| c == "hugetlb") {
        // The first huge page size: hugepages-2048kB is `hugetlb.2MB.max`.
        let size = fs::read_dir("/sys/kernel/mm/hugepages")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let kb: u64 = name
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                Some(kb)
            })
            .min()?;
        let size = match size {
            kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
            kb if kb >= 1 << 10 => format!("{}MB", kb >> 10),
            kb => format!("{kb}KB"),
        };
        return Some(("hugetlb".into(), format!("hugetlb.{size}.max"), "0".into()));
    }
    offered
        .iter()
        .any(|c| c == "pids")
        .then(|| ("pids".into(), "pids.max".into(), "7".into()))
}

/// A scratch cgroup below the v2 root, with `controller` offered to it;
/// on drop (or [`Scratch::remove`]) every process in it and below is
/// killed, every cgroup removed, deepest first, and the root's
/// `cgroup.subtree_control` put back as it was.
struct Scratch {
    root: PathBuf,
    dir: PathBuf,
    /// The controller this test enabled at the root (it was not).
    enabled_at_root: Option<String>,
    removed: bool,
}

impl Scratch {
    fn new(root: &Path, controller: &str) -> Scratch {
        let mut scratch = Scratch {
            root: root.to_owned(),
            dir: root.join(format!("codejail-test-v2-{}", std::process::id())),
            enabled_at_root: None,
            removed: false,
        };
        let subtree = root.join("cgroup.subtree_control");
        if !words(&subtree).iter().any(|c| c == controller) {
            fs::write(&subtree, format!("+{controller}")).unwrap();
            scratch.enabled_at_root = Some(controller.to_owned());
        }
        fs::create_dir(&scratch.dir).unwrap();
        scratch
    }

    /// Kills and removes everything below and including the scratch
    /// cgroup; what could not be removed.
    fn remove(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        remove_tree(&self.dir, &mut left);
        if let Some(c) = self.enabled_at_root.take() {
            let _ = fs::write(self.root.join("cgroup.subtree_control"), format!("-{c}"));
        }
        self.removed = true;
        left
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            let left = self.remove();
            if !left.is_empty() {
                eprintln!("cgroups left behind: {left:?}");
            }
        }
    }
}

fn remove_tree(dir: &Path, left: &mut Vec<String>) {
    if !dir.exists() {
        return;
    }
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path(), left);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                left.push(format!("{}: {e}", dir.display()));
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn delegation_on_the_real_v2_tree() {
    let euid = rustix::process::geteuid().as_raw();
    let root = v2_mount();
    let missing = match &root {
        None => Some("no cgroup v2 tree is mounted".to_owned()),
        Some(root) => match rustix::fs::access(root, rustix::fs::Access::WRITE_OK) {
            Err(e) => Some(format!(
                "the cgroup v2 root {} is not writable by uid {euid}: {e}",
                root.display()
            )),
            Ok(()) if controller(root).is_none() => Some(format!(
                "the cgroup v2 root {} offers neither hugetlb nor pids",
                root.display()
            )),
            Ok(()) => None,
        },
    };
    if !codejail_tests::require("cgroup", missing.as_deref()) {
        return;
    }
    let root = root.unwrap();
    let (controller, file, value) = controller(&root).unwrap();
    let mut scratch = Scratch::new(&root, &controller);
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([INNER, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(SCRATCH, &scratch.dir)
        .env(CONTROLLER, &controller)
        .env(SETTING, format!("{file}={value}"))
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // Into the scratch cgroup before it does anything: it waits for "go".
    fs::write(scratch.dir.join("cgroup.procs"), child.id().to_string()).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the inner test did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (
        fs::read_to_string(out).unwrap(),
        fs::read_to_string(err).unwrap(),
    );
    assert!(status.success(), "inner test failed:\n{out}\n{err}");
    assert!(
        out.contains("1 passed"),
        "the inner test did not run:\n{out}"
    );
    let left = scratch.remove();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// Runs only in the child [`delegation_on_the_real_v2_tree`] starts.
#[test]
#[ignore = "run by delegation_on_the_real_v2_tree, in a scratch cgroup it makes"]
fn inner_delegation_in_a_scratch_cgroup() {
    let scratch = PathBuf::from(std::env::var_os(SCRATCH).expect("run by the outer test"));
    let controller = std::env::var(CONTROLLER).unwrap();
    let setting = std::env::var(SETTING).unwrap();
    let (file, value) = setting.split_once('=').unwrap();
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go).unwrap();
    assert_eq!(go, "go\n");
    let mount = v2_mount().unwrap();

    // A service in a cgroup of its own that holds it.
    assert_eq!(own_v2(&mount), scratch);
    // cgroup v2's rule: no controller for the children of a cgroup that
    // holds processes.
    let refused = fs::write(
        scratch.join("cgroup.subtree_control"),
        format!("+{controller}"),
    )
    .unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EBUSY), "{refused}");

    // The probe, with the scratch cgroup configured as this process's.
    let options = CgroupOptions {
        delegated: Some(scratch.clone()),
        controllers: vec![controller.clone()],
    };
    let probe = Probe::init(&options).unwrap();
    let cg = &probe.cgroups;
    let d = cg
        .v2
        .as_ref()
        .unwrap_or_else(|| panic!("no v2 delegation: {:?}", cg.v2_missing));
    let leaf = scratch.join(CGROUP_LEAF);
    assert_eq!(d.base, scratch);
    assert_eq!(d.by, DelegatedBy::Configured);
    assert_eq!(d.leaf.as_ref(), Some(&leaf));
    assert_eq!(
        d.controllers,
        std::slice::from_ref(&controller),
        "{:?}",
        d.missing
    );
    assert!(probe.availability(Layer::Cgroup).is_yes());
    // The leaf move: this process is in the leaf, the scratch cgroup holds
    // none, and its children get the controller.
    assert_eq!(own_v2(&mount), leaf);
    assert_eq!(words(&scratch.join("cgroup.procs")), Vec::<String>::new());
    assert!(words(&scratch.join("cgroup.subtree_control")).contains(&controller));
    assert!(!words(&leaf.join("cgroup.controllers")).is_empty());

    // A run: the program in a cgroup of its own beside the leaf, with the
    // setting in force; the supervisor (its parent) in the leaf.
    let relative = |dir: &Path| format!("/{}", dir.strip_prefix(&mount).unwrap().display());
    let script = format!(
        "sed -n 's/^0:://p' /proc/self/cgroup; sed -n 's/^0:://p' /proc/$PPID/cgroup; \
         cat \"{}$(sed -n 's/^0:://p' /proc/self/cgroup)/{file}\"",
        mount.display()
    );
    let mut spawn = Spawn::new("/bin/sh");
    spawn
        .args(["-c", &script])
        .policy(Policy::Only([Layer::Cgroup].into_iter().collect()))
        .cgroup_setting(file, value);
    let out = spawn.run().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_prefix = format!(
        "{}/codejail-{}-",
        relative(&scratch),
        codejail_proc::owner::stamp()
    );
    assert!(lines[0].starts_with(&run_prefix), "{text}");
    assert_eq!(lines[1], relative(&leaf), "{text}");
    assert_eq!(lines[2], value, "{text}");
    let run_dir = mount.join(lines[0].trim_start_matches('/'));
    assert!(!run_dir.exists(), "the run's cgroup was left behind");

    // A setting of a controller not delegated is refused, naming it.
    let mut spawn = Spawn::new("/bin/true");
    spawn.cgroup_setting("io.max", "default");
    match spawn.run() {
        Err(SpawnError::LayerUnavailable { layer, reason }) => {
            assert_eq!(layer, Layer::Cgroup);
            assert!(
                reason.contains("io.max") && reason.contains("`io`"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }

    escaped_process_dies_with_the_run_cgroup(&mount, &scratch);

    // Every run's cgroup is gone: only the leaf is left.
    let children: Vec<String> = fs::read_dir(&scratch)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(children, [CGROUP_LEAF]);
}

/// A run whose program leaves a process in a session of its own, then
/// loses its supervisor (killed from outside): without a pid namespace
/// nothing but the run's cgroup reaches that process; it must die when
/// the run ends.
fn escaped_process_dies_with_the_run_cgroup(mount: &Path, scratch: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let (sup_file, escaped_file) = (dir.path().join("sup"), dir.path().join("escaped"));
    let script = format!(
        "echo $PPID > {sup}.tmp && mv {sup}.tmp {sup}; \
         setsid sh -c 'echo $$ > {esc}.tmp && mv {esc}.tmp {esc}; exec sleep 60' & \
         exec sleep 60",
        sup = sup_file.display(),
        esc = escaped_file.display()
    );
    let mut spawn = Spawn::new("/bin/sh");
    spawn
        .args(["-c", &script])
        .policy(Policy::Only([Layer::Cgroup].into_iter().collect()))
        .limits(Limits {
            wall: Some(Duration::from_secs(60)),
            ..Limits::default()
        });
    let run = std::thread::spawn(move || spawn.run());
    let read_pid = |file: &Path| -> i32 {
        codejail_tests::written(file, Duration::from_secs(20))
            .trim()
            .parse()
            .unwrap()
    };
    let pidfd = |pid: i32| -> OwnedFd {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap()
    };
    let supervisor = pidfd(read_pid(&sup_file));
    let escaped_pid = read_pid(&escaped_file);
    let escaped = pidfd(escaped_pid);
    let escaped_cgroup = fs::read_to_string(format!("/proc/{escaped_pid}/cgroup")).unwrap();
    let scratch_rel = scratch.strip_prefix(mount).unwrap().display().to_string();
    assert!(
        escaped_cgroup.contains(&format!("{scratch_rel}/codejail-")),
        "{escaped_cgroup}"
    );
    rustix::process::pidfd_send_signal(&supervisor, rustix::process::Signal::KILL).unwrap();
    match run.join().unwrap() {
        Err(SpawnError::SupervisorLost { .. }) => {}
        other => panic!("expected a lost supervisor, got {other:?}"),
    }
    assert!(
        codejail_tests::ended_within(escaped.as_fd(), Duration::from_secs(5)),
        "the escaped process outlived its run"
    );
}
