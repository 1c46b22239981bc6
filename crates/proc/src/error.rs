//! Errors of [`Spawn::run`](crate::Spawn::run).

use std::io;
use std::path::PathBuf;

/// Why a run could not be started or finished.
///
/// A program that runs and fails is not an error: it is an
/// [`Outcome`](crate::Outcome) with a non-zero status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// An argument, variable or path contains a NUL byte.
    #[error("{what} contains a NUL byte; remove it")]
    Nul {
        /// Which input: `program`, `argument`, `environment`, `cwd`.
        what: &'static str,
    },
    /// The program does not exist (or is not on `PATH`).
    #[error("program not found: {}; check the path", program.display())]
    NotFound {
        /// The program as given.
        program: PathBuf,
    },
    /// A step in the caller failed (pipes, clone, poll).
    #[error("could not {step}: {source}")]
    Parent {
        /// The step, e.g. `create a pipe`.
        step: &'static str,
        /// The underlying error, with its errno.
        #[source]
        source: io::Error,
    },
    /// A setup step in the child failed before the program started.
    #[error("child setup step `{step}` failed: {source}")]
    Setup {
        /// The step, e.g. `chdir`, `setrlimit`, `execve`.
        step: &'static str,
        /// The child's errno.
        #[source]
        source: io::Error,
    },
    /// The supervisor ended without a report, so the run may not be fully
    /// contained; its process group was killed.
    #[error("the run's supervisor died unexpectedly (wait status {wait_status:#x})")]
    SupervisorLost {
        /// The supervisor's raw wait status.
        wait_status: i32,
    },
}

impl SpawnError {
    pub(crate) fn parent(step: &'static str) -> impl FnOnce(rustix::io::Errno) -> SpawnError {
        move |e| SpawnError::Parent {
            step,
            source: e.into(),
        }
    }
}
