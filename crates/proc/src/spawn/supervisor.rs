//! The caller's handle on a run's supervisor (the process itself is
//! `crate::child::supervisor`): the pump's [`Target`] for a cold run, and
//! the one owner that kills and reaps it.
//!
//! Every signal to the supervisor goes through its pidfd, which names that
//! process and no other even once its pid is reused. The one signal sent by
//! number is the kill of its process group (the run's processes, in the
//! session it leads), and only while the supervisor is unreaped: a zombie
//! keeps its pid, which is also the group's id, so the group cannot be
//! another's until the supervisor is reaped. Processes that left the group
//! (`setsid`) are the pid namespace's job (killing the holder) or the
//! cgroup's (`cgroup.kill`, or a kill of each member through its pidfd);
//! without either, a lost supervisor is reported as
//! [`SpawnError::SupervisorLost`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use crate::child::{self, ChildFds, Prepared, Report};
use crate::leftover::REAP_WAIT;
use crate::pump::{DEFAULT_KILL_GRACE, State, Target};
use crate::{KillReason, SpawnError};

/// How long a supervisor asked to end a run whose set-up passed its
/// deadline may take before it is killed: one waiting on its program
/// answers in well under a millisecond.
const SETUP_KILL_GRACE: Duration = Duration::from_millis(100);

/// The caller's handle on the supervisor. Dropping it before the run's end
/// asks the supervisor to kill the run, forces it after a grace period, and
/// reaps it, all within a bounded time.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pid: i32,
    pidfd: OwnedFd,
    /// Dropping the write end of the control pipe asks for the kill.
    control: Option<OwnedFd>,
    /// Read end of the report pipe (non-blocking).
    report_pipe: OwnedFd,
    /// The supervisor has exited (its pidfd polled readable).
    exited: bool,
    /// Its report, read once it exited.
    report: Option<Report>,
    /// Its raw wait status, once reaped.
    wait_status: Option<i32>,
    /// `SIGKILL` was sent: dropping it waits for no grace period again.
    forced: bool,
    /// A bounded wait for its exit already ran out: dropping it hands it
    /// to `crate::leftover` at once.
    waited_out: bool,
}

impl Supervisor {
    /// Clones the supervisor; it takes the control pipe's write end (kill
    /// request) and the report pipe's read end.
    pub(crate) fn start(
        prep: &Prepared,
        fds: ChildFds,
        control: OwnedFd,
        report_pipe: OwnedFd,
    ) -> Result<Supervisor, SpawnError> {
        let flags =
            fcntl_getfl(&report_pipe).map_err(SpawnError::parent("read descriptor flags"))?;
        fcntl_setfl(&report_pipe, flags | OFlags::NONBLOCK)
            .map_err(SpawnError::parent("make a pipe non-blocking"))?;
        let (pid, pidfd) =
            child::spawn_supervisor(prep, fds).map_err(|source| SpawnError::Parent {
                step: "clone the supervisor",
                source,
            })?;
        Ok(Supervisor {
            pid,
            pidfd,
            control: Some(control),
            report_pipe,
            exited: false,
            report: None,
            wait_status: None,
            forced: false,
            waited_out: false,
        })
    }

    /// After the pump: the supervisor's report, once it is reaped. Without
    /// a report the run may not be contained: its process group is killed
    /// before the supervisor is reaped, and the run fails with
    /// [`SpawnError::SupervisorLost`] (the run's cgroup, if any, is killed
    /// when it is dropped).
    pub(crate) fn finish(&mut self) -> Result<Report, SpawnError> {
        match self.report.filter(|_| self.exited) {
            Some(report) => {
                self.reap(REAP_WAIT);
                Ok(report)
            }
            None => {
                self.kill_group();
                let wait_status = self.reap(REAP_WAIT).unwrap_or(-1);
                Err(SpawnError::SupervisorLost { wait_status })
            }
        }
    }

    /// The polite kill request: the supervisor sees the control pipe hung
    /// up, kills and reaps the run, reports, exits.
    fn request_kill(&mut self) {
        self.control = None;
    }

    /// Ends a run whose set-up passed its deadline: the kill request, which
    /// a supervisor waiting on its program answers at once (it kills the
    /// holder first, so that the pid namespace goes as on any kill), then
    /// `SIGKILL` if it has not exited within [`SETUP_KILL_GRACE`]: one
    /// still in its own set-up does not read the control pipe yet (it may
    /// start the program in that time, which the kill then ends).
    /// Whether it answered the request (then it has killed and reaped
    /// every process of the run, but one in uninterruptible sleep, which
    /// it waits for).
    pub(crate) fn kill_in_setup(&mut self) -> bool {
        self.request_kill();
        let answered = self.wait_exit(SETUP_KILL_GRACE);
        if !answered {
            self.force();
        }
        answered
    }

    /// `SIGKILL` to the supervisor (through its pidfd) and to its process
    /// group (while it is unreaped).
    fn force(&mut self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        self.kill_group();
        self.forced = true;
    }

    /// `SIGKILL` to the run's process group (the supervisor leads its own
    /// session), only while the supervisor is unreaped: until then its pid,
    /// which is the group's id, cannot be reused. Had it failed before
    /// `setsid`, no group has that id and the call fails with `ESRCH`.
    fn kill_group(&self) {
        if self.wait_status.is_some() {
            return;
        }
        if let Some(pgid) = Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
    }

    /// Waits up to `timeout` for the supervisor to exit; whether it has.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        if !self.exited {
            self.exited = crate::leftover::exited_within(self.pidfd.as_fd(), timeout);
        }
        self.exited
    }

    /// Reaps the supervisor once it has exited, waiting for that at most
    /// `timeout`; its raw wait status, or `None` if it could not be reaped.
    fn reap(&mut self, timeout: Duration) -> Option<i32> {
        if self.wait_status.is_some() {
            return self.wait_status;
        }
        if !self.wait_exit(timeout) {
            self.waited_out = !timeout.is_zero();
            return None;
        }
        self.wait_status = match crate::leftover::reap_now(self.pidfd.as_fd()) {
            crate::leftover::Reaped::Now(status) => Some(status),
            // Exited but not reapable (someone else reaped it): gone.
            crate::leftover::Reaped::Gone => Some(0),
            crate::leftover::Reaped::Running => None,
        };
        self.wait_status
    }

    /// Reads the report the supervisor wrote before it exited; `None` when
    /// there is no whole one.
    fn read_report(&self) -> Option<Report> {
        let mut buf = [0u8; Report::LEN];
        let mut got = 0;
        while got < buf.len() {
            match rustix::io::read(&self.report_pipe, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                Err(_) => break, // EAGAIN: nothing more was written
            }
        }
        Report::decode(&buf[..got])
    }
}

impl Target for Supervisor {
    /// The pidfd: it polls readable once the supervisor has exited.
    fn fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Exited: finished with a report, abandoned without one. The
    /// supervisor stays unreaped (see [`Supervisor::finish`]).
    fn ready(&mut self) -> std::io::Result<State> {
        self.exited = true;
        self.report = self.read_report();
        Ok(match self.report {
            Some(_) => State::Finished,
            None => State::Abandoned,
        })
    }

    /// The supervisor's pid (also the run span's `pid`).
    fn pid(&self) -> i32 {
        self.pid
    }

    fn kill(&mut self, _reason: KillReason) {
        self.request_kill();
    }

    fn force_kill(&mut self) {
        tracing::warn!(
            pid = self.pid,
            "supervisor did not finish in time; killing it"
        );
        self.force();
    }
}

impl Drop for Supervisor {
    /// Unless already reaped (the normal end of a run): the kill request,
    /// `SIGKILL` (supervisor and process group) if it has not exited
    /// within the grace period, the group's kill again while it is a
    /// zombie, and the reap. Bounded: at most the grace period plus
    /// [`REAP_WAIT`], each skipped when it already ran out (a forced kill,
    /// a wait in [`Supervisor::finish`]); one that has not exited by then
    /// (uninterruptible sleep) is reaped in the background once it has
    /// (`crate::leftover`). Without this, an error after the clone would
    /// leave a zombie nobody reaps (its exit signal is 0).
    fn drop(&mut self) {
        if self.wait_status.is_some() {
            return;
        }
        if !self.forced {
            self.request_kill();
            if !self.wait_exit(DEFAULT_KILL_GRACE) {
                self.force();
            }
        }
        if !self.waited_out && self.wait_exit(REAP_WAIT) {
            self.kill_group();
        }
        if self.reap(Duration::ZERO).is_none() {
            // In uninterruptible sleep: reaped once its wait ends.
            crate::leftover::reap_later_copy(self.pidfd.as_fd());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Spawn;

    /// Whether `pid` is a child of this process (alive or a zombie).
    fn is_our_child(pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        ppid == Some(std::process::id())
    }

    /// An error after the clone drops the handle: the supervisor must be
    /// killed and reaped, not left a zombie that nobody reaps (its exit
    /// signal is 0).
    #[test]
    fn dropping_the_handle_kills_and_reaps_the_supervisor() {
        let started = Spawn::new("/bin/sleep").arg("60").start(None).unwrap();
        let pid = started.sup.pid;
        assert!(is_our_child(pid));
        drop(started);
        assert!(!is_our_child(pid), "the supervisor {pid} was left behind");
    }
}
