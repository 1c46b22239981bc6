//! What a killed caller leaves behind, and how to find it again.
//!
//! Every jail directory and warm pool directory records its owner in its
//! name: `codejail-<pid>.<start>-XXXXXX` and
//! `codejail-warm-<pid>.<start>-XXXXXX`, where `<start>` is the owner's
//! start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
//! so that a pid reused by another process is not taken for the owner.
//! [`gc`] removes the entries whose owner is gone, and only those.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub(crate) use codejail_proc::owner::processes_with;
use codejail_proc::owner::{alive, owner_of, stamp};

/// The name prefix of this process's jail directories.
pub(crate) fn jail_prefix() -> String {
    format!("codejail-{}-", stamp())
}

/// The name prefix of this process's warm pool directories.
pub(crate) fn pool_prefix() -> String {
    format!("codejail-warm-{}-", stamp())
}

/// What [`gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Removed (or, in a dry run, to be removed): their owner is gone.
    pub removed: Vec<PathBuf>,
    /// Left alone: their owner still runs.
    pub live: Vec<PathBuf>,
    /// Could not be removed, and why.
    pub failed: Vec<(PathBuf, String)>,
}

impl GcReport {
    /// This report and `other` as one (a [`gc`] and a [`gc_cgroups`]).
    #[must_use]
    pub fn and(mut self, other: GcReport) -> GcReport {
        self.removed.extend(other.removed);
        self.live.extend(other.live);
        self.failed.extend(other.failed);
        self
    }
}

/// Removes, from each of `parents`, the jail and warm pool directories
/// whose owner is no longer running (nothing else: not a live owner's, not
/// a name codejail did not make, not a link). With `dry_run`, only says
/// what it would remove.
pub fn gc(parents: &[PathBuf], dry_run: bool) -> GcReport {
    sweep(parents, dry_run, |parent, name, _path| {
        // Another `gc` at once empties the same tree: what it removed
        // first is gone under this walk (`ENOENT`). The walk then starts
        // again on what is left, until the tree is gone.
        let mut tries = 8;
        loop {
            match codejail_fs::remove_tree_at(parent, name) {
                Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                    let gone = matches!(
                        rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW),
                        Err(rustix::io::Errno::NOENT)
                    );
                    tries -= 1;
                    if gone {
                        return Ok(Removal::Gone);
                    }
                    if tries == 0 {
                        return Err(e.to_string());
                    }
                }
                Ok(true) => return Ok(Removal::Removed),
                Ok(false) => return Ok(Removal::Gone),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
}

/// What a removal did: removed the entry, or found it gone (another `gc`,
/// or its owner, removed it first): not counted as removed.
enum Removal {
    Removed,
    Gone,
}

/// The directories named `codejail-<pid>.<start>-...` in each of
/// `parents` (never a link or a file): those of a running owner listed as
/// live, the others removed by `remove` (given the parent's descriptor,
/// the name and the path), or only listed with `dry_run`.
fn sweep(
    parents: &[PathBuf],
    dry_run: bool,
    remove: impl Fn(BorrowedFd<'_>, &OsStr, &Path) -> Result<Removal, String>,
) -> GcReport {
    let mut report = GcReport::default();
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        let Ok(dir) = std::fs::File::open(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((pid, start)) = name.to_str().and_then(owner_of) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = parent.join(&name);
            if alive(pid, start) {
                report.live.push(path);
                continue;
            }
            if !dry_run {
                match remove(dir.as_fd(), &name, &path) {
                    Ok(Removal::Removed) => {}
                    Ok(Removal::Gone) => continue,
                    Err(e) => {
                        report.failed.push((path, e));
                        continue;
                    }
                }
            }
            tracing::info!(path = %path.display(), owner = pid, "removed a leftover of a dead owner");
            report.removed.push(path);
        }
    }
    report
}

/// Removes the run cgroups whose owner is no longer running, from the
/// directories this process's runs make theirs in (the probe's
/// `Cgroups::run_parents`: a caller in the same cgroup as the one that was
/// killed, such as a restarted service, finds them). A cgroup that still
/// holds processes is emptied first where cgroup v2 offers `cgroup.kill`;
/// a v1 one is left, and said to have failed. With `dry_run`, only says
/// what it would remove.
pub fn gc_cgroups(dry_run: bool) -> GcReport {
    let probe = codejail_proc::Probe::get();
    let parents: Vec<PathBuf> = probe
        .cgroups
        .run_parents()
        .into_iter()
        .map(Path::to_owned)
        .collect();
    sweep(&parents, dry_run, |_, _, path| remove_cgroup(path))
}

/// `rmdir` of a run cgroup; one that still holds processes is killed
/// first through `cgroup.kill` (v2) and waited for, up to a second. One
/// found gone (another `gc`, or its exiting owner, removed it) is not
/// counted.
fn remove_cgroup(path: &Path) -> Result<Removal, String> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match std::fs::remove_dir(path) {
        Ok(()) => return Ok(Removal::Removed),
        Err(e) if gone(&e) => return Ok(Removal::Gone),
        Err(e) if e.raw_os_error() != Some(libc::EBUSY) => return Err(e.to_string()),
        Err(_) => {}
    }
    let kill = path.join("cgroup.kill");
    if !path.exists() {
        return Ok(Removal::Gone);
    }
    if !kill.exists() {
        return Err(
            "it still holds processes, and this cgroup (v1) has no cgroup.kill: end them, then run gc again"
                .into(),
        );
    }
    match std::fs::write(&kill, "1") {
        Err(e) if gone(&e) && !path.exists() => return Ok(Removal::Gone),
        other => other.map_err(|e| format!("cgroup.kill: {e}"))?,
    }
    for _ in 0..100 {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(Removal::Removed),
            Err(e) if gone(&e) => return Ok(Removal::Gone),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("its processes did not end within a second of cgroup.kill".into())
}

/// [`gc`] of one jail parent (the system temp dir when none is given),
/// logged: what a warm pool does when it starts.
pub(crate) fn gc_own_kind(parent: Option<&Path>) {
    let parents = parents_of(std::iter::once(parent));
    let report = gc(&parents, false).and(gc_cgroups(false));
    for (path, why) in &report.failed {
        tracing::warn!(path = %path.display(), "could not remove a leftover: {why}");
    }
}

/// The places jails of these settings are made in.
pub(crate) fn parents_of<'a>(parents: impl Iterator<Item = Option<&'a Path>>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = parents
        .map(|p| p.map_or_else(std::env::temp_dir, Path::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_back_from_its_prefixes() {
        let me = std::process::id();
        for prefix in [jail_prefix(), pool_prefix()] {
            assert_eq!(owner_of(&format!("{prefix}abcdef")).map(|o| o.0), Some(me));
        }
    }
}
