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

use std::ffi::{CStr, c_char, c_int, c_long};
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::FD_ERROR;
use super::wire::{self, Step};

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

/// `CLONE_INTO_CGROUP` (`libc`'s overflows its `c_int` type).
pub(super) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

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
/// [`PanicBarrier`], make only async-signal-safe calls and end in `execve`
/// or `_exit`, never return. Pointers in `args` (`pidfd`) must stay valid
/// for the call.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(super) unsafe fn clone3(args: &mut libc::clone_args) -> Result<libc::pid_t, Errno> {
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
pub(super) fn empty_clone_args() -> libc::clone_args {
    // SAFETY: clone_args is a C struct of integers (pointers travel as
    // u64), for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// [`empty_clone_args`] with `CLONE_PIDFD` storing the new process's pidfd
/// in `pidfd`. `exit_signal` stays 0: no `SIGCHLD` reaches the caller, and
/// a host application's `waitpid(-1, ..)` cannot reap (and steal) the
/// child; it is waited for through its pidfd with `__WALL`.
pub(super) fn pidfd_clone_args(pidfd: &mut c_int) -> libc::clone_args {
    let mut args = empty_clone_args();
    args.flags = libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::from_mut(pidfd) as u64;
    args
}

/// The pidfd `clone3` stored through [`pidfd_clone_args`], owned.
pub(super) fn take_pidfd(pidfd: c_int) -> OwnedFd {
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
pub(super) unsafe fn execve(
    program: &CStr,
    argv: &[*const c_char],
    envp: &[*const c_char],
) -> Errno {
    // SAFETY: the arrays' shape is the caller's contract; `program` is a
    // NUL-terminated string borrowed for the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` at the
/// lowest free number from `min` on.
pub(super) fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer third argument, no pointer;
    // a number that is not open fails with EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `dup3(fd, target, flags)`: `target` now names what `fd` names, whether
/// or not `target` was open before.
pub(super) fn dup3(fd: RawFd, target: RawFd, flags: c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments only. Whatever `target` named before is
    // closed: in a child that owns its copy of the descriptor table, and
    // whose caller's values are never dropped (it execs or exits), nothing
    // else refers to it.
    check(unsafe { libc::dup3(fd, target, flags) }).map(drop)
}

/// `close(fd)`, errors ignored: the number is free afterwards either way.
///
/// libc's, not rustix's: rustix's `close` asserts in debug builds that the
/// call succeeded, and the supervisor closes slots that may hold nothing
/// (`EBADF`), which would panic in the child.
pub(super) fn close(fd: RawFd) {
    // SAFETY: integer argument only. The child owns its private copy of the
    // descriptor table, and the copies of the caller's `OwnedFd`s in its
    // memory are never dropped (it execs or exits), so no owner is left to
    // use or close this number again.
    unsafe { libc::close(fd) };
}

/// `close_range(first, ~0, flags)`: closes every descriptor from `first`
/// on, or, with `CLOSE_RANGE_CLOEXEC`, marks them close-on-exec.
///
/// # References
/// - [`close_range(2)`](https://man7.org/linux/man-pages/man2/close_range.2.html)
pub(super) fn close_range(first: RawFd, flags: c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments only; the ownership argument of `close`
    // holds for every descriptor in the range.
    check(unsafe { libc::close_range(first as u32, u32::MAX, flags) }).map(drop)
}

/// A signal set holding `signals`.
pub(super) fn sigset(signals: &[c_int]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set (bit operations on the
    // memory it is given, no system call); sigaddset then sets one bit per
    // valid signal number.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in signals {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// `sigaction(sig, SIG_DFL)`: the default disposition for `sig`.
pub(super) fn default_disposition(sig: c_int) -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags)
    // and SIG_DFL installs no handler; sigaction reads it and writes nothing
    // back (null old-action pointer).
    check(unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut())
    })
    .map(drop)
}

/// `sigprocmask(how, set)`.
pub(super) fn sigprocmask(how: c_int, set: &libc::sigset_t) -> Result<(), Errno> {
    // SAFETY: reads an initialised set; the old mask is not asked for.
    check(unsafe { libc::sigprocmask(how, set, std::ptr::null_mut()) }).map(drop)
}

/// `signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK)`: a new descriptor that
/// reads the signals of `set` (which must be blocked).
///
/// # References
/// - [`signalfd(2)`](https://man7.org/linux/man-pages/man2/signalfd.2.html)
pub(super) fn signalfd(set: &libc::sigset_t) -> Result<OwnedFd, Errno> {
    // SAFETY: reads an initialised set; -1 asks for a new descriptor.
    let fd = check(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: signalfd(-1, ..) returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

/// `landlock_restrict_self(ruleset, 0)`.
///
/// # References
/// - [`landlock_restrict_self(2)`](https://man7.org/linux/man-pages/man2/landlock_restrict_self.2.html)
pub(super) fn landlock_restrict_self(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) }).map(drop)
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, {access,
/// parent}, 0)`: `access` beneath the directory open at `parent`.
///
/// # References
/// - [`landlock_add_rule(2)`](https://man7.org/linux/man-pages/man2/landlock_add_rule.2.html)
pub(super) fn landlock_add_path_rule(
    ruleset: RawFd,
    parent: RawFd,
    access: u64,
) -> Result<(), Errno> {
    /// The kernel's `struct landlock_path_beneath_attr`, packed.
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;
    let rule = PathBeneath {
        allowed_access: access,
        parent_fd: parent,
    };
    // SAFETY: the kernel reads one packed landlock_path_beneath_attr, laid
    // out as `rule`, which lives on this stack for the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            std::ptr::addr_of!(rule),
            0,
        )
    })
    .map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, {len, filter})`.
///
/// # References
/// - [`seccomp(2)`](https://man7.org/linux/man-pages/man2/seccomp.2.html)
pub(super) fn seccomp_set_filter(filter: &[libc::sock_filter]) -> Result<(), Errno> {
    seccomp_filter(filter, 0).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
/// {len, filter})`: the filter installed on this thread, and a new
/// close-on-exec descriptor that receives its `SECCOMP_RET_USER_NOTIF`
/// notifications. Needs no_new_privs or `CAP_SYS_ADMIN` in the process's
/// user namespace; at most one such filter per thread (`EBUSY`).
///
/// # References
/// - [`seccomp(2)`](https://man7.org/linux/man-pages/man2/seccomp.2.html)
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
pub(super) fn seccomp_set_filter_listener(filter: &[libc::sock_filter]) -> Result<OwnedFd, Errno> {
    let fd = seccomp_filter(filter, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    let fd = RawFd::try_from(fd).map_err(|_| libc::EBADF)?;
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER, a successful call
    // returns a new descriptor of this process that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn seccomp_filter(filter: &[libc::sock_filter], flags: libc::c_ulong) -> Result<c_long, Errno> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| libc::EINVAL)?,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel reads `prog` and the `len` instructions it points
    // to, both alive for the call, and copies them; it writes nothing.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::addr_of!(prog),
        )
    })
}

/// `seccomp(SECCOMP_GET_NOTIF_SIZES)`: the sizes of the kernel's
/// notification structures, which may be larger than this program's (a
/// newer kernel); a buffer must be at least that large.
///
/// # References
/// - [`seccomp(2)`](https://man7.org/linux/man-pages/man2/seccomp.2.html)
pub(super) fn seccomp_notif_sizes() -> Result<libc::seccomp_notif_sizes, Errno> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: the kernel writes one seccomp_notif_sizes to the live struct
    // it is given.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            std::ptr::addr_of_mut!(sizes),
        )
    })?;
    Ok(sizes)
}

/// The room of a [`NotifBuf`]: a kernel whose notification structures are
/// larger (`SECCOMP_GET_NOTIF_SIZES`) is refused before any clone.
pub(crate) const NOTIF_ROOM: usize = 256;

/// A stack buffer for one `struct seccomp_notif` or `struct
/// seccomp_notif_resp`, of whatever size the kernel's are up to
/// [`NOTIF_ROOM`]: the kernel copies its own structure's size in or out.
#[repr(C, align(8))]
pub(super) struct NotifBuf([u8; NOTIF_ROOM]);

impl NotifBuf {
    pub(super) fn zeroed() -> NotifBuf {
        NotifBuf([0; NOTIF_ROOM])
    }
}

/// `ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV)`: the next notification's
/// id, and the thread id (in this process's pid namespace) of the caller
/// of the notifying system call. Call it only when the listener polls
/// readable: it blocks while no notification is pending. `ENOENT`: the
/// caller was interrupted (or killed) meanwhile.
///
/// # References
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
pub(super) fn notif_recv(listener: RawFd, buf: &mut NotifBuf) -> Result<(u64, u32), Errno> {
    // The kernel refuses a buffer that is not zeroed (EINVAL).
    buf.0 = [0; NOTIF_ROOM];
    // SAFETY: the kernel writes one seccomp_notif (at most NOTIF_ROOM
    // bytes, checked before the clone) to the live, aligned buffer.
    check(unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, buf.0.as_mut_ptr()) })?;
    // struct seccomp_notif { __u64 id; __u32 pid; __u32 flags; ... }
    let [i0, i1, i2, i3, i4, i5, i6, i7, p0, p1, p2, p3, ..] = buf.0;
    Ok((
        u64::from_ne_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
        u32::from_ne_bytes([p0, p1, p2, p3]),
    ))
}

/// The supervisor's answer to a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NotifAnswer {
    /// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel runs the system call
    /// as if no filter had asked.
    Continue,
    /// The system call fails with this errno; the kernel never runs it.
    Fail(Errno),
}

/// `ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND)`: answers notification `id`.
/// `ENOENT`: its caller was interrupted (a restarted call notifies again,
/// with a new id) or killed.
///
/// # References
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
pub(super) fn notif_send(
    listener: RawFd,
    id: u64,
    answer: NotifAnswer,
    buf: &mut NotifBuf,
) -> Result<(), Errno> {
    // struct seccomp_notif_resp { __u64 id; __s64 val; __s32 error;
    // __u32 flags; }, the rest of the kernel's size zero.
    let (error, flags) = match answer {
        NotifAnswer::Continue => (0i32, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        NotifAnswer::Fail(errno) => (-errno, 0),
    };
    buf.0 = [0; NOTIF_ROOM];
    let fields = id
        .to_ne_bytes()
        .into_iter()
        .chain(0i64.to_ne_bytes())
        .chain(error.to_ne_bytes())
        .chain(flags.to_ne_bytes());
    for (byte, value) in buf.0.iter_mut().zip(fields) {
        *byte = value;
    }
    // SAFETY: the kernel reads one seccomp_notif_resp (at most NOTIF_ROOM
    // bytes, checked before the clone) from the live, aligned buffer.
    check(unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, buf.0.as_ptr()) })
        .map(drop)
}

#[cfg(test)]
mod tests {
    /// A child closes slots that may hold nothing: that must not panic
    /// (rustix's `close` asserts success in debug builds).
    #[test]
    fn closing_a_number_that_is_not_open_is_harmless() {
        super::close(i32::MAX);
    }

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
