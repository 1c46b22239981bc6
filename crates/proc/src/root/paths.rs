//! Host paths resolved link by link, and checked to be inside the root.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::FileType;

use super::builder::Builder;
use super::{Node, RootError};

/// Resolves `path` on the host, recording each symbolic link met on the
/// way (`(link, its target as written)`): the canonical path, or `None`
/// for a missing optional path.
pub(super) fn resolve(
    path: &Path,
    links: &mut Vec<(PathBuf, PathBuf)>,
    optional: bool,
) -> Result<Option<PathBuf>, RootError> {
    // `..` applies to what is resolved so far, as the kernel's walk does
    // (after a link, not lexically before it).
    let mut done = PathBuf::from("/");
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(next) = todo.pop() {
        if next.as_os_str() == ".." {
            done.pop();
            continue;
        }
        let candidate = done.join(&next);
        let st = match rustix::fs::lstat(&candidate) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) if optional => {
                return Ok(None);
            }
            Err(e) => {
                return Err(RootError::Host {
                    path: candidate,
                    source: e.into(),
                });
            }
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            done = candidate;
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(RootError::Host {
                path: path.to_owned(),
                source: io::Error::from_raw_os_error(libc::ELOOP),
            });
        }
        let target = std::fs::read_link(&candidate).map_err(host(&candidate))?;
        links.push((candidate, target.clone()));
        if target.is_absolute() {
            done = PathBuf::from("/");
        }
        todo.extend(target.components().rev().filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        }));
    }
    Ok(Some(done))
}

/// `path` with `.` removed and `..` applied, lexically.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `path` relative to the new root.
pub(super) fn relative(path: &Path) -> PathBuf {
    lexical(path)
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Whether `path` (canonical, following links the way the root holds
/// them) exists in the root: at or beneath a bind, or one of its own
/// directories.
pub(super) fn check_inside(
    builder: &Builder,
    bound: &[PathBuf],
    path: &Path,
    what: &'static str,
) -> Result<(), RootError> {
    let canonical = match std::fs::canonicalize(path) {
        Ok(canonical) => canonical,
        // What does not exist on the host fails in the child as it would
        // without a private root (`chdir`, `execve`: ENOENT).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(());
        }
        Err(e) => return Err(host(path)(e)),
    };
    let rel = relative(&canonical);
    let inside = rel.as_os_str().is_empty()
        || bound.iter().any(|b| canonical.starts_with(b))
        || builder.nodes.get(&rel) == Some(&Node::Dir);
    if inside {
        Ok(())
    } else {
        Err(RootError::Outside {
            what,
            path: path.to_owned(),
        })
    }
}

pub(super) fn is_dir(path: &Path) -> Result<bool, RootError> {
    let st = rustix::fs::stat(path).map_err(|e| RootError::Host {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

pub(super) fn cstring(path: &Path) -> Result<CString, RootError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| RootError::Host {
        path: path.to_owned(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })
}

pub(super) fn host(path: &Path) -> impl Fn(io::Error) -> RootError + '_ {
    move |source| RootError::Host {
        path: path.to_owned(),
        source,
    }
}

pub(super) fn conflict(path: &Path) -> RootError {
    RootError::Host {
        path: path.to_owned(),
        source: io::Error::from_raw_os_error(libc::ENOTDIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_on_the_way_are_recorded_and_the_path_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        std::fs::write(base.join("real/sub/file"), "x").unwrap();
        std::os::unix::fs::symlink("real", base.join("alias")).unwrap();
        std::os::unix::fs::symlink(base.join("real/sub"), base.join("abs")).unwrap();
        let mut links = Vec::new();
        let got = resolve(&base.join("alias/sub/file"), &mut links, false).unwrap();
        assert_eq!(got, Some(base.join("real/sub/file")));
        assert_eq!(links, [(base.join("alias"), PathBuf::from("real"))]);
        links.clear();
        let got = resolve(&base.join("abs/../sub/./file"), &mut links, false).unwrap();
        assert_eq!(got, Some(base.join("real/sub/file")));
        // Missing: skipped when optional, an error naming it otherwise.
        assert_eq!(resolve(&base.join("nope"), &mut links, true).unwrap(), None);
        assert!(matches!(
            resolve(&base.join("nope"), &mut links, false),
            Err(RootError::Host { .. })
        ));
    }

    #[test]
    fn a_loop_of_links_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::os::unix::fs::symlink("b", base.join("a")).unwrap();
        std::os::unix::fs::symlink("a", base.join("b")).unwrap();
        let err = resolve(&base.join("a"), &mut Vec::new(), false).unwrap_err();
        assert!(
            matches!(&err, RootError::Host { source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
            "{err:?}"
        );
    }
}
