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

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

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

    /// The directories runs' cgroups are made in (`codejail-<pid>-<n>`).
    pub fn run_parents(&self) -> Vec<&Path> {
        self.v2
            .iter()
            .map(|d| d.base.as_path())
            .chain(self.v1_memory.as_deref())
            .chain(self.v1_pids.as_deref())
            .collect()
    }
}

/// One line of `/proc/self/mountinfo` that matters here.
#[derive(Debug)]
struct Mount {
    /// The mount's root within its hierarchy.
    root: String,
    point: PathBuf,
    fstype: String,
    super_opts: String,
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let root = l.nth(3)?;
            let point = l.next()?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let super_opts = r.nth(1).unwrap_or("");
            Some(Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                fstype: fstype.to_owned(),
                super_opts: super_opts.to_owned(),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of this process in the hierarchy whose controller list matches.
pub(crate) fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctrl = parts.next()?;
        let path = parts.next()?;
        matches(ctrl).then(|| path.to_owned())
    })
}

/// Where the cgroup `path` (as `/proc/self/cgroup` says it) is under
/// `mount`, if the mount shows it.
fn under_mount(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(rest)
    })
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

/// The v1 controllers a `cgroup` mount carries (its options also hold
/// `rw`, `name=systemd`, `xattr`, `clone_children`, ...).
fn v1_controllers(mount: &Mount) -> Vec<&str> {
    const CONTROLLERS: [&str; 14] = [
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    ];
    mount
        .super_opts
        .split(',')
        .filter(|o| CONTROLLERS.contains(o))
        .collect()
}

/// The v1 `memory` and `pids` directories below this process's own, when
/// this process can write there.
fn detect_v1(mounts: &[Mount], own: &str, out: &mut Cgroups) {
    for controller in ["memory", "pids"] {
        let Some(mount) = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && v1_controllers(m).contains(&controller))
        else {
            if controller == "memory" {
                out.v1_missing = Some("no cgroup v1 memory hierarchy is mounted".into());
            }
            continue;
        };
        let dir = own_path(own, |ctrl| ctrl.split(',').any(|c| c == controller))
            .and_then(|p| under_mount(mount, &p));
        let usable = match &dir {
            None => Err(format!(
                "this process's v1 {controller} cgroup is not visible under {}",
                mount.point.display()
            )),
            Some(dir) => writable(dir).map_err(|e| {
                format!(
                    "the v1 {controller} cgroup {} is not writable by uid {}: {e}",
                    dir.display(),
                    rustix::process::geteuid().as_raw()
                )
            }),
        };
        match (controller, usable, dir) {
            ("memory", Ok(()), dir) => out.v1_memory = dir,
            ("memory", Err(why), _) => out.v1_missing = Some(why),
            (_, Ok(()), dir) => out.v1_pids = dir,
            _ => {}
        }
    }
}

/// Write and search access to `dir` (the kernel's answer: `EROFS` on a
/// read-only mount, `EACCES` without permission).
fn writable(dir: &Path) -> Result<(), io::Error> {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(io::Error::from)
}

/// What to do when no delegated cgroup is found.
fn advice() -> String {
    format!(
        "run codejail as a systemd service with `Delegate=yes` in its [Service] section (or under `systemd-run -p Delegate=yes`), or set {ENV} to a cgroup v2 directory delegated to this process"
    )
}

/// Steps 1 to 4 of the module's documentation: the base, the leaf move,
/// the controllers, the trial.
fn delegate(
    mount: &Mount,
    own: Option<&Path>,
    options: &CgroupOptions,
) -> Result<Delegation, String> {
    let (base, by) = find_base(mount, own, options)?;
    check_writable(&base, by)?;
    let leaf = match own {
        Some(own) if own == base && by != DelegatedBy::HostRoot => Some(move_to_leaf(&base)?),
        Some(own) if own.starts_with(&base) && own != base => Some(own.to_owned()),
        _ => None,
    };
    let (controllers, missing) = enable(&base, &options.controllers);
    trial(&base)?;
    Ok(Delegation {
        base,
        by,
        leaf,
        controllers,
        missing,
    })
}

fn find_base(
    mount: &Mount,
    own: Option<&Path>,
    options: &CgroupOptions,
) -> Result<(PathBuf, DelegatedBy), String> {
    if let Some(dir) = &options.delegated {
        let named = format!("{ENV}={}", dir.display());
        if !dir.is_absolute() || !dir.starts_with(&mount.point) {
            return Err(format!(
                "{named}: not a directory below the cgroup v2 mount {}",
                mount.point.display()
            ));
        }
        match rustix::fs::statfs(dir) {
            Ok(st) if st.f_type == libc::CGROUP2_SUPER_MAGIC => {}
            Ok(_) => return Err(format!("{named}: not a cgroup v2 directory")),
            Err(e) => return Err(format!("{named}: {}", io::Error::from(e))),
        }
        return Ok((dir.clone(), DelegatedBy::Configured));
    }
    let Some(own) = own else {
        return Err(format!(
            "this process's cgroup v2 is not visible under {}; set {ENV} to a cgroup v2 directory delegated to this process",
            mount.point.display()
        ));
    };
    if marked_delegated(own) {
        return Ok((own.to_owned(), DelegatedBy::Systemd));
    }
    if let Some(parent) = own.parent().filter(|p| p.starts_with(&mount.point)) {
        if marked_delegated(parent) {
            return Ok((parent.to_owned(), DelegatedBy::Systemd));
        }
    }
    if own == mount.point {
        // The root of what this process sees: the host's root cgroup has
        // no `cgroup.type`; a cgroup namespace's root is a plain cgroup.
        if own.join("cgroup.type").exists() {
            return Ok((own.to_owned(), DelegatedBy::NamespaceRoot));
        }
        if systemd_runs() {
            return Err(format!(
                "this process is in the root cgroup, which systemd manages: {}",
                advice()
            ));
        }
        return Ok((own.to_owned(), DelegatedBy::HostRoot));
    }
    Err(format!(
        "this process's cgroup {} is not delegated to it: {}",
        own.display(),
        advice()
    ))
}

/// Whether systemd marked `dir` delegated: `trusted.delegate` (readable
/// with `CAP_SYS_ADMIN`) or `user.delegate` set to `1`, as systemd's own
/// `cg_is_delegated` reads them.
fn marked_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let mut value = [0u8; 8];
        matches!(rustix::fs::getxattr(dir, *name, &mut value), Ok(1) if value[0] == b'1')
    })
}

/// Whether systemd is the service manager (`sd_booted()`'s test).
fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn check_writable(base: &Path, by: DelegatedBy) -> Result<(), String> {
    let files = [
        base.to_owned(),
        base.join("cgroup.procs"),
        base.join("cgroup.subtree_control"),
    ];
    for file in &files {
        let access = if file == base {
            writable(file)
        } else {
            rustix::fs::access(file, rustix::fs::Access::WRITE_OK).map_err(io::Error::from)
        };
        if let Err(e) = access {
            let euid = rustix::process::geteuid().as_raw();
            let hint = match (e.raw_os_error(), by) {
                (Some(libc::EROFS), DelegatedBy::NamespaceRoot | DelegatedBy::HostRoot) => {
                    " (the cgroup file system is mounted read-only: a container's default; give the container a writable cgroup namespace, or run codejail on the host)".to_owned()
                }
                (Some(libc::EROFS), _) => " (the cgroup file system is mounted read-only)".to_owned(),
                _ if euid != 0 => format!(
                    " (a delegated cgroup belongs to the user it is delegated to: systemd does this for `User=` with `Delegate=yes`; else chown the directory, its cgroup.procs and cgroup.subtree_control to uid {euid})"
                ),
                _ => String::new(),
            };
            return Err(format!(
                "{} is not writable by uid {euid}: {e}{hint}",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Moves every process in `base` to its leaf [`LEAF`] (made if missing),
/// so that `base` holds none and may enable controllers for its children.
/// Processes may fork meanwhile: the list is read again until it is empty.
fn move_to_leaf(base: &Path) -> Result<PathBuf, String> {
    let leaf = base.join(LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("could not create {}: {e}", leaf.display())),
    }
    let procs = base.join("cgroup.procs");
    let target = leaf.join("cgroup.procs");
    for _ in 0..100 {
        let pids = super::members(&procs);
        if pids.is_empty() {
            return Ok(leaf);
        }
        for pid in pids {
            match fs::write(&target, pid.to_string()) {
                Ok(()) => {}
                // Gone meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(format!(
                        "could not move process {pid} from {} to {}: {e}",
                        base.display(),
                        leaf.display()
                    ));
                }
            }
        }
    }
    Err(format!(
        "{} still holds processes after they were moved to {LEAF} a hundred times",
        base.display()
    ))
}

/// Enables each wanted controller for `base`'s children, one at a time so
/// that one refusal does not cost the others. Returns those enabled and
/// those not, with why.
fn enable(base: &Path, wanted: &[String]) -> (Vec<String>, Vec<(String, String)>) {
    let words = |file: &str| -> Vec<String> {
        fs::read_to_string(base.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let offered = words("cgroup.controllers");
    let subtree = base.join("cgroup.subtree_control");
    let mut enabled = Vec::new();
    let mut missing = Vec::new();
    for c in wanted {
        if words("cgroup.subtree_control").contains(c) {
            enabled.push(c.clone());
            continue;
        }
        if !offered.contains(c) {
            let list = if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(" ")
            };
            missing.push((
                c.clone(),
                format!(
                    "the `{c}` controller is not delegated to {} (its cgroup.controllers: {list}); with systemd, `Delegate=yes` (or `Delegate={c}`) on the unit hands it over; on a hybrid host, `{c}` may be a v1 controller",
                    base.display()
                ),
            ));
            continue;
        }
        match fs::write(&subtree, format!("+{c}")) {
            Ok(()) => enabled.push(c.clone()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => missing.push((
                c.clone(),
                format!(
                    "{} holds processes, so cgroup v2 refuses to enable `{c}` for its children ({e}); point {ENV} at a cgroup that holds none, or at the one this process is in (its processes then move to {LEAF})",
                    base.display()
                ),
            )),
            Err(e) => missing.push((
                c.clone(),
                format!("could not enable `{c}` in {}: {e}", subtree.display()),
            )),
        }
    }
    (enabled, missing)
}

/// Makes a cgroup in `base`, clones a child into it, removes it.
fn trial(base: &Path) -> Result<(), String> {
    // Unique per call: the probe may be made on two threads at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base.join(format!("codejail-{}-probe-{n}", std::process::id()));
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "could not create a cgroup in {}: {e}",
                base.display()
            ));
        }
    }
    let cloned = rustix::fs::open(
        &dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .and_then(|fd| crate::child::try_clone_into_cgroup(&fd));
    let removed = super::remove(&dir);
    cloned.map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM) => {
                " (clone3 is refused here, as a container's seccomp profile does; a run enters its v2 cgroup with clone3's CLONE_INTO_CGROUP: allow clone3 in the profile)"
            }
            _ => "",
        };
        format!(
            "a trial clone into a cgroup of {} failed: {e}{hint}",
            base.display()
        )
    })?;
    removed.map_err(|e| format!("could not remove {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_paths_are_found_per_hierarchy() {
        let own = "4:memory:/a/b\n8:pids:/\n0::/user.slice\n";
        assert_eq!(own_path(own, str::is_empty).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(own, |c| c == "memory").as_deref(), Some("/a/b"));
        assert_eq!(own_path(own, |c| c == "cpu"), None);
    }

    #[test]
    fn mountinfo_lines_give_root_point_type_and_options() {
        let info = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    35 31 0:32 /x /sys/fs/cgroup/mem\\040ory rw,relatime - cgroup cgroup rw,memory\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n";
        let m = mounts(info);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].fstype, "cgroup2");
        assert_eq!(m[1].point, Path::new("/sys/fs/cgroup/mem ory"));
        assert_eq!(m[1].root, "/x");
        assert_eq!(v1_controllers(&m[1]), ["memory"]);
        assert!(
            v1_controllers(&m[2]).is_empty(),
            "name=systemd is no controller"
        );
    }

    #[test]
    fn a_cgroup_path_is_found_under_the_mount_root_only() {
        let mount = Mount {
            root: "/system.slice/x.scope".into(),
            point: "/sys/fs/cgroup".into(),
            fstype: "cgroup2".into(),
            super_opts: "rw".into(),
        };
        assert_eq!(
            under_mount(&mount, "/system.slice/x.scope/a"),
            Some(PathBuf::from("/sys/fs/cgroup/a"))
        );
        assert_eq!(
            under_mount(&mount, "/system.slice/x.scope"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(under_mount(&mount, "/system.slice/x.scope2"), None);
        assert_eq!(under_mount(&mount, "/user.slice"), None);
    }

    #[test]
    fn a_configured_path_outside_the_mount_is_refused_with_its_name() {
        let mount = Mount {
            root: "/".into(),
            point: "/sys/fs/cgroup/unified".into(),
            fstype: "cgroup2".into(),
            super_opts: "rw".into(),
        };
        for bad in ["/tmp", "relative/path", "/sys/fs/cgroup/memory"] {
            let options = CgroupOptions {
                delegated: Some(bad.into()),
                ..CgroupOptions::default()
            };
            let err = find_base(&mount, None, &options).unwrap_err();
            assert!(err.contains(&format!("{ENV}={bad}")), "{err}");
        }
    }

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
