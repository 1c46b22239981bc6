//! `clone3`, its fallback to `clone(2)`, and `execve`.

use std::ffi::{CStr, c_char, c_int};
use std::mem::size_of;
use std::os::fd::{FromRawFd, OwnedFd};

use super::{Errno, check_long, errno};

/// `CLONE_INTO_CGROUP` (`libc`'s overflows its `c_int` type).
pub(in crate::child) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(args, sizeof *args)`: the child's pid in the parent, 0 in the
/// child.
///
/// Where `clone3` is refused (`ENOSYS` or `EPERM`: a container runtime's
/// seccomp profile refuses it outright, since a filter cannot read its
/// flags in memory) and `args` asks for nothing that only `clone3` has,
/// the same clone is made with `clone(2)`; see [`clone_fallback`].
///
/// # Safety
/// Without `CLONE_VM` the child runs on a private copy of the calling
/// thread's memory; the caller's child branch must create a
/// [`PanicBarrier`](super::PanicBarrier), make only async-signal-safe
/// calls and end in `execve` or `_exit`, never return. Pointers in `args`
/// (`pidfd`) must stay valid for the call.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(in crate::child) unsafe fn clone3(args: &mut libc::clone_args) -> Result<libc::pid_t, Errno> {
    // SAFETY: `args` is a live clone_args of the size passed; the pointers
    // in it and the contract on the child side are the caller's.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(args),
            size_of::<libc::clone_args>(),
        )
    };
    match check_long(ret) {
        Err(libc::ENOSYS | libc::EPERM) if clone_can_do(args) => {
            // SAFETY: the same contract, passed on.
            unsafe { clone_fallback(args) }
        }
        other => other.map(|pid| pid as libc::pid_t),
    }
}

/// [`clone3`] with every signal blocked in the calling thread around it
/// (as glibc's `posix_spawn` does), for a child cloned from the caller: a
/// signal sent to the child before it has put its own dispositions and
/// mask in place ([`reset_signals`](super::reset_signals)) waits for
/// them, rather than running a handler of the caller's in the child's
/// copy of its memory. The parent's mask is put back after the clone; the
/// child starts with every signal blocked (but `SIGKILL` and `SIGSTOP`,
/// which cannot be, and the two real-time signals glibc keeps for itself,
/// which its `pthread_sigmask` leaves out: their handlers are glibc's),
/// until it leaves the caller's process group and puts its own
/// dispositions and mask in place, discarding what came meanwhile
/// ([`reset_signals`](super::reset_signals)); the probe's trial
/// children, which only take a step and exit, keep them blocked.
///
/// # Safety
/// As [`clone3`].
pub(in crate::child) unsafe fn clone3_signals_held(
    args: &mut libc::clone_args,
) -> Result<libc::pid_t, Errno> {
    let mask = super::thread_sigmask(libc::SIG_SETMASK, &super::all_signals())?;
    // SAFETY: the caller's contract, passed on.
    let ret = unsafe { clone3(args) };
    if ret != Ok(0) {
        // `SIG_SETMASK` of a mask the kernel gave cannot fail.
        let _ = super::thread_sigmask(libc::SIG_SETMASK, &mask);
    }
    ret
}

/// Whether `clone(2)` can make the clone `args` describe: no flag beyond
/// its 32 bits (`CLONE_INTO_CGROUP`, `CLONE_CLEAR_SIGHAND`), no cgroup,
/// no pid to set, no stack, TLS or thread-id pointers, and an exit signal
/// that fits in `CSIGNAL`.
fn clone_can_do(args: &libc::clone_args) -> bool {
    args.flags <= u64::from(u32::MAX)
        && args.flags & libc::CSIGNAL as u64 == 0
        && args.exit_signal <= libc::CSIGNAL as u64
        && args.cgroup == 0
        && args.set_tid == 0
        && args.set_tid_size == 0
        && args.stack == 0
        && args.stack_size == 0
        && args.tls == 0
        && args.child_tid == 0
        && args.parent_tid == 0
}

/// `clone(flags | exit_signal, NULL, pidfd, NULL, 0)`: the clone of
/// `args` by the older system call, which a seccomp filter can judge by its
/// flags (Docker's default profile lets it through without namespace
/// flags). With `CLONE_PIDFD` the kernel stores the pidfd through the
/// third argument (`parent_tid`), on x86_64 and aarch64 alike; a null
/// stack means the child runs on a copy of the caller's, as with `fork`.
///
/// # Safety
/// As [`clone3`]; `args` passes [`clone_can_do`].
///
/// # References
/// - [`clone(2)`](https://man7.org/linux/man-pages/man2/clone.2.html),
///   "C library/kernel differences" and `CLONE_PIDFD`
unsafe fn clone_fallback(args: &libc::clone_args) -> Result<libc::pid_t, Errno> {
    let flags = args.flags | args.exit_signal;
    // SAFETY: no CLONE_VM, and a null stack: the child gets a private copy
    // of this thread's memory, stack included, as with fork; the pidfd
    // pointer (0 or the caller's `c_int`, valid for the call) is the only
    // pointer passed; the child side's contract is the caller's.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            args.pidfd as usize,
            0usize,
            0usize,
        )
    };
    check_long(ret).map(|pid| pid as libc::pid_t)
}

/// `clone_args` with no flag, no pointer, and `exit_signal` 0.
pub(in crate::child) fn empty_clone_args() -> libc::clone_args {
    // SAFETY: clone_args is a C struct of integers (pointers travel as
    // u64), for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// [`empty_clone_args`] with `CLONE_PIDFD` storing the new process's pidfd
/// in `pidfd`. `exit_signal` stays 0: no `SIGCHLD` reaches the caller, and
/// a host application's `waitpid(-1, ..)` cannot reap (and steal) the
/// child; it is waited for through its pidfd with `__WALL`.
pub(in crate::child) fn pidfd_clone_args(pidfd: &mut c_int) -> libc::clone_args {
    let mut args = empty_clone_args();
    args.flags = libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::from_mut(pidfd) as u64;
    args
}

/// The pidfd `clone3` stored through [`pidfd_clone_args`], owned.
pub(in crate::child) fn take_pidfd(pidfd: c_int) -> OwnedFd {
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so `pidfd` is a new
    // descriptor of this process that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(pidfd) }
}

/// `execve(program, argv, envp)`: returns only on failure, with the errno.
///
/// # Safety
/// `argv` and `envp` must be null-terminated arrays of pointers to
/// NUL-terminated strings, all alive until the call.
///
/// # References
/// - [`execve(2)`](https://man7.org/linux/man-pages/man2/execve.2.html)
pub(in crate::child) unsafe fn execve(
    program: &CStr,
    argv: &[*const c_char],
    envp: &[*const c_char],
) -> Errno {
    // SAFETY: the arrays' shape is the caller's contract; `program` is a
    // NUL-terminated string borrowed for the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

#[cfg(test)]
mod tests {

    /// Only what `clone(2)` can say falls back to it: never a clone into a
    /// cgroup, which would then start outside it.
    #[test]
    fn the_clone_fallback_takes_only_what_clone_can_say() {
        use super::{CLONE_INTO_CGROUP, clone_can_do, empty_clone_args, pidfd_clone_args};
        let mut pidfd = -1;
        let mut args = pidfd_clone_args(&mut pidfd);
        args.flags |= (libc::CLONE_NEWUSER | libc::CLONE_NEWPID) as u64;
        assert!(clone_can_do(&args));
        let mut program = empty_clone_args();
        program.exit_signal = libc::SIGCHLD as u64;
        assert!(clone_can_do(&program));
        program.flags |= CLONE_INTO_CGROUP;
        program.cgroup = 3;
        assert!(!clone_can_do(&program));
        program.flags &= !CLONE_INTO_CGROUP;
        assert!(!clone_can_do(&program), "a cgroup without the flag");
        let mut big_signal = empty_clone_args();
        big_signal.exit_signal = 0x100;
        assert!(!clone_can_do(&big_signal));
    }
}
