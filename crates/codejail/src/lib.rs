//! Run untrusted code in throw-away jails: CodeJail's API in Rust.
//!
//! ```no_run
//! use codejail::{Jail, JailCode, JailConfig, SafeExecOptions};
//! use serde_json::{Map, json};
//!
//! let jail = Jail::new("python", JailConfig::new("/usr/bin/python3"))?;
//! let result = jail.jail_code(&JailCode::code("print(6 * 7)"))?;
//! assert_eq!(result.stdout, b"42\n");
//!
//! let mut globals = Map::new();
//! globals.insert("x".into(), json!(20));
//! jail.safe_exec("y = x + 22", &mut globals, &SafeExecOptions::default())?;
//! assert_eq!(globals["y"], 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Jail`] is made once and used from any thread. Each run gets a fresh
//! jail directory (`codejail-fs`), the effective limits (global, then the
//! context's overrides, then the call's), and every confinement layer the
//! machine offers (`codejail-proc`); [`Jail::safe_exec`] adds Python
//! `exec` semantics (`codejail-pyexec`). [`Jail::warm`] keeps a pool of
//! interpreters for the same contract at a fraction of the cost; both
//! implement [`Runner`].
//!
//! CodeJail's module-level API keeps its shape on top: [`configure`]
//! registers a jail under a name, [`get_codejail`], and the free functions
//! [`jail_code`], [`safe_exec`], [`not_safe_exec`] use the registry.
#![deny(missing_docs)]

mod cancel;
mod config;
mod error;
mod jail;
mod leftovers;
mod limits;
mod python;
mod registry;
mod request;
mod runner;
mod settings;
mod uids;
mod warm;

pub use cancel::Cancel;
pub use codejail_fs::{NameError, StageError, validate_name as validate_file_name};
pub use codejail_proc::owner;
pub use codejail_proc::{
    Availability, CGROUP_ENV, CgroupMode, Cgroups, Enforcement, HeldSignals, KillReason,
    LANDLOCK_ABI, Layer, LayerSet, Policy, Probe, SpawnError, Sysctls, Truncated, UnknownLayer,
    UsernsCause, UsernsDiagnosis, UsernsHost, seccomp, this_program, unenforced,
};
pub use codejail_pyexec::ResultError;
pub use config::{Confinement, JailConfig, Lang};
pub use error::{ConfigError, JailError, ProbeError, SafeExecError, WarmError};
pub use jail::{Jail, check_globals};
pub use leftovers::{GcReport, gc, gc_cgroups};
pub use limits::{
    LimitError, LimitName, LimitSet, effective_limits, override_limit, parse_assignment,
    reset_limits, set_limit,
};
pub use registry::{
    configure, configure_with, get_codejail, is_configured, jail_code, not_safe_exec, safe_exec,
};
pub use request::{CallOptions, JailCode, JailResult, SafeExecOptions, StdinFd};
pub use runner::Runner;
pub use settings::{ServiceSettings, Settings, SettingsError};
pub use uids::{DEFAULT_UID_LOCK_DIR, UidError, UidRange, UidRangeError, Uids, gc_leases};
pub use warm::{Health, Warm, WarmOptions};
