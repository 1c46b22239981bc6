//! What the probe tries and reads: namespaces and the private root by
//! trial clones, capabilities and seccomp from `/proc/self/status`, the
//! exec guard by a trial of the supervisor's step.

use crate::child;

use super::Availability;

/// Whether a private root can be built here (a trial in new namespaces,
/// as the runs would have them), and whether it gets a procfs.
pub(super) fn root_availability(
    mount_ns: &Availability,
    with_userns: bool,
) -> (Availability, Availability) {
    if let Availability::No(why) = mount_ns {
        let no = Availability::No(format!("it needs a mount namespace: {why}"));
        return (no.clone(), no);
    }
    let userns = if with_userns {
        libc::CLONE_NEWUSER as u64
    } else {
        0
    };
    root_verdicts(child::try_root(userns, None))
}

/// The private root's and its procfs's availability from a root trial.
pub(super) fn root_verdicts(
    trial: std::io::Result<child::RootTrial>,
) -> (Availability, Availability) {
    let errno = |e: i32| std::io::Error::from_raw_os_error(e);
    match trial {
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

pub(super) fn try_ns(flag: libc::c_int, with_userns: bool) -> Result<(), String> {
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
                return " (this process runs under a seccomp filter that refuses it, as a container runtime's default profile does: the container's seccomp profile must allow clone and clone3 with namespace flags, unshare, setns, mount and sethostname; README, \"Hosts\")".into();
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

pub(super) const CAP_SETGID: u32 = 6;
pub(super) const CAP_SETUID: u32 = 7;
pub(super) const CAP_SYS_ADMIN: u32 = 21;

/// Whether every one of `caps` is in this process's effective set.
pub(super) fn has_caps(caps: &[u32]) -> bool {
    let Some(hex) = status_field("CapEff") else {
        return false;
    };
    let effective = u64::from_str_radix(&hex, 16).unwrap_or(0);
    caps.iter().all(|c| effective & (1u64 << c) != 0)
}

pub(super) fn apparmor_availability() -> Availability {
    match std::fs::read_to_string("/sys/module/apparmor/parameters/enabled") {
        Ok(s) if s.trim() == "Y" => Availability::Yes,
        Ok(_) => Availability::No("AppArmor is built into this kernel but disabled".into()),
        Err(_) => Availability::No("AppArmor is not enabled in this kernel".into()),
    }
}

/// The `no_exec` layer: seccomp with user notification and its
/// `CONTINUE` answer (Linux 5.5), and a trial of the supervisor's step.
pub(super) fn exec_guard_availability() -> Availability {
    match exec_guard_precheck() {
        Err(why) => Availability::No(why),
        Ok(guard) => Availability::from_result(child::try_exec_guard(guard)),
    }
}

/// What the exec guard needs before a trial: seccomp, Linux 5.5, its
/// filter, notification structures that fit. The filter to try, or why
/// the layer is unavailable.
pub(super) fn exec_guard_precheck() -> Result<&'static [libc::sock_filter], String> {
    if let Availability::No(why) = seccomp_availability() {
        return Err(why);
    }
    if !kernel_at_least(5, 5) {
        return Err("the kernel is older than 5.5 (no SECCOMP_USER_NOTIF_FLAG_CONTINUE)".into());
    }
    let guard = crate::spawn::exec_guard_filter().map_err(|e| e.to_string())?;
    child::exec_guard_fits()?;
    Ok(guard)
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

pub(super) fn seccomp_availability() -> Availability {
    match (status_field("Seccomp"), status_field("Seccomp_filters")) {
        (Some(_), Some(_)) => Availability::Yes,
        (Some(_), None) => Availability::No("the kernel has seccomp but no filter mode".into()),
        _ => Availability::No("the kernel has no seccomp".into()),
    }
}
