//! What a finished run reports.

use std::fmt;
use std::time::Duration;

use crate::{Enforcement, LayerSet};

/// Why a run was ended early by codejail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KillReason {
    /// The wall-clock deadline passed.
    Wall,
    /// The program used up its CPU seconds (`SIGXCPU` or the hard limit).
    Cpu,
    /// A stream passed the output cap.
    Output,
    /// The run's cgroup ran out of memory and the kernel killed a process.
    Memory,
    /// A size- or inode-limited tmpfs of the run was full at its end: the
    /// program met `ENOSPC` (it was not killed for it).
    Disk,
    /// The caller cancelled the run ([`Spawn::cancel_on`](crate::Spawn::cancel_on)).
    Cancelled,
}

impl KillReason {
    /// A short, stable name: `realtime`, `cpu`, `output`, `memory`, `disk`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Wall => "realtime",
            KillReason::Cpu => "cpu",
            KillReason::Output => "output",
            KillReason::Memory => "memory",
            KillReason::Disk => "disk",
            KillReason::Cancelled => "cancelled",
        }
    }

    /// Why, as the warning logged when codejail kills a run says it
    /// (`Killing process 1234: wall-clock limit reached`).
    pub fn why(self) -> &'static str {
        match self {
            KillReason::Wall => "wall-clock limit reached",
            KillReason::Cpu => "CPU time limit reached",
            KillReason::Output => "output limit reached",
            KillReason::Memory => "memory limit reached",
            KillReason::Disk => "disk full",
            KillReason::Cancelled => "the run was cancelled",
        }
    }

    /// Whether a kill asked for this reason is why a program that ended
    /// with `status` (CodeJail's convention) ended. The deadline only if
    /// its `SIGKILL` ended it: one that ended by itself as the deadline
    /// passed, before the kill landed, did its work in its time. A cap
    /// passed (its output was cut) and a cancel (the caller asked) either
    /// way. The one rule of the cold path and the warm.
    pub fn ended(self, status: i32) -> bool {
        self != KillReason::Wall || status == -libc::SIGKILL
    }
}

impl fmt::Display for KillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which captured streams were cut at the output cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncated {
    /// stdout was cut.
    pub stdout: bool,
    /// stderr was cut.
    pub stderr: bool,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// CodeJail's convention: the exit code, or the negated signal number
    /// (`-9` for `SIGKILL`, `-24` for `SIGXCPU`).
    pub status: i32,
    /// Captured stdout, at most the output cap.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the output cap.
    pub stderr: Vec<u8>,
    /// Which streams were cut.
    pub truncated: Truncated,
    /// Why codejail ended the run, if it did. A program that ended by
    /// itself as its deadline passed (its own status, not `SIGKILL`) has
    /// none: it did its work in its time. Past the output cap the reason
    /// is [`KillReason::Output`] even if the program won the race to its
    /// end: its output was cut.
    pub killed_by: Option<KillReason>,
    /// Wall-clock time from spawn to the last process reaped.
    pub wall: Duration,
    /// User + system CPU time of every process of the run.
    pub cpu: Duration,
    /// Largest peak resident set of any process of the run, in KiB.
    ///
    /// The kernel keeps the high-water mark across `execve`, so this is at
    /// least the resident set of the process that cloned the program.
    pub max_rss_kib: u64,
    /// The confinement layers that were applied.
    pub layers: LayerSet,
    /// How much of what codejail asks of Landlock (the rights of
    /// [`LANDLOCK_ABI`](crate::LANDLOCK_ABI)) the kernel enforced, when
    /// Landlock was applied: what a real restriction found
    /// ([`Probe::landlock_status`](crate::Probe::landlock_status)), not a
    /// guess from the ABI number.
    pub landlock: Option<Enforcement>,
}

/// CodeJail's status from a raw wait status.
pub(crate) fn status_code(wait_status: i32) -> i32 {
    if libc::WIFSIGNALED(wait_status) {
        -libc::WTERMSIG(wait_status)
    } else {
        libc::WEXITSTATUS(wait_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_negated_and_exit_codes_kept() {
        assert_eq!(status_code(9), -9); // killed by SIGKILL
        assert_eq!(status_code(24 | 0x80), -24); // SIGXCPU with core flag
        assert_eq!(status_code(3 << 8), 3);
        assert_eq!(status_code(0), 0);
    }
}
