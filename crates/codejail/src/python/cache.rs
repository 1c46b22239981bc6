//! The interpreter facts, cached per caller.
//!
//! An entry says which directories Landlock lets the interpreter read, so
//! whoever can write the cache can widen every jail of that interpreter:
//! the cache directory and every entry must belong to the caller and be
//! writable by nobody else, or they are ignored (and the facts are asked
//! of the interpreter again). An entry is keyed by the interpreter's path,
//! its file identity (device, inode, size, modification and change times),
//! who it was asked as (a uid and gid, or any uid of a range and a gid),
//! and the probe's own text (which holds
//! the `safe_exec` driver): when any of them changes, the entry is stale.
//!
//! Where: `$CODEJAIL_CACHE_DIR`; else `/var/cache/codejail` for root, and
//! `$XDG_CACHE_HOME/codejail` or `~/.cache/codejail` for anyone else.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PythonFacts;

/// Entries larger than this are not entries.
const MAX_ENTRY: u64 = 4 << 20;

/// What an entry must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    bin: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    asked_as: String,
    probe: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: Key,
    read_exec: Vec<PathBuf>,
    /// The driver's bytecode, hex.
    driver: Option<String>,
}

impl Key {
    /// The key of `bin` asked as `asked_as`; none when the file cannot be
    /// read.
    pub(crate) fn of(bin: &Path, asked_as: &str) -> Option<Key> {
        let real = std::fs::canonicalize(bin).ok()?;
        let meta = std::fs::metadata(&real).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Key {
            bin: bin.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            asked_as: asked_as.to_owned(),
            probe: format!("{:016x}", fnv1a(codejail_pyexec::probe_script().as_bytes())),
        })
    }

    fn file_name(&self) -> String {
        let mut id = self.bin.as_os_str().as_encoded_bytes().to_vec();
        id.push(0);
        id.extend_from_slice(self.asked_as.as_bytes());
        format!("python-{:016x}.json", fnv1a(&id))
    }
}

/// FNV-1a, 64 bits: a stable name for a key (not a defence: entries are
/// trusted for their owner and mode, and checked field by field).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cache directory for this caller, created (0700) if missing; none
/// when there is no suitable one.
fn dir() -> Option<PathBuf> {
    let euid = rustix::process::geteuid().as_raw();
    let dir = match std::env::var_os("CODEJAIL_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if euid == 0 => PathBuf::from("/var/cache/codejail"),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?
            .join("codejail"),
    };
    if !dir.is_absolute() {
        return None;
    }
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ok()?;
    }
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && private(&meta, euid)).then_some(dir)
}

/// Owned by `euid` and writable by nobody else.
fn private(meta: &std::fs::Metadata, euid: u32) -> bool {
    meta.uid() == euid && meta.mode() & 0o022 == 0
}

/// The cached facts for `key`, when a private, well-formed entry for
/// exactly that key exists.
pub(crate) fn load(key: &Key) -> Option<PythonFacts> {
    let path = dir()?.join(key.file_name());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(&path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let euid = rustix::process::geteuid().as_raw();
    if !meta.is_file() || !private(&meta, euid) {
        tracing::warn!(entry = %path.display(), "ignoring a cache entry that is not private to this user");
        return None;
    }
    let mut text = String::new();
    file.take(MAX_ENTRY).read_to_string(&mut text).ok()?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    if entry.key != *key
        || entry
            .read_exec
            .iter()
            .any(|p| !p.is_absolute() || p.parent().is_none())
    {
        return None;
    }
    let driver = match entry.driver {
        Some(hex) => Some(from_hex(&hex)?),
        None => None,
    };
    Some(PythonFacts {
        read_exec: entry.read_exec,
        driver,
    })
}

/// Stores `facts` for `key`, atomically (a new file renamed over the old
/// one). A cache that cannot be written costs only speed: logged, not an
/// error.
pub(crate) fn store(key: &Key, facts: &PythonFacts) {
    let Some(dir) = dir() else {
        tracing::debug!("no private cache directory; the interpreter will be asked again");
        return;
    };
    let entry = Entry {
        key: key.clone(),
        read_exec: facts.read_exec.clone(),
        driver: facts.driver.as_deref().map(to_hex),
    };
    let text = serde_json::to_string(&entry).expect("an entry always serializes");
    let path = dir.join(key.file_name());
    let tmp = dir.join(format!("{}.{}.tmp", key.file_name(), std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(&tmp)
        .and_then(|mut f: File| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(entry = %path.display(), "could not write the cache entry: {e}");
    }
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])),
            Some(vec![0, 1, 254, 255])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
