//! seccomp: filters installed, and the exec guard's notifications.

use std::ffi::c_long;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{Errno, check, check_long};

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, {len, filter})`.
///
/// # References
/// - [`seccomp(2)`](https://man7.org/linux/man-pages/man2/seccomp.2.html)
pub(in crate::child) fn seccomp_set_filter(filter: &[libc::sock_filter]) -> Result<(), Errno> {
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
pub(in crate::child) fn seccomp_set_filter_listener(
    filter: &[libc::sock_filter],
) -> Result<OwnedFd, Errno> {
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
pub(in crate::child) fn seccomp_notif_sizes() -> Result<libc::seccomp_notif_sizes, Errno> {
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
pub(in crate::child) struct NotifBuf([u8; NOTIF_ROOM]);

impl NotifBuf {
    pub(in crate::child) fn zeroed() -> NotifBuf {
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
pub(in crate::child) fn notif_recv(
    listener: RawFd,
    buf: &mut NotifBuf,
) -> Result<(u64, u32), Errno> {
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
pub(in crate::child) enum NotifAnswer {
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
pub(in crate::child) fn notif_send(
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
