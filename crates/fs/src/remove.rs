//! Removing a jail without following a link.
//!
//! The walk holds one directory descriptor at a time: it goes down with
//! `openat(name, O_DIRECTORY | O_NOFOLLOW)` and back up with
//! `openat("..")`, so a tree as deep as the jailed code could make needs
//! neither deep recursion nor many descriptors. Entries are removed with
//! `unlinkat`, which never follows a link: a link planted in `tmp/` that
//! points at `/etc` is removed, its target untouched.
//!
//! It must run after the run is over (every process of the jail killed):
//! then no name in the tree can change under it. A tree whose owner still
//! acts on it (`codejail gc` removes leftovers that a local user may have
//! planted in a shared temp dir) cannot lead the walk out of it: each
//! `..` is checked to be the directory the walk came down from (device
//! and inode), and the walk stops with an error where it is not (a
//! directory moved out of the tree while it was being emptied).
//!
//! An entry found gone (`ENOENT`) counts as removed: two `codejail gc` at
//! once empty the same trees, each meeting what the other removed first.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a jail could not be removed completely.
#[derive(Debug, thiserror::Error)]
#[error("could not {step} {} while removing the jail: {source}", entry.display())]
pub struct RemoveError {
    /// The step, e.g. `open`, `unlink`, `read`.
    pub step: &'static str,
    /// The entry, relative to the jail (empty for the jail itself).
    pub entry: PathBuf,
    /// The underlying error, with its errno.
    #[source]
    pub source: io::Error,
}

fn fail(step: &'static str, entry: &Path) -> impl FnOnce(Errno) -> RemoveError {
    let entry = entry.to_owned();
    move |e| RemoveError {
        step,
        entry,
        source: e.into(),
    }
}

/// One directory of the walk: its subdirectories still to remove, its
/// own name in its parent (`None` for the jail itself), and its identity
/// (device, inode), which the way back up through `..` must find again.
struct Level {
    pending: Vec<CString>,
    name: Option<CString>,
    id: (u64, u64),
}

/// A directory's (device, inode), through its descriptor.
fn identity(dir: BorrowedFd<'_>, path: &Path) -> Result<(u64, u64), RemoveError> {
    let st = rustix::fs::fstat(dir).map_err(fail("stat", path))?;
    Ok((st.st_dev, st.st_ino))
}

/// Removes everything in the jail, then the jail directory itself.
pub(crate) fn remove_jail(jail: &OwnedFd, home: &Path) -> Result<(), RemoveError> {
    empty_tree(jail.as_fd())?;
    // The jail directory itself, by name in its parent: its name was made
    // by us and its parent is not the jail's to change.
    match std::fs::remove_dir(home) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RemoveError {
            step: "remove",
            entry: PathBuf::new(),
            source,
        }),
    }
}

/// Removes the directory `name` of `parent` and everything in it, the way
/// a jail is removed (by descriptor, never following a link, restoring
/// permissions the jailed code took away). For leftovers of runs whose
/// owner died (`codejail gc`); only call it when nothing runs in the tree.
///
/// Whether this call removed the directory itself: `false` when another
/// removal (another `codejail gc`) took it away first.
///
/// # Errors
/// [`RemoveError`] naming the step and the entry; a `name` that is not a
/// directory (a link, say) is refused with `ENOTDIR`, untouched.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> Result<bool, RemoveError> {
    let entry = Path::new(name);
    let dir = open_subdir(
        parent,
        &CString::new(name.as_bytes()).map_err(|_| fail("open", entry)(Errno::INVAL))?,
        entry,
    )?;
    empty_tree(dir.as_fd())?;
    drop(dir);
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(fail("remove", entry)(e)),
    }
}

/// Removes everything below `top`, leaving `top` itself, empty.
fn empty_tree(top: BorrowedFd<'_>) -> Result<(), RemoveError> {
    empty_tree_observed(top, &mut |_| {})
}

/// [`empty_tree`], calling `entered` with each directory's path once the
/// walk holds it (the tests move a directory there, as a racing owner
/// would).
fn empty_tree_observed(
    top: BorrowedFd<'_>,
    entered: &mut dyn FnMut(&Path),
) -> Result<(), RemoveError> {
    let root = rustix::fs::openat(top, c".", dir_flags(), Mode::empty())
        .map_err(fail("open", Path::new("")))?;
    let mut cur: OwnedFd = root;
    let mut path = PathBuf::new();
    let mut levels = vec![Level {
        pending: empty_dir(cur.as_fd(), &path)?,
        name: None,
        id: identity(cur.as_fd(), &path)?,
    }];
    while let Some(top) = levels.last_mut() {
        if let Some(sub) = top.pending.pop() {
            path.push(OsStr::from_bytes(sub.as_bytes()));
            cur = match open_subdir(cur.as_fd(), &sub, &path) {
                Ok(dir) => dir,
                // Gone already (another `gc` removing the same tree).
                Err(e) if e.source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    path.pop();
                    continue;
                }
                Err(e) => return Err(e),
            };
            entered(&path);
            let id = identity(cur.as_fd(), &path)?;
            let pending = empty_dir(cur.as_fd(), &path)?;
            levels.push(Level {
                pending,
                name: Some(sub),
                id,
            });
            continue;
        }
        let done = levels.pop().expect("the loop holds a level");
        let Some(name) = done.name else { break };
        let parent = rustix::fs::openat(&cur, c"..", dir_flags(), Mode::empty())
            .map_err(fail("open the parent of", &path))?;
        // The directory the walk came down from, or the tree was changed
        // under it (`cur` moved elsewhere): stop there, outside nothing.
        let expected = levels.last().expect("a named level has a parent").id;
        if identity(parent.as_fd(), &path)? != expected {
            return Err(fail("find the parent again (it was moved) of", &path)(
                Errno::STALE,
            ));
        }
        gone_or(rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR))
            .map_err(fail("remove", &path))?;
        path.pop();
        cur = parent;
    }
    Ok(())
}

/// A removal's result, where an entry already gone (`ENOENT`: another
/// `gc` removing the same tree) is removed.
fn gone_or(removed: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match removed {
        Err(Errno::NOENT) => Ok(()),
        other => other,
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Removes every non-directory entry of `dir` and returns the names of its
/// subdirectories. Makes `dir` writable first if the jailed code took that
/// away (only needed when the caller is not root).
fn empty_dir(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<CString>, RemoveError> {
    let stat = rustix::fs::fstat(dir).map_err(fail("stat", path))?;
    if stat.st_mode & 0o700 != 0o700 && stat.st_uid == rustix::process::geteuid().as_raw() {
        rustix::fs::fchmod(dir, Mode::from_raw_mode(0o700)).map_err(fail("chmod", path))?;
    }
    let mut subdirs = Vec::new();
    let mut entries = Dir::read_from(dir).map_err(fail("read", path))?;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(fail("read", path))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => continue,
                st => st
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .map_err(fail("stat", &path.join(OsStr::from_bytes(name.to_bytes()))))?,
            },
            kind => kind,
        };
        if kind == FileType::Directory {
            subdirs.push(name.to_owned());
        } else {
            gone_or(rustix::fs::unlinkat(dir, name, AtFlags::empty())).map_err(fail(
                "unlink",
                &path.join(OsStr::from_bytes(name.to_bytes())),
            ))?;
        }
    }
    Ok(subdirs)
}

/// Opens a subdirectory without following a link. If the jailed code made
/// it unreadable (`chmod 0`) and the caller owns it, the permission is
/// restored through an `O_PATH` descriptor of that very directory — never
/// by name — and the directory is opened again through that descriptor.
fn open_subdir(dir: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<OwnedFd, RemoveError> {
    match rustix::fs::openat(dir, name, dir_flags(), Mode::empty()) {
        Err(Errno::ACCESS) => {}
        other => return other.map_err(fail("open", path)),
    }
    let handle = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open", path))?;
    // chmod through the descriptor's magic link: the object it names, not a
    // path lookup (fchmod does not take O_PATH descriptors).
    let magic = format!("/proc/self/fd/{}", handle.as_raw_fd());
    rustix::fs::chmod(magic.as_str(), Mode::from_raw_mode(0o700)).map_err(fail("chmod", path))?;
    rustix::fs::openat(&handle, c".", dir_flags(), Mode::empty()).map_err(fail("open", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owner that moves the directory being emptied out of the tree,
    /// next to it (`codejail gc` on a leftover planted in a shared temp
    /// dir), cannot make the walk go on in the directory above: the way
    /// back up finds another directory and stops, and the sibling that
    /// shares a name with what was still to remove is untouched. Shown
    /// able to fail: without the identity check the walk removed it.
    #[test]
    fn deny_a_directory_moved_out_during_removal_leads_the_walk_outside() {
        let shared = tempfile::tempdir().unwrap();
        let p = shared.path();
        std::fs::create_dir_all(p.join("leftover/a/x")).unwrap();
        std::fs::create_dir_all(p.join("leftover/a/y")).unwrap();
        for n in ["x", "y"] {
            std::fs::create_dir(p.join(n)).unwrap();
            std::fs::write(p.join(n).join("important"), "keep").unwrap();
        }
        let parent = std::fs::File::open(p).unwrap();
        let leftover = open_subdir(parent.as_fd(), c"leftover", Path::new("leftover")).unwrap();
        let mut moved = None;
        let result = empty_tree_observed(leftover.as_fd(), &mut |path: &Path| {
            // The first of a/x, a/y the walk enters goes next to the
            // leftover, under its own name (the victim of that name gives
            // way); the other name is still to remove in a/.
            let Some(name) = path.strip_prefix("a").ok().and_then(|n| n.to_str()) else {
                return;
            };
            if moved.is_none() && !name.is_empty() {
                std::fs::remove_dir_all(p.join(name)).unwrap();
                std::fs::rename(p.join("leftover/a").join(name), p.join(name)).unwrap();
                moved = Some(name.to_owned());
            }
        });
        let moved = moved.expect("the walk entered a/x or a/y");
        let other = if moved == "x" { "y" } else { "x" };
        assert_eq!(
            std::fs::read_to_string(p.join(other).join("important")).ok(),
            Some("keep".to_owned()),
            "the walk removed {other} next to the leftover: {result:?}"
        );
        let err = result.expect_err("the walk went on after the move");
        assert_eq!(
            err.source.raw_os_error(),
            Some(Errno::STALE.raw_os_error()),
            "{err}"
        );
    }
}
