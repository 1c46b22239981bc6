//! End-to-end tests across the codejail crates (see `tests/`), and the one
//! gate every test of the workspace goes through when it needs something of
//! the machine: a confinement layer, or a feature such as a memory
//! controller or the sandbox virtualenv.
//!
//! CI declares what this kind of machine must offer in
//! `CODEJAIL_EXPECT_LAYERS` (comma separated; `.ci/run` sets it, and
//! `CODEJAIL_EXPECT_LAYERS_UNPRIVILEGED` for the pass as `nobody`). A test
//! whose requirement is missing fails when it is declared there, and
//! otherwise says `NOT TESTED ...` on stderr: no test skips silently.
//!
//! This crate's library depends on nothing of the workspace, so that every
//! crate's tests can use it without a cycle (only on `tracing`, for
//! [`logged`]).
#![deny(missing_docs)]

use std::io::Write;

/// The variable CI declares its requirements in.
pub const EXPECT: &str = "CODEJAIL_EXPECT_LAYERS";

/// The confinement layers, by their names in `codejail_proc::Layer` (a test
/// checks the two lists agree).
pub const LAYERS: &[&str] = &[
    "identity",
    "userns",
    "pidns",
    "netns",
    "mountns",
    "rootfs",
    "ipcns",
    "utsns",
    "cgroup",
    "no_new_privs",
    "apparmor",
    "landlock",
    "seccomp",
    "no_exec",
];

/// The machine features a test may need besides layers, with what each
/// means.
pub const FEATURES: &[(&str, &str)] = &[
    (
        "apparmor_parser",
        "apparmor_parser, which compiles profiles without AppArmor in the kernel (-Q -K; the `apparmor` package)",
    ),
    (
        "apparmor_userns",
        "an apparmor_parser that knows the userns rule (AppArmor 4.0 or later)",
    ),
    (
        "cap_sys_resource",
        "a caller with CAP_SYS_RESOURCE (one the escape of a raised hard limit needs)",
    ),
    (
        "cgroup_memory",
        "a cgroup memory controller this caller can write (a run's memory limit)",
    ),
    (
        "fuse",
        "a caller that can mount a FUSE file system (root, and /dev/fuse): the set-up that hangs on a file system that does not answer",
    ),
    (
        "landlock_scopes",
        "Landlock ABI 6 or later: signals and abstract sockets scoped to the run",
    ),
    (
        "landlock_net",
        "Landlock ABI 4 or later: TCP bind and connect",
    ),
    (
        "listmount",
        "a kernel with listmount and statmount (Linux 6.8 or later): the attack that lists the mounts",
    ),
    (
        "proc_kcore",
        "a host with /proc/kcore (CONFIG_PROC_KCORE): the attack that opens it",
    ),
    (
        "proc_sysrq",
        "a host with /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ): the attack that opens it",
    ),
    (
        "sandbox_venv",
        "the sandbox virtualenv, named by CODEJAIL_SANDBOX_PYTHON (cargo xtask setup-sandbox makes it)",
    ),
    (
        "tmpfs_user_xattr",
        "a tmpfs that takes user extended attributes (Linux 6.6 or later): the attacks between warm calls that message or fill by them",
    ),
    ("x32", "a kernel with the x32 ABI"),
];

fn known(name: &str) -> bool {
    LAYERS.contains(&name) || FEATURES.iter().any(|(f, _)| *f == name)
}

fn known_names() -> String {
    LAYERS
        .iter()
        .copied()
        .chain(FEATURES.iter().map(|(f, _)| *f))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What CI declares this machine must offer this caller.
///
/// # Panics
/// When the variable names something unknown (a typo there would make a
/// declared requirement silently undeclared).
pub fn expected() -> Vec<String> {
    let value = std::env::var(EXPECT).unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            assert!(
                known(s),
                "{EXPECT} names `{s}`, which is neither a layer nor a feature; known: {}",
                known_names()
            );
            s.to_owned()
        })
        .collect()
}

/// Whether CI declares `requirement`.
pub fn is_expected(requirement: &str) -> bool {
    expected().iter().any(|e| e == requirement)
}

/// The gate: a test needs `requirement` (a layer name or one of
/// [`FEATURES`]), and `missing` says why it is missing here (`None`: it is
/// there). Returns whether the test can go on.
///
/// # Panics
/// When the requirement is missing and CI declares it, or the name is
/// unknown.
#[track_caller]
pub fn require(requirement: &str, missing: Option<&str>) -> bool {
    assert!(
        known(requirement),
        "unknown requirement `{requirement}`; known: {}",
        known_names()
    );
    match missing {
        None => true,
        Some(why) => {
            not_tested(requirement, why);
            false
        }
    }
}

/// Says that the calling test cannot run here because `requirement` is
/// missing (why), past the harness's capture; fails instead when CI
/// declares the requirement.
///
/// # Panics
/// When CI declares the requirement, or the name is unknown.
#[track_caller]
pub fn not_tested(requirement: &str, why: &str) {
    assert!(
        known(requirement),
        "unknown requirement `{requirement}`; known: {}",
        known_names()
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !is_expected(requirement),
        "{test}: {requirement} is declared in {EXPECT} but missing here: {why}"
    );
    let note = format!("NOT TESTED ({test}): {requirement} is missing here: {why}\n");
    // Straight to the descriptor: the harness hides what print! says.
    let _ = std::io::stderr().write_all(note.as_bytes());
}

/// The sandbox virtualenv's interpreter (`CODEJAIL_SANDBOX_PYTHON`), through
/// the gate: `None` (said, or failed when declared) when it is not set or
/// not executable.
#[track_caller]
pub fn sandbox_python() -> Option<String> {
    let missing = match std::env::var("CODEJAIL_SANDBOX_PYTHON") {
        Err(_) => Some("CODEJAIL_SANDBOX_PYTHON is not set".to_owned()),
        Ok(bin) => match std::fs::metadata(&bin) {
            Ok(m) if std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0 => {
                return Some(bin);
            }
            Ok(_) => Some(format!("{bin} is not executable")),
            Err(e) => Some(format!("{bin}: {e}")),
        },
    };
    require("sandbox_venv", missing.as_deref());
    None
}

/// A child process that is killed (`SIGKILL`) and reaped when dropped,
/// unless taken back with [`Guarded::into_inner`]: a test that fails
/// before it ends its children leaves none behind.
#[derive(Debug)]
pub struct Guarded(Option<std::process::Child>);

impl Guarded {
    /// Guards `child`.
    pub fn new(child: std::process::Child) -> Guarded {
        Guarded(Some(child))
    }

    /// The child's pid.
    ///
    /// # Panics
    /// Never: the child is there until [`Guarded::into_inner`] takes it.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("a guarded child").id()
    }

    /// The child, no longer guarded (to wait for it).
    ///
    /// # Panics
    /// Never: it is taken once, by value.
    pub fn into_inner(mut self) -> std::process::Child {
        self.0.take().expect("a guarded child")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` to exit, at most `limit` (looking every 5 ms);
/// `None` when it still ran then: it is killed and reaped first, so that a
/// failing test leaves no process behind.
///
/// # Panics
/// When the child cannot be waited for.
pub fn exit_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The text of `path` once it exists (looking every 10 ms), for a file a
/// test's program writes elsewhere and then renames into place.
///
/// # Panics
/// When it does not exist within `limit`.
pub fn written(path: &std::path::Path, limit: std::time::Duration) -> String {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            std::time::Instant::now() < end,
            "{} was not written within {limit:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether the process of `pidfd` has ended within `limit` (a pidfd polls
/// readable once its process has ended).
///
/// # Panics
/// When `poll` fails.
pub fn ended_within(pidfd: std::os::fd::BorrowedFd<'_>, limit: std::time::Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::from_borrowed_fd(pidfd, PollFlags::IN)];
    let timeout = Timespec::try_from(limit).expect("a timeout that fits");
    poll(&mut fds, Some(&timeout)).expect("poll a pidfd") == 1
}

/// Runs `f` with a tracing subscriber for the calling thread that keeps
/// events at `level` and above, without colours: what `f` returned, and
/// the lines it logged.
///
/// The subscriber is scoped to the thread. While it is the only scoped
/// one, tracing-core caches a callsite's interest from the subscriber of
/// the thread that first reaches it: a test whose event another of its
/// binary's threads may reach first (a warm pool's kill) belongs in a
/// binary of its own.
pub fn logged<T>(level: tracing::Level, f: impl FnOnce() -> T) -> (T, String) {
    /// Appends to the shared lines.
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
            lines.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(writer.clone()))
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    (out, String::from_utf8_lossy(&lines).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_known_once() {
        let mut all: Vec<&str> = LAYERS
            .iter()
            .copied()
            .chain(FEATURES.iter().map(|(f, _)| *f))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(known("landlock") && known("cgroup_memory"));
        assert!(!known("landlok"));
    }
}
