//! The probe's system calls: the Landlock ABI version, a trial clone that
//! shows whether namespaces can really be made here, and one that shows
//! whether a supervisor can be handed the program's `execve` (the
//! `no_exec` layer).

use std::ffi::c_int;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

use rustix::process::{WaitId, WaitIdOptions};

use super::holder::unshare_net;
use super::sys;

/// The kernel's Landlock ABI version.
///
/// # References
/// - [`landlock_create_ruleset(2)`](https://man7.org/linux/man-pages/man2/landlock_create_ruleset.2.html)
///   with `LANDLOCK_CREATE_RULESET_VERSION`
pub(crate) fn landlock_abi() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a null attribute pointer with size 0 is the documented way
    // to ask for the version; nothing is read or written through it.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(io::Error::last_os_error())
    } else {
        i32::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// Clones a child with these `CLONE_NEW*` flags that exits at once, and
/// reaps it: whether the namespaces can really be created here
/// (containers may forbid what the kernel has). This is how a run
/// without a private root makes its network namespace; [`try_root`]
/// makes it as a run with one does.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(crate) fn try_clone(namespaces: u64) -> io::Result<()> {
    trial_clone(namespaces, None)
}

/// Clones a child into the cgroup v2 directory `dir` with
/// `clone3(CLONE_INTO_CGROUP)`, which exits at once, and reaps it: whether
/// a run's program can be cloned into a cgroup made there (the kernel's
/// migration permissions, and a seccomp profile that may refuse clone3).
pub(crate) fn try_clone_into_cgroup(dir: &impl AsFd) -> io::Result<()> {
    trial_clone(sys::CLONE_INTO_CGROUP, Some(dir.as_fd().as_raw_fd()))
}

/// A child cloned with these extra flags (and into this cgroup directory)
/// that exits at once, reaped.
fn trial_clone(flags: u64, cgroup: Option<c_int>) -> io::Result<()> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    args.flags |= flags;
    if let Some(dir) = cgroup {
        args.cgroup = dir as u64;
    }
    // SAFETY: `pidfd` outlives the call; the child holds a panic barrier
    // and only calls _exit.
    let ret =
        unsafe { sys::clone3_signals_held(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        sys::exit(0);
    }
    let pidfd = sys::take_pidfd(pidfd);
    let options = WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return Ok(()),
        }
    }
}

/// Whether the `no_exec` layer works here, or why not, where
/// [`exec_guard_fits`]: a cloned child (after no_new_privs, as the
/// supervisor) must be able to install `guard` with a listener — a
/// container's own seccomp policy may forbid that where the kernel has it.
///
/// # References
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
pub(crate) fn try_exec_guard(guard: &[libc::sock_filter]) -> Result<(), String> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    // SAFETY: `pidfd` outlives the call; the child holds a panic barrier,
    // makes two system calls (no allocation) and calls _exit.
    let ret = unsafe { sys::clone3_signals_held(&mut args) }
        .map_err(|e| format!("a trial clone failed: {}", io::Error::from_raw_os_error(e)))?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        let installed = sys::rx(rustix::thread::set_no_new_privs(true))
            .and_then(|()| sys::seccomp_set_filter_listener(guard).map(drop));
        sys::exit(match installed {
            Ok(()) => 0,
            Err(errno) => errno.clamp(1, 255),
        });
    }
    let pidfd = sys::take_pidfd(pidfd);
    let options = WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
    let status = loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(Some(status)) => break status.exit_status(),
            _ => break None,
        }
    };
    match status {
        Some(0) => Ok(()),
        Some(errno) => Err(exec_guard_refused(errno)),
        None => Err("the trial of a seccomp listener did not end normally".into()),
    }
}

/// Whether the kernel has seccomp user notification with structures that
/// fit the supervisor's stack buffers (`seccomp(SECCOMP_GET_NOTIF_SIZES)`).
pub(crate) fn exec_guard_fits() -> Result<(), String> {
    let sizes = sys::seccomp_notif_sizes().map_err(|e| {
        format!(
            "the kernel has no seccomp user notification (Linux 5.0): {}",
            io::Error::from_raw_os_error(e)
        )
    })?;
    let room = sys::NOTIF_ROOM;
    let fits = |size: u16, ours: usize| (ours..=room).contains(&usize::from(size));
    if !fits(sizes.seccomp_notif, size_of::<libc::seccomp_notif>())
        || !fits(
            sizes.seccomp_notif_resp,
            size_of::<libc::seccomp_notif_resp>(),
        )
    {
        return Err(format!(
            "the kernel's seccomp notification structures ({} and {} bytes) do not fit codejail's {room}-byte buffers",
            sizes.seccomp_notif, sizes.seccomp_notif_resp
        ));
    }
    Ok(())
}

/// What an exec guard refused with `errno` says.
pub(crate) fn exec_guard_refused(errno: i32) -> String {
    format!(
        "installing a seccomp filter with a listener failed: {}",
        io::Error::from_raw_os_error(errno)
    )
}

/// What [`try_root`] found: whether a private root can be entered here,
/// whether a procfs of a new pid namespace can be mounted in it, and,
/// when it was asked to, whether the exec guard can be installed there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RootTrial {
    /// `Err((what, errno))`: which step failed (`mount`, `chdir`,
    /// `pivot_root`, `umount`).
    pub root: Result<(), (&'static str, i32)>,
    /// `Err(errno)` of the procfs mount (`subset=pid`).
    pub proc: Result<(), i32>,
    /// `Err(errno)` of `no_new_privs` or the guard's install; `None`: not
    /// tried.
    pub exec_guard: Option<Result<(), i32>>,
}

/// Tries, in a child cloned into new mount and pid namespaces and the
/// other `namespaces` (`CLONE_NEW*` flags), what building a private root
/// needs: a procfs of the new pid namespace with `subset=pid`, a tmpfs
/// mounted over `/dev` and `pivot_root(".", ".")` into it with the old
/// root detached (the steps of `super::root`, without the binds); then,
/// with `guard`, what the supervisor does in the run's namespaces:
/// `no_new_privs` and the exec guard installed with a listener
/// (`seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)`).
/// Containers may forbid what the kernel offers: a masked `/proc` refuses
/// a new procfs; a root on the initial ramfs refuses `pivot_root`. The
/// clone's own failure (a namespace refused) is the `Err`, and so is a
/// network namespace refused to the child's `unshare`: made after the
/// clone, as the holder of a run with a private root makes it.
///
/// # References
/// - [`pivot_root(2)`](https://man7.org/linux/man-pages/man2/pivot_root.2.html)
/// - [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html), `subset=pid`
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
pub(crate) fn try_root(
    namespaces: u64,
    guard: Option<&[libc::sock_filter]>,
) -> io::Result<RootTrial> {
    use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
    use rustix::pipe::{PipeFlags, pipe_with};

    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    let net = namespaces & libc::CLONE_NEWNET as u64 != 0;
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    args.flags |= (namespaces & !(libc::CLONE_NEWNET as u64))
        | (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
    // SAFETY: `pidfd` outlives the call; the child holds a panic barrier,
    // makes only async-signal-safe calls (rustix's raw system calls on
    // static strings, the seccomp call on `guard`, which the caller keeps
    // alive and the child's copy of memory holds, one write from a stack
    // buffer) and ends in _exit.
    let ret =
        unsafe { sys::clone3_signals_held(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        // The network namespace as a run's holder makes it; refused, the
        // child says nothing and exits with the errno.
        if net {
            if let Err(errno) = unshare_net() {
                sys::exit(errno.clamp(1, 255));
            }
        }
        let errno = |r: rustix::io::Result<()>| r.err().map_or(0, |e| e.raw_os_error());
        // First of all: nothing this child mounts may propagate to the
        // host (without a user namespace the copies stay shared).
        let private = errno(rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        ));
        let (proc, failed) = if private != 0 {
            (private, (1, private))
        } else {
            let proc = errno(rustix::mount::mount(
                c"proc",
                c"/dev",
                c"proc",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"subset=pid",
            ));
            type TrialStep = (i32, fn() -> rustix::io::Result<()>);
            let steps: [TrialStep; 4] = [
                (2, || {
                    rustix::mount::mount(
                        c"codejail-trial",
                        c"/dev",
                        c"tmpfs",
                        MountFlags::NOSUID | MountFlags::NODEV,
                        c"size=4k",
                    )
                }),
                (3, || rustix::process::chdir(c"/dev")),
                (4, || rustix::process::pivot_root(c".", c".")),
                (5, || rustix::mount::unmount(c".", UnmountFlags::DETACH)),
            ];
            let mut failed = (0, 0);
            for (step, f) in steps {
                let e = errno(f());
                if e != 0 {
                    failed = (step, e);
                    break;
                }
            }
            (proc, failed)
        };
        let guarded = match guard {
            None => -1,
            Some(guard) => match sys::rx(rustix::thread::set_no_new_privs(true))
                .and_then(|()| sys::seccomp_set_filter_listener(guard).map(drop))
            {
                Ok(()) => 0,
                Err(errno) => errno.max(1),
            },
        };
        let mut msg = [0u8; 16];
        for (chunk, word) in msg
            .chunks_exact_mut(4)
            .zip([proc, failed.0, failed.1, guarded])
        {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let _ = rustix::io::write(&write, &msg);
        sys::exit(0);
    }
    drop(write);
    let pidfd = sys::take_pidfd(pidfd);
    let options = WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
    let status = loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(Some(status)) => break status.exit_status(),
            _ => break None,
        }
    };
    let mut msg = [0u8; 16];
    let got = rustix::io::read(&read, &mut msg)?;
    if got != msg.len() {
        return Err(match status {
            Some(errno) if errno != 0 => io::Error::from_raw_os_error(errno),
            _ => io::Error::other("the trial child said nothing"),
        });
    }
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&msg[i * 4..i * 4 + 4]);
        i32::from_ne_bytes(w)
    };
    let (proc, step, errno, guarded) = (word(0), word(1), word(2), word(3));
    let what = match step {
        1 => "make the mounts private",
        2 => "mount a tmpfs",
        3 => "enter it",
        4 => "pivot_root",
        _ => "detach the old root",
    };
    Ok(RootTrial {
        root: if step == 0 {
            Ok(())
        } else {
            Err((what, errno))
        },
        proc: if proc == 0 { Ok(()) } else { Err(proc) },
        exec_guard: match guarded {
            -1 => None,
            0 => Some(Ok(())),
            errno => Some(Err(errno)),
        },
    })
}
