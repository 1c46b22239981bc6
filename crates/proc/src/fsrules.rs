//! The paths a program may reach, and the Landlock ruleset built from them.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, Scope, path_beneath_rules,
};

/// Filesystem access of a confined program, enforced by Landlock.
///
/// Everything not listed is denied: reading, writing, executing, creating
/// device nodes, FIFOs and sockets, linking, renaming. Paths that do not
/// exist are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRules {
    /// Read and execute beneath these (the interpreter, system libraries).
    pub read_exec: Vec<PathBuf>,
    /// Read beneath these.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath these.
    pub read_write: Vec<PathBuf>,
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
        }
    }
}

/// A size- and inode-limited `tmpfs` mounted over a directory in the run's
/// mount namespace (a jail's `tmp/` quota). Past it the program gets
/// `ENOSPC` and the outcome says [`KillReason::Disk`](crate::KillReason::Disk).
/// Under Landlock the mount gets the read-write rights of
/// [`FsRules::read_write`].
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
    /// The `mount(2)` data string.
    pub(crate) fn data(&self) -> String {
        format!(
            "size={},nr_inodes={},mode={:o},uid={},gid={}",
            self.bytes, self.inodes, self.mode, self.uid, self.gid
        )
    }
}

/// The Landlock rights a read-write path gets (for rules the child adds to
/// mounts it makes).
pub(crate) fn read_write_access(abi: i32) -> u64 {
    AccessFs::from_all(ABI::from(abi)).bits()
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
    /// [`RulesetError`] from the kernel or a path's `open(2)` (paths that
    /// do not exist are skipped).
    ///
    /// # References
    /// - [`landlock_create_ruleset(2)`](https://man7.org/linux/man-pages/man2/landlock_create_ruleset.2.html)
    /// - [`landlock_add_rule(2)`](https://man7.org/linux/man-pages/man2/landlock_add_rule.2.html)
    pub fn ruleset(&self, abi: i32) -> Result<OwnedFd, RulesetError> {
        ruleset(self, abi)
    }
}

fn ruleset(rules: &FsRules, abi: i32) -> Result<OwnedFd, RulesetError> {
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
        .add_rules(path_beneath_rules(
            &rules.read_exec,
            AccessFs::from_read(abi),
        ))?
        .add_rules(path_beneath_rules(
            &rules.read,
            AccessFs::ReadFile | AccessFs::ReadDir,
        ))?
        .add_rules(path_beneath_rules(
            &rules.read_write,
            AccessFs::from_all(abi),
        ))?;
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or(RulesetError::CreateRuleset(
        landlock::CreateRulesetError::MissingHandledAccess,
    ))
}
