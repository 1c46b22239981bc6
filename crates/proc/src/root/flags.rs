//! The mount flags a bind gets: what the rule wants, the source mount's
//! own kept.

use std::path::Path;

use rustix::fs::StatVfsMountFlags;
use rustix::mount::MountFlags;

use super::{Input, RootError, Want};

/// The flags `MS_REMOUNT | MS_BIND` needs to give the bind of `path` what
/// `want` says, keeping the source mount's own flags (in a user namespace
/// its flags are locked: a remount that would clear one, its atime
/// setting included, is refused); `None` when the source has them all.
pub(super) fn remount_flags(
    path: &Path,
    want: Want,
    input: &Input<'_>,
) -> Result<Option<MountFlags>, RootError> {
    let st = rustix::fs::statvfs(path).map_err(|e| RootError::Host {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let source = mount_flags(st.f_flag);
    // Read-only unless the rule lets it write, or a `read` rule's path
    // where ownership already refuses every write (EACCES then, as under
    // CodeJail, rather than EROFS).
    let writable = want.write || (want.by_ownership && !want.exec && writes_refused(path, input)?);
    let read_only = !writable;
    let mut wanted = MountFlags::NOSUID;
    if read_only {
        wanted |= MountFlags::RDONLY;
    }
    if !want.device {
        wanted |= MountFlags::NODEV;
    }
    if !want.exec {
        wanted |= MountFlags::NOEXEC;
    }
    if source.contains(wanted) {
        return Ok(None);
    }
    let atime = if source.contains(MountFlags::NOATIME) {
        MountFlags::NOATIME
    } else if source.contains(MountFlags::RELATIME) {
        MountFlags::RELATIME
    } else {
        MountFlags::STRICTATIME
    };
    Ok(Some(MountFlags::BIND | source | wanted | atime))
}

/// The `MS_*` flags of a mount, from `statvfs`'s `ST_*`.
fn mount_flags(st: StatVfsMountFlags) -> MountFlags {
    let pairs = [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::SYNCHRONOUS, MountFlags::SYNCHRONOUS),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ];
    pairs
        .into_iter()
        .filter(|(st_flag, _)| st.contains(*st_flag))
        .fold(MountFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// Whether ownership and mode alone refuse the program every write to
/// `path` itself: it neither owns it nor may write it through its group
/// or as other.
fn writes_refused(path: &Path, input: &Input<'_>) -> Result<bool, RootError> {
    if input.caller_ids {
        // The program is the caller, as far as ownership goes.
        return Ok(
            match rustix::fs::access(path, rustix::fs::Access::WRITE_OK) {
                Ok(()) => false,
                Err(rustix::io::Errno::ACCESS) => rustix::process::geteuid().as_raw() != 0,
                Err(rustix::io::Errno::ROFS) => true,
                Err(e) => {
                    return Err(RootError::Host {
                        path: path.to_owned(),
                        source: e.into(),
                    });
                }
            },
        );
    }
    let st = rustix::fs::stat(path).map_err(|e| RootError::Host {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let (uid, gid) = input.program_ids;
    let write_bit = if st.st_uid == uid {
        0o200
    } else if st.st_gid == gid {
        0o020
    } else {
        0o002
    };
    Ok(uid != 0 && st.st_mode & write_bit == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_flags_map_to_mount_flags() {
        let st = StatVfsMountFlags::RDONLY | StatVfsMountFlags::NODEV | StatVfsMountFlags::RELATIME;
        assert_eq!(
            mount_flags(st),
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::RELATIME
        );
    }
}
