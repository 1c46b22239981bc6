//! Staging files into a jail, by descriptor.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::CODE_FILE;
use crate::name::{NameError, RESERVED_PREFIX, validate_component, validate_name};

/// What goes into a jail.
#[derive(Clone, Copy, Debug, Default)]
pub struct Contents<'a> {
    /// The code, written as `jailed_code`.
    pub code: Option<&'a [u8]>,
    /// Files, directories and symbolic links copied in under their own
    /// name (the last component of the path).
    pub files: &'a [PathBuf],
    /// Files created from bytes: (name, contents).
    pub extra: &'a [(String, Vec<u8>)],
    /// codejail's own files, created from bytes: each name must start with
    /// [`RESERVED_PREFIX`](crate::RESERVED_PREFIX), which callers' names
    /// may not.
    pub own: &'a [(&'a str, &'a [u8])],
}

/// Why something could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A name is not acceptable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A file given by path has no file name (`/`, `..`).
    #[error("{} has no file name to stage it under; name a file or directory", path.display())]
    NoFileName {
        /// The path given.
        path: PathBuf,
    },
    /// A source file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The source path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A directory to copy contains the jail being staged (say, `$TMPDIR`
    /// is inside it): the copy would never end.
    #[error("{} contains the jail directory itself; copy a directory that does not contain the jail parent", path.display())]
    ContainsJail {
        /// The source directory.
        path: PathBuf,
    },
    /// A source is a FIFO, socket or device.
    #[error("{} is not a regular file, directory or symbolic link; it cannot be staged", path.display())]
    Unsupported {
        /// The source path.
        path: PathBuf,
    },
    /// Writing into the jail failed.
    #[error("could not {step} {} in the jail: {source}", entry.display())]
    Write {
        /// The step, e.g. `create`, `write`, `link`.
        step: &'static str,
        /// The entry, relative to the jail.
        entry: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Contents<'_> {
    /// Whether there is nothing to stage.
    pub fn is_empty(&self) -> bool {
        self.code.is_none() && self.files.is_empty() && self.extra.is_empty() && self.own.is_empty()
    }

    /// Checks every name, before anything is written: each is one plain
    /// component, not reserved, and none is staged twice.
    ///
    /// # Errors
    /// The first bad name, as [`StageError::Name`] or
    /// [`StageError::NoFileName`].
    pub fn validate(&self) -> Result<(), StageError> {
        let mut seen: HashSet<OsString> = HashSet::new();
        if self.code.is_some() {
            seen.insert(CODE_FILE.into());
        }
        let names = self
            .files
            .iter()
            .map(|p| {
                p.file_name()
                    .ok_or_else(|| StageError::NoFileName { path: p.clone() })
            })
            .chain(self.extra.iter().map(|(n, _)| Ok(OsStr::new(n))));
        for name in names {
            let name = name?;
            validate_name(name)?;
            if !seen.insert(name.to_owned()) {
                return Err(NameError::Duplicate(name.to_string_lossy().into_owned()).into());
            }
        }
        for (name, _) in self.own {
            let name = OsStr::new(name);
            validate_component(name)?;
            if !name.as_bytes().starts_with(RESERVED_PREFIX.as_bytes())
                || !seen.insert(name.to_owned())
            {
                return Err(NameError::Reserved(name.to_string_lossy().into_owned()).into());
            }
        }
        Ok(())
    }
}

/// Opens a directory entry of `dir` without following a link.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Who may read what is staged besides its owner (the caller): the
/// sandbox's group, or nobody (the program then runs as the caller's own
/// uid). Never every user of the host: the code and data are a
/// stranger's submission, and often a course's answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readers {
    /// The group given read access (`None`: the owner only).
    pub group: Option<u32>,
}

impl Readers {
    /// A file's mode: read (and execute, for an executable) by the owner
    /// and the group, if any.
    fn file_mode(self, executable: bool) -> u32 {
        match (self.group.is_some(), executable) {
            (true, true) => 0o750,
            (true, false) => 0o640,
            (false, true) => 0o700,
            (false, false) => 0o600,
        }
    }

    /// A directory's mode.
    pub(crate) fn dir_mode(self) -> u32 {
        self.file_mode(true)
    }

    /// Gives `fd` to the group, if any.
    pub(crate) fn give(self, fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
        match self.group {
            Some(gid) => rustix::fs::fchown(fd, None, Some(rustix::fs::Gid::from_raw(gid))),
            None => Ok(()),
        }
    }
}

pub(crate) fn stage(
    dir: BorrowedFd<'_>,
    contents: &Contents<'_>,
    readers: Readers,
) -> Result<(), StageError> {
    if let Some(code) = contents.code {
        write_new(
            dir,
            OsStr::new(CODE_FILE),
            Path::new(CODE_FILE),
            (readers, false),
            &mut &code[..],
        )?;
    }
    let extra = contents.extra.iter().map(|(n, b)| (n.as_str(), &b[..]));
    for (name, bytes) in extra.chain(contents.own.iter().copied()) {
        write_new(
            dir,
            OsStr::new(name),
            Path::new(name),
            (readers, false),
            &mut &bytes[..],
        )?;
    }
    let jail = rustix::fs::fstat(dir).map_err(|e| write_err("stat", Path::new("."))(e.into()))?;
    let jail = (jail.st_dev, jail.st_ino);
    for path in contents.files {
        let name = path
            .file_name()
            .ok_or_else(|| StageError::NoFileName { path: path.clone() })?;
        copy_entry(dir, name, Path::new(name), path, jail, readers)?;
    }
    Ok(())
}

fn write_err(step: &'static str, entry: &Path) -> impl FnOnce(io::Error) -> StageError {
    let entry = entry.to_owned();
    move |source| StageError::Write {
        step,
        entry,
        source,
    }
}

/// Creates `name` in `dir` (never an existing entry, never through a link)
/// with exactly the mode `readers` gives it (executable or not), gives it
/// to their group, and fills it from `from`.
fn write_new(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    entry: &Path,
    (readers, executable): (Readers, bool),
    from: &mut dyn io::Read,
) -> Result<(), StageError> {
    let mode = readers.file_mode(executable);
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| write_err("create", entry)(e.into()))?;
    readers
        .give(fd.as_fd())
        .map_err(|e| write_err("chown", entry)(e.into()))?;
    // The umask may have taken bits away.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        .map_err(|e| write_err("chmod", entry)(e.into()))?;
    let mut file = File::from(fd);
    io::copy(from, &mut file).map_err(write_err("write", entry))?;
    Ok(())
}

/// Copies `src` into `dir` as `name`: files with their contents and
/// executable bit, directories recursively, symbolic links as links.
///
/// `jail` is the (device, inode) of the jail directory: a directory to
/// copy that is the jail, or holds it, is refused.
fn copy_entry(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    entry: &Path,
    src: &Path,
    jail: (u64, u64),
    readers: Readers,
) -> Result<(), StageError> {
    let read_err = |source| StageError::Read {
        path: src.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(src).map_err(read_err)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(src).map_err(read_err)?;
        rustix::fs::symlinkat(&target, dir, name).map_err(|e| write_err("link", entry)(e.into()))
    } else if kind.is_file() {
        let executable = meta.permissions().mode() & 0o111 != 0;
        let mut source = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(src)
            .map_err(read_err)?;
        write_new(dir, name, entry, (readers, executable), &mut source)
    } else if kind.is_dir() {
        use std::os::unix::fs::MetadataExt;
        if (meta.dev(), meta.ino()) == jail {
            return Err(StageError::ContainsJail {
                path: src.to_owned(),
            });
        }
        let mode = Mode::from_raw_mode(readers.dir_mode());
        rustix::fs::mkdirat(dir, name, mode).map_err(|e| write_err("create", entry)(e.into()))?;
        let sub = open_dir_at(dir, name).map_err(write_err("open", entry))?;
        readers
            .give(sub.as_fd())
            .map_err(|e| write_err("chown", entry)(e.into()))?;
        rustix::fs::fchmod(&sub, mode).map_err(|e| write_err("chmod", entry)(e.into()))?;
        let mut children: Vec<_> = std::fs::read_dir(src)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        children.sort();
        for child in children {
            copy_entry(
                sub.as_fd(),
                &child,
                &entry.join(&child),
                &src.join(&child),
                jail,
                readers,
            )
            .map_err(|e| match e {
                // Name the directory the caller gave, not the jail inside.
                StageError::ContainsJail { .. } => StageError::ContainsJail {
                    path: src.to_owned(),
                },
                e => e,
            })?;
        }
        Ok(())
    } else {
        // FIFOs, sockets and devices.
        Err(StageError::Unsupported {
            path: src.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Contents;

    /// Empty only with nothing of any kind: code, files, extra files or
    /// codejail's own.
    #[test]
    fn contents_are_empty_only_without_anything() {
        assert!(Contents::default().is_empty());
        let files = [std::path::PathBuf::from("/etc/hostname")];
        let extra = [("a".to_owned(), Vec::new())];
        let own: [(&str, &[u8]); 1] = [(".codejail-x", b"")];
        for contents in [
            Contents {
                code: Some(b""),
                ..Contents::default()
            },
            Contents {
                files: &files,
                ..Contents::default()
            },
            Contents {
                extra: &extra,
                ..Contents::default()
            },
            Contents {
                own: &own,
                ..Contents::default()
            },
        ] {
            assert!(!contents.is_empty());
        }
    }
}
