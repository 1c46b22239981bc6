//! Errors of [`Spawn::run`](crate::Spawn::run).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Layer;
use crate::cgroup::CgroupError;
use crate::fsrules::FsRulesError;
use crate::root::RootError;

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
    /// The run's wall-clock limit passed before its program's `execve`
    /// was seen: a set-up step in the children (its private root, its
    /// working directory, `execve`) was still going, most likely waiting
    /// on a file system that does not answer, or the limit is shorter
    /// than a set-up takes on this host. The run was ended: the
    /// supervisor asked, then `SIGKILL` after 100 ms if it did not
    /// answer (a process in uninterruptible sleep dies only when its wait
    /// ends; decision 0016).
    #[error(
        "the run's set-up did not finish within its wall-clock limit of {wall:?}, so it was killed; raise the limit if the host is slow, else check that the program, its working directory and the paths of its rules are on a file system that answers"
    )]
    SetupTimeout {
        /// The run's wall-clock limit.
        wall: Duration,
    },
    /// The policy requires a layer this machine or caller cannot provide.
    #[error("confinement layer `{layer}` is required but unavailable: {reason}")]
    LayerUnavailable {
        /// The missing layer.
        layer: Layer,
        /// Why it is missing.
        reason: String,
    },
    /// A limit the run asks for needs a layer this machine or caller
    /// cannot provide (under [`Policy::Auto`](crate::Policy::Auto)
    /// nothing was required: the limit is what needs it).
    #[error("{by} needs the `{layer}` layer, which is unavailable here: {reason}; {fix}")]
    LayerNeeded {
        /// The missing layer.
        layer: Layer,
        /// What needs it, e.g. `the memory limit`.
        by: &'static str,
        /// Why it is missing.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
    /// The Landlock ruleset could not be built.
    #[error("could not build the Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// A path of the [`FsRules`](crate::FsRules) is relative, missing (and
    /// not optional) or cannot be opened.
    #[error(transparent)]
    FsRules(FsRulesError),
    /// The private root could not be planned or built.
    #[error(transparent)]
    Root(#[from] RootError),
    /// The seccomp filter could not be compiled.
    #[error("could not compile the seccomp filter: {0}")]
    Seccomp(String),
    /// The run's cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The user namespace's id maps could not be written.
    #[error("could not write {}: {source}", file.display())]
    IdMap {
        /// The file, e.g. `/proc/<pid>/uid_map`.
        file: PathBuf,
        /// The underlying error.
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

impl From<FsRulesError> for SpawnError {
    /// The kernel's refusal stays [`SpawnError::Landlock`]; a bad path is
    /// [`SpawnError::FsRules`].
    fn from(e: FsRulesError) -> SpawnError {
        match e {
            FsRulesError::Ruleset(e) => SpawnError::Landlock(e),
            other => SpawnError::FsRules(other),
        }
    }
}

impl SpawnError {
    pub(crate) fn parent(step: &'static str) -> impl FnOnce(rustix::io::Errno) -> SpawnError {
        move |e| SpawnError::Parent {
            step,
            source: e.into(),
        }
    }
}
