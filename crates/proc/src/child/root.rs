//! The private root, child side: the program builds it in the run's mount
//! namespace, from the plan the caller made (`crate::root`), before it
//! gives up its capabilities there.
//!
//! 1. Each bind source is cloned, while every host path is still in sight:
//!    `open_tree(OPEN_TREE_CLONE)`, a detached copy of one mount, reached
//!    with the caller's ids.
//! 2. The file system ids become the program's (a root caller's, in a user
//!    namespace: a tmpfs made there can only hold ids mapped there).
//! 3. The new root, a small tmpfs, is mounted over `/dev` (a directory
//!    every system has, and the only part of the host that must be out of
//!    sight while the root is built: its devices were cloned in step 2),
//!    and becomes the working directory.
//! 4. The plan's steps, in order, relative to it: directories, empty
//!    files (where a file is bound), whiteouts (names without contents),
//!    symbolic links, and each clone moved onto its
//!    place with `move_mount`, then remounted with the plan's flags
//!    (read-only, `nosuid`, `nodev`, `noexec`).
//! 5. A new procfs of the run's pid namespace (`subset=pid`, so no
//!    `/proc/sys`, `/proc/kcore`, `/proc/sysrq-trigger`), mounted while
//!    the host's procfs is still in this namespace: the kernel lets a user
//!    namespace mount procfs only where one is already fully visible.
//! 6. The root itself read-only when the plan says so (no Landlock: then
//!    nothing else would refuse writes to its directories).
//! 7. `pivot_root(".", ".")` and a lazy unmount of the old root, stacked
//!    on the new one: no path leads back to the host.
//!
//! # References
//! - [`pivot_root(2)`](https://man7.org/linux/man-pages/man2/pivot_root.2.html)
//!   (the `pivot_root(".", ".")` idiom)
//! - [`open_tree(2)`](https://man7.org/linux/man-pages/man2/open_tree.2.html),
//!   [`move_mount(2)`](https://man7.org/linux/man-pages/man2/move_mount.2.html)
//! - [`mount(2)`](https://man7.org/linux/man-pages/man2/mount.2.html):
//!   `MS_REMOUNT | MS_BIND` changes one mount's flags; in a user namespace
//!   the flags a mount was locked with (its atime flags among them) must
//!   be kept, which the plan does
//! - [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html):
//!   `subset=pid`

use std::ffi::c_int;
use std::os::fd::{BorrowedFd, IntoRawFd};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use super::sys::{self, Errno, rx};
use super::wire::Step;
use super::{MAX_BINDS, Root, RootOp};

/// Which part of building the root failed: the detail of a
/// [`Step::Root`] error, `kind << 16 | index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// `setfsuid`/`setfsgid`.
    FsIds,
    /// `open_tree` of source `index`.
    Clone(usize),
    /// Mounting the new root's tmpfs, or entering it.
    NewRoot,
    /// Step `index` of the plan.
    Op(usize),
    /// Mounting the new procfs.
    Proc,
    /// Making the new root read-only.
    ReadOnly,
    /// `pivot_root`, or detaching the old root.
    Pivot,
}

impl Detail {
    fn encode(self) -> u32 {
        let (kind, index) = match self {
            Detail::FsIds => (1, 0),
            Detail::Clone(i) => (2, i),
            Detail::NewRoot => (3, 0),
            Detail::Op(i) => (4, i),
            Detail::Proc => (5, 0),
            Detail::ReadOnly => (6, 0),
            Detail::Pivot => (7, 0),
        };
        (kind << 16) | (index as u32 & 0xffff)
    }

    /// The detail an error message carried, if it names one.
    pub(crate) fn decode(word: u32) -> Option<Detail> {
        let index = (word & 0xffff) as usize;
        Some(match word >> 16 {
            1 => Detail::FsIds,
            2 => Detail::Clone(index),
            3 => Detail::NewRoot,
            4 => Detail::Op(index),
            5 => Detail::Proc,
            6 => Detail::ReadOnly,
            7 => Detail::Pivot,
            _ => return None,
        })
    }
}

fn or_fail<T>(detail: Detail, r: Result<T, Errno>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => sys::fail_detail(Step::Root, detail.encode(), e),
    }
}

/// Builds the private root and enters it, or reports the part that failed
/// and exits. The working directory is `/` of the new root afterwards.
pub(super) fn build(root: &Root) {
    // Directories 0755 whatever the caller's umask; the program gets the
    // caller's back.
    let umask = rustix::process::umask(Mode::from_raw_mode(0o022));
    let mut trees: [c_int; MAX_BINDS] = [-1; MAX_BINDS];
    for (i, source) in root.sources.iter().enumerate() {
        let flags = OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW;
        let tree = or_fail(
            Detail::Clone(i),
            rx(rustix::mount::open_tree(CWD, source.as_c_str(), flags)),
        );
        match trees.get_mut(i) {
            Some(slot) => *slot = tree.into_raw_fd(),
            None => sys::fail_detail(Step::Root, Detail::Clone(i).encode(), libc::E2BIG),
        }
    }
    // The sources were reached with the caller's ids (the paths are the
    // caller's choice; the jail parent need not let the sandbox in); what
    // the root holds is made with the program's.
    if let Some((uid, gid)) = root.fs_ids {
        or_fail(Detail::FsIds, sys::set_fs_ids(uid, gid));
    }
    or_fail(
        Detail::NewRoot,
        rx(rustix::mount::mount(
            c"codejail-root",
            c"/dev",
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            root.tmpfs_data.as_c_str(),
        )),
    );
    or_fail(Detail::NewRoot, rx(rustix::process::chdir(c"/dev")));
    for (i, op) in root.ops.iter().enumerate() {
        or_fail(Detail::Op(i), run_op(op, &trees));
    }
    if root.proc {
        or_fail(
            Detail::Proc,
            rx(rustix::mount::mount(
                c"proc",
                c"proc",
                c"proc",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"subset=pid",
            )),
        );
    }
    if root.read_only {
        let flags = MountFlags::BIND
            | MountFlags::RDONLY
            | MountFlags::NOSUID
            | MountFlags::NODEV
            | MountFlags::NOEXEC;
        or_fail(
            Detail::ReadOnly,
            rx(rustix::mount::mount_remount(c".", flags, c"")),
        );
    }
    or_fail(Detail::Pivot, rx(rustix::process::pivot_root(c".", c".")));
    or_fail(
        Detail::Pivot,
        rx(rustix::mount::unmount(c".", UnmountFlags::DETACH)),
    );
    or_fail(Detail::Pivot, rx(rustix::process::chdir(c"/")));
    rustix::process::umask(umask);
}

/// One step of the plan, relative to the working directory (the new root).
fn run_op(op: &RootOp, trees: &[c_int; MAX_BINDS]) -> Result<(), Errno> {
    match op {
        RootOp::Dir { path, mode } => rx(rustix::fs::mkdirat(
            CWD,
            path.as_c_str(),
            Mode::from_raw_mode(*mode),
        )),
        RootOp::File { path } => {
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
            rx(rustix::fs::openat(
                CWD,
                path.as_c_str(),
                flags,
                Mode::empty(),
            ))
            .map(drop)
        }
        RootOp::Whiteout { path } => rx(rustix::fs::mknodat(
            CWD,
            path.as_c_str(),
            rustix::fs::FileType::CharacterDevice,
            Mode::empty(),
            0,
        )),
        RootOp::Link { target, path } => rx(rustix::fs::symlinkat(
            target.as_c_str(),
            CWD,
            path.as_c_str(),
        )),
        RootOp::Bind {
            source,
            path,
            remount,
        } => {
            let Some(&tree) = trees.get(*source).filter(|fd| **fd >= 0) else {
                return Err(libc::EBADF);
            };
            // SAFETY: `tree` was returned by open_tree above and is
            // closed only below, after its single use.
            let from = unsafe { BorrowedFd::borrow_raw(tree) };
            let moved = rx(rustix::mount::move_mount(
                from,
                c"",
                CWD,
                path.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            ));
            sys::close(tree);
            moved?;
            match remount {
                Some(flags) => rx(rustix::mount::mount_remount(path.as_c_str(), *flags, c"")),
                None => Ok(()),
            }
        }
    }
}
