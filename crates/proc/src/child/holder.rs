//! The holder process, child side: cloned into the run's new namespaces,
//! it keeps one pipe on its stdin and execs `/bin/cat`. The caller's handle
//! on it (id maps, kill and reap) is `crate::spawn::holder`.

use std::ffi::{c_char, c_int};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};

use super::sys;

/// Starts a holder: a process made with `clone3(CLONE_PIDFD | namespaces)`
/// that only keeps those namespaces alive for one run (the supervisor
/// `setns`es into them through the holder's pidfd). The supervisor thus
/// stays outside the run's pid namespace, and the caller writes the id
/// maps without a handshake; measured, this is faster than cloning the
/// supervisor into new namespaces (see ARCHITECTURE.md).
///
/// The holder closes every descriptor but `keepalive`, the read end of a
/// pipe, puts it on its stdin (`/dev/null` on the others) and execs
/// `/bin/cat` (a small image, rather than a copy of the caller's memory
/// kept alive): it ends when the caller closes the write end, or when the
/// caller's process dies. In a pid namespace it is the namespace's init,
/// so killing it ends every process in it. Its `exit_signal` is 0: it is
/// reaped through its pidfd.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
/// - [`setns(2)`](https://man7.org/linux/man-pages/man2/setns.2.html), on a pidfd
/// - [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html)
pub(crate) fn spawn_holder(namespaces: u64, keepalive: RawFd) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    args.flags |= namespaces;
    // SAFETY: `pidfd` outlives the call; the child branch holds a panic
    // barrier, makes only async-signal-safe calls and ends in execve or
    // _exit.
    let ret = unsafe { sys::clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        exec_cat(keepalive);
    }
    Ok((ret, sys::take_pidfd(pidfd)))
}

/// The holder: `keepalive` on stdin, `/dev/null` on stdout and stderr
/// (`cat` checks its stdout before reading), nothing else open, then
/// `/bin/cat`. Exits 126 when a descriptor step fails, 127 when `execve`
/// does.
fn exec_cat(keepalive: RawFd) -> ! {
    if keepalive != 0 && sys::dup3(keepalive, 0, 0).is_err() {
        sys::exit(126);
    }
    if sys::close_range(1, 0).is_err() {
        sys::exit(126);
    }
    // The lowest free number, 1, since everything from 1 on is closed.
    let null = rustix::fs::open(c"/dev/null", OFlags::WRONLY, Mode::empty());
    if !null.is_ok_and(|fd| fd.into_raw_fd() == 1) || sys::dup3(1, 2, 0).is_err() {
        sys::exit(126);
    }
    let argv: [*const c_char; 2] = [c"cat".as_ptr(), std::ptr::null()];
    let envp: [*const c_char; 1] = [std::ptr::null()];
    // SAFETY: both arrays are null-terminated, on this stack, and point to
    // static NUL-terminated strings.
    unsafe { sys::execve(c"/bin/cat", &argv, &envp) };
    sys::exit(127)
}
