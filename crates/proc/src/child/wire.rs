//! What the children tell the caller, byte for byte: the setup step that
//! failed (error pipe) and the supervisor's [`Report`] (report pipe).
//!
//! Both are fixed-size messages, shorter than `PIPE_BUF`, so each is
//! written by one atomic `write` from a stack buffer (no allocation in the
//! child), and read by the caller once the writer is gone.

/// One step of the child setup; its index travels through the error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    Setsid,
    Pdeathsig,
    Subreaper,
    Descriptors,
    Setns,
    Hostname,
    Mount,
    JoinCgroup,
    Signals,
    Signalfd,
    Clone,
    Setrlimit,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    AppArmor,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Execve,
    Root,
    MountNs,
    ExecGuard,
    NetNs,
    JoinNetNs,
}

impl Step {
    const ALL: [Step; 26] = [
        Step::Setsid,
        Step::Pdeathsig,
        Step::Subreaper,
        Step::Descriptors,
        Step::Setns,
        Step::Hostname,
        Step::Mount,
        Step::JoinCgroup,
        Step::Signals,
        Step::Signalfd,
        Step::Clone,
        Step::Setrlimit,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Chdir,
        Step::AppArmor,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Seccomp,
        Step::Execve,
        Step::Root,
        Step::MountNs,
        Step::ExecGuard,
        Step::NetNs,
        Step::JoinNetNs,
    ];

    /// The name used in errors, e.g. `SpawnError::Setup { step: "chdir" }`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Setsid => "setsid",
            Step::Pdeathsig => "prctl(PR_SET_PDEATHSIG)",
            Step::Subreaper => "prctl(PR_SET_CHILD_SUBREAPER)",
            Step::Descriptors => "descriptors",
            Step::Setns => "setns (join the run's namespaces)",
            Step::Hostname => "sethostname",
            Step::Mount => "mount the tmpfs",
            Step::JoinCgroup => "join the cgroup",
            Step::Signals => "signals",
            Step::Signalfd => "signalfd",
            Step::Clone => "clone3",
            Step::Setrlimit => "setrlimit",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Chdir => "chdir",
            Step::AppArmor => "AppArmor exec attribute",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::Landlock => "landlock_restrict_self",
            Step::Seccomp => "seccomp(SECCOMP_SET_MODE_FILTER)",
            Step::Execve => "execve",
            Step::Root => "build the private root",
            Step::MountNs => "unshare (a mount namespace)",
            Step::ExecGuard => "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) (the exec guard)",
            Step::NetNs => "unshare (the run's network namespace, made by its holder)",
            Step::JoinNetNs => "setns (join the run's network namespace)",
        }
    }

    fn from_index(i: u32) -> Option<Step> {
        Step::ALL.get(i as usize).copied()
    }
}

/// Length of one message on the error pipe: step word, errno.
pub(crate) const ERROR_LEN: usize = 8;

/// The error pipe's message for `(step, detail, errno)`. The step word
/// holds the step's index in its low byte and `detail` (which part of the
/// step failed: see `super::root::Detail`; 0 for most steps) above it.
pub(crate) fn encode_error(step: Step, detail: u32, errno: i32) -> [u8; ERROR_LEN] {
    let mut msg = [0u8; ERROR_LEN];
    let (index, err) = msg.split_at_mut(4);
    let word = (step as u32) | (detail << 8);
    index.copy_from_slice(&word.to_ne_bytes());
    err.copy_from_slice(&errno.to_ne_bytes());
    msg
}

/// `(step, detail, errno)` from an error-pipe message; `None` for a step
/// index this build does not know.
pub(crate) fn decode_error(bytes: &[u8; ERROR_LEN]) -> (Option<Step>, u32, i32) {
    let mut step = [0u8; 4];
    let mut errno = [0u8; 4];
    step.copy_from_slice(&bytes[..4]);
    errno.copy_from_slice(&bytes[4..]);
    let word = u32::from_ne_bytes(step);
    (
        Step::from_index(word & 0xff),
        word >> 8,
        i32::from_ne_bytes(errno),
    )
}

/// What the supervisor tells the caller when the run is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// The program's raw wait status.
    pub wait_status: i32,
    /// user + system CPU of every process of the run, in microseconds.
    pub cpu_micros: u64,
    /// Largest peak RSS of any process of the run.
    pub max_rss_kib: u64,
    /// A tmpfs of the run had no block or no inode left at its end.
    pub disk_full: bool,
}

impl Report {
    /// Length of the encoded report: four native-endian 64-bit words.
    pub(crate) const LEN: usize = 32;

    /// The report as written to the pipe.
    pub(super) fn encode(&self) -> [u8; Report::LEN] {
        let words = [
            i64::from(self.wait_status).to_ne_bytes(),
            self.cpu_micros.to_ne_bytes(),
            self.max_rss_kib.to_ne_bytes(),
            u64::from(self.disk_full).to_ne_bytes(),
        ];
        let mut out = [0u8; Report::LEN];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word);
        }
        out
    }

    /// The report from the bytes read; `None` unless they are exactly one
    /// whole, well-formed report.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Report> {
        let bytes: &[u8; Report::LEN] = bytes.try_into().ok()?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w
        };
        Some(Report {
            wait_status: i32::try_from(i64::from_ne_bytes(word(0))).ok()?,
            cpu_micros: u64::from_ne_bytes(word(1)),
            max_rss_kib: u64::from_ne_bytes(word(2)),
            disk_full: u64::from_ne_bytes(word(3)) != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = Report {
            wait_status: 0x0900,
            cpu_micros: 12,
            max_rss_kib: 34,
            disk_full: true,
        };
        assert_eq!(Report::decode(&r.encode()), Some(r));
        assert_eq!(Report::decode(&[0u8; 3]), None);
    }

    #[test]
    fn steps_round_trip_by_index() {
        for step in Step::ALL {
            assert_eq!(Step::from_index(step as u32), Some(step));
        }
        assert_eq!(Step::from_index(Step::ALL.len() as u32), None);
    }

    #[test]
    fn error_messages_round_trip() {
        for step in Step::ALL {
            let msg = encode_error(step, 0, libc::ENOENT);
            assert_eq!(decode_error(&msg), (Some(step), 0, libc::ENOENT));
        }
        let msg = encode_error(Step::Root, 0x00ab_cdef, libc::EPERM);
        assert_eq!(
            decode_error(&msg),
            (Some(Step::Root), 0x00ab_cdef, libc::EPERM)
        );
    }
}
