//! The probe's two system calls: the Landlock ABI version, and a trial
//! clone that shows whether namespaces can really be made here.

use std::ffi::c_int;
use std::io;
use std::os::fd::AsFd;

use rustix::process::{WaitId, WaitIdOptions};

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
/// (containers may forbid what the kernel has).
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(crate) fn try_clone(namespaces: u64) -> io::Result<()> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    args.flags |= namespaces;
    // SAFETY: `pidfd` outlives the call; the child holds a panic barrier
    // and only calls _exit.
    let ret = unsafe { sys::clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
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
