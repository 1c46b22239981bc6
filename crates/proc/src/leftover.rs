//! What a run could not end in the time the caller waits: a process of
//! it in uninterruptible sleep (a file system that took a request and
//! does not answer it) has been sent `SIGKILL` but dies only when its
//! wait ends, and until then its holder cannot be reaped nor its cgroup
//! removed. Rather than leave a zombie and a directory for good, the
//! handle that gave up hands them here.
//!
//! One thread, started with the first leftover and ending when none is
//! left, looks at them every [`PERIOD`]: it reaps each process once it
//! has exited (`waitid` on its pidfd, which names that process and no
//! other), and removes each cgroup directory once it is empty. A process
//! that never dies stays here as long as the caller's process lives;
//! after that, its cgroup is one `codejail gc` removes (its name carries
//! its owner).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{WaitId, WaitIdOptions};

/// How often the thread looks at what is left.
const PERIOD: Duration = Duration::from_millis(200);

/// One thing to end.
#[derive(Debug)]
enum Left {
    /// A child of this process to reap once it has exited: its pidfd.
    Process(OwnedFd),
    /// A run's cgroup directory to remove once it is empty.
    Cgroup(PathBuf),
}

impl Left {
    /// Tries once; whether it is done (or can never be).
    fn try_end(&self) -> bool {
        match self {
            Left::Process(pidfd) => {
                let options = WaitIdOptions::EXITED
                    | WaitIdOptions::NOHANG
                    | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
                match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
                    Ok(Some(_)) => true,
                    Ok(None) | Err(Errno::INTR) => false,
                    // Reaped by someone else, or not ours: nothing to do.
                    Err(_) => true,
                }
            }
            Left::Cgroup(dir) => match std::fs::remove_dir(dir) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            },
        }
    }
}

/// What is left, and whether the thread runs.
struct State {
    left: Vec<Left>,
    running: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    left: Vec::new(),
    running: false,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reaps the child `pidfd` names once it has exited.
pub(crate) fn reap_later(pidfd: OwnedFd) {
    add(Left::Process(pidfd));
}

/// Removes the cgroup directory `dir` once it is empty.
pub(crate) fn remove_later(dir: PathBuf) {
    add(Left::Cgroup(dir));
}

/// How many leftovers are waiting (for the tests).
#[cfg(test)]
pub(crate) fn pending() -> usize {
    state().left.len()
}

fn add(item: Left) {
    let mut state = state();
    state.left.push(item);
    if state.running {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("codejail-leftovers".into())
        .spawn(sweep);
    match spawned {
        Ok(_) => state.running = true,
        // The next leftover tries again; until then these wait.
        Err(e) => {
            tracing::warn!(error = %e, "could not start the thread that ends a run's leftovers")
        }
    }
}

/// The thread: every [`PERIOD`], ends what it can; returns when nothing
/// is left.
fn sweep() {
    loop {
        std::thread::sleep(PERIOD);
        let mut state = state();
        state.left.retain(|item| !item.try_end());
        if state.left.is_empty() {
            state.running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A child that has exited is reaped, and a directory removed, by the
    /// thread; it ends once nothing is left.
    #[test]
    fn support_leftovers_are_reaped_and_removed_in_the_background() {
        let child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cgroup-like");
        std::fs::create_dir(&sub).unwrap();
        reap_later(pidfd);
        remove_later(sub.clone());
        let stat = format!("/proc/{}", pid.as_raw_nonzero());
        let start = Instant::now();
        while (std::path::Path::new(&stat).exists() || sub.exists() || pending() > 0)
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !std::path::Path::new(&stat).exists(),
            "the child was not reaped"
        );
        assert!(!sub.exists(), "the directory was not removed");
        assert_eq!(pending(), 0);
        // `Child`'s own wait finds it reaped already.
        drop(child);
    }
}
