//! What this machine and this caller can confine with.
//!
//! `plan`: the layers of a run ([`Probe::plan`]); `checks`: the trials and
//! the readings of `/proc` the probe is made of.

mod checks;
mod plan;

use std::fmt;
use std::sync::{LazyLock, OnceLock};

use crate::cgroup::{CgroupOptions, Cgroups, host};
use crate::child;
use crate::fsrules::{self, Enforcement};
use crate::layers::{Layer, LayerSet};

use checks::{
    CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN, apparmor_availability, exec_guard_availability,
    exec_guard_precheck, has_caps, root_availability, root_verdicts, seccomp_availability, try_ns,
};

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

    /// Why not, for [`Availability::No`]; `None` for
    /// [`Availability::Yes`].
    pub fn why_not(&self) -> Option<&str> {
        match self {
            Availability::Yes => None,
            Availability::No(why) => Some(why),
        }
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
        // The cgroups' set-up (with its trial clone) and Landlock's trial
        // restriction touch no namespace: each runs on a thread of its own
        // beside the namespace trials (Landlock's restricts its thread).
        let (landlock_status, cgroups, ns) = std::thread::scope(|s| {
            let landlock = landlock_abi.map(|_| s.spawn(fsrules::enforcement_trial_here));
            let cgroups = s.spawn(|| host::detect(options));
            let ns = NsTrials::run(cap_sys_admin);
            let landlock = landlock.map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("the trial thread panicked".into()))
            });
            let cgroups = cgroups.join().unwrap_or_else(|_| {
                let why = Some("the cgroup probe panicked".to_owned());
                Cgroups {
                    v2_missing: why.clone(),
                    v1_missing: why,
                    ..Cgroups::default()
                }
            });
            (landlock, cgroups, ns)
        });
        let layers = Layer::ALL
            .into_iter()
            .map(|layer| {
                let a = match layer {
                    Layer::Identity if can_setuid => Availability::Yes,
                    Layer::Identity => Availability::No(
                        "the caller cannot change uid (no CAP_SETUID and CAP_SETGID: not root, or a container runtime dropped them); a user namespace maps its own uid instead".into(),
                    ),
                    Layer::UserNs => ns.userns.clone(),
                    Layer::PidNs => ns.ns(libc::CLONE_NEWPID),
                    Layer::NetNs => ns.ns(libc::CLONE_NEWNET),
                    Layer::MountNs => ns.mount_ns.clone(),
                    Layer::RootFs => ns.rootfs.clone(),
                    Layer::IpcNs => ns.ns(libc::CLONE_NEWIPC),
                    Layer::UtsNs => ns.ns(libc::CLONE_NEWUTS),
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
                    Layer::NoExec => ns.no_exec.clone(),
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
            procfs: ns.procfs,
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
}

/// The namespaces other than the user namespace, as a run makes them.
const OTHER_NS: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// The trials of the namespaces, the private root and the exec guard.
struct NsTrials {
    userns: Availability,
    /// The other namespaces need a user namespace (no `CAP_SYS_ADMIN`).
    needs_userns: bool,
    /// One clone with every namespace worked: each of them works.
    all_ns: bool,
    /// Tried once (the private root's trial needs it too).
    mount_ns: Availability,
    rootfs: Availability,
    procfs: Availability,
    no_exec: Availability,
}

impl NsTrials {
    /// First one trial clone of everything: every namespace at once, the
    /// private root's steps and the exec guard in them, as a run has them.
    /// Where it works (the common case), each works, and five clones are
    /// saved (each a millisecond or so, the network namespace most).
    /// Where the clone is refused, each is tried alone, for its own reason.
    fn run(cap_sys_admin: bool) -> NsTrials {
        let needs_userns = !cap_sys_admin;
        let guard = exec_guard_precheck();
        let all = (libc::CLONE_NEWUSER | OTHER_NS) as u64;
        if let Ok(trial) = child::try_root(all, guard.as_ref().ok().copied()) {
            let (rootfs, procfs) = root_verdicts(Ok(trial));
            let no_exec = match (guard, trial.exec_guard) {
                (Err(why), _) => Availability::No(why),
                (Ok(_), Some(Ok(()))) => Availability::Yes,
                (Ok(_), Some(Err(errno))) => Availability::No(child::exec_guard_refused(errno)),
                (Ok(_), None) => NOT_PROBED.clone(),
            };
            return NsTrials {
                userns: Availability::Yes,
                needs_userns,
                all_ns: true,
                mount_ns: Availability::Yes,
                rootfs,
                procfs,
                no_exec,
            };
        }
        let userns = Availability::from_result(try_ns(libc::CLONE_NEWUSER, false));
        let all_ns = (!needs_userns || userns.is_yes()) && try_ns(OTHER_NS, needs_userns).is_ok();
        let mut trials = NsTrials {
            userns,
            needs_userns,
            all_ns,
            mount_ns: NOT_PROBED.clone(),
            rootfs: NOT_PROBED.clone(),
            procfs: NOT_PROBED.clone(),
            no_exec: exec_guard_availability(),
        };
        trials.mount_ns = trials.ns(libc::CLONE_NEWNS);
        (trials.rootfs, trials.procfs) =
            root_availability(&trials.mount_ns, trials.userns.is_yes());
        trials
    }

    /// Whether the namespace `flag` (one `CLONE_NEW*` other than the user
    /// namespace) can be made: known where every namespace could be made
    /// at once, else tried alone (inside a user namespace where it needs
    /// one).
    fn ns(&self, flag: libc::c_int) -> Availability {
        if let (true, Availability::No(why)) = (self.needs_userns, &self.userns) {
            return Availability::No(format!(
                "needs a user namespace (this process has no CAP_SYS_ADMIN), which is unavailable: {why}"
            ));
        }
        if self.all_ns {
            return Availability::Yes;
        }
        Availability::from_result(try_ns(flag, self.needs_userns))
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

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpawnError;
    use crate::layers::Policy;

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
