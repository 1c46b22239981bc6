//! The hierarchies the host mounts, where this process sits in them, and
//! the cgroup v1 directories it may use.

use std::io;
use std::path::{Path, PathBuf};

use super::Cgroups;

/// One line of `/proc/self/mountinfo` that matters here.
#[derive(Debug)]
pub(super) struct Mount {
    /// The mount's root within its hierarchy.
    pub(super) root: String,
    pub(super) point: PathBuf,
    pub(super) fstype: String,
    pub(super) super_opts: String,
}

pub(super) fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let root = l.nth(3)?;
            let point = l.next()?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let super_opts = r.nth(1).unwrap_or("");
            Some(Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                fstype: fstype.to_owned(),
                super_opts: super_opts.to_owned(),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of this process in the hierarchy whose controller list matches.
pub(super) fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctrl = parts.next()?;
        let path = parts.next()?;
        matches(ctrl).then(|| path.to_owned())
    })
}

/// Where the cgroup `path` (as `/proc/self/cgroup` says it) is under
/// `mount`, if the mount shows it.
pub(super) fn under_mount(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(rest)
    })
}

/// The v1 controllers a `cgroup` mount carries (its options also hold
/// `rw`, `name=systemd`, `xattr`, `clone_children`, ...).
pub(super) fn v1_controllers(mount: &Mount) -> Vec<&str> {
    const CONTROLLERS: [&str; 14] = [
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    ];
    mount
        .super_opts
        .split(',')
        .filter(|o| CONTROLLERS.contains(o))
        .collect()
}

/// The v1 `memory` and `pids` directories below this process's own, when
/// this process can write there.
pub(super) fn detect_v1(mounts: &[Mount], own: &str, out: &mut Cgroups) {
    for controller in ["memory", "pids"] {
        let Some(mount) = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && v1_controllers(m).contains(&controller))
        else {
            if controller == "memory" {
                out.v1_missing = Some("no cgroup v1 memory hierarchy is mounted".into());
            }
            continue;
        };
        let dir = own_path(own, |ctrl| ctrl.split(',').any(|c| c == controller))
            .and_then(|p| under_mount(mount, &p));
        let usable = match &dir {
            None => Err(format!(
                "this process's v1 {controller} cgroup is not visible under {}",
                mount.point.display()
            )),
            Some(dir) => writable(dir).map_err(|e| {
                format!(
                    "the v1 {controller} cgroup {} is not writable by uid {}: {e}",
                    dir.display(),
                    rustix::process::geteuid().as_raw()
                )
            }),
        };
        match (controller, usable, dir) {
            ("memory", Ok(()), dir) => out.v1_memory = dir,
            ("memory", Err(why), _) => out.v1_missing = Some(why),
            (_, Ok(()), dir) => out.v1_pids = dir,
            _ => {}
        }
    }
}

/// Write and search access to `dir` (the kernel's answer: `EROFS` on a
/// read-only mount, `EACCES` without permission).
pub(super) fn writable(dir: &Path) -> Result<(), io::Error> {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_paths_are_found_per_hierarchy() {
        let own = "4:memory:/a/b\n8:pids:/\n0::/user.slice\n";
        assert_eq!(own_path(own, str::is_empty).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(own, |c| c == "memory").as_deref(), Some("/a/b"));
        assert_eq!(own_path(own, |c| c == "cpu"), None);
    }

    #[test]
    fn mountinfo_lines_give_root_point_type_and_options() {
        let info = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    35 31 0:32 /x /sys/fs/cgroup/mem\\040ory rw,relatime - cgroup cgroup rw,memory\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n";
        let m = mounts(info);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].fstype, "cgroup2");
        assert_eq!(m[1].point, Path::new("/sys/fs/cgroup/mem ory"));
        assert_eq!(m[1].root, "/x");
        assert_eq!(v1_controllers(&m[1]), ["memory"]);
        assert!(
            v1_controllers(&m[2]).is_empty(),
            "name=systemd is no controller"
        );
    }

    #[test]
    fn a_cgroup_path_is_found_under_the_mount_root_only() {
        let mount = Mount {
            root: "/system.slice/x.scope".into(),
            point: "/sys/fs/cgroup".into(),
            fstype: "cgroup2".into(),
            super_opts: "rw".into(),
        };
        assert_eq!(
            under_mount(&mount, "/system.slice/x.scope/a"),
            Some(PathBuf::from("/sys/fs/cgroup/a"))
        );
        assert_eq!(
            under_mount(&mount, "/system.slice/x.scope"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(under_mount(&mount, "/system.slice/x.scope2"), None);
        assert_eq!(under_mount(&mount, "/user.slice"), None);
    }
}
