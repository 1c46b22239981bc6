//! Spawn one child process under hard limits, and always get it back.
//!
//! `codejail-proc` is the bottom layer of codejail. It knows nothing about
//! Python, jail directories or AppArmor profiles: it starts one program with
//! an explicit argv, working directory, environment and stdin, applies
//! resource limits, enforces a wall-clock deadline, caps the captured output,
//! and guarantees that no process of the run outlives [`Spawn::run`].
//!
//! ```no_run
//! use std::time::Duration;
//! use codejail_proc::{Limits, Spawn};
//!
//! let outcome = Spawn::new("/bin/echo")
//!     .arg("hello")
//!     .limits(Limits { wall: Some(Duration::from_secs(1)), ..Limits::default() })
//!     .run()?;
//! assert_eq!(outcome.status, 0);
//! assert_eq!(outcome.stdout, b"hello\n");
//! # Ok::<(), codejail_proc::SpawnError>(())
//! ```
//!
//! # How a run is shaped
//!
//! The caller's thread clones a *supervisor* (new session, child subreaper,
//! parent-death signal), which clones the *program*. The supervisor reaps
//! every orphan of the run and, when the program ends or the caller asks,
//! kills whatever is left, so grandchildren that called `setsid()` or
//! double-forked are killed too. The caller meanwhile feeds stdin and drains
//! stdout and stderr in one `poll` loop that also waits on the supervisor's
//! pidfd with the deadline as its timeout. See `ARCHITECTURE.md`.
#![deny(missing_docs)]

mod cgroup;
mod child;
mod error;
mod fsrules;
mod layers;
mod limits;
mod outcome;
mod probe;
pub mod seccomp;
mod spawn;
mod users;

pub use cgroup::CgroupError;
pub use error::SpawnError;
pub use fsrules::{Enforcement, FsRules, Tmpfs};
pub use layers::{Layer, LayerSet, Policy, UnknownLayer};
pub use limits::Limits;
pub use outcome::{KillReason, Outcome, Truncated};
pub use probe::{Availability, Cgroups, Needs, Probe};
pub use spawn::{NOBODY, Spawn};
pub use users::{lookup_group, lookup_user};
