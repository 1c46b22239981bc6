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
//! The caller's thread makes the run's namespaces (a process holds them),
//! then clones a *supervisor* (new session, child subreaper, parent-death
//! signal) that joins them and clones the *program*. When the program ends
//! or the caller asks, the supervisor kills whatever is left (in a pid
//! namespace by killing its init, the holder), so grandchildren that called
//! `setsid()` or double-forked are killed too. The caller meanwhile runs
//! the [`pump`]: one `poll` loop that feeds stdin, drains stdout and stderr
//! under the output cap, and waits on the supervisor's pidfd with the
//! deadline as its timeout. See `ARCHITECTURE.md`.
//!
//! # Layout
//!
//! - `child/`: the cloned processes (holder, supervisor, program) and the
//!   raw system calls they make; the only module with `unsafe`, and the
//!   only one that forks.
//! - `spawn/`: [`Spawn`] and the caller's side of a run: what the children
//!   need, built before the clone; the caller's handles on the holder and
//!   the supervisor, which kill and reap them; the [`pump`].
//! - The rest is policy and plumbing: layers and the probe, Landlock rules,
//!   the seccomp table, cgroups, limits, the outcome and errors.
#![deny(missing_docs)]

mod cgroup;
mod child;
mod error;
mod fsrules;
mod layers;
mod leftover;
mod limits;
mod outcome;
pub mod owner;
mod probe;
pub mod root;
pub mod seccomp;
mod spawn;
mod userns;
mod users;

pub use cgroup::{
    CgroupError, CgroupMode, CgroupOptions, Cgroups, DEFAULT_CONTROLLERS, DelegatedBy, Delegation,
    ENV as CGROUP_ENV, LEAF as CGROUP_LEAF,
};
pub use child::HeldSignals;
pub use error::SpawnError;
pub use fsrules::{
    Enforcement, FsRules, FsRulesError, LANDLOCK_ABI, Tmpfs, effective_abi, read_write_access,
    refuses_unix_sockets, unenforced,
};
pub use layers::{Layer, LayerSet, Policy, UnknownLayer};
pub use limits::Limits;
pub use outcome::{KillReason, Outcome, Truncated};
pub use probe::{AlreadyProbed, Availability, Needs, Probe};
pub use spawn::{DEFAULT_PATH, NOBODY, Spawn, nproc_overhead, pump};
pub use userns::{Sysctls, UsernsCause, UsernsDiagnosis, UsernsHost, this_program};
pub use users::{lookup_group, lookup_user};
