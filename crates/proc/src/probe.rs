//! What this machine and this caller can confine with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::SpawnError;
use crate::child;
use crate::fsrules::{self, Enforcement};
use crate::layers::{Layer, LayerSet, Policy};

/// Whether a layer can be used, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// It can.
    Yes,
    /// It cannot, for this reason.
    No(String),
}

impl Availability {
    /// True for [`Availability::Yes`].
    pub fn is_yes(&self) -> bool {
        matches!(self, Availability::Yes)
    }

    fn from_result(r: Result<(), String>) -> Availability {
        match r {
            Ok(()) => Availability::Yes,
            Err(why) => Availability::No(why),
        }
    }
}

/// The cgroup hierarchies a run can use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroups {
    /// The cgroup v2 directory runs are created under (the caller's own
    /// cgroup), when it is writable.
    pub v2: Option<PathBuf>,
    /// Controllers enabled for children of [`Cgroups::v2`] or enableable
    /// there (`memory`, `pids`).
    pub v2_controllers: Vec<String>,
    /// The v1 `memory` directory runs are created under, when writable.
    pub v1_memory: Option<PathBuf>,
    /// The v1 `pids` directory runs are created under, when writable.
    pub v1_pids: Option<PathBuf>,
}

impl Cgroups {
    /// Whether a memory limit can be enforced.
    pub fn has_memory(&self) -> bool {
        self.v1_memory.is_some() || self.v2_has("memory")
    }

    /// Whether a per-run process limit can be enforced by a cgroup.
    pub fn has_pids(&self) -> bool {
        self.v1_pids.is_some() || self.v2_has("pids")
    }

    pub(crate) fn v2_has(&self, controller: &str) -> bool {
        self.v2.is_some() && self.v2_controllers.iter().any(|c| c == controller)
    }

    /// "v2", "v1", "hybrid" or "none", as seen by this caller.
    pub fn version(&self) -> &'static str {
        let v1 = self.v1_memory.is_some() || self.v1_pids.is_some();
        match (self.v2.is_some(), v1) {
            (true, true) => "hybrid",
            (true, false) => "v2",
            (false, true) => "v1",
            (false, false) => "none",
        }
    }
}

/// What a run needs beyond its policy, because of what it asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A memory limit: only a cgroup can enforce it.
    pub cgroup: bool,
    /// A tmpfs quota: it is mounted in the run's own mount namespace.
    pub mount_ns: bool,
    /// An AppArmor profile was given; without one that layer cannot apply.
    pub apparmor_profile: bool,
    /// The run may start other programs
    /// ([`Spawn::allow_exec`](crate::Spawn::allow_exec)): the `no_exec`
    /// layer is left out.
    pub exec: bool,
}

/// The confinement this machine offers this caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The caller's effective uid.
    pub euid: u32,
    /// The caller can switch uid and gid (root, or `CAP_SETUID` and `CAP_SETGID`).
    pub can_setuid: bool,
    /// The kernel's Landlock ABI version, if Landlock is enabled.
    pub landlock_abi: Option<i32>,
    /// How much of what runs ask of Landlock (the rights of
    /// [`LANDLOCK_ABI`](crate::LANDLOCK_ABI)) this kernel enforces, from a
    /// real restriction; `None` where Landlock cannot be used.
    pub landlock_status: Option<Enforcement>,
    /// Per-layer availability, in [`Layer::ALL`] order.
    pub layers: Vec<(Layer, Availability)>,
    /// Usable cgroup hierarchies.
    pub cgroups: Cgroups,
    /// Whether the private root ([`Layer::RootFs`]) gets a procfs of the
    /// run's pid namespace (a container's masked `/proc` refuses a new
    /// one; the root then has an empty `/proc`).
    pub procfs: Availability,
}

impl Probe {
    /// The probe of this process, detected once and cached.
    pub fn get() -> &'static Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        PROBE.get_or_init(Probe::detect)
    }

    /// Detects what is available now. Each namespace kind is tried by
    /// cloning a child that exits at once, so the answer holds inside
    /// containers whose seccomp policy forbids what the kernel offers.
    pub fn detect() -> Probe {
        let euid = rustix::process::geteuid().as_raw();
        let can_setuid = euid == 0 || caps_allow_setuid();
        let landlock_abi = child::landlock_abi().ok();
        let landlock_status = landlock_abi.map(|_| fsrules::enforcement_trial());
        let cgroups = detect_cgroups();

        let userns = Availability::from_result(try_ns(libc::CLONE_NEWUSER, false));
        let needs_userns = euid != 0;
        let ns = |flag: libc::c_int| {
            if needs_userns && !userns.is_yes() {
                return Availability::No("needs a user namespace, which is unavailable".into());
            }
            Availability::from_result(try_ns(flag, needs_userns))
        };
        let mount_ns = ns(libc::CLONE_NEWNS);
        let (rootfs, procfs) = root_availability(&mount_ns, userns.is_yes());
        let layers = Layer::ALL
            .into_iter()
            .map(|layer| {
                let a = match layer {
                    Layer::Identity if can_setuid => Availability::Yes,
                    Layer::Identity => Availability::No(
                        "the caller cannot change uid (not root, no CAP_SETUID); a user namespace maps its own uid instead".into(),
                    ),
                    Layer::UserNs => userns.clone(),
                    Layer::PidNs => ns(libc::CLONE_NEWPID),
                    Layer::NetNs => ns(libc::CLONE_NEWNET),
                    Layer::MountNs => mount_ns.clone(),
                    Layer::RootFs => rootfs.clone(),
                    Layer::IpcNs => ns(libc::CLONE_NEWIPC),
                    Layer::UtsNs => ns(libc::CLONE_NEWUTS),
                    Layer::Cgroup if cgroups.has_memory() || cgroups.v2.is_some() => {
                        Availability::Yes
                    }
                    Layer::Cgroup => Availability::No(
                        "no writable cgroup v2 directory or v1 memory hierarchy for this caller".into(),
                    ),
                    Layer::NoNewPrivs => Availability::Yes,
                    Layer::Landlock => match &landlock_status {
                        Some(Ok(_)) => Availability::Yes,
                        Some(Err(why)) => Availability::No(why.clone()),
                        None => Availability::No(
                            "the kernel has no Landlock, or it is not enabled (lsm=)".into(),
                        ),
                    },
                    Layer::Seccomp => seccomp_availability(),
                    Layer::NoExec => exec_guard_availability(),
                    Layer::AppArmor => apparmor_availability(),
                };
                (layer, a)
            })
            .collect();
        Probe {
            euid,
            can_setuid,
            landlock_abi,
            landlock_status: landlock_status.and_then(Result::ok),
            layers,
            cgroups,
            procfs,
        }
    }

    /// The availability of one layer.
    pub fn availability(&self, layer: Layer) -> &Availability {
        self.layers
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, a)| a)
            .unwrap_or(&Availability::Yes)
    }

    /// The layers that can be used.
    pub fn available(&self) -> LayerSet {
        self.layers
            .iter()
            .filter(|(_, a)| a.is_yes())
            .map(|(l, _)| *l)
            .collect()
    }

    /// Why `layer` is not in a plan: unavailable here, or left out.
    fn missing(&self, layer: Layer, because: &str) -> SpawnError {
        let why = match self.availability(layer) {
            Availability::No(why) => why.clone(),
            Availability::Yes => "the policy leaves it out".into(),
        };
        let reason = if because.is_empty() {
            why
        } else {
            format!("{because}: {why}")
        };
        SpawnError::LayerUnavailable { layer, reason }
    }

    /// `by` needs `layer`, which is not in the plan: unavailable here, or
    /// left out by the policy.
    fn needed(&self, layer: Layer, by: &'static str, fix: &'static str) -> SpawnError {
        let reason = match self.availability(layer) {
            Availability::No(why) => why.clone(),
            Availability::Yes => "the policy leaves it out".into(),
        };
        SpawnError::LayerNeeded {
            layer,
            by,
            reason,
            fix,
        }
    }

    /// The layers a run gets under `policy`, or the first required layer
    /// that is missing and why ([`SpawnError::LayerUnavailable`]).
    ///
    /// [`Policy::Auto`] leaves the cgroup out unless `needs` asks for one or
    /// v2 controllers (memory, pids) make it cheap and useful: joining a v1
    /// cgroup costs milliseconds, and killing the run is the pid
    /// namespace's job already.
    ///
    /// # Errors
    /// [`SpawnError::LayerUnavailable`].
    pub fn plan(&self, policy: Policy, needs: Needs) -> Result<LayerSet, SpawnError> {
        let available = self.available();
        let require = |set: LayerSet| match set.iter().find(|l| !available.contains(*l)) {
            Some(layer) => Err(self.missing(layer, "")),
            None => Ok(()),
        };
        let (mut set, required) = match policy {
            Policy::None => (LayerSet::empty(), LayerSet::empty()),
            Policy::Auto => (available, LayerSet::empty()),
            Policy::Require(req) => {
                require(req)?;
                (available, req)
            }
            Policy::Only(only) => {
                require(only)?;
                (only, only)
            }
        };
        let cheap_and_useful = self.cgroups.v2_has("memory") || self.cgroups.v2_has("pids");
        if !matches!(policy, Policy::Only(_))
            && !needs.cgroup
            && !required.contains(Layer::Cgroup)
            && !cheap_and_useful
        {
            set.remove(Layer::Cgroup);
        }
        if needs.cgroup && !set.contains(Layer::Cgroup) {
            return Err(self.needed(
                Layer::Cgroup,
                "the memory limit",
                "set the memory limit to 0 (the vmem limit still bounds each process), or give this caller a cgroup it can write (codejail doctor says what is missing)",
            ));
        }
        if !needs.apparmor_profile && set.contains(Layer::AppArmor) {
            if required.contains(Layer::AppArmor) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::AppArmor,
                    reason: "no AppArmor profile was given for the run".into(),
                });
            }
            set.remove(Layer::AppArmor);
        }
        // Without privilege, the other namespaces hang off a user namespace.
        let ns = Layer::OTHER_NAMESPACES;
        if self.euid != 0 && ns.iter().any(|l| set.contains(*l)) && !set.contains(Layer::UserNs) {
            if matches!(policy, Policy::Only(_)) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::UserNs,
                    reason: "the other namespaces need it without privilege".into(),
                });
            }
            for l in ns {
                set.remove(l);
            }
        }
        // The private root is built in the run's mount namespace.
        if set.contains(Layer::RootFs) && !set.contains(Layer::MountNs) {
            if required.contains(Layer::RootFs) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::RootFs,
                    reason: "it is built in the run's mount namespace, which the policy leaves out"
                        .into(),
                });
            }
            set.remove(Layer::RootFs);
        }
        // A root caller never runs the program as uid 0.
        if self.euid == 0 && set.contains(Layer::UserNs) && self.can_setuid {
            set.insert(Layer::Identity);
        }
        if needs.mount_ns && !set.contains(Layer::MountNs) {
            return Err(self.needed(
                Layer::MountNs,
                "the disk quota of tmp/",
                "set the disk and files limits to 0, or allow this caller mount namespaces (codejail doctor says what is missing)",
            ));
        }
        if needs.exec && set.contains(Layer::NoExec) {
            if required.contains(Layer::NoExec) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::NoExec,
                    reason: "the run allows starting other programs (allow_exec)".into(),
                });
            }
            set.remove(Layer::NoExec);
        }
        // The supervisor sets no_new_privs to install the exec guard, and
        // the program inherits it.
        if set.contains(Layer::Landlock)
            || set.contains(Layer::Seccomp)
            || set.contains(Layer::NoExec)
        {
            set.insert(Layer::NoNewPrivs);
        }
        Ok(set)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (layer, a) in &self.layers {
            let detail = match layer {
                Layer::Landlock => self.landlock_abi.map(|v| {
                    let status = self.landlock_status.map(|s| match s {
                        Enforcement::Full => "fully enforced".to_owned(),
                        _ => format!(
                            "partially enforced: not {}",
                            fsrules::unenforced(v).join(", ")
                        ),
                    });
                    format!(
                        " (ABI {v}, codejail's {}{})",
                        fsrules::LANDLOCK_ABI,
                        status.map(|s| format!("; {s}")).unwrap_or_default()
                    )
                }),
                Layer::RootFs => Some(match &self.procfs {
                    Availability::Yes => " (with a procfs of the run's own)".to_owned(),
                    Availability::No(why) => format!(" (without /proc: {why})"),
                }),
                Layer::Cgroup => Some(format!(
                    " ({}; memory: {}, pids: {})",
                    self.cgroups.version(),
                    yes_no(self.cgroups.has_memory()),
                    yes_no(self.cgroups.has_pids())
                )),
                _ => None,
            };
            match a {
                Availability::Yes => {
                    writeln!(f, "{:<13} yes{}", layer.name(), detail.unwrap_or_default())?
                }
                Availability::No(why) => writeln!(f, "{:<13} no: {why}", layer.name())?,
            }
        }
        Ok(())
    }
}

/// Whether a private root can be built here (a trial in new namespaces,
/// as the runs would have them), and whether it gets a procfs.
fn root_availability(mount_ns: &Availability, with_userns: bool) -> (Availability, Availability) {
    if let Availability::No(why) = mount_ns {
        let no = Availability::No(format!("it needs a mount namespace: {why}"));
        return (no.clone(), no);
    }
    let errno = |e: i32| std::io::Error::from_raw_os_error(e);
    match child::try_root(with_userns) {
        Err(e) => {
            let no = Availability::No(format!("the trial could not run: {e}"));
            (no.clone(), no)
        }
        Ok(trial) => {
            let root = match trial.root {
                Ok(()) => Availability::Yes,
                Err((what, e)) => {
                    Availability::No(format!("the trial could not {what}: {}", errno(e)))
                }
            };
            let procfs = match trial.proc {
                Ok(()) => Availability::Yes,
                Err(e) => Availability::No(format!(
                    "mounting a procfs of a new pid namespace failed: {} (a container that masks /proc refuses it)",
                    errno(e)
                )),
            };
            (root, procfs)
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn try_ns(flag: libc::c_int, with_userns: bool) -> Result<(), String> {
    let flags = flag as u64
        | if with_userns {
            libc::CLONE_NEWUSER as u64
        } else {
            0
        };
    child::try_clone(flags).map_err(|e| format!("creating it failed: {e}"))
}

fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

fn caps_allow_setuid() -> bool {
    let Some(hex) = status_field("CapEff") else {
        return false;
    };
    let caps = u64::from_str_radix(&hex, 16).unwrap_or(0);
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    let need = (1u64 << CAP_SETUID) | (1u64 << CAP_SETGID);
    caps & need == need
}

fn apparmor_availability() -> Availability {
    match std::fs::read_to_string("/sys/module/apparmor/parameters/enabled") {
        Ok(s) if s.trim() == "Y" => Availability::Yes,
        Ok(_) => Availability::No("AppArmor is built into this kernel but disabled".into()),
        Err(_) => Availability::No("AppArmor is not enabled in this kernel".into()),
    }
}

/// The `no_exec` layer: seccomp with user notification and its
/// `CONTINUE` answer (Linux 5.5), and a trial of the supervisor's step.
fn exec_guard_availability() -> Availability {
    if let Availability::No(why) = seccomp_availability() {
        return Availability::No(why);
    }
    if !kernel_at_least(5, 5) {
        return Availability::No(
            "the kernel is older than 5.5 (no SECCOMP_USER_NOTIF_FLAG_CONTINUE)".into(),
        );
    }
    let guard = match crate::spawn::exec_guard_filter() {
        Ok(guard) => guard,
        Err(e) => return Availability::No(e.to_string()),
    };
    Availability::from_result(child::try_exec_guard(guard))
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

fn seccomp_availability() -> Availability {
    match (status_field("Seccomp"), status_field("Seccomp_filters")) {
        (Some(_), Some(_)) => Availability::Yes,
        (Some(_), None) => Availability::No("the kernel has seccomp but no filter mode".into()),
        _ => Availability::No("the kernel has no seccomp".into()),
    }
}

/// Finds the cgroup directories of this process that it may write to.
fn detect_cgroups() -> Cgroups {
    let mut out = Cgroups::default();
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return out;
    };
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return out;
    };
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut l = left.split(' ');
        let mount_point = l.nth(4).unwrap_or("");
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let super_opts = r.nth(1).unwrap_or("");
        match fstype {
            "cgroup2" => {
                let Some(path) = own_path(&own, |ctrl| ctrl.is_empty()) else {
                    continue;
                };
                let dir = Path::new(mount_point).join(path.trim_start_matches('/'));
                if writable(&dir) {
                    out.v2_controllers = std::fs::read_to_string(dir.join("cgroup.controllers"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter(|c| matches!(*c, "memory" | "pids"))
                        .map(str::to_owned)
                        .collect();
                    out.v2 = Some(dir);
                }
            }
            "cgroup" => {
                for controller in ["memory", "pids"] {
                    if !super_opts.split(',').any(|o| o == controller) {
                        continue;
                    }
                    let Some(path) =
                        own_path(&own, |ctrl| ctrl.split(',').any(|c| c == controller))
                    else {
                        continue;
                    };
                    let dir = Path::new(mount_point).join(path.trim_start_matches('/'));
                    if writable(&dir) {
                        match controller {
                            "memory" => out.v1_memory = Some(dir),
                            _ => out.v1_pids = Some(dir),
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The path of this process in the hierarchy whose controller list matches.
fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctrl = parts.next()?;
        let path = parts.next()?;
        matches(ctrl).then(|| path.to_owned())
    })
}

fn writable(dir: &Path) -> bool {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_paths_are_found_per_hierarchy() {
        let own = "4:memory:/a/b\n8:pids:/\n0::/user.slice\n";
        assert_eq!(
            own_path(own, |c| c.is_empty()).as_deref(),
            Some("/user.slice")
        );
        assert_eq!(own_path(own, |c| c == "memory").as_deref(), Some("/a/b"));
        assert_eq!(own_path(own, |c| c == "cpu"), None);
    }

    #[test]
    fn the_probe_lists_every_layer_once() {
        let probe = Probe::detect();
        assert_eq!(probe.layers.len(), Layer::ALL.len());
        assert!(probe.availability(Layer::NoNewPrivs).is_yes());
        let text = probe.to_string();
        assert!(
            text.contains("landlock") && text.contains("apparmor"),
            "{text}"
        );
    }
}
