//! The host's side of cgroups: which hierarchies are mounted, where this
//! process sits, and the cgroup v2 subtree it may manage, made usable once
//! per process.
//!
//! cgroup v2 works by delegation (the kernel's `cgroup-v2.rst`,
//! "Delegation"; systemd's `CGROUP_DELEGATION.md`): a process creates
//! cgroups only below one that was handed to it, and a cgroup enables
//! controllers for its children only while it holds no process itself
//! ("no internal processes"; the root cgroup is exempt). So, once per
//! process ([`detect`], called by the probe):
//!
//! 1. the delegated cgroup, the *base*, is found: the one configured
//!    ([`CgroupOptions::delegated`], [`ENV`]); else this process's own
//!    cgroup when systemd marked it delegated (`Delegate=yes` sets the
//!    `trusted.delegate` or `user.delegate` attribute on it); else its
//!    parent when so marked (this process already sits in a leaf of it:
//!    systemd's `DelegateSubgroup=`, or an earlier codejail process);
//!    else the root of a cgroup namespace (a container's own cgroup,
//!    if mounted writable); else the host's root cgroup when no systemd
//!    runs (nothing else manages the tree). Nothing else: below a cgroup
//!    systemd manages and did not delegate, creating cgroups breaks its
//!    single-writer rule;
//! 2. every process in the base moves to the leaf [`LEAF`] below it
//!    (not from the host's root, which may hold processes);
//! 3. each wanted controller ([`CgroupOptions::controllers`]) the base is
//!    offered is enabled in its `cgroup.subtree_control`;
//! 4. a trial cgroup is made in the base, a child is cloned into it with
//!    `CLONE_INTO_CGROUP` and reaped, and the cgroup removed: the v2 tree
//!    counts as usable only once that worked.
//!
//! Each run's cgroup is then made in the base, beside the leaf, and its
//! program cloned into it; the caller and the supervisors stay in the leaf.
//!
//! cgroup v1 (legacy and hybrid hosts) has no delegation to speak of: its
//! `memory` and `pids` hierarchies are used below this process's own
//! cgroup when it can write there (root), as before.
//!
//! `mounts`: the hierarchies and this process's place in them, cgroup v1;
//! `delegate`: steps 1 to 4, the delegated v2 subtree.

mod delegate;
mod mounts;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use delegate::delegate;
use mounts::{detect_v1, mounts, own_path, under_mount, v1_controllers};

/// The variable that names the delegated cgroup v2 directory (read by
/// [`CgroupOptions::from_env`]).
pub const ENV: &str = "CODEJAIL_CGROUP";

/// The leaf this process's processes move to, below the delegated cgroup.
pub const LEAF: &str = "codejail-caller";

/// The v2 controllers asked for by default, with the limit each serves:
/// `memory` for a memory limit (`memory.max`, `memory.swap.max`; nothing
/// else enforces one), `pids` for the process limit (`pids.max`; optional:
/// `RLIMIT_NPROC` limits the run without it, per user namespace).
pub const DEFAULT_CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// How this process's cgroups are found and set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupOptions {
    /// The cgroup v2 directory delegated to this process (a path below the
    /// cgroup2 mount, such as `/sys/fs/cgroup/codejail.slice/jails`), used
    /// instead of finding one. Runs' cgroups are made in it; if this
    /// process is in it, its processes move to [`LEAF`] first.
    pub delegated: Option<PathBuf>,
    /// The v2 controllers to enable for the runs (default
    /// [`DEFAULT_CONTROLLERS`]). Only those the delegated cgroup is
    /// offered can be.
    pub controllers: Vec<String>,
}

impl Default for CgroupOptions {
    fn default() -> CgroupOptions {
        CgroupOptions {
            delegated: None,
            controllers: DEFAULT_CONTROLLERS.map(str::to_owned).to_vec(),
        }
    }
}

impl CgroupOptions {
    /// The defaults, with [`CgroupOptions::delegated`] from [`ENV`] when it
    /// is set and not empty.
    pub fn from_env() -> CgroupOptions {
        CgroupOptions {
            delegated: std::env::var_os(ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..CgroupOptions::default()
        }
    }
}

/// Which cgroup hierarchies the host mounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupMode {
    /// None is mounted (or none is visible here).
    #[default]
    None,
    /// cgroup v1 controller hierarchies only ("legacy").
    V1,
    /// v1 controller hierarchies and a v2 tree (systemd's "hybrid",
    /// usually at `/sys/fs/cgroup/unified`, with few or no controllers).
    Hybrid,
    /// The v2 tree only ("unified": current distributions, Kubernetes).
    V2,
}

impl CgroupMode {
    /// `none`, `v1`, `hybrid` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            CgroupMode::None => "none",
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        }
    }
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why this process may manage the cgroup v2 subtree it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelegatedBy {
    /// It was configured ([`CgroupOptions::delegated`], [`ENV`]).
    Configured,
    /// systemd marked it delegated (`Delegate=yes`).
    Systemd,
    /// It is the root of this process's cgroup namespace (a container's
    /// own cgroup), mounted writable.
    NamespaceRoot,
    /// It is the host's root cgroup and no systemd runs to manage it.
    HostRoot,
}

impl DelegatedBy {
    /// A few words on it, for `doctor`.
    pub fn describe(self) -> &'static str {
        match self {
            DelegatedBy::Configured => "configured",
            DelegatedBy::Systemd => "delegated by systemd (Delegate=)",
            DelegatedBy::NamespaceRoot => "the root of this container's cgroup namespace",
            DelegatedBy::HostRoot => "the host's root cgroup (no systemd runs)",
        }
    }
}

/// The cgroup v2 subtree this process manages, set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    /// The delegated cgroup: runs' cgroups are made in it.
    pub base: PathBuf,
    /// Why it is this process's to manage.
    pub by: DelegatedBy,
    /// Where this process lives below [`Delegation::base`] (its processes
    /// were moved to [`LEAF`] when they were in the base itself); `None`
    /// when this process lives elsewhere, or in the host's root cgroup.
    pub leaf: Option<PathBuf>,
    /// The controllers enabled for the base's children (those asked for
    /// that could be).
    pub controllers: Vec<String>,
    /// The controllers asked for that could not be enabled, each with why
    /// and what to do.
    pub missing: Vec<(String, String)>,
}

impl Delegation {
    /// Whether runs get `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// Why runs do not get `controller`, if they do not.
    pub fn why_not(&self, controller: &str) -> Option<String> {
        if self.has(controller) {
            return None;
        }
        Some(
            self.missing
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, why)| why.clone())
                .unwrap_or_else(|| {
                    format!(
                        "the `{controller}` controller was not asked for (CgroupOptions::controllers)"
                    )
                }),
        )
    }
}

/// The cgroups this process can give its runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroups {
    /// Which hierarchies the host mounts.
    pub mode: CgroupMode,
    /// This process's cgroup v2 directory when it was probed (before any
    /// move), if v2 is mounted and it is visible.
    pub own_v2: Option<PathBuf>,
    /// The cgroup v2 subtree runs' cgroups are made in, when usable.
    pub v2: Option<Delegation>,
    /// Why there is no usable v2 subtree, and what to do.
    pub v2_missing: Option<String>,
    /// The v1 `memory` directory runs are created under, when writable.
    pub v1_memory: Option<PathBuf>,
    /// The v1 `pids` directory runs are created under, when writable.
    pub v1_pids: Option<PathBuf>,
    /// Why there is no usable v1 `memory` directory.
    pub v1_missing: Option<String>,
}

impl Cgroups {
    /// Whether a run can have a cgroup of its own at all.
    pub fn available(&self) -> bool {
        self.v2.is_some() || self.v1_memory.is_some()
    }

    /// Why a run cannot have a cgroup of its own, and what to do.
    pub fn why_unavailable(&self) -> Option<String> {
        if self.available() {
            return None;
        }
        let mut why: Vec<String> = Vec::new();
        why.extend(self.v2_missing.clone());
        if self.mode != CgroupMode::V2 {
            why.extend(self.v1_missing.clone());
        }
        if why.is_empty() {
            why.push("no cgroup hierarchy is mounted".into());
        }
        Some(why.join("; "))
    }

    /// Whether a run can have `controller` from the v2 subtree.
    pub fn v2_has(&self, controller: &str) -> bool {
        self.v2.as_ref().is_some_and(|d| d.has(controller))
    }

    /// Whether a memory limit can be enforced (v2 `memory` delegated, or
    /// a writable v1 `memory` hierarchy).
    pub fn has_memory(&self) -> bool {
        self.v1_memory.is_some() || self.v2_has("memory")
    }

    /// Whether a per-run process limit can be enforced by a cgroup.
    pub fn has_pids(&self) -> bool {
        self.v1_pids.is_some() || self.v2_has("pids")
    }

    /// Why a memory limit cannot be enforced, and what to do.
    pub fn why_no_memory(&self) -> Option<String> {
        if self.has_memory() {
            return None;
        }
        let v2 = match &self.v2 {
            Some(d) => d.why_not("memory"),
            None => self.v2_missing.clone(),
        };
        let v1 = (self.mode != CgroupMode::V2)
            .then(|| self.v1_missing.clone())
            .flatten();
        let why: Vec<String> = v2.into_iter().chain(v1).collect();
        Some(if why.is_empty() {
            "no memory controller is mounted".into()
        } else {
            why.join("; ")
        })
    }

    /// "v2", "v1", "hybrid" or "none": the hierarchies mounted.
    pub fn version(&self) -> &'static str {
        self.mode.name()
    }

    /// The directories runs' cgroups are made in
    /// (`codejail-<pid>.<start>-<n>`, see [`crate::owner`]).
    pub fn run_parents(&self) -> Vec<&Path> {
        self.v2
            .iter()
            .map(|d| d.base.as_path())
            .chain(self.v1_memory.as_deref())
            .chain(self.v1_pids.as_deref())
            .collect()
    }
}

/// Finds the hierarchies, and sets the delegated v2 subtree up (see the
/// module's documentation). Called once per process by the probe; each
/// step is idempotent, so calling it again is harmless.
pub(crate) fn detect(options: &CgroupOptions) -> Cgroups {
    let mut out = Cgroups::default();
    let (Ok(mountinfo), Ok(own)) = (
        fs::read_to_string("/proc/self/mountinfo"),
        fs::read_to_string("/proc/self/cgroup"),
    ) else {
        out.v2_missing = Some("/proc/self/mountinfo or /proc/self/cgroup is unreadable".into());
        return out;
    };
    let mounts = mounts(&mountinfo);
    let v2_mount = mounts.iter().find(|m| m.fstype == "cgroup2");
    let v1_mounted = mounts
        .iter()
        .any(|m| m.fstype == "cgroup" && !v1_controllers(m).is_empty());
    out.mode = match (v2_mount.is_some(), v1_mounted) {
        (true, true) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::V2,
        (false, true) => CgroupMode::V1,
        (false, false) => CgroupMode::None,
    };
    detect_v1(&mounts, &own, &mut out);
    match v2_mount {
        None => out.v2_missing = Some("cgroup v2 is not mounted".into()),
        Some(mount) => {
            out.own_v2 = own_path(&own, str::is_empty).and_then(|p| under_mount(mount, &p));
            match delegate(mount, out.own_v2.as_deref(), options) {
                Ok(d) => out.v2 = Some(d),
                Err(why) => out.v2_missing = Some(why),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_memory_controller_says_why() {
        let cg = Cgroups {
            mode: CgroupMode::V2,
            v2: Some(Delegation {
                base: "/sys/fs/cgroup/a.service".into(),
                by: DelegatedBy::Systemd,
                leaf: None,
                controllers: vec!["pids".into()],
                missing: vec![("memory".into(), "not delegated".into())],
            }),
            ..Cgroups::default()
        };
        assert!(cg.available());
        assert!(cg.has_pids() && !cg.has_memory());
        assert_eq!(cg.why_no_memory().as_deref(), Some("not delegated"));
        let none = Cgroups {
            mode: CgroupMode::V2,
            v2_missing: Some("not delegated: set Delegate=yes".into()),
            ..Cgroups::default()
        };
        assert!(!none.available());
        assert!(none.why_unavailable().unwrap().contains("Delegate=yes"));
        assert!(none.why_no_memory().unwrap().contains("Delegate=yes"));
    }
}
