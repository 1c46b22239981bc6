//! Landlock: a rule added, the ruleset enforced.

use std::ffi::c_int;
use std::os::fd::RawFd;

use super::{Errno, check_long};

/// `landlock_restrict_self(ruleset, 0)`.
///
/// # References
/// - [`landlock_restrict_self(2)`](https://man7.org/linux/man-pages/man2/landlock_restrict_self.2.html)
pub(in crate::child) fn landlock_restrict_self(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) }).map(drop)
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, {access,
/// parent}, 0)`: `access` beneath the directory open at `parent`.
///
/// # References
/// - [`landlock_add_rule(2)`](https://man7.org/linux/man-pages/man2/landlock_add_rule.2.html)
pub(in crate::child) fn landlock_add_path_rule(
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
