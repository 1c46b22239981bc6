//! Jail directories: a throw-away home for one run.
//!
//! ```text
//! <parent>/codejail-XXXXXX/     the caller's, 0750 with the sandbox's group (0700
//!                               without a sandbox identity): read-only to the jail,
//!                               closed to every other user of the host
//!     jailed_code               the code, if any (0640, or 0600)
//!     <staged files>            copies of the caller's files, directories, links
//!                               (0640/0750, or 0600/0700)
//!     <extra files>             (name, bytes) pairs
//!     tmp/                      writable by the sandbox identity (chowned, 0700;
//!                               without an identity, 01777); optionally a tmpfs
//!                               with a size and an inode limit
//! ```
//!
//! Every write goes through descriptors: entries are created with `openat`,
//! `mkdirat` and `symlinkat` relative to the jail directory's descriptor,
//! with `O_NOFOLLOW | O_EXCL`, so that nothing can make staging write outside
//! the jail. Removal walks the tree by descriptor, never follows a link,
//! restores permissions the jailed code took away, and happens on every path
//! (a `Drop` guard). `codejail-fs` knows nothing of processes: it describes
//! the tmp quota ([`TmpQuota`]) and the process layer mounts it.
#![deny(missing_docs)]

mod name;
mod remove;
mod stage;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, OFlags, Uid};

pub use name::{NameError, RESERVED, RESERVED_PREFIX, validate_name};
pub use remove::{RemoveError, remove_tree_at};
pub use stage::{Contents, StageError};

/// The name of the code file in a jail.
pub const CODE_FILE: &str = "jailed_code";

/// How to make a jail directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JailOptions {
    /// Where `codejail-XXXXXX` is created (default: the system temp dir).
    pub parent: Option<PathBuf>,
    /// The sandbox uid and gid: `tmp/` is given to them, and the home and
    /// what is staged to the gid (read-only). Without one, `tmp/` is
    /// world-writable with the sticky bit, and the rest the caller's alone
    /// (its program runs as the caller's uid).
    pub owner: Option<(u32, u32)>,
    /// A size and inode limit for `tmp/`.
    pub tmp_quota: Option<TmpQuota>,
    /// What `tmp/` is (default: a directory the sandbox may write to).
    pub tmp: Tmp,
    /// The start of the jail directory's name (default `codejail-`); six
    /// random characters follow. A caller records in it whatever it needs
    /// to find its leftovers again (the facade: its pid and start time).
    pub prefix: Option<String>,
}

/// What a jail's `tmp/` is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tmp {
    /// A directory the sandbox identity may write to (chowned to it,
    /// 0700; without an identity, 01777).
    #[default]
    Writable,
    /// A directory nobody may write to (0555, the caller's): where no
    /// quota can bound it, the jail gets no writable place at all.
    ReadOnly,
    /// A symbolic link to this path, which the program sees in its own
    /// mount namespace (a warm pool's call: its `tmp/` lives on the
    /// zygote's quota-limited tmpfs).
    Link(PathBuf),
}

/// A size and inode limit for a jail's `tmp/`: a `tmpfs` mounted over it in
/// the run's mount namespace (performed by the process layer). Past it the
/// jailed code gets `ENOSPC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TmpQuota {
    /// Bytes of file data.
    pub bytes: u64,
    /// Files, directories and links.
    pub inodes: u64,
}

/// The mount that enforces a [`TmpQuota`], as the process layer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpMount {
    /// The directory to mount over (the jail's `tmp/`).
    pub target: PathBuf,
    /// `size=` in bytes.
    pub bytes: u64,
    /// `nr_inodes=`.
    pub inodes: u64,
    /// Mode of the mount's root.
    pub mode: u32,
    /// Owner of the mount's root.
    pub uid: u32,
    /// Group of the mount's root.
    pub gid: u32,
}

/// Why a jail directory could not be created.
#[derive(Debug, thiserror::Error)]
#[error("could not {step} {}: {source}", path.display())]
pub struct CreateError {
    /// The step, e.g. `create`, `chown`.
    pub step: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The underlying error, with its errno.
    #[source]
    pub source: io::Error,
}

fn create_err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CreateError {
    let path = path.to_owned();
    move |source| CreateError { step, path, source }
}

/// A jail directory; removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct JailDir {
    home: PathBuf,
    dir: OwnedFd,
    tmp: PathBuf,
    options: JailOptions,
    removed: bool,
}

impl JailDir {
    /// Creates `codejail-XXXXXX` under the parent, with `tmp/` inside.
    ///
    /// # Errors
    /// [`CreateError`] naming the step and path; nothing is left behind.
    pub fn create(options: &JailOptions) -> Result<JailDir, CreateError> {
        let parent = options.parent.clone().unwrap_or_else(std::env::temp_dir);
        let home = tempfile::Builder::new()
            .prefix(options.prefix.as_deref().unwrap_or("codejail-"))
            .tempdir_in(&parent)
            .map_err(create_err("create a jail directory in", &parent))?
            .keep();
        let dir = rustix::fs::open(
            &home,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| create_err("open", &home)(e.into()));
        let dir = match dir {
            Ok(dir) => dir,
            Err(e) => {
                let _ = std::fs::remove_dir(&home);
                return Err(e);
            }
        };
        let jail = JailDir {
            tmp: home.join("tmp"),
            home,
            dir,
            options: options.clone(),
            removed: false,
        };
        // From here on, a failure drops `jail`, which removes the directory.
        jail.set_up_tmp()?;
        Ok(jail)
    }

    fn readers(&self) -> stage::Readers {
        stage::Readers {
            group: self.options.owner.map(|(_, gid)| gid),
        }
    }

    fn set_up_tmp(&self) -> Result<(), CreateError> {
        let readers = self.readers();
        readers
            .give(self.dir.as_fd())
            .map_err(|e| create_err("chown", &self.home)(e.into()))?;
        rustix::fs::fchmod(&self.dir, Mode::from_raw_mode(readers.dir_mode()))
            .map_err(|e| create_err("chmod", &self.home)(e.into()))?;
        if let Tmp::Link(target) = &self.options.tmp {
            return rustix::fs::symlinkat(target, &self.dir, "tmp")
                .map_err(|e| create_err("link", &self.tmp)(e.into()));
        }
        rustix::fs::mkdirat(&self.dir, "tmp", Mode::from_raw_mode(0o700))
            .map_err(|e| create_err("create", &self.tmp)(e.into()))?;
        let tmp = stage::open_dir_at(self.dir.as_fd(), OsStr::new("tmp"))
            .map_err(create_err("open", &self.tmp))?;
        match (&self.options.tmp, self.options.owner) {
            (Tmp::ReadOnly, _) => rustix::fs::fchmod(&tmp, Mode::from_raw_mode(0o555))
                .map_err(|e| create_err("chmod", &self.tmp)(e.into()))?,
            (_, Some((uid, gid))) => {
                rustix::fs::fchown(&tmp, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| create_err("chown", &self.tmp)(e.into()))?;
            }
            (_, None) => rustix::fs::fchmod(&tmp, Mode::from_raw_mode(0o1777))
                .map_err(|e| create_err("chmod", &self.tmp)(e.into()))?,
        }
        Ok(())
    }

    /// The jail's home: the program's working directory.
    pub fn path(&self) -> &Path {
        &self.home
    }

    /// The jail's writable `tmp/` (absolute: `TMPDIR` for the program).
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// The tmpfs that enforces the quota, if one was asked for.
    pub fn tmp_mount(&self) -> Option<TmpMount> {
        let quota = self
            .options
            .tmp_quota
            .filter(|_| self.options.tmp == Tmp::Writable)?;
        let (uid, gid, mode) = match self.options.owner {
            Some((uid, gid)) => (uid, gid, 0o700),
            None => (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
                0o1777,
            ),
        };
        Some(TmpMount {
            target: self.tmp.clone(),
            bytes: quota.bytes,
            inodes: quota.inodes,
            mode,
            uid,
            gid,
        })
    }

    /// Stages the code, the files and the extra files. Every name is checked
    /// before anything is written.
    ///
    /// # Errors
    /// [`StageError`] naming the entry; what was staged stays until the jail
    /// is dropped.
    pub fn stage(&self, contents: &Contents<'_>) -> Result<(), StageError> {
        contents.validate()?;
        stage::stage(self.dir.as_fd(), contents, self.readers())
    }

    /// Removes the jail now, reporting a failure (dropping removes it too,
    /// logging a failure).
    ///
    /// # Errors
    /// [`RemoveError`] naming the step and the entry.
    pub fn remove(mut self) -> Result<(), RemoveError> {
        self.removed = true;
        remove::remove_jail(&self.dir, &self.home)
    }
}

impl Drop for JailDir {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = remove::remove_jail(&self.dir, &self.home) {
                tracing::error!(jail = %self.home.display(), "could not remove the jail directory: {e}");
            }
        }
    }
}
