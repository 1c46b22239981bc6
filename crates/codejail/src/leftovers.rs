//! What a killed caller leaves behind, and how to find it again.
//!
//! Every jail directory and warm pool directory records its owner in its
//! name: `codejail-<pid>.<start>-XXXXXX` and
//! `codejail-warm-<pid>.<start>-XXXXXX`, where `<start>` is the owner's
//! start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
//! so that a pid reused by another process is not taken for the owner.
//! [`gc`] removes the entries whose owner is gone, and only those.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process, as it appears in the names of what it makes:
/// `<pid>.<start>`.
pub(crate) fn stamp() -> &'static str {
    static STAMP: OnceLock<String> = OnceLock::new();
    STAMP.get_or_init(|| {
        let pid = std::process::id();
        let start = start_time(pid).unwrap_or(0);
        format!("{pid}.{start}")
    })
}

/// The name prefix of this process's jail directories.
pub(crate) fn jail_prefix() -> String {
    format!("codejail-{}-", stamp())
}

/// The name prefix of this process's warm pool directories.
pub(crate) fn pool_prefix() -> String {
    format!("codejail-warm-{}-", stamp())
}

/// A process's start time, in clock ticks after boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The owner recorded in a name made by [`jail_prefix`] or
/// [`pool_prefix`]: (pid, start time).
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let rest = name
        .strip_prefix("codejail-warm-")
        .or_else(|| name.strip_prefix("codejail-"))?;
    let (stamp, _random) = rest.split_once('-')?;
    let (pid, start) = stamp.split_once('.')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether the process that made a name still runs.
fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
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

/// Removes, from each of `parents`, the jail and warm pool directories
/// whose owner is no longer running (nothing else: not a live owner's, not
/// a name codejail did not make, not a link). With `dry_run`, only says
/// what it would remove.
pub fn gc(parents: &[PathBuf], dry_run: bool) -> GcReport {
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
            let path = parent.join(&name);
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if alive(pid, start) {
                report.live.push(path);
                continue;
            }
            if !dry_run {
                if let Err(e) = codejail_fs::remove_tree_at(dir.as_fd(), OsStr::new(&name)) {
                    report.failed.push((path, e.to_string()));
                    continue;
                }
            }
            tracing::info!(path = %path.display(), owner = pid, "removed a leftover of a dead owner");
            report.removed.push(path);
        }
    }
    report
}

/// [`gc`] of one jail parent (the system temp dir when none is given),
/// logged: what a warm pool does when it starts.
pub(crate) fn gc_own_kind(parent: Option<&Path>) {
    let parents = parents_of(std::iter::once(parent));
    let report = gc(&parents, false);
    for (path, why) in &report.failed {
        tracing::warn!(path = %path.display(), "could not remove a leftover: {why}");
    }
}

/// Host pids of live processes whose command line contains `token`.
pub(crate) fn processes_with(token: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(token)).then_some(pid)
        })
        .collect()
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
    fn owners_are_read_back_from_names() {
        assert_eq!(owner_of("codejail-123.456-abcdef"), Some((123, 456)));
        assert_eq!(owner_of("codejail-warm-7.8-xYz012"), Some((7, 8)));
        assert_eq!(owner_of("codejail-abcdef"), None);
        assert_eq!(owner_of("codejail-selftest-12"), None);
        assert_eq!(owner_of("other"), None);
        let me = std::process::id();
        assert!(alive(me, start_time(me).unwrap()));
        assert!(!alive(me, start_time(me).unwrap() + 1));
        assert_eq!(
            owner_of(&format!("{}abcdef", jail_prefix())).map(|o| o.0),
            Some(me)
        );
    }
}
