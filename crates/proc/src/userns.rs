//! Why this caller cannot make user namespaces, read from the host's
//! state: the system calls' answers and the sysctls that decide them.
//!
//! [`UsernsHost::detect`] tries `clone3(CLONE_NEWUSER)` (and a mount
//! namespace inside one: Ubuntu's AppArmor may let the first through and
//! take every capability in it) and reads `/proc/sys` and
//! `/proc/self/status`; [`UsernsHost::read`] reads them under another
//! root, so that every case can be tested. [`UsernsHost::diagnose`] says
//! what stops them and what to do. It never advises turning off
//! `kernel.apparmor_restrict_unprivileged_userns`: the fix there is an
//! AppArmor profile that grants `userns` to the program.
//!
//! # References
//! - [`user_namespaces(7)`](https://man7.org/linux/man-pages/man7/user_namespaces.7.html)
//! - [`clone(2)`](https://man7.org/linux/man-pages/man2/clone.2.html), ERRORS

use std::fmt;
use std::path::{Path, PathBuf};

use crate::child;

/// The sysctls that decide whether a user namespace can be made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sysctls {
    /// `user.max_user_namespaces`; absent: the kernel has no user
    /// namespaces (`CONFIG_USER_NS`).
    pub max_user_namespaces: Option<u64>,
    /// Debian's and older distributions' `kernel.unprivileged_userns_clone`
    /// (0: only a privileged caller may make one).
    pub unprivileged_userns_clone: Option<u64>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns` (1: an
    /// unprivileged program needs an AppArmor profile with `userns`).
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

impl Sysctls {
    /// Reads them under `proc_sys` (`/proc/sys` on a real host).
    pub fn read(proc_sys: &Path) -> Sysctls {
        let value = |rel: &str| {
            std::fs::read_to_string(proc_sys.join(rel))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        };
        Sysctls {
            max_user_namespaces: value("user/max_user_namespaces"),
            unprivileged_userns_clone: value("kernel/unprivileged_userns_clone"),
            apparmor_restrict_unprivileged_userns: value(
                "kernel/apparmor_restrict_unprivileged_userns",
            ),
        }
    }
}

/// What the host says about user namespaces for this caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernsHost {
    /// The caller's effective uid.
    pub euid: u32,
    /// `clone3(CLONE_NEWUSER)`: made, or the errno.
    pub userns: Result<(), i32>,
    /// `clone3(CLONE_NEWUSER | CLONE_NEWNS)`: made, or the errno (a
    /// namespace inside one needs a capability there).
    pub userns_with_mount: Result<(), i32>,
    /// The sysctls.
    pub sysctls: Sysctls,
    /// The process runs under a seccomp filter (`Seccomp: 2` in
    /// `/proc/self/status`), as a container's processes do.
    pub seccomp_filter: bool,
    /// It has `CAP_SYS_ADMIN` (container runtimes' default seccomp
    /// profiles allow `CLONE_NEWUSER` only with it).
    pub cap_sys_admin: bool,
}

/// What stops user namespaces here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsernsCause {
    /// Nothing: they can be made and used.
    Available,
    /// The kernel is built without them (`CONFIG_USER_NS`).
    NotInKernel,
    /// `user.max_user_namespaces = 0`.
    MaxZero,
    /// The limit of `user.max_user_namespaces`, or a nesting of 32, is
    /// reached.
    LimitReached,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns = 1`, and
    /// the program has no AppArmor profile granting `userns`.
    AppArmorRestricted,
    /// `kernel.unprivileged_userns_clone = 0`.
    UnprivilegedCloneOff,
    /// A seccomp filter (a container's) refuses the system call.
    Seccomp,
    /// `clone3` is unknown (a kernel older than 5.3).
    NoClone3,
    /// A security module (AppArmor, SELinux) refuses it.
    SecurityModule,
    /// `EPERM` with nothing above to explain it: a chroot, or ids without
    /// a mapping in the caller's own user namespace.
    NotPermitted,
    /// Anything else (the errno is in the text).
    Other,
}

/// Why user namespaces are missing, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernsDiagnosis {
    /// The cause.
    pub cause: UsernsCause,
    /// What the host showed (the errno, the sysctl).
    pub why: String,
    /// What to do (empty when they are available).
    pub fix: String,
}

impl UsernsDiagnosis {
    /// Whether user namespaces can be made and used.
    pub fn available(&self) -> bool {
        self.cause == UsernsCause::Available
    }
}

impl fmt::Display for UsernsDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.available() {
            return f.write_str(&self.why);
        }
        write!(f, "{}; to fix: {}", self.why, self.fix)
    }
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSPC => "ENOSPC",
        libc::EINVAL => "EINVAL",
        libc::EUSERS => "EUSERS",
        libc::ENOSYS => "ENOSYS",
        libc::ENOMEM => "ENOMEM",
        _ => return format!("errno {e}"),
    };
    format!("{name} ({})", std::io::Error::from_raw_os_error(e))
}

impl UsernsHost {
    /// This process on this host: the two trial clones, `/proc/sys`, and
    /// `/proc/self/status`.
    pub fn detect() -> UsernsHost {
        let trial = |flags: libc::c_int| {
            child::try_clone(flags as u64).map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
        };
        UsernsHost::read(
            Path::new("/proc"),
            rustix::process::geteuid().as_raw(),
            trial(libc::CLONE_NEWUSER),
            trial(libc::CLONE_NEWUSER | libc::CLONE_NEWNS),
        )
    }

    /// The host under `proc` (`proc/sys/...`, `proc/self/status`), for a
    /// caller `euid` whose trial clones answered `userns` and
    /// `userns_with_mount`.
    pub fn read(
        proc: &Path,
        euid: u32,
        userns: Result<(), i32>,
        userns_with_mount: Result<(), i32>,
    ) -> UsernsHost {
        let status = std::fs::read_to_string(proc.join("self/status")).unwrap_or_default();
        let field = |name: &str| {
            status.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(':')
                    .map(|v| v.trim().to_owned())
            })
        };
        const CAP_SYS_ADMIN: u32 = 21;
        let cap_sys_admin = field("CapEff")
            .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
        UsernsHost {
            euid,
            userns,
            userns_with_mount,
            sysctls: Sysctls::read(&proc.join("sys")),
            seccomp_filter: field("Seccomp").as_deref() == Some("2"),
            cap_sys_admin,
        }
    }

    /// What stops user namespaces, and what to do; `program` is the
    /// program that makes them (an AppArmor profile attaches to its path).
    pub fn diagnose(&self, program: &Path) -> UsernsDiagnosis {
        let d = |cause, why: String, fix: String| UsernsDiagnosis { cause, why, fix };
        let s = &self.sysctls;
        let privileged = self.euid == 0 || self.cap_sys_admin;
        let profile_fix = || {
            format!(
                "give {0} an AppArmor profile that grants `userns`: `cargo xtask install-profile --codejail {0}` writes it to /etc/apparmor.d and loads it (AppArmor 4.0 or later); keep the sysctl as it is",
                program.display()
            )
        };
        let restricted = !privileged && s.apparmor_restrict_unprivileged_userns == Some(1);
        let failed = match (self.userns, self.userns_with_mount) {
            (Ok(()), Ok(())) => {
                return d(
                    UsernsCause::Available,
                    "user namespaces can be made and used here".into(),
                    String::new(),
                );
            }
            (Ok(()), Err(e)) if restricted => {
                return d(
                    UsernsCause::AppArmorRestricted,
                    format!(
                        "kernel.apparmor_restrict_unprivileged_userns = 1: a user namespace is made, but AppArmor's unprivileged_userns profile takes every capability in it (a mount namespace inside it failed: {})",
                        errno_name(e)
                    ),
                    profile_fix(),
                );
            }
            (Ok(()), Err(e)) => e,
            (Err(e), _) => e,
        };
        let what = errno_name(failed);
        if s.max_user_namespaces.is_none() && failed == libc::EINVAL {
            return d(
                UsernsCause::NotInKernel,
                format!(
                    "this kernel has no user namespaces (no /proc/sys/user/max_user_namespaces; clone answers {what})"
                ),
                "use a kernel built with CONFIG_USER_NS".into(),
            );
        }
        if s.max_user_namespaces == Some(0) {
            return d(
                UsernsCause::MaxZero,
                format!("user.max_user_namespaces = 0: no user namespace may be made ({what})"),
                "set user.max_user_namespaces to a positive number (e.g. 15000) in /etc/sysctl.d/ and run `sysctl --system`; in a container, it is the container's own user namespace limit that counts".into(),
            );
        }
        if restricted {
            return d(
                UsernsCause::AppArmorRestricted,
                format!(
                    "kernel.apparmor_restrict_unprivileged_userns = 1: AppArmor lets only programs whose profile grants `userns` make user namespaces without privilege ({what})"
                ),
                profile_fix(),
            );
        }
        if !privileged && s.unprivileged_userns_clone == Some(0) {
            return d(
                UsernsCause::UnprivilegedCloneOff,
                format!(
                    "kernel.unprivileged_userns_clone = 0: only a privileged caller may make user namespaces ({what})"
                ),
                "run codejail as root (it then maps the sandbox uid itself), or, where the host's policy allows unprivileged user namespaces, set kernel.unprivileged_userns_clone = 1 in /etc/sysctl.d/".into(),
            );
        }
        match failed {
            libc::ENOSPC | libc::EUSERS => d(
                UsernsCause::LimitReached,
                format!(
                    "the limit of user namespaces is reached: user.max_user_namespaces = {} for this user, or 32 nested namespaces ({what})",
                    s.max_user_namespaces.map_or("?".into(), |n| n.to_string())
                ),
                "raise user.max_user_namespaces, or run codejail less deeply nested".into(),
            ),
            libc::ENOSYS => d(
                UsernsCause::NoClone3,
                format!(
                    "clone3 is answered with {what}: a kernel older than 5.3, or a container's seccomp profile that refuses clone3"
                ),
                "use kernel 5.3 or later, and a container seccomp profile that allows clone3".into(),
            ),
            libc::EPERM if self.seccomp_filter => d(
                UsernsCause::Seccomp,
                format!(
                    "this process runs under a seccomp filter (a container runtime's profile){} that refuses clone with CLONE_NEWUSER ({what})",
                    if self.cap_sys_admin {
                        ""
                    } else {
                        ", without CAP_SYS_ADMIN,"
                    }
                ),
                "run the container with a seccomp profile that allows clone, clone3 and unshare with CLONE_NEWUSER (Docker's default allows them only with CAP_SYS_ADMIN), or run codejail outside the container".into(),
            ),
            libc::EACCES => d(
                UsernsCause::SecurityModule,
                format!("a Linux security module (AppArmor, SELinux) refuses user namespaces to this program ({what})"),
                format!(
                    "allow {} to create user namespaces in the module's policy (AppArmor: `cargo xtask install-profile --codejail {}`)",
                    program.display(),
                    program.display()
                ),
            ),
            libc::EPERM => d(
                UsernsCause::NotPermitted,
                format!(
                    "clone with CLONE_NEWUSER is refused ({what}) with no sysctl or seccomp filter to explain it: this process is in a chroot, or its uid or gid has no mapping in its user namespace"
                ),
                "run codejail outside the chroot, with ids mapped in its user namespace".into(),
            ),
            _ => d(
                UsernsCause::Other,
                format!("clone with CLONE_NEWUSER failed: {what}"),
                "see user_namespaces(7) and clone(2) for this errno".into(),
            ),
        }
    }
}

/// The running program's path, for the AppArmor profile's attachment.
pub fn this_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/codejail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/proc` with these sysctls and status fields.
    fn fake_proc(sysctls: &[(&str, &str)], status: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, value) in sysctls {
            let file = dir.path().join("sys").join(rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, format!("{value}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/status"), status).unwrap();
        dir
    }

    const PLAIN: &str = "Name:\tcodejail\nCapEff:\t0000000000000000\nSeccomp:\t0\n";
    const ROOT: &str = "Name:\tcodejail\nCapEff:\t000001ffffffffff\nSeccomp:\t0\n";
    const CONTAINER: &str = "Name:\tcodejail\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n";
    const MAX: (&str, &str) = ("user/max_user_namespaces", "63439");
    const PROGRAM: &str = "/usr/local/bin/codejail";

    fn diagnose(
        sysctls: &[(&str, &str)],
        status: &str,
        euid: u32,
        userns: Result<(), i32>,
        with_mount: Result<(), i32>,
    ) -> UsernsDiagnosis {
        let proc = fake_proc(sysctls, status);
        UsernsHost::read(proc.path(), euid, userns, with_mount).diagnose(Path::new(PROGRAM))
    }

    #[test]
    fn sysctls_are_read_under_the_root() {
        let proc = fake_proc(
            &[
                MAX,
                ("kernel/unprivileged_userns_clone", "1"),
                ("kernel/apparmor_restrict_unprivileged_userns", "1"),
            ],
            CONTAINER,
        );
        let host = UsernsHost::read(proc.path(), 1000, Ok(()), Ok(()));
        assert_eq!(
            host.sysctls,
            Sysctls {
                max_user_namespaces: Some(63439),
                unprivileged_userns_clone: Some(1),
                apparmor_restrict_unprivileged_userns: Some(1),
            }
        );
        assert!(host.seccomp_filter && !host.cap_sys_admin);
        assert_eq!(Sysctls::read(&proc.path().join("none")), Sysctls::default());
    }

    #[test]
    fn ubuntus_apparmor_restriction_is_fixed_by_a_profile_never_by_the_sysctl() {
        let restrict = [MAX, ("kernel/apparmor_restrict_unprivileged_userns", "1")];
        // Denied outright (no unprivileged_userns profile), or made with
        // every capability in it taken away.
        for (userns, with_mount) in [
            (Err(libc::EACCES), Err(libc::EACCES)),
            (Ok(()), Err(libc::EPERM)),
        ] {
            let d = diagnose(&restrict, PLAIN, 1000, userns, with_mount);
            assert_eq!(d.cause, UsernsCause::AppArmorRestricted, "{d}");
            assert!(
                d.why
                    .contains("kernel.apparmor_restrict_unprivileged_userns = 1"),
                "{d}"
            );
            assert!(
                d.fix
                    .contains(&format!("cargo xtask install-profile --codejail {PROGRAM}")),
                "{d}"
            );
            assert!(d.fix.contains("keep the sysctl"), "{d}");
            let text = d.to_string();
            assert!(
                !text.contains("= 0") && !text.contains("sysctl -w kernel.apparmor"),
                "{text}"
            );
        }
        // Root is not restricted: whatever fails, it is something else.
        let d = diagnose(&restrict, ROOT, 0, Err(libc::ENOSPC), Err(libc::ENOSPC));
        assert_eq!(d.cause, UsernsCause::LimitReached, "{d}");
    }

    #[test]
    fn max_user_namespaces_zero() {
        let d = diagnose(
            &[("user/max_user_namespaces", "0")],
            ROOT,
            0,
            Err(libc::ENOSPC),
            Err(libc::ENOSPC),
        );
        assert_eq!(d.cause, UsernsCause::MaxZero, "{d}");
        assert!(d.why.contains("user.max_user_namespaces = 0"), "{d}");
        assert!(d.why.contains("ENOSPC"), "{d}");
    }

    #[test]
    fn debians_unprivileged_userns_clone_zero() {
        let off = [MAX, ("kernel/unprivileged_userns_clone", "0")];
        let d = diagnose(&off, PLAIN, 1000, Err(libc::EPERM), Err(libc::EPERM));
        assert_eq!(d.cause, UsernsCause::UnprivilegedCloneOff, "{d}");
        assert!(d.fix.contains("run codejail as root"), "{d}");
        // It does not bind root.
        let d = diagnose(&off, ROOT, 0, Ok(()), Ok(()));
        assert!(d.available(), "{d}");
    }

    #[test]
    fn a_containers_seccomp_filter() {
        let d = diagnose(&[MAX], CONTAINER, 0, Err(libc::EPERM), Err(libc::EPERM));
        assert_eq!(d.cause, UsernsCause::Seccomp, "{d}");
        assert!(d.why.contains("without CAP_SYS_ADMIN"), "{d}");
        assert!(d.fix.contains("seccomp profile"), "{d}");
        // clone3 answered with ENOSYS (Docker's default for clone3).
        let d = diagnose(&[MAX], CONTAINER, 0, Err(libc::ENOSYS), Err(libc::ENOSYS));
        assert_eq!(d.cause, UsernsCause::NoClone3, "{d}");
    }

    #[test]
    fn a_kernel_without_user_namespaces_and_other_errnos() {
        let d = diagnose(&[], ROOT, 0, Err(libc::EINVAL), Err(libc::EINVAL));
        assert_eq!(d.cause, UsernsCause::NotInKernel, "{d}");
        let d = diagnose(&[MAX], PLAIN, 1000, Err(libc::ENOSPC), Err(libc::ENOSPC));
        assert_eq!(d.cause, UsernsCause::LimitReached, "{d}");
        assert!(d.why.contains("63439"), "{d}");
        let d = diagnose(&[MAX], PLAIN, 1000, Err(libc::EACCES), Err(libc::EACCES));
        assert_eq!(d.cause, UsernsCause::SecurityModule, "{d}");
        let d = diagnose(&[MAX], PLAIN, 1000, Err(libc::EPERM), Err(libc::EPERM));
        assert_eq!(d.cause, UsernsCause::NotPermitted, "{d}");
        assert!(d.why.contains("chroot"), "{d}");
        let d = diagnose(&[MAX], PLAIN, 1000, Err(libc::ENOMEM), Err(libc::ENOMEM));
        assert_eq!(d.cause, UsernsCause::Other, "{d}");
        assert!(d.why.contains("ENOMEM"), "{d}");
        // Made, but nothing can be made inside, with no restriction.
        let d = diagnose(&[MAX], PLAIN, 1000, Ok(()), Err(libc::EPERM));
        assert_eq!(d.cause, UsernsCause::NotPermitted, "{d}");
    }

    /// On this host: the diagnosis agrees with the probe, and the sysctls
    /// are this kernel's.
    #[test]
    fn support_the_diagnosis_of_this_host_agrees_with_the_probe() {
        let host = UsernsHost::detect();
        let d = host.diagnose(&this_program());
        let probe = crate::Probe::get();
        let userns = probe.availability(crate::Layer::UserNs).is_yes();
        let mount = probe.availability(crate::Layer::MountNs).is_yes();
        if host.euid != 0 {
            assert_eq!(d.available(), userns && mount, "{d}");
        } else {
            assert_eq!(host.userns.is_ok(), userns, "{d}");
        }
        let real = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|t| t.trim().parse().ok());
        assert_eq!(host.sysctls.max_user_namespaces, real);
        assert_eq!(host.euid, rustix::process::geteuid().as_raw());
    }
}
