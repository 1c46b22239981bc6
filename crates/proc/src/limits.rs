//! Resource limits of one run.

use std::time::Duration;

/// Resource limits of one run. `None` means "no limit".
///
/// As in CodeJail, a value of zero also disables a limit, except
/// [`fsize_bytes`](Limits::fsize_bytes), where `Some(0)` means that no file may be
/// written. `RLIMIT_CORE` is always 0: a jailed program never dumps core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds (`RLIMIT_CPU`, soft = n, hard = n + 1): the program dies of
    /// `SIGXCPU`, status -24.
    pub cpu_secs: Option<u64>,
    /// Wall-clock time from the start of the run (CodeJail's `REALTIME`):
    /// every process of the run gets `SIGKILL`. A run whose set-up had not
    /// started the program by then fails with
    /// [`SpawnError::SetupTimeout`](crate::SpawnError::SetupTimeout)
    /// instead. A duration too long to be an instant (such as `u64::MAX`
    /// seconds) is no deadline.
    pub wall: Option<Duration>,
    /// Address-space bytes (`RLIMIT_AS`, CodeJail's `VMEM`): allocations fail.
    pub vmem_bytes: Option<u64>,
    /// Largest file the program may write (`RLIMIT_FSIZE`); `Some(0)` means
    /// no file may be written. Writes past it fail with `EFBIG`.
    pub fsize_bytes: Option<u64>,
    /// Processes (`RLIMIT_NPROC`, and `pids.max` when the run has a cgroup
    /// with the pids controller): `fork` fails with `EAGAIN`. The kernel
    /// counts `RLIMIT_NPROC` per user namespace and uid, so with the user
    /// namespace layer it counts this run's processes only; without it, every
    /// process of the program's uid. It is never enforced for host uid 0.
    pub nproc: Option<u64>,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub nofile: Option<u64>,
    /// Memory of the whole run in bytes, swap included (a cgroup's
    /// `memory.max` / `memory.limit_in_bytes`): the kernel kills the run's
    /// largest process and [`KillReason::Memory`](crate::KillReason::Memory)
    /// is reported. Needs the cgroup layer.
    pub memory_bytes: Option<u64>,
    /// Bytes kept per output stream; past it the capture stops, the run is
    /// killed and [`Outcome::truncated`](crate::Outcome::truncated) says so.
    pub output_bytes: Option<u64>,
}

impl Default for Limits {
    /// No limits except an output cap of 1 MiB per stream, so that a run
    /// cannot exhaust the caller's memory by default.
    fn default() -> Limits {
        Limits {
            cpu_secs: None,
            wall: None,
            vmem_bytes: None,
            fsize_bytes: None,
            nproc: None,
            nofile: None,
            memory_bytes: None,
            output_bytes: Some(1 << 20),
        }
    }
}

impl Limits {
    /// No limit at all, not even on output.
    pub fn none() -> Limits {
        Limits {
            output_bytes: None,
            ..Limits::default()
        }
    }

    /// The `setrlimit` calls the program makes before exec. `nproc_extra`
    /// counts processes of the run that share the program's uid count but
    /// are not the program's (the supervisor, in an unprivileged user
    /// namespace).
    pub(crate) fn rlimits(&self, nproc_extra: u64) -> Vec<(libc::c_int, libc::rlimit)> {
        let lim = |soft: u64, hard: u64| libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        let on = |v: Option<u64>| v.filter(|&n| n > 0);
        let mut out = vec![(libc::RLIMIT_CORE as libc::c_int, lim(0, 0))];
        if let Some(n) = on(self.cpu_secs) {
            out.push((libc::RLIMIT_CPU as libc::c_int, lim(n, n.saturating_add(1))));
        }
        if let Some(n) = on(self.vmem_bytes) {
            out.push((libc::RLIMIT_AS as libc::c_int, lim(n, n)));
        }
        if let Some(n) = self.fsize_bytes {
            out.push((libc::RLIMIT_FSIZE as libc::c_int, lim(n, n)));
        }
        if let Some(n) = on(self.nproc) {
            let n = n.saturating_add(nproc_extra);
            out.push((libc::RLIMIT_NPROC as libc::c_int, lim(n, n)));
        }
        if let Some(n) = on(self.nofile) {
            out.push((libc::RLIMIT_NOFILE as libc::c_int, lim(n, n)));
        }
        out
    }

    /// The wall-clock deadline, if any (zero disables it).
    pub(crate) fn wall(&self) -> Option<Duration> {
        self.wall.filter(|d| !d.is_zero())
    }

    /// The cgroup memory limit, if any (zero disables it).
    pub(crate) fn memory(&self) -> Option<u64> {
        self.memory_bytes.filter(|&n| n > 0)
    }

    /// The process limit, if any (zero disables it).
    pub(crate) fn nproc(&self) -> Option<u64> {
        self.nproc.filter(|&n| n > 0)
    }

    /// The output cap per stream, if any (zero disables it).
    pub(crate) fn output(&self) -> Option<usize> {
        self.output_bytes
            .filter(|&n| n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_disables_every_limit_but_fsize() {
        let limits = Limits {
            cpu_secs: Some(0),
            wall: Some(Duration::ZERO),
            vmem_bytes: Some(0),
            fsize_bytes: Some(0),
            nproc: Some(0),
            nofile: Some(0),
            memory_bytes: Some(0),
            output_bytes: Some(0),
        };
        let resources: Vec<_> = limits.rlimits(0).iter().map(|(r, _)| *r).collect();
        assert_eq!(
            resources,
            [
                libc::RLIMIT_CORE as libc::c_int,
                libc::RLIMIT_FSIZE as libc::c_int
            ]
        );
        assert_eq!(limits.wall(), None);
        assert_eq!(limits.output(), None);
    }

    #[test]
    fn cpu_hard_limit_is_one_second_above_soft() {
        let limits = Limits {
            cpu_secs: Some(3),
            ..Limits::none()
        };
        let cpu = limits
            .rlimits(0)
            .into_iter()
            .find(|(r, _)| *r == libc::RLIMIT_CPU as libc::c_int)
            .map(|(_, l)| (l.rlim_cur, l.rlim_max));
        assert_eq!(cpu, Some((3, 4)));
    }
}
