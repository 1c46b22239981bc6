//! The holder process, child side: cloned into the run's new namespaces,
//! with signals and a session of its own, it keeps one pipe on its stdin
//! and execs `/bin/cat`. The caller's handle
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
/// With `net`, the network namespace is not among the clone's: the holder
/// makes it itself (`unshare(CLONE_NEWNET)`, with the capabilities it has
/// in its new user namespace) and writes the outcome on `net` as one
/// native-endian `i32`, 0 or the errno, before anything else. The
/// namespace costs more to make than all the others together, and this
/// way the kernel makes it on the holder's CPU while the supervisor and
/// the program set the run up; the program joins it last, once the word
/// says it exists (`program::join_net_ns`).
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
/// - [`unshare(2)`](https://man7.org/linux/man-pages/man2/unshare.2.html)
/// - [`setns(2)`](https://man7.org/linux/man-pages/man2/setns.2.html), on a pidfd
/// - [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html)
pub(crate) fn spawn_holder(
    namespaces: u64,
    keepalive: RawFd,
    net: Option<RawFd>,
) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    args.flags |= namespaces;
    if net.is_some() {
        args.flags &= !(libc::CLONE_NEWNET as u64);
    }
    // SAFETY: `pidfd` outlives the call; the child branch holds a panic
    // barrier, makes only async-signal-safe calls and ends in execve or
    // _exit.
    let ret = unsafe { sys::clone3_signals_held(&mut args) };
    let ret = ret.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        // The word first: the program waits for it, and every signal
        // stays held until `detach`.
        if let Some(net) = net {
            make_net_ns(net);
        }
        detach();
        exec_cat(keepalive);
    }
    Ok((ret, sys::take_pidfd(pidfd)))
}

/// The holder's own session and signals, not the caller's: a session of
/// its own, so that a terminal's signals for the caller's process group
/// (`^C`) do not reach it, then every disposition to its default, what
/// the group was sent meanwhile discarded, and nothing blocked (the clone
/// held every signal until now; `cat` would keep what the caller ignores
/// or blocks). Exits 126 when either fails.
fn detach() {
    // The session first: a signal the caller's group was sent until then
    // waits, held, and the reset discards it.
    if rustix::process::setsid().is_err() || sys::reset_signals().is_err() {
        sys::exit(126);
    }
}

/// `unshare(CLONE_NEWNET)`, then its outcome written on `net` (0 or the
/// errno, one `i32`: a write of 4 bytes to a pipe is atomic): the word is
/// written only once `unshare` has returned, so a 0 means the namespace
/// exists.
///
/// A holder refused the namespace goes on to exec `cat` all the same: in
/// a pid namespace it is init, and its exit would kill the program
/// before the program could report the errno (the run would fail on
/// whatever step the program or the supervisor was at, or look like a
/// program killed by a signal). The program reads the errno and fails its
/// step; the caller then kills the holder. Only a word it could not write
/// ends it (126): the program then reads the end of the pipe.
fn make_net_ns(net: RawFd) {
    let word = unshare_net().err().unwrap_or(0);
    if sys::write_word(net, word).is_err() {
        sys::exit(126);
    }
}

/// `unshare(CLONE_NEWNET)`: the calling process (a single-threaded child)
/// moves into a new network namespace. The holder's way of making it, and
/// the probe's trials' (`trial.rs`), so that what the probe finds is what
/// the runs do.
pub(super) fn unshare_net() -> Result<(), sys::Errno> {
    // SAFETY: rustix marks unshare unsafe for CLONE_FILES and CLONE_FS,
    // which change what other threads share with this one; the callers
    // are single-threaded copies, and NEWNET changes nothing but the
    // network namespace.
    let made = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) };
    sys::rx(made)
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
