//! The private root of a run (the [`Layer::RootFs`](crate::Layer::RootFs)
//! layer), planned by the caller before the clone: what the new root
//! holds, as steps the program performs in the run's mount namespace
//! (`child::root`).
//!
//! The new root is a small tmpfs holding:
//!
//! - every path of the [`FsRules`] bound at its own (canonical) path:
//!   `read_exec` and `read` read-only, `read_write` and `read_write_exec`
//!   read-write; `noexec` unless the rule grants execute; `nosuid`
//!   everywhere; `nodev` but on the devices. A `read` path is the
//!   exception when ownership already refuses the program every write
//!   there (a root caller's jail home: root's, 0755, the program another
//!   uid): it is bound read-write, so that a write there is refused with
//!   `EACCES`, by ownership and Landlock, as under CodeJail, rather than
//!   `EROFS` (the kernel checks a read-only mount before any other
//!   check when a file is created). Binds are not recursive: a mount
//!   beneath a rule's path is not carried (a rule for it is needed);
//! - the run's tmpfs mounts ([`Spawn::tmpfs`](crate::Spawn::tmpfs)) at
//!   their paths;
//! - a minimal `/dev`: `null`, `zero`, `full`, `random`, `urandom` bound
//!   from the host (Landlock decides which the program may open), and the
//!   `fd`, `stdin`, `stdout`, `stderr` links into `/proc/self/fd`;
//! - a procfs of the run's pid namespace (`subset=pid`);
//! - the names the program might reach for, without their contents: the
//!   host's top-level names and those of `/var` (empty directories, the
//!   same symbolic links, whiteouts for files) and a few of `/etc`
//!   ([`ETC_NAMES`]: whiteouts),
//!   so that reaching for them gives `EACCES` as under CodeJail's AppArmor
//!   profile, never the host's data. A whiteout is a character device
//!   0:0; on the root's `nodev` tmpfs opening it is refused with `EACCES`
//!   whoever asks, Landlock or not;
//! - the symbolic links a rule's path goes through (`/bin -> usr/bin`).
//!
//! The root's own directories belong to the program's uid in a user
//! namespace (a tmpfs made there holds only the ids mapped there), and to
//! root otherwise. They are the run's own and are thrown away with it; the
//! root is writable at the mount level only under Landlock, which refuses
//! every write there with `EACCES`; without Landlock it is read-only.
//!
//! `builder`: the steps and what each path of the new root is; `flags`:
//! the mount flags of a bind; `paths`: host paths resolved, and checked
//! to be inside the root.

mod builder;
mod flags;
mod paths;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use crate::child::{MAX_BINDS, Root, RootDetail, RootOp};
use crate::fsrules::{FsRules, Tmpfs};

use builder::Builder;
use flags::remount_flags;
use paths::{check_inside, is_dir, resolve};

/// The devices of the private root's `/dev`.
pub const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// The names of `/etc` that exist in the private root as whiteouts (where
/// the host has them), so that reading them is refused (`EACCES`) as
/// under CodeJail rather than not found: the files
/// code most often reaches for (accounts, names, resolver). Any other
/// name of `/etc` is absent unless a rule binds it.
pub const ETC_NAMES: [&str; 12] = [
    "passwd",
    "group",
    "shadow",
    "gshadow",
    "hosts",
    "hostname",
    "resolv.conf",
    "nsswitch.conf",
    "machine-id",
    "os-release",
    "fstab",
    "sudoers",
];

/// Why a private root could not be planned or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// More bind mounts than a root may hold.
    #[error(
        "the private root would need {count} bind mounts, more than {max}; give fewer filesystem rules (a directory rather than each of its files)"
    )]
    TooManyBinds {
        /// Binds the rules ask for.
        count: usize,
        /// The most a root holds.
        max: usize,
    },
    /// The program or the working directory would not exist in the root.
    #[error(
        "the {what} {} is outside every filesystem rule, so it does not exist in the run's private root; add a rule for it (FsRules::read_exec for a program's directory)",
        path.display()
    )]
    Outside {
        /// `program` or `working directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A host path could not be looked at while planning.
    #[error("could not plan the private root: {}: {source}", path.display())]
    Host {
        /// The path.
        path: PathBuf,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
    /// The program could not build the root.
    #[error("could not build the private root: {what}: {source}")]
    Build {
        /// The part that failed, e.g. `bind /usr`.
        what: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// What the planner needs of a run.
pub(crate) struct Input<'a> {
    pub fs: &'a FsRules,
    pub tmpfs: &'a [Tmpfs],
    /// The program, absolute.
    pub program: &'a Path,
    /// The working directory, absolute.
    pub cwd: &'a Path,
    /// The uid and gid the program will run as.
    pub program_ids: (u32, u32),
    /// The program keeps the caller's uid (no identity switch): the
    /// caller's own write access is the program's.
    pub caller_ids: bool,
    /// See [`Root::fs_ids`].
    pub fs_ids: Option<(u32, u32)>,
    /// Landlock refuses writes outside the rules.
    pub landlock: bool,
    /// A procfs can be mounted (the probe's trial).
    pub proc: bool,
}

/// The access a bound path gets, merged over every rule naming it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Want {
    write: bool,
    exec: bool,
    /// A `read` rule: bound read-write when ownership refuses writes.
    by_ownership: bool,
    /// One of [`DEVICES`]: not `nodev`.
    device: bool,
    /// A tmpfs of the run: kept as mounted.
    tmpfs: bool,
}

impl Want {
    fn merge(&mut self, other: Want) {
        self.write |= other.write;
        self.exec |= other.exec;
        self.by_ownership |= other.by_ownership;
        self.device |= other.device;
        self.tmpfs |= other.tmpfs;
    }
}

/// What the planner put at a path of the new root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Whiteout,
    Link,
    Bind,
}

/// Plans the private root of a run.
///
/// # Errors
/// [`RootError`]: too many binds, the program or working directory
/// outside the root, or a host path that cannot be looked at.
pub(crate) fn plan(input: &Input<'_>) -> Result<Root, RootError> {
    let mut links = Vec::new();
    let mut binds: BTreeMap<PathBuf, Want> = BTreeMap::new();
    let fs = input.fs;
    let lists = [
        (
            &fs.read_exec,
            Want {
                exec: true,
                ..Want::default()
            },
        ),
        (
            &fs.read,
            Want {
                by_ownership: true,
                ..Want::default()
            },
        ),
        (
            &fs.read_write,
            Want {
                write: true,
                ..Want::default()
            },
        ),
        (
            &fs.read_write_exec,
            Want {
                write: true,
                exec: true,
                ..Want::default()
            },
        ),
    ];
    for (paths, want) in lists {
        for path in paths {
            let optional = fs.optional.iter().any(|p| p == path);
            if let Some(canonical) = resolve(path, &mut links, optional)? {
                binds.entry(canonical).or_default().merge(want);
            }
        }
    }
    for device in DEVICES {
        if let Some(canonical) = resolve(Path::new(device), &mut links, true)? {
            let want = Want {
                write: true,
                device: true,
                ..Want::default()
            };
            binds.entry(canonical).or_default().merge(want);
        }
    }
    for mount in input.tmpfs {
        let want = Want {
            write: true,
            tmpfs: true,
            ..Want::default()
        };
        if let Some(canonical) = resolve(&mount.target, &mut links, false)? {
            binds.entry(canonical).or_default().merge(want);
        }
    }
    if binds.len() > MAX_BINDS {
        return Err(RootError::TooManyBinds {
            count: binds.len(),
            max: MAX_BINDS,
        });
    }

    let mut builder = Builder::default();
    // Parents come before their children (paths sort by component).
    let mut bound: Vec<PathBuf> = Vec::new();
    for (path, want) in &binds {
        let inside = bound.iter().any(|b| path.starts_with(b));
        // Read-only beneath a bind of the same host tree: already there,
        // and Landlock, not the mount, decides what may run.
        if inside && !want.write && !want.tmpfs && !want.device {
            continue;
        }
        bound.push(path.clone());
        let is_dir = !want.tmpfs && is_dir(path)?;
        if !inside {
            builder.parents(path)?;
            let node = if want.tmpfs || is_dir {
                Node::Dir
            } else {
                Node::File
            };
            builder.placeholder(path, node, 0o755)?;
        }
        let remount = if want.tmpfs {
            None
        } else {
            remount_flags(path, *want, input)?
        };
        builder.bind(path, remount)?;
    }
    let inside_bind = |path: &Path| bound.iter().any(|b| path != b && path.starts_with(b));
    for (path, target) in &links {
        if !inside_bind(path) {
            builder.parents(path)?;
            builder.link(path, target)?;
        }
    }
    builder.mirror(Path::new("/"), 0o755)?;
    builder.placeholder(Path::new("/dev"), Node::Dir, 0o755)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        builder.link(&Path::new("/dev").join(name), Path::new(target))?;
    }
    if input.proc {
        builder.placeholder(Path::new("/proc"), Node::Dir, 0o555)?;
    }
    // `/var`'s names too: `/var/tmp` is where code reaches for a second
    // temp dir, and a write there must be refused (EACCES), as under
    // CodeJail, not missing (ENOENT).
    if builder.nodes.get(Path::new("var")) == Some(&Node::Dir) {
        builder.mirror(Path::new("/var"), 0o755)?;
    }
    if builder.nodes.get(Path::new("etc")) == Some(&Node::Dir) {
        for name in ETC_NAMES {
            let path = Path::new("/etc").join(name);
            if rustix::fs::lstat(&path).is_ok() {
                builder.placeholder(&path, Node::Whiteout, 0)?;
            }
        }
    }

    check_inside(&builder, &bound, input.program, "program")?;
    check_inside(&builder, &bound, input.cwd, "working directory")?;

    Ok(Root {
        fs_ids: input.fs_ids,
        sources: builder.sources,
        // Room for the skeleton only: nothing is written there.
        tmpfs_data: CString::from(c"mode=0755,size=1m,nr_inodes=4096"),
        ops: builder.ops,
        proc: input.proc,
        read_only: !input.landlock,
    })
}

/// A readable account of what failed while building the root.
pub(crate) fn describe(root: &Root, detail: Option<RootDetail>) -> String {
    let path = |p: &CString| format!("/{}", p.to_string_lossy());
    match detail {
        Some(RootDetail::FsIds) => "take the sandbox's file system ids".into(),
        Some(RootDetail::Clone(i)) => match root.sources.get(i) {
            Some(source) => format!("clone the mount of {}", source.to_string_lossy()),
            None => "clone a mount".into(),
        },
        Some(RootDetail::NewRoot) => "mount the new root's tmpfs over /dev".into(),
        Some(RootDetail::Op(i)) => match root.ops.get(i) {
            Some(RootOp::Dir { path: p, .. }) => format!("create the directory {}", path(p)),
            Some(RootOp::File { path: p }) => format!("create the file {}", path(p)),
            Some(RootOp::Whiteout { path: p }) => format!("create the whiteout {}", path(p)),
            Some(RootOp::Link { path: p, .. }) => format!("create the link {}", path(p)),
            Some(RootOp::Bind { path: p, .. }) => format!("bind {}", path(p)),
            None => "a step of the plan".into(),
        },
        Some(RootDetail::Proc) => "mount a procfs of the run's pid namespace".into(),
        Some(RootDetail::ReadOnly) => "make the new root read-only".into(),
        Some(RootDetail::Pivot) => "pivot_root into the new root".into(),
        None => "an unknown step".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::mount::MountFlags;

    fn input<'a>(fs: &'a FsRules, program: &'a Path) -> Input<'a> {
        Input {
            fs,
            tmpfs: &[],
            program,
            cwd: Path::new("/"),
            program_ids: (65534, 65534),
            caller_ids: false,
            fs_ids: None,
            landlock: true,
            proc: true,
        }
    }

    #[test]
    fn the_default_rules_plan_read_only_binds_and_the_names_of_the_host() {
        let fs = FsRules::default();
        let root = plan(&input(&fs, Path::new("/bin/sh"))).unwrap();
        let bind = |p: &str| {
            root.ops.iter().find_map(|op| match op {
                RootOp::Bind { path, remount, .. } if path.as_bytes() == p.as_bytes() => {
                    Some(*remount)
                }
                _ => None,
            })
        };
        let usr = bind("usr").expect("usr is bound").expect("and remounted");
        assert!(usr.contains(MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV));
        assert!(
            !usr.contains(MountFlags::NOEXEC),
            "interpreters run from /usr"
        );
        let null = bind("dev/null").expect("/dev/null is bound");
        assert!(
            null.is_none_or(|f| !f.contains(MountFlags::NODEV) && !f.contains(MountFlags::RDONLY))
        );
        let whiteout = |p: &str| {
            root.ops.iter().any(
                |op| matches!(op, RootOp::Whiteout { path } if path.as_bytes() == p.as_bytes()),
            )
        };
        if Path::new("/etc/passwd").exists() {
            assert!(whiteout("etc/passwd"));
        }
        assert!(root.proc && !root.read_only);
        assert!(root.sources.len() <= MAX_BINDS);
        assert!(
            !root.sources.iter().any(|s| s.as_bytes() == b"/etc"),
            "not /etc itself"
        );
    }

    #[test]
    fn more_binds_than_a_root_holds_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut fs = FsRules::default();
        for i in 0..MAX_BINDS {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, "").unwrap();
            fs.read.push(path);
        }
        let err = plan(&input(&fs, Path::new("/bin/sh"))).unwrap_err();
        assert!(
            matches!(err, RootError::TooManyBinds { max: MAX_BINDS, .. }),
            "{err:?}"
        );
    }
}
