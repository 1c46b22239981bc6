//! The host paths whose metadata must stay as it was.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What is compared of a watched path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// Mode, owner, modification and change times, extended attributes:
    /// nothing else touches it.
    Everything,
    /// Mode and owner only: runs come and go in it.
    Permissions,
}

/// The metadata of a watched path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    xattrs: Vec<String>,
}

impl Meta {
    fn of(path: &Path, scope: Scope) -> std::io::Result<Meta> {
        let m = std::fs::symlink_metadata(path)?;
        let everything = scope == Scope::Everything;
        Ok(Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: if everything {
                (m.mtime(), m.mtime_nsec())
            } else {
                (0, 0)
            },
            ctime: if everything {
                (m.ctime(), m.ctime_nsec())
            } else {
                (0, 0)
            },
            xattrs: if everything { xattrs(path) } else { Vec::new() },
        })
    }

    /// What differs from `before`, in words.
    fn changes_since(&self, before: &Meta) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode != before.mode {
            out.push(format!("mode {:o} -> {:o}", before.mode, self.mode));
        }
        if (self.uid, self.gid) != (before.uid, before.gid) {
            out.push(format!(
                "owner {}:{} -> {}:{}",
                before.uid, before.gid, self.uid, self.gid
            ));
        }
        if self.mtime != before.mtime {
            out.push(format!("mtime {} -> {}", before.mtime.0, self.mtime.0));
        }
        if self.xattrs != before.xattrs {
            out.push(format!(
                "extended attributes {:?} -> {:?}",
                before.xattrs, self.xattrs
            ));
        }
        // Last: a change of anything sets it, and alone it says that
        // something was set to what it was (a chmod to the same mode).
        if out.is_empty() && self.ctime != before.ctime {
            out.push("changed (its ctime moved)".into());
        }
        out
    }
}

/// The names of a path's extended attributes, sorted.
fn xattrs(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => {
            let mut names: Vec<String> = buf[..n]
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// A host path whose metadata must stay as it was.
#[derive(Clone, Debug)]
pub(super) struct Watched {
    path: PathBuf,
    /// What it is, in words.
    what: &'static str,
    pub(super) scope: Scope,
    before: Meta,
}

impl Watched {
    pub(super) fn new(path: &Path, what: &'static str, scope: Scope) -> std::io::Result<Watched> {
        Ok(Watched {
            path: path.to_owned(),
            what,
            scope,
            before: Meta::of(path, scope)?,
        })
    }

    /// What changed, in words, or `None`.
    pub(super) fn damage(&self) -> Option<String> {
        let changes = match Meta::of(&self.path, self.scope) {
            Ok(now) => now.changes_since(&self.before),
            Err(e) => vec![format!("cannot be looked at: {e}")],
        };
        (!changes.is_empty()).then(|| {
            format!(
                "{} {} was changed: {}",
                self.what,
                self.path.display(),
                changes.join(", ")
            )
        })
    }

    /// Puts its mode and owner back (times and attributes cannot all be),
    /// and takes it as it is now.
    pub(super) fn reset(&mut self) -> std::io::Result<()> {
        let now = std::fs::symlink_metadata(&self.path)?;
        if now.mode() & 0o7777 != self.before.mode & 0o7777 {
            std::fs::set_permissions(
                &self.path,
                std::fs::Permissions::from_mode(self.before.mode & 0o7777),
            )?;
        }
        if (now.uid(), now.gid()) != (self.before.uid, self.before.gid) {
            std::os::unix::fs::lchown(&self.path, Some(self.before.uid), Some(self.before.gid))?;
        }
        for name in xattrs(&self.path) {
            if !self.before.xattrs.contains(&name) {
                rustix::fs::lremovexattr(&self.path, name.as_str())?;
            }
        }
        self.before = Meta::of(&self.path, self.scope)?;
        Ok(())
    }
}
