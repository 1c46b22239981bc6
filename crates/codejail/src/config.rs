//! What a jail is made of: its program, language, sandbox user and
//! confinement policy.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use codejail_proc::LayerSet;

use crate::uids::Uids;

/// How a jail confines, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confinement {
    /// Every layer the machine offers; refuses to run where there is no
    /// filesystem confinement (Landlock, or AppArmor with a profile).
    #[default]
    Auto,
    /// Every layer the machine offers, and these must be among them.
    Require(LayerSet),
    /// No confinement (CodeJail's `ALWAYS_BE_UNSAFE`): `safe_exec` becomes
    /// `not_safe_exec`. Logged loudly on every call.
    Unsafe,
}

impl FromStr for Confinement {
    type Err = String;

    /// `auto`, `unsafe`, or `require:landlock,seccomp`.
    fn from_str(s: &str) -> Result<Confinement, String> {
        match s {
            "auto" => Ok(Confinement::Auto),
            "unsafe" => Ok(Confinement::Unsafe),
            other => match other.strip_prefix("require:") {
                Some(list) => list
                    .parse()
                    .map(Confinement::Require)
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "unknown policy `{other}`; use auto, unsafe or require:LAYER,..."
                )),
            },
        }
    }
}

/// The language of a jail: the arguments its program takes before the
/// code file, and whether `safe_exec` (Python's `exec` with JSON globals)
/// is available.
///
/// Several jails may share a language (two Python versions, say); the
/// jail's name plays no part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lang {
    name: String,
    args: Vec<String>,
    safe_exec: bool,
}

impl Lang {
    /// Python 3: `-E -B` (ignore `PYTHON*` variables, write no bytecode),
    /// with `safe_exec`.
    pub fn python3() -> Lang {
        Lang {
            name: "python3".into(),
            args: vec!["-E".into(), "-B".into()],
            safe_exec: true,
        }
    }

    /// Any other program: no extra arguments, no `safe_exec`.
    pub fn other() -> Lang {
        Lang {
            name: "other".into(),
            args: Vec::new(),
            safe_exec: false,
        }
    }

    /// A language of the caller's: `args` come before the code file.
    /// `safe_exec` is refused for it.
    pub fn custom(name: impl Into<String>, args: Vec<String>) -> Lang {
        Lang {
            name: name.into(),
            args,
            safe_exec: false,
        }
    }

    /// The language's name (`python3`, `other`, or the custom name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments before the code file.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Whether `safe_exec` works in this language.
    pub fn has_safe_exec(&self) -> bool {
        self.safe_exec
    }
}

impl FromStr for Lang {
    type Err = String;

    /// `python3` (also `python` and `python2`, CodeJail's names) or
    /// `other`.
    fn from_str(s: &str) -> Result<Lang, String> {
        match s {
            "python3" | "python" | "python2" => Ok(Lang::python3()),
            "other" => Ok(Lang::other()),
            other => Err(format!(
                "unknown language `{other}`; use python3, other, or {{ name = \"...\", args = [...] }}"
            )),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a jail is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JailConfig {
    /// The interpreter or program.
    pub bin: PathBuf,
    /// Its language (default Python 3).
    pub lang: Lang,
    /// The sandbox user (name or uid) for a caller that can switch uid;
    /// default `nobody`. Its primary group is the group of every run
    /// (what may read the sandbox's virtualenv); its uid is the uid of
    /// every run only when [`JailConfig::uids`] is [`Uids::Off`].
    pub user: Option<String>,
    /// Where each run's uid comes from when the caller can switch uid:
    /// a range, one uid of its own per run at the same time (default
    /// [`UidRange::DEFAULT`](crate::UidRange::DEFAULT)), or
    /// [`Uids::Off`]: every run as `user`. A `user` that is root (with
    /// `allow_root_user`) runs as root, and the range does not apply.
    pub uids: Uids,
    /// The root-only directory of the uid lock files (default
    /// [`DEFAULT_UID_LOCK_DIR`](crate::DEFAULT_UID_LOCK_DIR)); every
    /// process that shares a range must use the same one.
    pub uid_lock_dir: Option<PathBuf>,
    /// Lets `user` be root (uid 0). Off by default: a jail whose code runs
    /// as root is refused ([`ConfigError::RootUser`](crate::ConfigError::RootUser)).
    pub allow_root_user: bool,
    /// Lets the code start other programs (settings key `allow_exec`).
    /// Off by default, as under CodeJail's AppArmor profile: the jail's
    /// program is the only one a run starts, and `subprocess.run(...)`,
    /// `os.execv(...)` and the like fail with `PermissionError: [Errno
    /// 13]` (the `no_exec` layer). On, the code may start what it can
    /// read and the filesystem rules let it execute (the interpreter's
    /// directories and the system's programs; never what it writes in
    /// `tmp/`), on the cold and the warm path alike.
    pub allow_exec: bool,
    /// The confinement policy.
    pub confinement: Confinement,
    /// An AppArmor profile to switch to, where the kernel has AppArmor.
    pub apparmor_profile: Option<String>,
    /// Where jail directories are made (default: the system temp dir).
    pub jail_parent: Option<PathBuf>,
    /// Modules each warm interpreter of the jail imports before it serves
    /// (e.g. `numpy`, `random2`, `six`), inside its confinement, with one
    /// thread per numerical library: a call that imports them then costs a
    /// fork. Default none. Python jails only; cold runs ignore it.
    pub preload: Vec<String>,
    /// What the jail's code may read besides its own directory and the
    /// interpreter's (a course's data, a shared library of problems):
    /// absolute paths that exist, read under Landlock and bound read-only
    /// at their own paths in the private root.
    pub read_paths: Vec<PathBuf>,
}

impl JailConfig {
    /// A Python 3 jail of `bin` with the defaults.
    pub fn new(bin: impl Into<PathBuf>) -> JailConfig {
        JailConfig {
            bin: bin.into(),
            lang: Lang::python3(),
            user: None,
            uids: Uids::default(),
            uid_lock_dir: None,
            allow_root_user: false,
            allow_exec: false,
            confinement: Confinement::Auto,
            apparmor_profile: None,
            jail_parent: None,
            preload: Vec::new(),
            read_paths: Vec::new(),
        }
    }
}

/// Whether `name` is a Python module name: identifiers (ASCII letters,
/// digits, `_`, not starting with a digit) joined by dots.
pub(crate) fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}
