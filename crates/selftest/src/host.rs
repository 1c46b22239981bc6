//! The host before and after: what a run may leave behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use codejail::Probe;

pub use codejail::owner::processes_with;

/// What the host looks like, for before-and-after comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// `codejail-*` entries in the jail parent (the bait's excluded).
    pub jails: BTreeSet<String>,
    /// `codejail-<this pid>-*` cgroups.
    pub cgroups: BTreeSet<PathBuf>,
    /// The caller's open descriptors.
    pub descriptors: usize,
    /// Names in directories an escape would write to.
    pub listings: BTreeSet<String>,
    /// Mount points of this mount namespace with `codejail` in their path.
    pub mounts: BTreeSet<String>,
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl HostState {
    /// Looks at the host now.
    pub fn take(jail_parent: &Path) -> HostState {
        let jails = names(jail_parent)
            .into_iter()
            .filter(|n| n.starts_with("codejail-") && !n.starts_with("codejail-bait-"))
            .collect();
        let prefix = format!("codejail-{}-", codejail::owner::stamp());
        let cg = &Probe::get().cgroups;
        let cgroups = cg
            .run_parents()
            .into_iter()
            .flat_map(|dir| {
                names(dir)
                    .into_iter()
                    .filter(|n| n.starts_with(&prefix))
                    .map(move |n| dir.join(n))
            })
            .collect();
        let descriptors = std::fs::read_dir("/proc/self/fd")
            .map(|r| r.count())
            .unwrap_or(0);
        let listings = [
            "/", "/etc", "/root", "/home", "/var/tmp", "/dev/shm", "/run",
        ]
        .iter()
        .flat_map(|d| {
            names(Path::new(d))
                .into_iter()
                .map(move |n| format!("{d}/{n}"))
        })
        .filter(|n| !n.contains("codejail-bait-"))
        .collect();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.contains("codejail"))
            .map(str::to_owned)
            .collect();
        HostState {
            jails,
            cgroups,
            descriptors,
            listings,
            mounts,
        }
    }

    /// What changed since `before`, in words; empty when nothing did.
    pub fn changes_since(&self, before: &HostState) -> Vec<String> {
        let mut out = Vec::new();
        for j in self.jails.difference(&before.jails) {
            out.push(format!("jail directory {j} was left behind"));
        }
        for c in self.cgroups.difference(&before.cgroups) {
            out.push(format!("cgroup {} was left behind", c.display()));
        }
        if self.descriptors != before.descriptors {
            out.push(format!(
                "the caller's descriptors went from {} to {}",
                before.descriptors, self.descriptors
            ));
        }
        for n in self.listings.difference(&before.listings) {
            out.push(format!("{n} appeared"));
        }
        for n in before.listings.difference(&self.listings) {
            out.push(format!("{n} disappeared"));
        }
        for m in self.mounts.difference(&before.mounts) {
            out.push(format!("{m} was left mounted"));
        }
        out
    }
}
