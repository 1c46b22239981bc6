//! Signal sets, dispositions, the mask, and `signalfd`.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};

use super::{Errno, check, check_long};

/// A signal set holding `signals`.
pub(in crate::child) fn sigset(signals: &[c_int]) -> libc::sigset_t {
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

/// The kernel's signal set: 64 signals, 8 bytes (`sigsetsize` of the
/// `rt_sig*` calls).
const KERNEL_SIGSET_SIZE: usize = 8;

/// The signals whose disposition can be set: 1..=64 but `SIGKILL` and
/// `SIGSTOP`.
fn catchable() -> impl Iterator<Item = c_int> {
    (1..=64).filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
}

/// The default disposition for `sig` (`SIG_DFL`, through
/// [`set_disposition`]).
fn default_disposition(sig: c_int) -> Result<(), Errno> {
    set_disposition(sig, libc::SIG_DFL)
}

/// `sig` ignored (`SIG_IGN`, through [`set_disposition`]).
pub(in crate::child) fn ignore(sig: c_int) -> Result<(), Errno> {
    set_disposition(sig, libc::SIG_IGN)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("set_disposition knows the kernel's struct sigaction of x86-64 and aarch64 only");

/// `rt_sigaction(sig, {disposition, no flags, empty mask}, NULL, 8)`, for
/// `SIG_DFL` or `SIG_IGN` only (no handler): the raw system call, not
/// glibc's `sigaction`, which refuses the two real-time signals glibc
/// keeps for itself (32 and 33) and would leave them as the caller had
/// them (a caller's process can have 32 ignored, and an ignored signal
/// survives `execve`).
///
/// # References
/// - [`rt_sigaction(2)`](https://man7.org/linux/man-pages/man2/rt_sigaction.2.html)
fn set_disposition(sig: c_int, disposition: libc::sighandler_t) -> Result<(), Errno> {
    // The kernel's `struct sigaction` on x86-64 and aarch64: the handler,
    // the flags, the restorer, the mask (8 bytes: 64 signals), each one
    // word; all zero but the handler.
    let act: [libc::c_ulong; 4] = [disposition as libc::c_ulong, 0, 0, 0];
    // SAFETY: `act` is a kernel sigaction that installs no handler, read
    // by the call; the old action's pointer is null, so nothing is written.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act.as_ptr(),
            std::ptr::null_mut::<libc::c_ulong>(),
            KERNEL_SIGSET_SIZE,
        )
    })
    .map(drop)
}

/// Every catchable signal's disposition back to `SIG_DFL` (for each of
/// 1..=64 but `SIGKILL` and `SIGSTOP`): the caller's handlers, and the
/// signals it ignores (the Rust runtime's `SIGPIPE`, which would survive
/// an `execve`), are gone.
fn default_dispositions() -> Result<(), Errno> {
    catchable().try_for_each(default_disposition)
}

/// Discards every signal pending for this thread (`rt_sigpending`, then
/// `SIG_IGN` for each, which discards it: POSIX). Called out of the
/// caller's process group, with every signal held: what a signal to the
/// group (a terminal's `^C`) left pending would otherwise kill the child
/// as soon as it unblocks, even where the caller handles or ignores it
/// (the kernel keeps a blocked signal whatever its disposition).
///
/// # References
/// - [`rt_sigpending(2)`](https://man7.org/linux/man-pages/man2/rt_sigpending.2.html)
fn discard_pending() -> Result<(), Errno> {
    let mut pending: u64 = 0;
    // SAFETY: writes the kernel's signal set (KERNEL_SIGSET_SIZE bytes, a
    // u64's) into `pending`.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_rt_sigpending,
            std::ptr::from_mut(&mut pending),
            KERNEL_SIGSET_SIZE,
        )
    })?;
    catchable()
        .filter(|&sig| pending & (1 << (sig - 1)) != 0)
        .try_for_each(ignore)
}

/// What a process cloned from the caller (or from the supervisor) does
/// once it is out of the caller's process group: discards what is
/// pending ([`discard_pending`]), puts every disposition to its default
/// ([`default_dispositions`]) and clears its mask, so that it neither
/// runs the caller's handlers nor keeps the signals the caller ignores or
/// blocks (ignored ones would survive an `execve`).
pub(in crate::child) fn reset_signals() -> Result<(), Errno> {
    discard_pending()?;
    default_dispositions()?;
    sigprocmask(libc::SIG_SETMASK, &sigset(&[]))
}

/// A set of every signal (`sigfillset`). glibc's `pthread_sigmask` leaves
/// out of a mask the two real-time signals it keeps for itself.
pub(in crate::child) fn all_signals() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the whole set (bit operations on the
    // memory it is given, no system call).
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// `sigprocmask(how, set)`.
pub(in crate::child) fn sigprocmask(how: c_int, set: &libc::sigset_t) -> Result<(), Errno> {
    // SAFETY: reads an initialised set; the old mask is not asked for.
    check(unsafe { libc::sigprocmask(how, set, std::ptr::null_mut()) }).map(drop)
}

/// `pthread_sigmask(how, set, &old)`: changes the calling thread's mask;
/// returns the mask it had. Other threads' masks are untouched.
///
/// # References
/// - [`pthread_sigmask(3)`](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
pub(in crate::child) fn thread_sigmask(
    how: c_int,
    set: &libc::sigset_t,
) -> Result<libc::sigset_t, Errno> {
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: reads an initialised set and writes the whole of `old`, which
    // is a sigset_t's room, when it succeeds; it returns the error number
    // itself rather than -1 and errno.
    let ret = unsafe { libc::pthread_sigmask(how, set, old.as_mut_ptr()) };
    if ret != 0 {
        return Err(ret);
    }
    // SAFETY: the successful call above wrote the old mask.
    Ok(unsafe { old.assume_init() })
}

/// `signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK)`: a new descriptor that
/// reads the signals of `set` (which must be blocked).
///
/// # References
/// - [`signalfd(2)`](https://man7.org/linux/man-pages/man2/signalfd.2.html)
pub(in crate::child) fn signalfd(set: &libc::sigset_t) -> Result<OwnedFd, Errno> {
    // SAFETY: reads an initialised set; -1 asks for a new descriptor.
    let fd = check(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: signalfd(-1, ..) returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
