//! The paths a program may reach, and the Landlock ruleset built from them.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, Scope,
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
    /// is looked for in a dozen directories, on every start), `/dev/null`
    /// read-write and the random devices read-only. Nothing else of `/etc`,
    /// not `/proc`, not `/tmp`, not any home directory.
    fn default() -> FsRules {
        FsRules {
            read_exec: [
                "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
            ]
            .map(PathBuf::from)
            .to_vec(),
            read: [
                "/etc/ld.so.cache",
                "/dev/urandom",
                "/dev/random",
                "/dev/zero",
            ]
            .map(PathBuf::from)
            .to_vec(),
            read_write: vec![PathBuf::from("/dev/null")],
            read_write_exec: Vec::new(),
            // Not on every host: merged-/usr systems without the links,
            // other architectures, musl (no loader cache).
            optional: [
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/libx32",
                "/etc/ld.so.cache",
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

/// The Landlock rights of [`FsRules::read_write`]: every right of the ABI
/// but `Execute`, and but making character and block devices (no jailed
/// code needs a device node; only a missing `CAP_MKNOD` refused them).
fn read_write(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_all(abi) & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock)
}

/// The Landlock rights a read-write path gets, as the kernel's bits (for
/// the rule the supervisor adds to each tmpfs it mounts, and a warm
/// pool's zygote adds to each call's ruleset for the call's `tmp/`).
pub fn read_write_access(abi: i32) -> u64 {
    read_write(ABI::from(abi)).bits()
}

/// How much of what was asked the kernel's Landlock enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Filesystem, TCP and scopes (ABI ≥ 6).
    Full,
    /// Filesystem only, or filesystem and TCP (ABI 1 to 5).
    Partial,
}

impl Enforcement {
    pub(crate) fn for_abi(abi: i32) -> Enforcement {
        if abi >= 6 {
            Enforcement::Full
        } else {
            Enforcement::Partial
        }
    }
}

impl FsRules {
    /// Builds the Landlock ruleset for these rules: every filesystem right
    /// of ABI `abi` handled, TCP bind and connect denied, signals and
    /// abstract unix sockets scoped. A process confines itself with
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

fn ruleset(rules: &FsRules, abi: i32) -> Result<OwnedFd, FsRulesError> {
    let abi = ABI::from(abi);
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
    let created = ruleset
        .create()?
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
