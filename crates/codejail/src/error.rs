//! Errors of configuration, runs, the warm path and `safe_exec`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use codejail_proc::LayerSet;

use crate::JailResult;

/// Why a jail could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The interpreter does not exist (or is no file: a directory).
    #[error("interpreter {} not found (no file of that name); install it or set `bin` for the jail to its program", bin.display())]
    InterpreterMissing {
        /// The path or name given.
        bin: PathBuf,
    },
    /// The interpreter could not be asked what it needs, run as the jail
    /// runs it.
    #[error(
        "interpreter {} does not run as uid {uid} under the jail's confinement ({source}); make it and its directories readable by that user, or choose another interpreter",
        bin.display()
    )]
    InterpreterFailed {
        /// The interpreter.
        bin: PathBuf,
        /// The uid it was run as.
        uid: u32,
        /// What went wrong.
        #[source]
        source: ProbeError,
    },
    /// A path of [`JailConfig::read_paths`](crate::JailConfig::read_paths)
    /// is relative or does not exist.
    #[error("read_paths: {0}")]
    ReadPath(codejail_proc::FsRulesError),
    /// The sandbox user is root.
    #[error(
        "sandbox user `{user}` is root (uid 0): jailed code would run as root; choose an unprivileged user, or set allow_root_user = true if you mean it"
    )]
    RootUser {
        /// The name given.
        user: String,
    },
    /// The sandbox user is no account (by name or uid).
    #[error(
        "sandbox user `{user}` is no account of /etc/passwd (by name, or by uid: a run needs the account's group too); create it (cargo xtask setup-sandbox) or name an account"
    )]
    UnknownUser {
        /// The name given.
        user: String,
    },
    /// An account has a uid in the jail's sandbox uid range: a run would
    /// act as that account.
    #[error(
        "the sandbox uid range {range} holds uid {uid} of account `{user}`; choose a range no account uses (`uids` in the jail's settings)"
    )]
    UidRangeTaken {
        /// The range.
        range: crate::UidRange,
        /// The account.
        user: String,
        /// Its uid.
        uid: u32,
    },
    /// A subordinate uid range (`/etc/subuid`) overlaps the jail's: that
    /// user's containers would share uids with runs.
    #[error(
        "the sandbox uid range {range} overlaps the subordinate uids {first}+{count} of `{user}` (/etc/subuid); choose a range nobody is delegated (`uids` in the jail's settings)"
    )]
    UidRangeDelegated {
        /// The range.
        range: crate::UidRange,
        /// Whose subordinate range.
        user: String,
        /// Its first uid.
        first: u32,
        /// How many.
        count: u64,
    },
    /// The interpreter could not be asked its facts: no uid of the range
    /// could be had for that run.
    #[error(transparent)]
    Uid(#[from] crate::UidError),
    /// An entry of the jail's `preload` is not a module name.
    #[error(
        "preload entry `{module}` is not a module name; give Python module names such as numpy or numpy.linalg"
    )]
    BadPreload {
        /// The entry.
        module: String,
    },
    /// The jail has a `preload` but its language has no warm path.
    #[error(
        "jail `{jail}` runs {lang}, which has no warm path to preload modules into; remove `preload`, or use a python3 jail"
    )]
    PreloadNeedsPython {
        /// The jail.
        jail: String,
        /// Its language.
        lang: String,
    },
    /// A layer the jail's policy requires is missing on this host: no run
    /// of the jail could be confined as asked (found when its interpreter
    /// was asked its facts).
    #[error(transparent)]
    Layer(codejail_proc::SpawnError),
}

/// Why the interpreter could not tell a jail its facts (its prefixes, the
/// driver's bytecode).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// It could not be started.
    #[error("{0}")]
    Spawn(#[source] codejail_proc::SpawnError),
    /// It ran and failed.
    #[error("exit status {status}: {stderr}")]
    Failed {
        /// Its status.
        status: i32,
        /// The end of its stderr (bounded, control characters escaped).
        stderr: String,
    },
    /// It printed something that is not the facts.
    #[error("it printed something other than its prefixes")]
    Unreadable,
}

/// Why a run could not be set up. A program that runs and fails is not an
/// error but a result with its status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The jail's language has no `safe_exec`.
    #[error("jail `{jail}` runs {lang}, which has no safe_exec; use jail_code, or a python3 jail")]
    NoSafeExec {
        /// The jail.
        jail: String,
        /// Its language.
        lang: String,
    },
    /// A call asked for layers the jail would not apply, or for none.
    #[error(
        "a call may only narrow the jail's layers ({planned}); `{asked}` is not a non-empty subset of them"
    )]
    LayersNotNarrowed {
        /// What the call asked for.
        asked: LayerSet,
        /// What the jail applies.
        planned: LayerSet,
    },
    /// The call's [`Cancel`](crate::Cancel) was cancelled before it
    /// started.
    #[error("the call was cancelled before it started")]
    Cancelled,
    /// A limit of the call is out of range.
    #[error(transparent)]
    Limit(#[from] crate::LimitError),
    /// The warm path failed.
    #[error(transparent)]
    Warm(#[from] WarmError),
    /// The globals given to `safe_exec` are not one JSON object.
    #[error("the globals are not one JSON object: {why}")]
    BadGlobals {
        /// What is wrong and where.
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
    /// No uid of the jail's range could be had for the run.
    #[error(transparent)]
    Uid(#[from] crate::UidError),
}

impl JailError {
    /// Whether the caller's input was at fault (bad name, missing file, a
    /// limit out of range), rather than the machine or the configuration.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            JailError::Stage(_)
                | JailError::BadPythonPath { .. }
                | JailError::NotConfigured { .. }
                | JailError::Limit(_)
                | JailError::BadGlobals { .. }
                | JailError::LayersNotNarrowed { .. }
        )
    }
}

/// Why the warm path could not serve a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarmError {
    /// The jail's layers cannot give a warm call what a cold one gets.
    #[error(
        "the warm path needs Landlock ABI 6 or later (signal scoping) among the jail's layers; this jail has {layers}"
    )]
    NeedsLandlockScopes {
        /// The jail's layers.
        layers: LayerSet,
    },
    /// A pool of no interpreter.
    #[error("a warm pool needs at least one interpreter")]
    EmptyPool,
    /// The jail is in unsafe mode.
    #[error("jail `{jail}` is unsafe; the warm path only runs confined")]
    Unsafe {
        /// The jail.
        jail: String,
    },
    /// No interpreter is alive, and starting one fails.
    #[error("no warm interpreter is running, and starting one fails: {why}")]
    Unavailable {
        /// Why the last start failed.
        why: String,
    },
    /// No interpreter became free in time.
    #[error("no warm interpreter was free within {waited:?}; the pool is saturated or failing")]
    Busy {
        /// How long the call waited.
        waited: Duration,
    },
    /// A step of the pool failed.
    #[error("warm pool: could not {step}: {source}")]
    Io {
        /// The step.
        step: &'static str,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
    /// An interpreter could not be started.
    #[error("a warm interpreter did not start: {0}")]
    Start(String),
    /// A module of the jail's `preload` failed to import in a new
    /// interpreter (inside its confinement).
    #[error(
        "a warm interpreter could not import `{module}` (the jail's preload): {error}; install it for the jail's interpreter, or take it out of `preload`"
    )]
    Preload {
        /// The module.
        module: String,
        /// The exception, as `Type: message` (bounded, control
        /// characters escaped).
        error: String,
    },
    /// A new interpreter had more than one thread once it had imported the
    /// jail's `preload`: it forks a worker per call, and a fork keeps only
    /// the thread that forks.
    #[error(
        "a warm interpreter has {threads} threads after importing {}; it forks its workers and must have one: take the module that starts threads at import out of the jail's `preload`",
        preload_list(modules)
    )]
    Threads {
        /// The threads it had.
        threads: usize,
        /// The module after whose import they were found, or the whole
        /// preload when only the count was seen.
        modules: Vec<String>,
    },
    /// No uid of the jail's range could be had for a new interpreter.
    #[error("a warm interpreter did not start: {0}")]
    Uid(#[source] crate::UidError),
    /// An interpreter stopped answering; it was ended and is replaced. A
    /// call its interpreter died without reading is sent to another
    /// first (once per interpreter of the pool, and once more, while its
    /// wall-clock limit lasts); this is the error of a call that may have
    /// run, of the last try, or of a call that no other interpreter took
    /// in time.
    #[error("the warm interpreter did not answer: {0}")]
    Lost(String),
    /// The call's Landlock ruleset could not be built.
    #[error("could not build the call's Landlock ruleset: {0}")]
    Landlock(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `numpy, six`, quoted; or what an empty preload means.
fn preload_list(modules: &[String]) -> String {
    if modules.is_empty() {
        return "its driver (no preload)".to_owned();
    }
    modules
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `safe_exec` failed (CodeJail's `SafeExecException`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafeExecError {
    /// The code raised, crashed or hit a limit.
    #[error("{message}")]
    Failed {
        /// The last line of the traceback, and the kill reason if any
        /// (bounded, control characters escaped).
        message: String,
        /// The run.
        result: Box<JailResult>,
    },
    /// The run could not be set up.
    #[error(transparent)]
    Jail(#[from] JailError),
    /// The globals that came back were unreadable or too large.
    #[error(transparent)]
    Result(#[from] codejail_pyexec::ResultError),
}

impl SafeExecError {
    /// The text of CodeJail's `SafeExecException` for this failure, byte for
    /// byte (`Couldn't execute jailed code: stdout: b'...', stderr: b'...'
    /// with status code: N`); for an error that is not the code's, its
    /// message.
    pub fn codejail_message(&self) -> String {
        match self {
            SafeExecError::Failed { result, .. } => {
                codejail_pyexec::safe_exec_exception(&result.stdout, &result.stderr, result.status)
            }
            other => other.to_string(),
        }
    }

    /// The run, when the code ran and failed.
    pub fn result(&self) -> Option<&JailResult> {
        match self {
            SafeExecError::Failed { result, .. } => Some(result),
            _ => None,
        }
    }
}

/// At most `max` bytes of `bytes` as text (the end, where an error
/// message is), invalid UTF-8 replaced and control characters escaped, so
/// that output from the jail cannot drive the caller's terminal.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let mut out = String::with_capacity(text.len() + 3);
    if start > 0 {
        out.push('…');
    }
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        assert_eq!(excerpt(b"plain", 100), "plain");
        assert_eq!(excerpt(b"\x1b[31mred", 100), "\\u{1b}[31mred");
        let long = vec![b'x'; 5000];
        let e = excerpt(&long, 10);
        assert_eq!(e, format!("…{}", "x".repeat(10)));
    }
}
