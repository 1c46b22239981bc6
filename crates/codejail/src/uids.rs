//! A uid of its own for every run at the same time: sandbox uids come from
//! a configured range, and each run holds one for its whole life.
//!
//! For a caller that can switch uid (root), two runs at the same time
//! never share a uid, so whatever a layer misses between them (a signal
//! without a pid namespace, a file left in a world-readable place,
//! `RLIMIT_NPROC`, which counts the processes of a uid) is not shared
//! either. isolate gives each box a uid of its own the same way
//! (`first_uid + box id`).
//!
//! # Allocation
//!
//! One lock file per uid in a root-only directory (default
//! [`DEFAULT_UID_LOCK_DIR`]; `0700`, owned by the caller), named by the
//! uid. A run takes the first free uid from a random start in the range:
//! `openat(O_CREAT | O_NOFOLLOW)` and `flock(LOCK_EX | LOCK_NB)`. The lock
//! is held by an open file description, so it works between threads of
//! one process as between processes (several codejail processes, a
//! service's workers, command-line runs), and the kernel drops it when
//! the holder dies, however it dies. The holder unlinks the file *before*
//! closing it; a taker that locked a file checks that the name still
//! leads to the inode it locked, and tries again otherwise, so an
//! unlinked inode is never taken for a free uid. The directory therefore
//! lists the uids in use (and the ones a killed process left, which the
//! next taker reuses and removes).
//!
//! A lease is dropped only after every process of its run is reaped
//! (`Spawn::run` returns then; a zygote's lease after its run's thread is
//! joined) and after the run's jail directory is removed.
//!
//! # When every uid is taken
//!
//! The run fails at once with [`UidError::Exhausted`]: waiting would need
//! a deadline of its own and hides a saturated host; a service queues its
//! calls above this. The default range has 65536 uids, more than the
//! processes a host can run.
//!
//! # What a uid can have left behind
//!
//! A run's files are in its jail directory, which is removed (a killed
//! caller's by `codejail gc`); with a user or mount namespace nothing else
//! is writable. Without them, Landlock still confines writes to the jail's
//! `tmp/`. What remains possible only when layers are missing (a file in a
//! world-writable directory that Landlock was not there to refuse, System V
//! IPC objects when seccomp is missing) belongs to a uid no account has:
//! the next run with that uid could read it, as any run could read a
//! world-readable file; it grants nothing on the host.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustix::fs::{AtFlags, Dir, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// Where the uid lock files are, unless a jail says otherwise
/// (`uid_lock_dir`). Every process that uses a range must use the same
/// directory for it.
pub const DEFAULT_UID_LOCK_DIR: &str = "/run/codejail/uids";

/// A range of sandbox uids, first to last inclusive.
///
/// The default, `2000000000-2000065535`, is chosen where no account or
/// delegated range is expected: above 65535 (16-bit ids, `nobody` at
/// 65534), above the subordinate ids `useradd` hands out (100000 to
/// 600100000 by default), above systemd's container ranges (524288 to
/// 1879048191) and below 2^31 (tools that read ids as signed numbers).
/// [`Jail::new`](crate::Jail::new) refuses a range that holds an account's
/// uid (`/etc/passwd`) or a subordinate range (`/etc/subuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UidRange {
    first: u32,
    last: u32,
}

/// A range of uids that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UidRangeError {
    /// Not `FIRST-LAST` or `off`.
    #[error("`{0}` is not a uid range; write FIRST-LAST (e.g. 2000000000-2000065535) or off")]
    Syntax(String),
    /// Last before first.
    #[error("uid range {first}-{last} is empty; the first uid must not be above the last")]
    Empty {
        /// The first uid.
        first: u32,
        /// The last uid.
        last: u32,
    },
    /// The range holds root, or reaches 2^31, where the invalid id
    /// 4294967295 and ids read as negative numbers are.
    #[error(
        "uid range {first}-{last} must lie between 1 and 2147483647 (root is 0; tools read higher ids as negative)"
    )]
    OutOfBounds {
        /// The first uid.
        first: u32,
        /// The last uid.
        last: u32,
    },
}

impl UidRange {
    /// The default range: `2000000000-2000065535`.
    pub const DEFAULT: UidRange = UidRange {
        first: 2_000_000_000,
        last: 2_000_065_535,
    };

    /// The uids `first..=last`.
    ///
    /// # Errors
    /// [`UidRangeError`] for an empty range, or one that holds 0 or
    /// reaches 2^31.
    pub fn new(first: u32, last: u32) -> Result<UidRange, UidRangeError> {
        if last < first {
            return Err(UidRangeError::Empty { first, last });
        }
        if first == 0 || last > i32::MAX as u32 {
            return Err(UidRangeError::OutOfBounds { first, last });
        }
        Ok(UidRange { first, last })
    }

    /// The first uid.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// The last uid.
    pub fn last(&self) -> u32 {
        self.last
    }

    /// How many uids it holds.
    pub fn len(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    /// Never: a range holds one uid at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `uid` is in it.
    pub fn contains(&self, uid: u32) -> bool {
        (self.first..=self.last).contains(&uid)
    }

    /// The uid at `offset` from the first (modulo the length).
    fn nth(&self, offset: u64) -> u32 {
        self.first + (offset % self.len()) as u32
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for UidRange {
    type Err = UidRangeError;

    /// `FIRST-LAST`, decimal.
    fn from_str(s: &str) -> Result<UidRange, UidRangeError> {
        let syntax = || UidRangeError::Syntax(s.to_owned());
        let (first, last) = s.trim().split_once('-').ok_or_else(syntax)?;
        let number = |t: &str| {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            t.parse::<u32>().map_err(|_| syntax())
        };
        UidRange::new(number(first)?, number(last)?)
    }
}

/// Where the uid of a root caller's runs comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uids {
    /// A uid of its own per run, from this range (the default:
    /// [`UidRange::DEFAULT`]); the jail's `user` gives the group.
    Range(UidRange),
    /// Every run as the jail's `user` (default `nobody`): runs at the same
    /// time share that uid. For hosts where a range cannot be used (the
    /// uids are taken, or no runtime directory can hold the locks).
    Off,
}

impl Default for Uids {
    fn default() -> Uids {
        Uids::Range(UidRange::DEFAULT)
    }
}

impl FromStr for Uids {
    type Err = UidRangeError;

    /// `off`, or `FIRST-LAST`.
    fn from_str(s: &str) -> Result<Uids, UidRangeError> {
        match s.trim() {
            "off" => Ok(Uids::Off),
            range => range.parse().map(Uids::Range),
        }
    }
}

impl fmt::Display for Uids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uids::Range(range) => range.fmt(f),
            Uids::Off => f.write_str("off"),
        }
    }
}

/// Why a run could not get a uid of its own. Nothing is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UidError {
    /// The lock directory could not be made or opened.
    #[error(
        "could not {step} the uid lock directory {}: {source}; create it as the caller (mkdir -p -m 0700), set `uid_lock_dir`, or set uids = \"off\"",
        dir.display()
    )]
    LockDir {
        /// The directory.
        dir: PathBuf,
        /// What failed: `create` or `open`.
        step: &'static str,
        /// The error (its errno kept).
        #[source]
        source: io::Error,
    },
    /// The lock directory is not private to the caller: anyone else who
    /// can write it could take a run's uid away.
    #[error(
        "the uid lock directory {} is owned by uid {owner} with mode {mode:04o}; it must be the caller's (uid {euid}) and writable by nobody else: chown and chmod 0700 it",
        dir.display()
    )]
    LockDirNotPrivate {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// The caller.
        euid: u32,
    },
    /// A lock file could not be made, locked or checked.
    #[error("could not {step} the uid lock file {}: {source}", file.display())]
    Lock {
        /// The file.
        file: PathBuf,
        /// The step.
        step: &'static str,
        /// The error (its errno kept).
        #[source]
        source: io::Error,
    },
    /// Every uid of the range is held by a run now.
    #[error(
        "all {} sandbox uids of {range} are in use by runs now; widen the jail's `uids` range or run fewer at once",
        range.len()
    )]
    Exhausted {
        /// The range.
        range: UidRange,
    },
}

/// One uid held for one run; dropping it frees the uid (the lock file is
/// unlinked, then closed).
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    dir: OwnedFd,
    name: String,
    _lock: OwnedFd,
}

impl UidLease {
    /// The uid.
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        // Unlinked while still locked: a taker that locked this inode
        // meanwhile sees the name gone (or another inode) and retries.
        let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
    }
}

/// Takes a free uid of `range`, with its lock file in `dir`.
///
/// # Errors
/// [`UidError`]: the directory is unusable, a lock file fails, or every
/// uid is taken.
pub(crate) fn lease(range: UidRange, dir: &Path) -> Result<UidLease, UidError> {
    let dir_fd = open_dir(dir)?;
    let start = random_u64();
    let mut busy = Vec::new();
    for i in 0..range.len() {
        let uid = range.nth(start.wrapping_add(i));
        match try_take(&dir_fd, dir, uid)? {
            Some(lease) => return Ok(lease),
            None => busy.push(uid),
        }
    }
    // `gc` holds a stale lease's lock for a moment to remove it: a uid
    // found busy then is free again. Each is tried once more, a
    // millisecond later, before the range is said to be in use.
    if !busy.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for uid in busy {
        if let Some(lease) = try_take(&dir_fd, dir, uid)? {
            return Ok(lease);
        }
    }
    Err(UidError::Exhausted { range })
}

/// The lock directory, created (0700) when missing, and checked to be
/// the caller's alone.
fn open_dir(dir: &Path) -> Result<OwnedFd, UidError> {
    match open_private(dir)? {
        Some(fd) => Ok(fd),
        None => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| UidError::LockDir {
                    dir: dir.to_owned(),
                    step: "create",
                    source,
                })?;
            open_private(dir)?.ok_or_else(|| UidError::LockDir {
                dir: dir.to_owned(),
                step: "open",
                source: Errno::NOENT.into(),
            })
        }
    }
}

/// The lock directory if it exists (its last component no link),
/// checked to be the caller's alone: what runs and [`gc_leases`] both
/// take it for.
fn open_private(dir: &Path) -> Result<Option<OwnedFd>, UidError> {
    let open = |e: Errno| UidError::LockDir {
        dir: dir.to_owned(),
        step: "open",
        source: e.into(),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(open(e)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(open)?;
    let euid = rustix::process::geteuid().as_raw();
    let mode = stat.st_mode & 0o7777;
    if stat.st_uid != euid || mode & 0o077 != 0 {
        return Err(UidError::LockDirNotPrivate {
            dir: dir.to_owned(),
            owner: stat.st_uid,
            mode,
            euid,
        });
    }
    Ok(Some(fd))
}

/// Whether `name` in `dir` still leads to the file `held` describes (a
/// holder unlinks its file as it lets go; a file by that name may be
/// another's since).
fn still_named(dir: &OwnedFd, name: &str, held: &rustix::fs::Stat) -> Result<bool, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) => Ok(now.st_dev == held.st_dev && now.st_ino == held.st_ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `uid` if it is free: its lock file made or opened, locked without
/// waiting, and still the file its name leads to.
fn try_take(dir_fd: &OwnedFd, dir: &Path, uid: u32) -> Result<Option<UidLease>, UidError> {
    let name = uid.to_string();
    let fail = |step| {
        let file = dir.join(&name);
        move |e: Errno| UidError::Lock {
            file,
            step,
            source: e.into(),
        }
    };
    // A holder unlinks its file as it lets go: a taker that raced it
    // locked a dead inode and tries again; a few rounds settle it.
    for _ in 0..3 {
        let lock = rustix::fs::openat(
            dir_fd,
            name.as_str(),
            OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(fail("open"))?;
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(fail("lock")(e)),
        }
        let held = rustix::fs::fstat(&lock).map_err(fail("check"))?;
        match still_named(dir_fd, &name, &held) {
            Ok(true) => {
                let dir = rustix::io::fcntl_dupfd_cloexec(dir_fd, 0).map_err(fail("check"))?;
                return Ok(Some(UidLease {
                    uid,
                    dir,
                    name,
                    _lock: lock,
                }));
            }
            Ok(false) => continue,
            Err(e) => return Err(fail("check")(e)),
        }
    }
    Ok(None)
}

/// How long a lease file must be untouched before [`gc_leases`] takes it:
/// a file just made is a run's, about to lock it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes from `dir` the lock files of `ranges` that no run holds: those
/// a killed caller left (the next taker of the uid would reuse and remove
/// each). Only what a run leaves is touched: a name of a uid in `ranges`,
/// an empty regular file of this user's, untouched for a minute, in a
/// directory that is this user's alone (as a run checks it). Each is taken
/// as a run takes it (locked without waiting, and still the file its name
/// leads to) and let go as a run lets go (unlinked, then closed), so a
/// run taking the uid meanwhile is never left holding an unlinked inode.
/// A lock held by a live run stays, listed as live. With `dry_run`, only
/// says what it would remove. A missing directory has nothing to remove.
///
/// A run that opens a stale file in the moment the sweep holds its lock
/// takes another free uid, or tries that one again after the others. A dry
/// run takes no lock: `/proc/locks` says which leases are held.
pub fn gc_leases(dir: &Path, ranges: &[UidRange], dry_run: bool) -> crate::GcReport {
    let mut report = crate::GcReport::default();
    let failed = |report: &mut crate::GcReport, path: &Path, why: String| {
        report.failed.push((path.to_owned(), why));
    };
    let dir_fd = match open_private(dir) {
        Ok(Some(fd)) => fd,
        Ok(None) => return report,
        Err(e) => {
            failed(&mut report, dir, e.to_string());
            return report;
        }
    };
    let euid = rustix::process::geteuid().as_raw();
    let names: Vec<String> = match Dir::read_from(&dir_fd) {
        Ok(mut entries) => {
            let mut names = Vec::new();
            while let Some(Ok(entry)) = entries.read() {
                let Ok(name) = entry.file_name().to_str() else {
                    continue;
                };
                let uid = name
                    .parse::<u32>()
                    .ok()
                    .filter(|uid| uid.to_string() == name);
                if uid.is_some_and(|uid| ranges.iter().any(|r| r.contains(uid))) {
                    names.push(name.to_owned());
                }
            }
            names
        }
        Err(e) => {
            failed(&mut report, dir, io::Error::from(e).to_string());
            return report;
        }
    };
    let now = std::time::SystemTime::now();
    for name in names {
        let path = dir.join(&name);
        let lock = match rustix::fs::openat(
            &dir_fd,
            name.as_str(),
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(lock) => lock,
            // Let go meanwhile.
            Err(Errno::NOENT) => continue,
            Err(e) => {
                failed(&mut report, &path, io::Error::from(e).to_string());
                continue;
            }
        };
        let Ok(held) = rustix::fs::fstat(&lock) else {
            continue;
        };
        let kind = FileType::from_raw_mode(held.st_mode);
        if kind != FileType::RegularFile
            || held.st_uid != euid
            || held.st_size != 0
            || held.st_nlink != 1
        {
            // Not what a run leaves: left alone, and said, but no failure
            // of gc's (one on every pass would hide real ones).
            tracing::warn!(
                path = %path.display(),
                "left alone in the uid lock directory: not a lease file (an empty regular file of this user's, with one name)"
            );
            continue;
        }
        let touched = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(held.st_mtime).unwrap_or(0));
        if now.duration_since(touched).unwrap_or_default() < STALE_AFTER {
            continue;
        }
        // A dry run takes no lock (a run trying the uid then would find it
        // busy): the kernel's list of locks says which are held.
        if dry_run {
            if flock_held(&held) {
                report.live.push(path);
            } else {
                report.removed.push(path);
            }
            continue;
        }
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                report.live.push(path);
                continue;
            }
            Err(e) => {
                failed(&mut report, &path, io::Error::from(e).to_string());
                continue;
            }
        }
        // Another file by that name now: a run's, or another sweep's.
        if !still_named(&dir_fd, &name, &held).unwrap_or(false) {
            continue;
        }
        if let Err(e) = rustix::fs::unlinkat(&dir_fd, name.as_str(), AtFlags::empty()) {
            failed(&mut report, &path, io::Error::from(e).to_string());
            continue;
        }
        report.removed.push(path);
    }
    report
}

/// Whether a `flock` lock is held on the file of `st`, as `/proc/locks`
/// lists them (`FLOCK ... MAJOR:MINOR:INODE`, the device numbers in hex).
/// A list that cannot be read says held: nothing is removed on a guess.
fn flock_held(st: &rustix::fs::Stat) -> bool {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    let file = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(st.st_dev),
        rustix::fs::minor(st.st_dev),
        st.st_ino
    );
    locks
        .lines()
        .any(|line| line.contains(" FLOCK ") && line.split_whitespace().any(|f| f == file))
}

/// A random start, so that a uid just freed is not the next one taken
/// (not a secret: the uids in use are listed in the lock directory).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Why a range cannot be used on this host: an account's uid, or a
/// subordinate range delegated to someone, lies in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// An account (`/etc/passwd`) has a uid in the range.
    Account {
        /// Its name.
        user: String,
        /// Its uid.
        uid: u32,
    },
    /// A subordinate range (`/etc/subuid`) overlaps it.
    Delegated {
        /// Whose.
        user: String,
        /// Its first uid.
        first: u32,
        /// How many.
        count: u64,
    },
}

/// The first account or subordinate range in `range`, reading `passwd`
/// and `subuid` (missing files hold nothing).
pub(crate) fn taken_in(range: UidRange, passwd: &Path, subuid: &Path) -> Option<Taken> {
    let passwd = std::fs::read_to_string(passwd).unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if let Some(uid) = f.get(2).and_then(|u| u.parse::<u32>().ok()) {
            if range.contains(uid) {
                return Some(Taken::Account {
                    user: f[0].to_owned(),
                    uid,
                });
            }
        }
    }
    let subuid = std::fs::read_to_string(subuid).unwrap_or_default();
    for line in subuid.lines() {
        let f: Vec<&str> = line.trim().split(':').collect();
        let (Some(first), Some(count)) = (
            f.get(1).and_then(|u| u.parse::<u64>().ok()),
            f.get(2).and_then(|c| c.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let last = first + count.max(1) - 1;
        if count > 0 && first <= u64::from(range.last()) && last >= u64::from(range.first()) {
            return Some(Taken::Delegated {
                user: f[0].to_owned(),
                first: first as u32,
                count,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_are_checked() {
        assert_eq!(
            "2000000000-2000065535".parse::<UidRange>(),
            Ok(UidRange::DEFAULT)
        );
        assert_eq!(UidRange::DEFAULT.len(), 65536);
        assert_eq!(" 10 - 10 ".parse::<UidRange>().unwrap().len(), 1);
        assert_eq!("off".parse::<Uids>(), Ok(Uids::Off));
        assert_eq!(
            "5-7".parse::<Uids>(),
            Ok(Uids::Range(UidRange::new(5, 7).unwrap()))
        );
        for bad in ["", "5", "-5", "5-", "a-b", "+5-7", "5-7-9", "99999999999-1"] {
            assert!(
                matches!(bad.parse::<UidRange>(), Err(UidRangeError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "7-5".parse::<UidRange>(),
            Err(UidRangeError::Empty { first: 7, last: 5 })
        );
        for bad in ["0-10", "2147483640-2147483648", "4294967295-4294967295"] {
            assert!(
                matches!(
                    bad.parse::<UidRange>(),
                    Err(UidRangeError::OutOfBounds { .. })
                ),
                "{bad}"
            );
        }
        let range = UidRange::new(100, 102).unwrap();
        assert_eq!((range.nth(0), range.nth(2), range.nth(3)), (100, 102, 100));
        assert_eq!(range.to_string(), "100-102");
        assert_eq!(Uids::default().to_string(), "2000000000-2000065535");
    }

    #[test]
    fn accounts_and_subordinate_ranges_in_a_range_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let subuid = dir.path().join("subuid");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nsandbox:x:1500:1501::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(&subuid, "alice:100000:65536\n").unwrap();
        let r = |a, b| UidRange::new(a, b).unwrap();
        assert_eq!(taken_in(r(2000, 3000), &passwd, &subuid), None);
        assert_eq!(
            taken_in(r(1000, 2000), &passwd, &subuid),
            Some(Taken::Account {
                user: "sandbox".into(),
                uid: 1500
            })
        );
        let delegated = Some(Taken::Delegated {
            user: "alice".into(),
            first: 100000,
            count: 65536,
        });
        assert_eq!(taken_in(r(165535, 200000), &passwd, &subuid), delegated);
        assert_eq!(taken_in(r(90000, 100000), &passwd, &subuid), delegated);
        assert_eq!(taken_in(r(165536, 200000), &passwd, &subuid), None);
        assert_eq!(
            taken_in(UidRange::DEFAULT, &dir.path().join("none"), &subuid),
            None
        );
    }

    fn lock_dir() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("uids");
        (top, dir)
    }

    #[test]
    fn two_leases_never_share_a_uid_and_a_freed_uid_is_taken_again() {
        let (_top, dir) = lock_dir();
        let range = UidRange::new(5000, 5001).unwrap();
        let a = lease(range, &dir).unwrap();
        let b = lease(range, &dir).unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(matches!(
            lease(range, &dir),
            Err(UidError::Exhausted { range: r }) if r == range
        ));
        let freed = a.uid();
        drop(a);
        assert!(!dir.join(freed.to_string()).exists(), "the lock file stays");
        let c = lease(range, &dir).unwrap();
        assert_eq!(c.uid(), freed);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut held = vec![b.uid().to_string(), c.uid().to_string()];
        held.sort();
        assert_eq!(names, held, "the directory lists the uids in use");
    }

    #[test]
    fn a_lock_a_dead_holder_left_is_taken_and_cleaned() {
        let (_top, dir) = lock_dir();
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        // A file with no lock on it: what a killed process leaves.
        std::fs::write(dir.join("7000"), "").unwrap();
        let range = UidRange::new(7000, 7000).unwrap();
        let lease = lease(range, &dir).unwrap();
        assert_eq!(lease.uid(), 7000);
        drop(lease);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn leases_from_many_threads_are_all_different() {
        let (_top, dir) = lock_dir();
        let range = UidRange::new(9000, 9063).unwrap();
        let leases: Vec<UidLease> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| s.spawn(|| lease(range, &dir).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut uids: Vec<u32> = leases.iter().map(UidLease::uid).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 64);
    }

    #[test]
    fn deny_a_lock_directory_others_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let (_top, dir) = lock_dir();
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let range = UidRange::new(5000, 5001).unwrap();
        match lease(range, &dir) {
            Err(e @ UidError::LockDirNotPrivate { mode: 0o1777, .. }) => {
                assert!(e.to_string().contains("chmod 0700"), "{e}");
            }
            other => panic!("expected LockDirNotPrivate, got {other:?}"),
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn deny_a_lock_directory_that_cannot_be_made() {
        let (top, _) = lock_dir();
        let file = top.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let dir = file.join("uids");
        match lease(UidRange::DEFAULT, &dir) {
            Err(UidError::LockDir { step, source, .. }) => {
                assert_eq!((step, source.raw_os_error()), ("open", Some(libc::ENOTDIR)));
            }
            other => panic!("expected LockDir, got {other:?}"),
        }
    }
}
