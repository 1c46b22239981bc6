//! The paths a program may reach, and the Landlock ruleset built from them.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
};
use rustix::fs::{Mode, OFlags};

/// Filesystem access of a confined program, enforced by Landlock.
///
/// Everything not listed is denied: reading, writing, executing, creating
/// device nodes, FIFOs and sockets, linking, renaming. Every path must be
/// absolute and must exist, unless it is also in
/// [`optional`](FsRules::optional): a misspelled rule is an error
/// ([`FsRulesError`]), not a rule silently dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRules {
    /// Read and execute beneath these (the interpreter, system libraries).
    pub read_exec: Vec<PathBuf>,
    /// Read beneath these.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath these, but not execute: a
    /// program cannot bring new programs of its own (CodeJail's posture).
    pub read_write: Vec<PathBuf>,
    /// Read, write, create, remove and execute beneath these, for callers
    /// that want programs run from a writable place.
    pub read_write_exec: Vec<PathBuf>,
    /// Paths of the lists above that may be missing on a given host (such
    /// as `/lib32`): skipped when they do not exist. Any other path that
    /// does not exist is an error.
    pub optional: Vec<PathBuf>,
}

/// A path of [`FsRules`] that cannot be given to Landlock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsRulesError {
    /// The path is relative: it would depend on the caller's working
    /// directory.
    #[error("filesystem rule `{}` is a relative path; give it as an absolute one", path.display())]
    Relative {
        /// The path as given.
        path: PathBuf,
    },
    /// The path does not exist and is not in [`FsRules::optional`].
    #[error(
        "filesystem rule `{}` does not exist; check its spelling, create it, or list it in FsRules::optional if it may be missing on some hosts",
        path.display()
    )]
    Missing {
        /// The path as given.
        path: PathBuf,
    },
    /// The path exists but could not be opened (`O_PATH`): a component
    /// the caller may not search, a loop of links.
    #[error("filesystem rule `{}` cannot be opened: {source}; check its permissions", path.display())]
    Open {
        /// The path as given.
        path: PathBuf,
        /// The error of `open(2)`, with its errno.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the ruleset or a rule.
    #[error("could not build the Landlock ruleset: {0}")]
    Ruleset(#[from] RulesetError),
}

impl Default for FsRules {
    /// The system's programs and libraries (`/usr`, `/bin`, `/lib*`), the
    /// dynamic loader's index `/etc/ld.so.cache` (without it every library
    /// is looked for in a dozen directories, on every start), the local
    /// time zone `/etc/localtime`, `/dev/null` and `/dev/full` read-write
    /// and the random devices read-only. Nothing else of `/etc`, not
    /// `/proc`, not `/tmp`, not any home directory.
    fn default() -> FsRules {
        FsRules {
            read_exec: [
                "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
            ]
            .map(PathBuf::from)
            .to_vec(),
            read: [
                "/etc/ld.so.cache",
                "/etc/localtime",
                "/dev/urandom",
                "/dev/random",
                "/dev/zero",
            ]
            .map(PathBuf::from)
            .to_vec(),
            read_write: vec![PathBuf::from("/dev/null"), PathBuf::from("/dev/full")],
            read_write_exec: Vec::new(),
            // Not on every host: merged-/usr systems without the links,
            // other architectures, musl (no loader cache), a host with no
            // time zone set, a minimal container's /dev.
            optional: [
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/libx32",
                "/etc/ld.so.cache",
                "/etc/localtime",
                "/dev/full",
            ]
            .map(PathBuf::from)
            .to_vec(),
        }
    }
}

/// A size- and inode-limited `tmpfs` mounted over a directory in the run's
/// mount namespace (a jail's `tmp/` quota). Past it the program gets
/// `ENOSPC` and the outcome says [`KillReason::Disk`](crate::KillReason::Disk).
/// Under Landlock the mount gets the rights of [`FsRules::read_write`]:
/// everything but execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    /// The directory to mount over.
    pub target: PathBuf,
    /// `size=`, bytes.
    pub bytes: u64,
    /// `nr_inodes=`.
    pub inodes: u64,
    /// Mode of the mount's root.
    pub mode: u32,
    /// Owner of the mount's root.
    pub uid: u32,
    /// Group of the mount's root.
    pub gid: u32,
}

impl Tmpfs {
    /// The `mount(2)` data string. A dimension of 0 is left to tmpfs's
    /// default (half the memory, half its pages in inodes) rather than
    /// passed as `0`, which tmpfs reads as "unlimited" and reports as full.
    pub(crate) fn data(&self) -> String {
        let mut data = format!("mode={:o},uid={},gid={}", self.mode, self.uid, self.gid);
        if self.bytes > 0 {
            data.push_str(&format!(",size={}", self.bytes));
        }
        if self.inodes > 0 {
            data.push_str(&format!(",nr_inodes={}", self.inodes));
        }
        data
    }
}

/// The Landlock ABI this code was written for: rulesets ask for its
/// rights, and a kernel of an older ABI gets those it has (best effort,
/// said by [`Enforcement`]); a newer kernel's rights are not asked for
/// until this is raised and the code checked against them.
///
/// 9: its unix-socket right (`LANDLOCK_ACCESS_FS_RESOLVE_UNIX`) is what
/// refuses connecting to the host's pathname unix sockets where the run
/// has no root of its own, in place of seccomp's refusal of unix sockets
/// altogether ([`refuses_unix_sockets`]). ABI 8 adds nothing a run asks
/// for (its one addition is a flag of `landlock_restrict_self` for every
/// thread, which the program, single-threaded, does not need). ABI 10's
/// UDP rights are left out: the network namespace already has no
/// interface, and a right handled with no rule would refuse what no test
/// here has checked.
pub const LANDLOCK_ABI: i32 = 9;

/// The ABI rulesets are built for on a kernel of ABI `kernel`: the older
/// of it and [`LANDLOCK_ABI`].
pub fn effective_abi(kernel: i32) -> i32 {
    kernel.min(LANDLOCK_ABI)
}

/// Whether Landlock refuses connecting and sending to pathname unix
/// sockets outside the rules on a kernel of ABI `kernel` (its unix-socket
/// right, ABI 9): a run with Landlock then needs no seccomp refusal of
/// unix sockets where it has no mount namespace.
pub fn refuses_unix_sockets(kernel: i32) -> bool {
    effective_abi(kernel) >= 9
}

/// The Landlock rights of [`FsRules::read_write`]: every right of the ABI
/// but `Execute`, and but making character and block devices (no jailed
/// code needs a device node; only a missing `CAP_MKNOD` refused them).
/// With ABI 9, connecting to the unix sockets it makes there is among
/// them.
fn read_write(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_all(abi) & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock)
}

/// The Landlock rights a read-write path gets on a kernel of ABI `abi`,
/// as the kernel's bits (for the rule the supervisor adds to each tmpfs
/// it mounts, and a warm pool's zygote adds to each call's ruleset for the
/// call's `tmp/`).
pub fn read_write_access(abi: i32) -> u64 {
    read_write(ABI::from(effective_abi(abi))).bits()
}

/// How much of what codejail asks of Landlock (the rights of
/// [`LANDLOCK_ABI`]) the kernel enforces, as the `landlock` crate reports
/// it after a real `landlock_restrict_self` ([`RulesetStatus`]): found
/// once per process by [`Probe`](crate::Probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Enforcement {
    /// Every right asked for: filesystem, TCP, scopes and unix sockets.
    Full,
    /// Some of them: the kernel's ABI is older than [`LANDLOCK_ABI`];
    /// [`unenforced`] names what is missing. The other layers stand in
    /// for it (seccomp refuses unix sockets where nothing else does).
    Partial,
}

impl Enforcement {
    /// `full` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Full => "full",
            Enforcement::Partial => "partial",
        }
    }
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Landlock does not enforce on a kernel of ABI `kernel`, of what
/// codejail asks for (the rights of [`LANDLOCK_ABI`]), by the ABI that
/// added each: for messages (`codejail doctor`).
pub fn unenforced(kernel: i32) -> Vec<&'static str> {
    const ADDED: [(i32, &str); 6] = [
        (2, "linking and renaming across directories (ABI 2)"),
        (3, "truncation (ABI 3)"),
        (4, "TCP bind and connect (ABI 4)"),
        (5, "ioctl on devices (ABI 5)"),
        (6, "signal and abstract unix socket scopes (ABI 6)"),
        (9, "connecting to pathname unix sockets (ABI 9)"),
    ];
    ADDED
        .iter()
        .filter(|(abi, _)| *abi > kernel && *abi <= LANDLOCK_ABI)
        .map(|(_, what)| *what)
        .collect()
}

/// The enforcement of the rights of [`LANDLOCK_ABI`] on this kernel: a
/// ruleset that handles them all (best effort, as a run's), with no rule,
/// applied by `landlock_restrict_self` to the calling thread, which must be
/// a thread of its own that then ends (the probe starts one). Landlock
/// restricts the calling thread only (no
/// `LANDLOCK_RESTRICT_SELF_TSYNC` is asked for), so nothing else of the
/// process is restricted; the status is the crate's account of which
/// asked rights the kernel took, confirmed by the kernel accepting the
/// restriction.
///
/// # Errors
/// Why Landlock cannot be used: the kernel refused the ruleset or the
/// restriction, or enforced none of it.
pub(crate) fn enforcement_trial_here() -> Result<Enforcement, String> {
    let status = base_ruleset(ABI::from(LANDLOCK_ABI))
        .and_then(RulesetCreated::restrict_self)
        .map_err(|e| format!("a trial restriction failed: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(Enforcement::Full),
        RulesetStatus::PartiallyEnforced => Ok(Enforcement::Partial),
        RulesetStatus::NotEnforced => Err("the kernel enforced none of a trial ruleset".into()),
    }
}

impl FsRules {
    /// No path at all (every list empty): a start for rules that must not
    /// include the system's ([`FsRules::default`]).
    pub fn empty() -> FsRules {
        FsRules {
            read_exec: Vec::new(),
            read: Vec::new(),
            read_write: Vec::new(),
            read_write_exec: Vec::new(),
            optional: Vec::new(),
        }
    }

    /// Builds the Landlock ruleset for these rules on a kernel of ABI
    /// `abi`: every filesystem right of ABI [`effective_abi`]`(abi)`
    /// handled (with ABI 9, connecting to pathname unix sockets outside
    /// the read-write paths denied), TCP bind and connect denied, signals
    /// and abstract unix sockets scoped. A process confines itself with
    /// `landlock_restrict_self(2)` on the descriptor; the warm path sends it
    /// to a zygote's worker, which nests it in the zygote's domain.
    ///
    /// # Errors
    /// [`FsRulesError`]: a relative path, a missing one that is not
    /// [`optional`](FsRules::optional), one that cannot be opened, or the
    /// kernel's refusal.
    ///
    /// # References
    /// - [`landlock_create_ruleset(2)`](https://man7.org/linux/man-pages/man2/landlock_create_ruleset.2.html)
    /// - [`landlock_add_rule(2)`](https://man7.org/linux/man-pages/man2/landlock_add_rule.2.html)
    pub fn ruleset(&self, abi: i32) -> Result<OwnedFd, FsRulesError> {
        ruleset(self, abi)
    }

    /// Checks every path as [`ruleset`](FsRules::ruleset) does, without
    /// building anything: a run checks its rules even where Landlock does
    /// not apply, so that a misspelled rule fails everywhere alike.
    ///
    /// # Errors
    /// [`FsRulesError`], as for [`ruleset`](FsRules::ruleset).
    pub fn check(&self) -> Result<(), FsRulesError> {
        let lists = [
            &self.read_exec,
            &self.read,
            &self.read_write,
            &self.read_write_exec,
        ];
        for path in lists.into_iter().flatten() {
            check_rule_path(path, self.is_optional(path))?;
        }
        Ok(())
    }

    fn is_optional(&self, path: &Path) -> bool {
        self.optional.iter().any(|p| p == path)
    }

    /// One rule per path of `paths` with `access`; missing optional paths
    /// are left out.
    fn rules<'a>(
        &'a self,
        paths: &'a [PathBuf],
        access: BitFlags<AccessFs>,
    ) -> impl Iterator<Item = Result<PathBeneath<OwnedFd>, FsRulesError>> + 'a {
        paths.iter().filter_map(move |path| {
            open_rule_path(path, self.is_optional(path))
                .map(|fd| fd.map(|fd| PathBeneath::new(fd, access)))
                .transpose()
        })
    }
}

/// Opens a rule's path (`O_PATH`, following links, as Landlock wants it);
/// `None` for a missing optional path.
fn open_rule_path(path: &Path, optional: bool) -> Result<Option<OwnedFd>, FsRulesError> {
    if !path.is_absolute() {
        return Err(FsRulesError::Relative {
            path: path.to_owned(),
        });
    }
    let opened = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
    opened.map(Some).or_else(|e| missing_or(path, optional, e))
}

/// What [`open_rule_path`] would say, with one `access(F_OK)` instead of
/// an open and a close (a run without Landlock checks its rules too).
fn check_rule_path(path: &Path, optional: bool) -> Result<(), FsRulesError> {
    if !path.is_absolute() {
        return Err(FsRulesError::Relative {
            path: path.to_owned(),
        });
    }
    rustix::fs::access(path, rustix::fs::Access::EXISTS)
        .or_else(|e| missing_or::<()>(path, optional, e).map(drop))
}

/// A path that could not be reached: skipped (`None`) when it does not
/// exist and is optional, else the error.
fn missing_or<T>(
    path: &Path,
    optional: bool,
    e: rustix::io::Errno,
) -> Result<Option<T>, FsRulesError> {
    match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR if optional => Ok(None),
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => Err(FsRulesError::Missing {
            path: path.to_owned(),
        }),
        e => Err(FsRulesError::Open {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

/// A ruleset that handles every right of `abi` (filesystem, TCP, scopes),
/// best effort: on an older kernel the crate leaves out what it lacks.
fn base_ruleset(abi: ABI) -> Result<RulesetCreated, RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?;
    if !AccessNet::from_all(abi).is_empty() {
        // Handled with no rule: every TCP bind and connect is denied.
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if !Scope::from_all(abi).is_empty() {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    ruleset.create()
}

fn ruleset(rules: &FsRules, abi: i32) -> Result<OwnedFd, FsRulesError> {
    let abi = ABI::from(effective_abi(abi));
    let created = base_ruleset(abi)?
        .add_rules(rules.rules(&rules.read_exec, AccessFs::from_read(abi)))?
        .add_rules(rules.rules(&rules.read, AccessFs::ReadFile | AccessFs::ReadDir))?
        .add_rules(rules.rules(&rules.read_write, read_write(abi)))?
        .add_rules(rules.rules(&rules.read_write_exec, AccessFs::from_all(abi)))?;
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or(FsRulesError::Ruleset(RulesetError::CreateRuleset(
        landlock::CreateRulesetError::MissingHandledAccess,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_with_read(path: &str) -> FsRules {
        let mut rules = FsRules::default();
        rules.read.push(PathBuf::from(path));
        rules
    }

    #[test]
    fn read_write_is_everything_but_execute_and_devices() {
        let abi = ABI::from(7);
        let missing = AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock;
        assert!(!read_write(abi).intersects(missing));
        assert_eq!(read_write(abi) | missing, AccessFs::from_all(abi));
        assert_eq!(read_write_access(7), read_write(abi).bits());
    }

    /// The pin: a kernel newer than the pinned ABI gets the pinned ABI's
    /// rights, an older one its own.
    #[test]
    fn rulesets_are_built_for_the_older_of_the_kernel_and_the_pin() {
        assert_eq!(effective_abi(7), 7);
        assert_eq!(effective_abi(LANDLOCK_ABI), LANDLOCK_ABI);
        assert_eq!(effective_abi(12), LANDLOCK_ABI);
        // A newer kernel's bits are never asked for: they would be refused
        // by the rule the supervisor adds to a tmpfs on an older one.
        assert_eq!(
            read_write_access(12),
            read_write(ABI::from(LANDLOCK_ABI)).bits()
        );
        assert!(!unenforced(7).is_empty());
        assert!(unenforced(LANDLOCK_ABI).is_empty());
        assert!(unenforced(12).is_empty());
        assert_eq!(
            unenforced(6),
            ["connecting to pathname unix sockets (ABI 9)"]
        );
    }

    /// Unix sockets go to Landlock where the kernel has its unix-socket
    /// right (ABI 9), and to seccomp below: the right is among a
    /// read-write path's (the program's own sockets in `tmp/`), not a
    /// read-only one's.
    #[test]
    fn unix_sockets_are_landlocks_from_abi_9() {
        for kernel in 1..=8 {
            assert!(!refuses_unix_sockets(kernel), "ABI {kernel}");
            assert!(!read_write(ABI::from(effective_abi(kernel))).contains(AccessFs::ResolveUnix));
        }
        for kernel in 9..=12 {
            assert!(refuses_unix_sockets(kernel), "ABI {kernel}");
            let abi = ABI::from(effective_abi(kernel));
            assert!(AccessFs::from_all(abi).contains(AccessFs::ResolveUnix));
            assert!(read_write(abi).contains(AccessFs::ResolveUnix));
            assert!(!AccessFs::from_read(abi).contains(AccessFs::ResolveUnix));
        }
    }

    /// The status is the kernel's answer to a real restriction, on a
    /// thread of its own: this thread stays unrestricted.
    #[test]
    fn the_enforcement_trial_restricts_only_its_own_thread() {
        let Some(kernel) = crate::child::landlock_abi().ok() else {
            return codejail_tests::not_tested("landlock", "the kernel has no Landlock");
        };
        let status = std::thread::spawn(enforcement_trial_here)
            .join()
            .unwrap()
            .unwrap();
        let want = if kernel >= LANDLOCK_ABI {
            Enforcement::Full
        } else {
            Enforcement::Partial
        };
        assert_eq!(status, want);
        // This thread can still read what no rule granted.
        std::fs::read("/proc/self/status").unwrap();
        std::fs::read_dir("/").unwrap().count();
    }

    #[test]
    fn the_default_rules_hold_on_this_host() {
        FsRules::default().check().unwrap();
    }

    #[test]
    fn a_relative_path_is_an_error_naming_it() {
        let err = rules_with_read("etc/passwd").check().unwrap_err();
        assert!(matches!(&err, FsRulesError::Relative { path } if path == Path::new("etc/passwd")));
        assert!(err.to_string().contains("`etc/passwd`"), "{err}");
    }

    #[test]
    fn a_missing_path_is_an_error_unless_optional() {
        let mut rules = rules_with_read("/no/such/codejail/path");
        let err = rules.check().unwrap_err();
        assert!(matches!(&err, FsRulesError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("FsRules::optional"), "{err}");
        // A file where a directory should be: missing too.
        rules.read = vec![PathBuf::from("/etc/hostname/x")];
        assert!(matches!(rules.check(), Err(FsRulesError::Missing { .. })));
        rules.optional.push(PathBuf::from("/etc/hostname/x"));
        rules.check().unwrap();
    }
}
