//! Which jobs to run for an attack, with which layers, and what this
//! host or caller lacks for them.

use std::path::Path;
use std::process::{Command, Stdio};

use codejail::{Availability, Jail, Layer, LayerSet, LimitName, Probe};

use crate::header::{Attack, Containment, Sabotage, Stopper};

use super::{How, Job, Missing};

/// The layers a run of `attack` gets in `jail` with its own layers, or
/// which layer is missing for it to run at all and why.
///
/// # Errors
/// The missing layers with why, or the jail's own error.
pub fn planned_for(jail: &Jail, attack: &Attack) -> Result<LayerSet, (Vec<Layer>, String)> {
    let mut planned = jail
        .planned_layers()
        .map_err(|e| (Vec::new(), format!("the jail cannot run: {e}")))?;
    let limit = |name| attack.limits.iter().any(|(n, v)| *n == name && *v > 0);
    let probe = Probe::get();
    if limit(LimitName::Memory) && !jail.is_unsafe() {
        let why = match probe.availability(Layer::Cgroup) {
            Availability::Yes => probe.cgroups.why_no_memory(),
            Availability::No(why) => Some(why.clone()),
        };
        match why {
            None => planned.insert(Layer::Cgroup),
            Some(why) => {
                return Err((
                    vec![Layer::Cgroup],
                    format!("cgroup missing: {why} (its memory limit needs it)"),
                ));
            }
        }
    }
    if (limit(LimitName::Disk) || limit(LimitName::Files))
        && !jail.is_unsafe()
        && !planned.contains(Layer::MountNs)
    {
        return Err((
            vec![Layer::MountNs],
            format!(
                "mountns missing: {} (its tmp quota needs it)",
                why(Layer::MountNs)
            ),
        ));
    }
    Ok(planned)
}

pub(super) fn why(layer: Layer) -> String {
    match Probe::get().availability(layer) {
        Availability::No(why) => why.clone(),
        Availability::Yes => "this jail's plan leaves it out".into(),
    }
}

/// The availability of a layer on this host, for
/// [`not_tested`](crate::judge::not_tested).
pub fn host_availability(layer: Layer) -> Availability {
    Probe::get().availability(layer).clone()
}

/// One job per attack, with the jail's own layers.
pub fn full_jobs(attacks: &[Attack]) -> Vec<Job> {
    attacks
        .iter()
        .map(|a| Job {
            attack: a.clone(),
            how: How::Full,
        })
        .collect()
}

/// The layers a policy of only `layers` needs from this caller: the
/// private root is built in a mount namespace; without privilege, a
/// namespace hangs off a user namespace.
pub fn with_userns_if_needed(mut layers: LayerSet) -> LayerSet {
    if layers.contains(Layer::RootFs) {
        layers.insert(Layer::MountNs);
    }
    if Probe::get().euid != 0 && Layer::OTHER_NAMESPACES.iter().any(|l| layers.contains(*l)) {
        layers.insert(Layer::UserNs);
    }
    layers
}

/// One job per `contained:` line of `attack`: with only that line's layers
/// (the unsafe jail when it names only the supervisor or the limits),
/// judged against that line alone; or, for a line that needs a root caller
/// this caller is not, `Err((requirement, why))`. Lines that hold on the
/// warm path only are left out: a narrowed run is a cold one (the warm
/// suite shows them).
pub fn single_layer_jobs(attack: &Attack) -> Vec<(Containment, Result<Job, Missing>)> {
    attack
        .contained
        .iter()
        .filter(|c| !c.by.contains(&Stopper::Warm))
        .map(|c| {
            if c.by.contains(&Stopper::Root) && Probe::get().euid != 0 {
                let why = format!(
                    "{}: `{}` holds for a root caller only (without privilege the kernel refuses first)",
                    attack.name(),
                    c.by_names()
                );
                return (c.clone(), Err(("identity".to_owned(), why)));
            }
            let layers = c.layers();
            let how = if layers.is_empty() {
                How::Unsafe
            } else {
                How::Only(with_userns_if_needed(layers))
            };
            let mut one = attack.clone();
            one.contained = vec![c.clone()];
            (c.clone(), Ok(Job { attack: one, how }))
        })
        .collect()
}

/// How the sabotage mode lets `attack` through in a jail that plans
/// `planned`: its stopping layers switched off (plus the layers the plan
/// would put back for them: user namespace for identity, Landlock,
/// seccomp and no_exec for no_new_privs, the private root with the mount
/// namespace), its limits raised, or a run outside codejail; or why it
/// cannot be shown here.
///
/// # Errors
/// What this caller or host lacks for the escape, as (requirement, why):
/// `identity` (not root), `cap_sys_resource`, `x32`.
pub fn sabotage_job(attack: &Attack, planned: LayerSet) -> Result<Job, Missing> {
    if let Some(missing) = lacking_needs(attack) {
        return Err(missing);
    }
    for need in &attack.escape_needs {
        if let Some(missing) = lacking(need) {
            return Err(missing);
        }
    }
    let mut a = attack.clone();
    let how = match &attack.sabotage {
        Sabotage::Outside { tty } => How::Outside { tty: *tty },
        Sabotage::Limits(limits) => {
            a.limits = limits.clone();
            How::Full
        }
        Sabotage::Layers => {
            let off = sabotage_off(attack.layers());
            let mut narrowed = planned;
            for l in off.iter() {
                narrowed.remove(l);
            }
            if narrowed.is_empty() {
                How::Unsafe
            } else {
                How::Only(narrowed)
            }
        }
    };
    Ok(Job { attack: a, how })
}

/// The first of what `attack` needs of this host in every mode (its
/// `needs:`) that the host lacks, as (requirement, why), or `None`.
pub fn lacking_needs(attack: &Attack) -> Option<Missing> {
    attack.needs.iter().find_map(|n| lacking(n))
}

/// What this host or caller lacks of what an escape or an attack needs
/// (`root`, `cap_sys_resource`, `x32`, `listmount`, `proc_kcore`,
/// `proc_sysrq`), as (requirement, why), or `None`.
fn lacking(need: &str) -> Option<Missing> {
    let (missing, requirement, why) = match need {
        "listmount" => (
            !kernel_has_listmount(),
            "listmount",
            "this kernel has no listmount/statmount (ENOSYS; Linux 6.8 added them)",
        ),
        "proc_kcore" => (
            !Path::new("/proc/kcore").exists(),
            "proc_kcore",
            "this host has no /proc/kcore (a kernel built without CONFIG_PROC_KCORE)",
        ),
        "proc_sysrq" => (
            !Path::new("/proc/sysrq-trigger").exists(),
            "proc_sysrq",
            "this host has no /proc/sysrq-trigger (a kernel built without CONFIG_MAGIC_SYSRQ)",
        ),
        "root" => (
            Probe::get().euid != 0,
            "identity",
            "what the escape reaches is root's, and this caller is not root",
        ),
        "cap_sys_resource" => (
            !has_capability(24),
            "cap_sys_resource",
            "this caller cannot raise a hard limit (no CAP_SYS_RESOURCE)",
        ),
        "x32" => (
            !kernel_has_x32(),
            "x32",
            "this kernel has no x32 ABI (getpid through it is ENOSYS)",
        ),
        other => (true, "unknown", other),
    };
    missing.then(|| (requirement.to_owned(), why.to_owned()))
}

/// Whether this process has capability `bit` in its effective set.
fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// Whether an x32 getpid works here (asked of a plain interpreter: this
/// crate has no `unsafe`).
fn kernel_has_x32() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("/usr/bin/python3")
            .args([
                "-E",
                "-c",
                "import ctypes, os\nlibc = ctypes.CDLL(None)\nlibc.syscall.restype = ctypes.c_long\nprint(libc.syscall(ctypes.c_long(0x40000000 | 39)) == os.getpid())",
            ])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout == b"True\n")
    })
}

/// Whether this kernel has `listmount` (asked of a plain interpreter, with
/// a request it refuses: `EFAULT` or `EINVAL` where it exists, `ENOSYS`
/// where it does not).
fn kernel_has_listmount() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("/usr/bin/python3")
            .args([
                "-E",
                "-c",
                "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\nr = libc.syscall(ctypes.c_long(458), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))\nprint(r == -1 and ctypes.get_errno() != errno.ENOSYS)",
            ])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout == b"True\n")
    })
}

/// The layers to switch off so that none of `stoppers` is applied.
pub fn sabotage_off(stoppers: LayerSet) -> LayerSet {
    let mut off = stoppers;
    if off.contains(Layer::Identity) {
        // A root caller in a user namespace always switches uid; for an
        // unprivileged caller the user namespace is what stands for the
        // uid switch (a process of another user namespace is out of its
        // reach).
        off.insert(Layer::UserNs);
    }
    if off.contains(Layer::NoNewPrivs) {
        off.insert(Layer::Landlock);
        off.insert(Layer::Seccomp);
        off.insert(Layer::NoExec);
    }
    if off.contains(Layer::UserNs) && Probe::get().euid != 0 {
        for l in Layer::OTHER_NAMESPACES {
            off.insert(l);
        }
    }
    if off.contains(Layer::MountNs) {
        // The private root is built in the mount namespace.
        off.insert(Layer::RootFs);
    }
    off
}

/// The stoppers of `attack` that are layers, as names (for messages).
pub fn stopper_names(attack: &Attack) -> Vec<String> {
    attack
        .stoppers()
        .into_iter()
        .map(|s: Stopper| s.to_string())
        .collect()
}
