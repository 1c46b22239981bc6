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

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, StatVfsMountFlags};
use rustix::mount::MountFlags;

use crate::child::{MAX_BINDS, Root, RootDetail, RootOp};
use crate::fsrules::{FsRules, Tmpfs};

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

/// The steps, and what each path of the new root is.
#[derive(Default)]
struct Builder {
    /// By path relative to the new root.
    nodes: BTreeMap<PathBuf, Node>,
    ops: Vec<RootOp>,
    sources: Vec<CString>,
}

impl Builder {
    /// Creates the missing directories above `path`.
    fn parents(&mut self, path: &Path) -> Result<(), RootError> {
        let rel = relative(path);
        let mut dir = PathBuf::new();
        let components: Vec<_> = rel.components().collect();
        for c in components.iter().take(components.len().saturating_sub(1)) {
            dir.push(c);
            match self.nodes.get(&dir) {
                Some(Node::Dir | Node::Bind) => {}
                Some(_) => return Err(conflict(path)),
                None => {
                    self.ops.push(RootOp::Dir {
                        path: cstring(&dir)?,
                        mode: 0o755,
                    });
                    self.nodes.insert(dir.clone(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    /// A directory or empty file at `path`, unless something is there.
    fn placeholder(&mut self, path: &Path, node: Node, mode: u32) -> Result<(), RootError> {
        let rel = relative(path);
        if self.nodes.contains_key(&rel) {
            return Ok(());
        }
        let c = cstring(&rel)?;
        self.ops.push(match node {
            Node::Dir => RootOp::Dir { path: c, mode },
            Node::Whiteout => RootOp::Whiteout { path: c },
            _ => RootOp::File { path: c },
        });
        self.nodes.insert(rel, node);
        Ok(())
    }

    fn link(&mut self, path: &Path, target: &Path) -> Result<(), RootError> {
        let rel = relative(path);
        if self.nodes.contains_key(&rel) {
            return Ok(());
        }
        self.ops.push(RootOp::Link {
            target: cstring(target)?,
            path: cstring(&rel)?,
        });
        self.nodes.insert(rel, Node::Link);
        Ok(())
    }

    fn bind(&mut self, path: &Path, remount: Option<MountFlags>) -> Result<(), RootError> {
        let rel = relative(path);
        self.ops.push(RootOp::Bind {
            source: self.sources.len(),
            path: cstring(&rel)?,
            remount,
        });
        self.sources.push(cstring(path)?);
        self.nodes.insert(rel, Node::Bind);
        Ok(())
    }

    /// The names of the host directory `dir` that the root lacks:
    /// directories (mode `dir_mode`, empty), the same links, empty files.
    fn mirror(&mut self, dir: &Path, dir_mode: u32) -> Result<(), RootError> {
        let entries = std::fs::read_dir(dir).map_err(host(dir))?;
        for entry in entries {
            let entry = entry.map_err(host(dir))?;
            let path = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(host(&path))?;
                self.link(&path, &target)?;
            } else if kind.is_dir() {
                self.placeholder(&path, Node::Dir, dir_mode)?;
            } else {
                self.placeholder(&path, Node::Whiteout, 0)?;
            }
        }
        Ok(())
    }
}

/// The flags `MS_REMOUNT | MS_BIND` needs to give the bind of `path` what
/// `want` says, keeping the source mount's own flags (in a user namespace
/// its flags are locked: a remount that would clear one, its atime
/// setting included, is refused); `None` when the source has them all.
fn remount_flags(
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

/// Resolves `path` on the host, recording each symbolic link met on the
/// way (`(link, its target as written)`): the canonical path, or `None`
/// for a missing optional path.
fn resolve(
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
fn relative(path: &Path) -> PathBuf {
    lexical(path)
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Whether `path` (canonical, following links the way the root holds
/// them) exists in the root: at or beneath a bind, or one of its own
/// directories.
fn check_inside(
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

fn is_dir(path: &Path) -> Result<bool, RootError> {
    let st = rustix::fs::stat(path).map_err(|e| RootError::Host {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

fn cstring(path: &Path) -> Result<CString, RootError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| RootError::Host {
        path: path.to_owned(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })
}

fn host(path: &Path) -> impl Fn(io::Error) -> RootError + '_ {
    move |source| RootError::Host {
        path: path.to_owned(),
        source,
    }
}

fn conflict(path: &Path) -> RootError {
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

    #[test]
    fn statvfs_flags_map_to_mount_flags() {
        let st = StatVfsMountFlags::RDONLY | StatVfsMountFlags::NODEV | StatVfsMountFlags::RELATIME;
        assert_eq!(
            mount_flags(st),
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::RELATIME
        );
    }
}
