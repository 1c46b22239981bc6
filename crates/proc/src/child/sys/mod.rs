//! Raw system calls for the cloned children: async-signal-safe, and none
//! of them allocates.
//!
//! After `clone3` a child is a copy of one thread of a possibly
//! multi-threaded caller. Another thread may have held a lock (the
//! allocator's, stdio's, the dynamic loader's) at the moment of the copy,
//! and in the copy nobody will ever release it. So from the clone to
//! `execve` or `_exit` a child calls only what takes no lock and allocates
//! nothing:
//!
//! - `rustix`, whose `linux_raw` backend issues each system call itself
//!   (no errno, no lock, no allocation), for every call that has a plain
//!   wrapper there. Paths are passed as `&CStr`, which rustix uses in
//!   place; any other path type may be copied into a heap buffer.
//! - The libc wrappers below, where rustix has no wrapper (`clone3`,
//!   `signalfd`, `sigaction`, `close_range`, `setrlimit`, `getrusage`,
//!   Landlock, seccomp and its notification `ioctl`s, which read and write
//!   a buffer on the caller's stack) or where its wrapper does not fit: `dup3` onto a
//!   slot that may not be open (rustix wants an `OwnedFd` for the target,
//!   which must name an open descriptor), `close` of a slot that may not
//!   be open (rustix's asserts success in debug builds, and a panic in a
//!   child is fatal), and descriptors the child knows only by number.
//!
//! Errors stay the raw errno ([`Errno`], an `i32`): that is what the error
//! pipe carries to the caller, who turns it into an `io::Error`.
//!
//! Here: errno, failing a step, the file system ids, `_exit`, the panic
//! barrier, rlimits; `clone` (`clone3` and its fallback, `execve`), `fd`
//! (descriptor slots), `signal`, `landlock`, `seccomp` (filters and the
//! exec guard's notifications).

mod clone;
mod fd;
mod landlock;
mod seccomp;
mod signal;

use std::ffi::{c_int, c_long};
use std::os::fd::RawFd;

use super::FD_ERROR;
use super::wire::{self, Step};

pub(super) use clone::{
    CLONE_INTO_CGROUP, clone3, clone3_signals_held, empty_clone_args, execve, pidfd_clone_args,
    take_pidfd,
};
pub(super) use fd::{close, close_range, dup_above, dup3, read_word, write_word};
pub(super) use landlock::{landlock_add_path_rule, landlock_restrict_self};
pub(crate) use seccomp::NOTIF_ROOM;
pub(super) use seccomp::{
    NotifAnswer, NotifBuf, notif_recv, notif_send, seccomp_notif_sizes, seccomp_set_filter,
    seccomp_set_filter_listener,
};
pub(super) use signal::{
    all_signals, ignore, reset_signals, signalfd, sigprocmask, sigset, thread_sigmask,
};

/// A raw errno value.
pub(super) type Errno = i32;

/// The calling thread's `errno`, after a libc wrapper failed.
pub(super) fn errno() -> Errno {
    // SAFETY: __errno_location returns the address of this thread's errno
    // slot, which lives in thread-local storage; a child made by clone3 keeps
    // the TLS of the thread it copies, so the address is valid and only this
    // thread uses it.
    unsafe { *libc::__errno_location() }
}

/// A `-1` return of a libc wrapper as the errno.
pub(super) fn check(ret: c_int) -> Result<c_int, Errno> {
    if ret == -1 { Err(errno()) } else { Ok(ret) }
}

/// A `-1` return of `libc::syscall` as the errno.
pub(super) fn check_long(ret: c_long) -> Result<c_long, Errno> {
    if ret == -1 { Err(errno()) } else { Ok(ret) }
}

/// A rustix result with its error as the raw errno.
pub(super) fn rx<T>(r: rustix::io::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| e.raw_os_error())
}

/// Reports `(step, errno)` on the error pipe (at [`FD_ERROR`], where the
/// supervisor moved it) and exits with status 126.
pub(super) fn fail(step: Step, err: Errno) -> ! {
    fail_on(FD_ERROR, step, err)
}

/// [`fail`] on a given descriptor: the caller's number for the error pipe,
/// before the supervisor has moved it to [`FD_ERROR`].
pub(super) fn fail_on(error_fd: RawFd, step: Step, err: Errno) -> ! {
    fail_detail_on(error_fd, step, 0, err)
}

/// [`fail`] with a detail: which part of the step failed (see
/// `wire::encode_error`).
pub(super) fn fail_detail(step: Step, detail: u32, err: Errno) -> ! {
    fail_detail_on(FD_ERROR, step, detail, err)
}

fn fail_detail_on(error_fd: RawFd, step: Step, detail: u32, err: Errno) -> ! {
    let msg = wire::encode_error(step, detail, err);
    // SAFETY: write(2) reads `msg.len()` bytes from a live stack array. The
    // descriptor is only a number to the kernel: were it not open, the call
    // would fail with EBADF, and the caller would then see no message, only
    // the end of the pipe.
    unsafe { libc::write(error_fd, msg.as_ptr().cast(), msg.len()) };
    exit(126)
}

/// The value of `r`, or [`fail`] with `step` and its errno.
pub(super) fn or_fail<T>(step: Step, r: Result<T, Errno>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(step, e),
    }
}

/// `setfsgid(gid)`, then `setfsuid(uid)`: the ids file system calls are
/// checked against, for this thread only. Raw system calls: they return
/// the previous id and never an error, so each is checked by asking again
/// with `-1`, which changes nothing and returns the current id.
///
/// # References
/// - [`setfsuid(2)`](https://man7.org/linux/man-pages/man2/setfsuid.2.html)
pub(super) fn set_fs_ids(uid: libc::uid_t, gid: libc::gid_t) -> Result<(), Errno> {
    for (nr, id) in [(libc::SYS_setfsgid, gid), (libc::SYS_setfsuid, uid)] {
        // SAFETY: setfsuid/setfsgid take one integer and touch no memory.
        let now = unsafe {
            libc::syscall(nr, id);
            libc::syscall(nr, libc::uid_t::MAX)
        };
        if now != c_long::from(id) {
            return Err(libc::EPERM);
        }
    }
    Ok(())
}

/// `_exit(code)`: ends the process at once, running no `atexit` handler,
/// no destructor and no stdio flush (which would take locks).
pub(super) fn exit(code: c_int) -> ! {
    // SAFETY: _exit is async-signal-safe and touches no memory of the
    // process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Ends a cloned child with `_exit(127)` when a panic unwinds through the
/// frame that holds it.
///
/// A child's stack is a copy of the calling thread's stack. An unwinding
/// panic would leave the child's entry function and carry on into the
/// copied frames of the caller: `clone3` would "return" a second time in a
/// process that is not the caller, which would then run the caller's code
/// and the destructors of values the caller owns (closing its descriptors,
/// freeing its memory, in the copy) instead of exec-ing or exiting. Each
/// child creates one of these as the first statement of its branch; the
/// child functions never return, so the guard is dropped only by unwinding.
///
/// It is a last line, not a licence to panic: the panic hook runs before
/// the unwinding starts, and it (and the unwinder) may allocate or take a
/// lock that a thread of the caller held at the clone, and hang there. Code
/// reachable from a child is written not to panic: no `unwrap`, no
/// indexing that can be out of range.
#[derive(Debug)]
pub(super) struct PanicBarrier(());

impl PanicBarrier {
    /// Call only in a child, right after `clone3` returned 0 there:
    /// dropping the guard ends the process.
    pub(super) fn new() -> PanicBarrier {
        PanicBarrier(())
    }
}

impl Drop for PanicBarrier {
    fn drop(&mut self) {
        exit(127)
    }
}

/// `setrlimit(resource, limit)`.
pub(super) fn setrlimit(resource: c_int, limit: &libc::rlimit) -> Result<(), Errno> {
    // SAFETY: reads a live rlimit struct.
    check(unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, limit) }).map(drop)
}

/// `getrusage(RUSAGE_CHILDREN)`: the resources of every reaped descendant
/// (zero where the call fails, which it cannot with these arguments).
pub(super) fn children_usage() -> libc::rusage {
    // SAFETY: all-zero is a valid rusage; getrusage fills the live,
    // correctly sized struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    }
}
