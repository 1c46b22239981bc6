//! What a call asks for, and what it gets back.

use std::path::PathBuf;
use std::time::Duration;

use codejail_proc::{Enforcement, KillReason, LayerSet, Outcome, Truncated};

/// What every call takes besides its code: files to stage, limits, a label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Files, directories and links copied into the jail.
    pub files: Vec<PathBuf>,
    /// Files created from bytes: (name, contents).
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// The limit override context (CodeJail's `limit_overrides_context`).
    pub limits_context: Option<String>,
    /// Limits for this call only.
    pub limits: Vec<(crate::LimitName, u64)>,
    /// A label for the logs (CodeJail's `slug`).
    pub slug: Option<String>,
    /// Only these layers for this call: each must be one the jail would
    /// apply, and the set may not be empty. It can narrow the jail's
    /// confinement (to show what one layer stops on its own), never widen
    /// it or remove it: an unconfined run needs a jail configured
    /// [`Confinement::Unsafe`](crate::Confinement::Unsafe).
    pub layers: Option<LayerSet>,
    /// Ends the run when cancelled (a signal, a shutdown).
    pub cancel: Option<crate::Cancel>,
}

/// A descriptor a program reads as its stdin, instead of bytes: a FIFO,
/// a pipe, a terminal, a file. The program reads it under the run's
/// deadline, and nothing is buffered in the caller. It goes to one run:
/// the first that uses it (a clone of the request shares it).
#[derive(Clone, Debug)]
pub struct StdinFd(std::sync::Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>);

impl StdinFd {
    /// Wraps `fd`.
    pub fn new(fd: std::os::fd::OwnedFd) -> StdinFd {
        StdinFd(std::sync::Arc::new(std::sync::Mutex::new(Some(fd))))
    }

    /// The descriptor, for the run that takes it.
    pub(crate) fn take(&self) -> Option<std::os::fd::OwnedFd> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl PartialEq for StdinFd {
    fn eq(&self, other: &StdinFd) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StdinFd {}

/// One `jail_code` request (CodeJail's arguments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JailCode {
    /// The code, written as `jailed_code`; the argv then starts with it.
    pub code: Option<String>,
    /// Arguments (after `jailed_code`; without code, the first one is the
    /// file to run).
    pub argv: Vec<String>,
    /// Bytes on stdin.
    pub stdin: Vec<u8>,
    /// A descriptor to read as stdin instead of [`JailCode::stdin`].
    pub stdin_fd: Option<StdinFd>,
    /// Files, limits, label.
    pub call: CallOptions,
}

impl JailCode {
    /// A request to run `code` with nothing else.
    pub fn code(code: impl Into<String>) -> JailCode {
        JailCode {
            code: Some(code.into()),
            ..JailCode::default()
        }
    }
}

/// Options of `safe_exec` beyond the code and the globals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SafeExecOptions {
    /// Directories or zip files put on `sys.path`: staged like files
    /// unless an extra file of that name exists.
    pub python_path: Vec<PathBuf>,
    /// Files, limits, label.
    pub call: CallOptions,
}

/// The result of `jail_code` (CodeJail's `JailResult`, and what this
/// project adds: why the run ended, what it cost, which layers held it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JailResult {
    /// Exit code, or minus the signal number.
    pub status: i32,
    /// stdout bytes, at most the output cap.
    pub stdout: Vec<u8>,
    /// stderr bytes, at most the output cap.
    pub stderr: Vec<u8>,
    /// Which streams were cut at the output cap.
    pub truncated: Truncated,
    /// Why codejail ended the run, if it did.
    pub killed_by: Option<KillReason>,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// CPU time of the run's processes.
    pub cpu: Duration,
    /// Largest peak resident set of a process of the run, KiB.
    pub max_rss_kib: u64,
    /// The confinement layers that were applied.
    pub layers: LayerSet,
    /// How much of what codejail asks of Landlock (the rights of
    /// [`LANDLOCK_ABI`](crate::LANDLOCK_ABI)) the kernel enforced, when
    /// Landlock was applied: what a real restriction found
    /// ([`Probe::landlock_status`](crate::Probe::landlock_status)), not a
    /// guess from the ABI number.
    pub landlock: Option<Enforcement>,
    /// Whether a warm interpreter ran it (false: a cold run).
    pub warm: bool,
}

impl JailResult {
    pub(crate) fn cold(o: Outcome) -> JailResult {
        JailResult {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
            truncated: o.truncated,
            killed_by: o.killed_by,
            wall: o.wall,
            cpu: o.cpu,
            max_rss_kib: o.max_rss_kib,
            layers: o.layers,
            landlock: o.landlock,
            warm: false,
        }
    }
}
