//! Descriptors the child knows by number: copies, slots, closing.

use std::ffi::c_int;
use std::os::fd::RawFd;

use super::{Errno, check};

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` at the
/// lowest free number from `min` on.
pub(in crate::child) fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer third argument, no pointer;
    // a number that is not open fails with EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `dup3(fd, target, flags)`: `target` now names what `fd` names, whether
/// or not `target` was open before.
pub(in crate::child) fn dup3(fd: RawFd, target: RawFd, flags: c_int) -> Result<(), Errno> {
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
pub(in crate::child) fn close(fd: RawFd) {
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
pub(in crate::child) fn close_range(first: RawFd, flags: c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments only; the ownership argument of `close`
    // holds for every descriptor in the range.
    check(unsafe { libc::close_range(first as u32, u32::MAX, flags) }).map(drop)
}

/// `write(fd, word)`: one native-endian `i32`, in one call (4 bytes to a
/// pipe are written whole or not at all).
pub(in crate::child) fn write_word(fd: RawFd, word: i32) -> Result<(), Errno> {
    let bytes = word.to_ne_bytes();
    // SAFETY: write(2) reads 4 bytes from a live stack array; the
    // descriptor is only a number to the kernel (EBADF if not open).
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    match n {
        4 => Ok(()),
        n if n < 0 => Err(super::errno()),
        _ => Err(libc::EIO),
    }
}

/// `read(fd, 4 bytes)`, retried on `EINTR`: the word [`write_word`] wrote,
/// or `None` at the end of the pipe (its writer gone without a word) or
/// on a short read.
pub(in crate::child) fn read_word(fd: RawFd) -> Result<Option<i32>, Errno> {
    let mut bytes = [0u8; 4];
    loop {
        // SAFETY: read(2) writes at most 4 bytes into a live stack array.
        let n = unsafe { libc::read(fd, bytes.as_mut_ptr().cast(), bytes.len()) };
        match n {
            4 => return Ok(Some(i32::from_ne_bytes(bytes))),
            n if n < 0 && super::errno() == libc::EINTR => continue,
            n if n < 0 => return Err(super::errno()),
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {

    /// A child closes slots that may hold nothing: that must not panic
    /// (rustix's `close` asserts success in debug builds).
    #[test]
    fn closing_a_number_that_is_not_open_is_harmless() {
        super::close(i32::MAX);
    }

    /// A word goes through a pipe whole; the end of the pipe without one
    /// is `None`, never a word.
    #[test]
    fn a_word_goes_through_a_pipe_and_its_end_is_no_word() {
        use std::os::fd::AsRawFd;
        let (r, w) = rustix::pipe::pipe().unwrap();
        super::write_word(w.as_raw_fd(), -13).unwrap();
        assert_eq!(super::read_word(r.as_raw_fd()), Ok(Some(-13)));
        drop(w);
        assert_eq!(super::read_word(r.as_raw_fd()), Ok(None));
        assert_eq!(super::write_word(-1, 0), Err(libc::EBADF));
    }
}
