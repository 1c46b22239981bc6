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
//!
//! The handles' own waits go through the same two calls, so that there is
//! one way to wait for a child and one to reap it: [`exited_within`] and
//! [`reap_now`], bounded by [`REAP_WAIT`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::process::{WaitId, WaitIdOptions};

/// How long a handle waits for a process of its run to exit after its
/// kill (the holder, the supervisor) before it hands it here: one in
/// uninterruptible sleep.
pub(crate) const REAP_WAIT: Duration = Duration::from_secs(5);

/// Whether the child `pidfd` names has exited within `timeout` (`poll`
/// on the pidfd, which polls readable once it has; retried on `EINTR`).
pub(crate) fn exited_within(pidfd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let timeout = crate::pump::timespec(timeout);
    let mut fds = [PollFd::from_borrowed_fd(pidfd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&timeout)) {
            Err(Errno::INTR) => continue,
            Ok(n) => return n > 0,
            Err(_) => return false,
        }
    }
}

/// What one look at a child through its pidfd found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reaped {
    /// Reaped now: its raw wait status (the signal, or the exit code
    /// shifted left by 8).
    Now(i32),
    /// Not exited yet.
    Running,
    /// Not ours to reap (reaped by someone else).
    Gone,
}

/// Reaps the child `pidfd` names if it has exited, without waiting:
/// `waitid(P_PIDFD, EXITED | NOHANG | __WALL)`, retried on `EINTR`.
pub(crate) fn reap_now(pidfd: BorrowedFd<'_>) -> Reaped {
    let options = WaitIdOptions::EXITED
        | WaitIdOptions::NOHANG
        | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
    loop {
        return match rustix::process::waitid(WaitId::PidFd(pidfd), options) {
            Ok(Some(st)) => Reaped::Now(match st.terminating_signal() {
                Some(sig) => sig,
                None => st.exit_status().unwrap_or(0) << 8,
            }),
            Ok(None) => Reaped::Running,
            Err(Errno::INTR) => continue,
            Err(_) => Reaped::Gone,
        };
    }
}

/// Reaps the child `pidfd` names once it has exited, through a copy of
/// the descriptor (the caller keeps its own).
pub(crate) fn reap_later_copy(pidfd: BorrowedFd<'_>) {
    match rustix::io::fcntl_dupfd_cloexec(pidfd, 0) {
        Ok(copy) => reap_later(copy),
        Err(e) => tracing::warn!(
            error = %e,
            "could not keep a run's process to reap it later; it stays a zombie of this process"
        ),
    }
}

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
            Left::Process(pidfd) => reap_now(pidfd.as_fd()) != Reaped::Running,
            // Only a process still in it (EBUSY) is worth waiting for.
            Left::Cgroup(dir) => match std::fs::remove_dir(dir) {
                Ok(()) => true,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove a run's cgroup; left for `codejail gc`");
                    true
                }
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
fn reap_later(pidfd: OwnedFd) {
    add(Left::Process(pidfd));
}

/// Removes the cgroup directory `dir` once it is empty.
pub(crate) fn remove_later(dir: PathBuf) {
    add(Left::Cgroup(dir));
}

/// How many leftovers are waiting, and whether the thread runs (for the
/// tests).
#[cfg(test)]
fn pending() -> (usize, bool) {
    let state = state();
    (state.left.len(), state.running)
}

/// Adds `item`, and starts the thread unless it runs. The thread is
/// started under the lock, so that two callers cannot both start one.
fn add(item: Left) {
    let spawned = {
        let mut state = state();
        state.left.push(item);
        if state.running {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("codejail-leftovers".into())
            .spawn(sweep);
        state.running = spawned.is_ok();
        spawned
    };
    if let Err(e) = spawned {
        // The next leftover tries again; until then these wait.
        tracing::warn!(error = %e, "could not start the thread that ends a run's leftovers");
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
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    /// Waits up to 10 s for `done`.
    fn wait_for(done: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// A child that exited, and its pidfd.
    fn exited_child() -> (String, OwnedFd) {
        let child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        // `Child` does not wait when dropped: the zombie is the thread's.
        drop(child);
        (format!("/proc/{}", pid.as_raw_nonzero()), pidfd)
    }

    /// A child that has exited is reaped, and a directory removed, by the
    /// thread, which ends once nothing is left; a leftover after that
    /// starts it again.
    #[test]
    fn support_leftovers_are_reaped_and_removed_in_the_background_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..2 {
            let (proc_dir, pidfd) = exited_child();
            let sub = dir.path().join(format!("cgroup-like-{round}"));
            std::fs::create_dir(&sub).unwrap();
            reap_later(pidfd);
            remove_later(sub.clone());
            assert!(
                wait_for(|| !Path::new(&proc_dir).exists() && !sub.exists()),
                "round {round}: the child was not reaped or the directory not removed"
            );
            assert!(
                wait_for(|| pending() == (0, false)),
                "round {round}: the thread did not end: {:?}",
                pending()
            );
        }
    }

    /// A copy is kept: the caller's descriptor stays its own.
    #[test]
    fn support_reap_later_copy_leaves_the_callers_descriptor() {
        let (proc_dir, pidfd) = exited_child();
        reap_later_copy(pidfd.as_fd());
        assert!(wait_for(|| !Path::new(&proc_dir).exists()), "not reaped");
        // Ours still names the (reaped) process: not ours to reap now.
        assert_eq!(reap_now(pidfd.as_fd()), Reaped::Gone);
    }
}
