//! Run untrusted code in throw-away jails: CodeJail's API in Rust.
//!
//! ```no_run
//! use serde_json::{Map, json};
//!
//! let jail = codejail::configure("python", "/usr/bin/python3", None)?;
//! let result = jail.jail_code(&codejail::JailCode {
//!     code: Some("print(6 * 7)".into()),
//!     ..Default::default()
//! })?;
//! assert_eq!(result.stdout, b"42\n");
//!
//! let mut globals = Map::new();
//! globals.insert("x".into(), json!(20));
//! jail.safe_exec("y = x + 22", &mut globals, &Default::default())?;
//! assert_eq!(globals["y"], 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A jail is configured once ([`configure`], or a [`Settings`] file) and
//! used from any thread. Each run gets a fresh jail directory
//! (`codejail-fs`), the effective limits (global, then the context's
//! overrides, then the call's), and every confinement layer the machine
//! offers (`codejail-proc`); [`Jail::safe_exec`] adds Python `exec`
//! semantics (`codejail-pyexec`).
#![deny(missing_docs)]

mod error;
mod jail;
mod limits;
pub mod selftest;
mod settings;
mod warm;

pub use codejail_fs::{NameError, validate_name as validate_file_name};
pub use codejail_proc::{Availability, KillReason, Layer, LayerSet, Outcome, Policy, Probe};
pub use error::{ConfigError, JailError, SafeExecError};
pub use jail::{
    Confinement, Jail, JailCode, JailConfig, JailResult, SafeExecOptions, configure,
    configure_with, get_codejail, is_configured, jail_code, not_safe_exec, safe_exec,
};
pub use limits::{
    LimitError, LimitName, Limits, effective_limits, override_limit, parse_assignment,
    reset_limits, set_limit,
};
pub use settings::{Settings, SettingsError};
pub use warm::Warm;
