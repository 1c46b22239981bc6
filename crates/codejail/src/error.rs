//! Errors of configuration, runs and `safe_exec`.

use std::path::PathBuf;

use codejail_proc::Outcome;

/// Why a jail could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The interpreter does not exist.
    #[error("interpreter {} not found; install it or set `bin` for the jail", bin.display())]
    InterpreterMissing {
        /// The path or name given.
        bin: PathBuf,
    },
    /// The interpreter did not answer the question of its paths.
    #[error("interpreter {} failed to start ({why}); check that it runs", bin.display())]
    InterpreterFailed {
        /// The interpreter.
        bin: PathBuf,
        /// What it said.
        why: String,
    },
    /// The sandbox user does not exist.
    #[error(
        "sandbox user `{user}` not found in /etc/passwd; create it (cargo xtask setup-sandbox) or use a uid"
    )]
    UnknownUser {
        /// The name given.
        user: String,
    },
}

/// Why a run could not be set up. A program that runs and fails is not an
/// error but a result with its status.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// No jail of that name.
    #[error("safe_exec has not been configured for {name}")]
    NotConfigured {
        /// The name asked for.
        name: String,
    },
    /// `Auto` on a machine that cannot confine the filesystem.
    #[error(
        "jail `{jail}` would run without filesystem confinement (no Landlock, no AppArmor profile); choose unsafe mode explicitly or run on a kernel with Landlock"
    )]
    NoFilesystemConfinement {
        /// The jail.
        jail: String,
    },
    /// The warm path cannot be used, or a zygote failed.
    #[error("warm path: {why}")]
    Warm {
        /// What went wrong.
        why: String,
    },
    /// A python_path entry without a file name.
    #[error("python_path entry {} has no file name; name a directory or zip file", path.display())]
    BadPythonPath {
        /// The entry.
        path: PathBuf,
    },
    /// A name or a file to stage is bad.
    #[error(transparent)]
    Stage(#[from] codejail_fs::StageError),
    /// The jail directory could not be made.
    #[error(transparent)]
    Create(#[from] codejail_fs::CreateError),
    /// The jail directory could not be removed.
    #[error(transparent)]
    Remove(#[from] codejail_fs::RemoveError),
    /// The process layer could not start or supervise the run.
    #[error(transparent)]
    Spawn(#[from] codejail_proc::SpawnError),
}

impl JailError {
    /// Whether the caller's input was at fault (bad name, missing file),
    /// rather than the machine or the configuration.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            JailError::Stage(_) | JailError::BadPythonPath { .. } | JailError::NotConfigured { .. }
        )
    }
}

/// Why `safe_exec` failed (CodeJail's `SafeExecException`).
#[derive(Debug, thiserror::Error)]
pub enum SafeExecError {
    /// The code raised, crashed or hit a limit.
    #[error("{message}")]
    Failed {
        /// The last line of the traceback, and the kill reason if any.
        message: String,
        /// The run.
        outcome: Box<Outcome>,
    },
    /// The run could not be set up.
    #[error(transparent)]
    Jail(JailError),
    /// The globals that came back were unreadable or too large.
    #[error(transparent)]
    Result(#[from] codejail_pyexec::ResultError),
}
