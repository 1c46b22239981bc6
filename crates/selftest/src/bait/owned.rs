//! The host file and directory the jail's uid owns.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A host file and a directory beside it that the jail's sandbox user
/// owns (chowned to it for a root caller, group the caller's: a `chown` to
/// its own group changes something; a root caller's runs that take a uid
/// of their own from a range are not that user), or the caller's own for
/// an unprivileged caller, whose jail has its uid: what `chmod`, `chown`,
/// `utimes` and `setxattr`, which Landlock does not mediate, may reach.
#[derive(Debug)]
pub(super) struct Owned {
    /// The caller's directory they are in.
    pub(super) dir: PathBuf,
    /// The uid (and gid) they are given, for a root caller.
    pub(super) owner: Option<(u32, u32)>,
}

impl Owned {
    pub(super) fn file(&self) -> PathBuf {
        self.dir.join("owned-file")
    }

    pub(super) fn subdir(&self) -> PathBuf {
        self.dir.join("owned-dir")
    }

    /// Makes (or makes again) the file and the directory.
    pub(super) fn make(&self) -> std::io::Result<()> {
        let (file, dir) = (self.file(), self.subdir());
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::write(
            &file,
            "a file of the jail's sandbox user, outside the jail\n",
        )?;
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.owner {
            for p in [&file, &dir] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }
}
