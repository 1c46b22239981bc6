//! The delegated cgroup v2 subtree: found, the leaf move, the
//! controllers, the trial (steps 1 to 4 of the module's documentation).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::mounts::{Mount, writable};
use super::{CgroupOptions, DelegatedBy, Delegation, ENV, LEAF};

/// What to do when no delegated cgroup is found.
fn advice() -> String {
    format!(
        "run codejail as a systemd service with `Delegate=yes` in its [Service] section (or under `systemd-run -p Delegate=yes`), or set {ENV} to a cgroup v2 directory delegated to this process"
    )
}

/// Steps 1 to 4 of the module's documentation: the base, the leaf move,
/// the controllers, the trial.
pub(super) fn delegate(
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
        let pids = super::super::members(&procs);
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

/// The name of a trial cgroup: `codejail-<pid>.<start>-probe-<n>`, unique
/// per call (the probe may be made on two threads at once). It carries its
/// owner as a run cgroup's name does ([`crate::owner`]), so that the trial
/// of a process killed while it probed is a leftover `gc` removes.
fn trial_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("codejail-{}-probe-{n}", crate::owner::stamp())
}

/// Makes a cgroup in `base`, clones a child into it, removes it.
fn trial(base: &Path) -> Result<(), String> {
    let dir = base.join(trial_name());
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
    let removed = super::super::remove(&dir);
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

    /// A trial cgroup names its owner, as a run cgroup does: one left by
    /// a process killed while it probed is found by `gc` (which reads the
    /// owner back with `owner_of`, and skips a name without one).
    #[test]
    fn a_trial_cgroup_names_its_owner() {
        let (a, b) = (trial_name(), trial_name());
        assert_ne!(a, b);
        let me = std::process::id();
        let start = crate::owner::start_time(me).unwrap();
        assert_eq!(crate::owner::owner_of(&a), Some((me, start)), "{a}");
        assert!(a.contains("-probe-"), "{a}");
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
}
