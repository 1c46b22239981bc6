//! What this machine and this caller can confine with.

use std::fmt;
use std::sync::{LazyLock, OnceLock};

use crate::SpawnError;
use crate::cgroup::{CgroupOptions, Cgroups, host};
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

/// What a run needs beyond its policy, because of what it asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A memory limit: only a cgroup's `memory` controller can enforce it
    /// (delegated on v2, or a writable v1 hierarchy).
    pub cgroup: bool,
    /// Settings for the run's v2 cgroup
    /// ([`Spawn::cgroup_setting`](crate::Spawn::cgroup_setting)): the run
    /// needs a cgroup of its own in a delegated v2 tree (each setting's
    /// controller is checked when the run starts).
    pub cgroup_settings: bool,
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
    /// The caller can switch uid and gid (`CAP_SETUID` and `CAP_SETGID`:
    /// root, unless a container runtime dropped them).
    pub can_setuid: bool,
    /// The caller has `CAP_SYS_ADMIN` (root on a host; not root in a
    /// container with the runtime's defaults): it makes namespaces without
    /// a user namespace. Without it they hang off a user namespace of its
    /// own, as for an unprivileged caller.
    pub cap_sys_admin: bool,
    /// The kernel's Landlock ABI version, if Landlock is enabled.
    pub landlock_abi: Option<i32>,
    /// How much of what runs ask of Landlock (the rights of
    /// [`LANDLOCK_ABI`](crate::LANDLOCK_ABI)) this kernel enforces, from a
    /// real restriction; `None` where Landlock cannot be used.
    pub landlock_status: Option<Enforcement>,
    /// Per-layer availability, in [`Layer::ALL`] order.
    pub layers: Vec<(Layer, Availability)>,
    /// The cgroups runs can have, and why not where they cannot.
    pub cgroups: Cgroups,
    /// Whether the private root ([`Layer::RootFs`]) gets a procfs of the
    /// run's pid namespace (a container's masked `/proc` refuses a new
    /// one; the root then has an empty `/proc`).
    pub procfs: Availability,
}

/// [`Probe::init`] came after the probe was made: it keeps the options it
/// was made with.
#[derive(Debug, thiserror::Error)]
#[error("the probe was already made; Probe::init must come before the first run or Probe::get")]
pub struct AlreadyProbed;

static PROBE: OnceLock<Probe> = OnceLock::new();

/// What [`Probe::availability`] answers for a layer the probe did not try:
/// never assumed available.
static NOT_PROBED: LazyLock<Availability> =
    LazyLock::new(|| Availability::No("the probe did not try this layer".into()));

impl Probe {
    /// The probe of this process, detected once and cached (with
    /// [`CgroupOptions::from_env`], unless [`Probe::init`] came first).
    pub fn get() -> &'static Probe {
        PROBE.get_or_init(Probe::detect)
    }

    /// Makes this process's probe with these cgroup options (the cgroup v2
    /// directory delegated to it, the controllers its runs get), before
    /// anything else asks for it.
    ///
    /// # Errors
    /// [`AlreadyProbed`] when the probe was already made (by a run, or
    /// [`Probe::get`]).
    pub fn init(options: &CgroupOptions) -> Result<&'static Probe, AlreadyProbed> {
        let mut fresh = false;
        let probe = PROBE.get_or_init(|| {
            fresh = true;
            Probe::detect_with(options)
        });
        if fresh { Ok(probe) } else { Err(AlreadyProbed) }
    }

    /// Detects what is available now, with [`CgroupOptions::from_env`].
    pub fn detect() -> Probe {
        Probe::detect_with(&CgroupOptions::from_env())
    }

    /// Detects what is available now. Each namespace kind is tried by
    /// cloning a child that exits at once, so the answer holds inside
    /// containers whose seccomp policy forbids what the kernel offers. The
    /// cgroup v2 tree is set up as `options` say (this process's processes
    /// may move to a leaf of the delegated cgroup; see
    /// [`CgroupOptions`]) and tried with a trial cgroup.
    pub fn detect_with(options: &CgroupOptions) -> Probe {
        let euid = rustix::process::geteuid().as_raw();
        let can_setuid = has_caps(&[CAP_SETUID, CAP_SETGID]);
        let cap_sys_admin = has_caps(&[CAP_SYS_ADMIN]);
        let landlock_abi = child::landlock_abi().ok();
        let landlock_status = landlock_abi.map(|_| fsrules::enforcement_trial());
        let cgroups = host::detect(options);

        let userns = Availability::from_result(try_ns(libc::CLONE_NEWUSER, false));
        let needs_userns = !cap_sys_admin;
        let ns = |flag: libc::c_int| {
            if let (true, Availability::No(why)) = (needs_userns, &userns) {
                return Availability::No(format!(
                    "needs a user namespace (this process has no CAP_SYS_ADMIN), which is unavailable: {why}"
                ));
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
                        "the caller cannot change uid (no CAP_SETUID and CAP_SETGID: not root, or a container runtime dropped them); a user namespace maps its own uid instead".into(),
                    ),
                    Layer::UserNs => userns.clone(),
                    Layer::PidNs => ns(libc::CLONE_NEWPID),
                    Layer::NetNs => ns(libc::CLONE_NEWNET),
                    Layer::MountNs => mount_ns.clone(),
                    Layer::RootFs => rootfs.clone(),
                    Layer::IpcNs => ns(libc::CLONE_NEWIPC),
                    Layer::UtsNs => ns(libc::CLONE_NEWUTS),
                    Layer::Cgroup => match cgroups.why_unavailable() {
                        None => Availability::Yes,
                        Some(why) => Availability::No(why),
                    },
                    Layer::NoNewPrivs => match rustix::thread::no_new_privs() {
                        Ok(_) => Availability::Yes,
                        Err(e) => Availability::No(format!(
                            "prctl(PR_GET_NO_NEW_PRIVS) failed: {}",
                            std::io::Error::from(e)
                        )),
                    },
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
            cap_sys_admin,
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
            .unwrap_or(&NOT_PROBED)
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
    /// a delegated v2 tree with `memory` or `pids` makes it cheap and
    /// useful: joining a v1 cgroup costs milliseconds, and killing the run
    /// is the pid namespace's job already.
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
            && !needs.cgroup_settings
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
        if let (true, Some(why)) = (needs.cgroup, self.cgroups.why_no_memory()) {
            return Err(SpawnError::LayerUnavailable {
                layer: Layer::Cgroup,
                reason: format!("a memory limit needs the memory controller: {why}"),
            });
        }
        if needs.cgroup_settings {
            if !set.contains(Layer::Cgroup) {
                return Err(self.missing(Layer::Cgroup, "the run's cgroup settings need it"));
            }
            if let (None, Some(why)) = (&self.cgroups.v2, &self.cgroups.v2_missing) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::Cgroup,
                    reason: format!("the run's cgroup settings need a cgroup v2 tree: {why}"),
                });
            }
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
        if !self.cap_sys_admin
            && ns.iter().any(|l| set.contains(*l))
            && !set.contains(Layer::UserNs)
        {
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
    child::try_clone(flags)
        .map_err(|e| format!("creating it failed: {e}{}", refusal_hint(&e, flags)))
}

/// What likely refused a namespace, and what gives it back.
fn refusal_hint(e: &std::io::Error, flags: u64) -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let userns = flags & libc::CLONE_NEWUSER as u64 != 0;
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            if status_field("Seccomp").as_deref() == Some("2") {
                return " (this process runs under a seccomp filter that refuses it, as a container runtime's default profile does: the container's seccomp profile must allow clone and clone3 with namespace flags, setns, mount and sethostname; README, \"Hosts\")".into();
            }
            if userns && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
                return " (kernel.apparmor_restrict_unprivileged_userns=1 refuses unprivileged user namespaces: load an AppArmor profile for this program that allows `userns,`, or set the sysctl to 0; README, \"Hosts\")".into();
            }
            if userns && read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
                return " (kernel.unprivileged_userns_clone=0 refuses unprivileged user namespaces: set it to 1)".into();
            }
            String::new()
        }
        Some(libc::ENOSPC) if userns => {
            " (user.max_user_namespaces is 0 or reached: raise it)".into()
        }
        _ => String::new(),
    }
}

fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether every one of `caps` is in this process's effective set.
fn has_caps(caps: &[u32]) -> bool {
    let Some(hex) = status_field("CapEff") else {
        return false;
    };
    let effective = u64::from_str_radix(&hex, 16).unwrap_or(0);
    caps.iter().all(|c| effective & (1u64 << c) != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A layer the probe has no answer for is unavailable, never assumed.
    #[test]
    fn a_layer_not_probed_is_unavailable() {
        let mut probe = Probe::detect();
        probe.layers.retain(|(l, _)| *l != Layer::Seccomp);
        assert!(!probe.availability(Layer::Seccomp).is_yes());
        assert!(!probe.available().contains(Layer::Seccomp));
        let plan = probe.plan(Policy::Auto, Needs::default()).unwrap();
        assert!(!plan.contains(Layer::Seccomp), "{plan}");
        assert!(matches!(
            probe.plan(
                Policy::Require(LayerSet::from_iter([Layer::Seccomp])),
                Needs::default()
            ),
            Err(SpawnError::LayerUnavailable {
                layer: Layer::Seccomp,
                ..
            })
        ));
    }

    /// A memory limit needs the memory controller, not just a cgroup: a
    /// delegated v2 tree without `memory` makes it fail with why.
    #[test]
    fn a_memory_limit_needs_the_memory_controller() {
        use crate::cgroup::{DelegatedBy, Delegation};
        let mut probe = Probe::detect();
        probe.cgroups.v1_memory = None;
        probe.cgroups.v2 = Some(Delegation {
            base: "/sys/fs/cgroup/x.service".into(),
            by: DelegatedBy::Systemd,
            leaf: None,
            controllers: vec!["pids".into()],
            missing: vec![(
                "memory".into(),
                "memory is not delegated: Delegate=yes".into(),
            )],
        });
        for (layer, a) in &mut probe.layers {
            if *layer == Layer::Cgroup {
                *a = Availability::Yes;
            }
        }
        let needs = Needs {
            cgroup: true,
            ..Needs::default()
        };
        match probe.plan(Policy::Auto, needs) {
            Err(SpawnError::LayerUnavailable {
                layer: Layer::Cgroup,
                reason,
            }) => {
                assert!(reason.contains("Delegate=yes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // pids alone is cheap and useful: Auto takes the cgroup.
        assert!(
            probe
                .plan(Policy::Auto, Needs::default())
                .unwrap()
                .contains(Layer::Cgroup)
        );
    }
}
