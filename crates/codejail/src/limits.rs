//! CodeJail's limits, global and per context.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

/// A limit's name. Parsed case-insensitively (`cpu`, `REALTIME`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitName {
    /// CPU seconds (default 1).
    Cpu,
    /// Wall-clock seconds (default 1).
    Realtime,
    /// Address-space bytes; 0 = off (default).
    Vmem,
    /// Largest file written, bytes; 0 = no file may be written (default).
    Fsize,
    /// Processes of the run (default 15).
    Nproc,
    /// Memory of the whole run, bytes (a cgroup); 0 = off (default).
    Memory,
    /// Bytes in the jail's `tmp/` (a tmpfs quota); 0 = no quota (default).
    Disk,
    /// Files in the jail's `tmp/` (a tmpfs inode quota); 0 = no quota.
    Files,
    /// Bytes kept per output stream (default 1 MiB).
    Output,
    /// Accepted for compatibility with CodeJail's settings and ignored:
    /// CodeJail used it to run jails through a long-lived proxy process.
    Proxy,
}

impl LimitName {
    /// Every limit.
    pub const ALL: [LimitName; 10] = [
        LimitName::Cpu,
        LimitName::Realtime,
        LimitName::Vmem,
        LimitName::Fsize,
        LimitName::Nproc,
        LimitName::Memory,
        LimitName::Disk,
        LimitName::Files,
        LimitName::Output,
        LimitName::Proxy,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::Cpu => "cpu",
            LimitName::Realtime => "realtime",
            LimitName::Vmem => "vmem",
            LimitName::Fsize => "fsize",
            LimitName::Nproc => "nproc",
            LimitName::Memory => "memory",
            LimitName::Disk => "disk",
            LimitName::Files => "files",
            LimitName::Output => "output",
            LimitName::Proxy => "proxy",
        }
    }

    fn default_value(self) -> u64 {
        match self {
            LimitName::Cpu | LimitName::Realtime => 1,
            LimitName::Nproc => 15,
            LimitName::Output => 1 << 20,
            _ => 0,
        }
    }
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit name that does not exist, or a value that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Not a limit.
    #[error(
        "unknown limit `{0}`; known: cpu, realtime, vmem, fsize, nproc, memory, disk, files, output, proxy"
    )]
    UnknownName(String),
    /// Not a non-negative whole number.
    #[error("limit {name} needs a whole number >= 0, not `{value}`")]
    BadValue {
        /// The limit.
        name: LimitName,
        /// The value given.
        value: String,
    },
}

impl FromStr for LimitName {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<LimitName, LimitError> {
        LimitName::ALL
            .into_iter()
            .find(|n| n.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| LimitError::UnknownName(s.to_owned()))
    }
}

/// Parses `NAME=VALUE` (the command line's `--limit`).
///
/// # Errors
/// [`LimitError`] for an unknown name or a bad value.
pub fn parse_assignment(text: &str) -> Result<(LimitName, u64), LimitError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| LimitError::UnknownName(text.to_owned()))?;
    let name: LimitName = name.parse()?;
    let value = value.trim().parse().map_err(|_| LimitError::BadValue {
        name,
        value: value.to_owned(),
    })?;
    Ok((name, value))
}

/// A full set of limit values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits(HashMap<LimitName, u64>);

impl Default for Limits {
    /// CodeJail's defaults (CPU 1, REALTIME 1, VMEM 0, FSIZE 0, NPROC 15)
    /// and this project's (MEMORY, DISK, FILES off; OUTPUT 1 MiB).
    fn default() -> Limits {
        Limits(
            LimitName::ALL
                .into_iter()
                .map(|n| (n, n.default_value()))
                .collect(),
        )
    }
}

impl Limits {
    /// One value.
    pub fn get(&self, name: LimitName) -> u64 {
        self.0
            .get(&name)
            .copied()
            .unwrap_or_else(|| name.default_value())
    }

    /// Sets one value.
    pub fn set(&mut self, name: LimitName, value: u64) {
        self.0.insert(name, value);
    }

    /// The process layer's limits.
    pub(crate) fn to_proc(&self) -> codejail_proc::Limits {
        let on = |n| Some(self.get(n));
        codejail_proc::Limits {
            cpu_secs: on(LimitName::Cpu),
            wall: Some(Duration::from_secs(self.get(LimitName::Realtime))),
            vmem_bytes: on(LimitName::Vmem),
            fsize_bytes: on(LimitName::Fsize),
            nproc: on(LimitName::Nproc),
            nofile: None,
            memory_bytes: on(LimitName::Memory),
            output_bytes: on(LimitName::Output),
        }
    }

    /// The tmp quota, when DISK or FILES is set.
    pub(crate) fn tmp_quota(&self) -> Option<codejail_fs::TmpQuota> {
        let (bytes, inodes) = (self.get(LimitName::Disk), self.get(LimitName::Files));
        // tmpfs reads 0 as "no limit", as codejail does.
        (bytes > 0 || inodes > 0).then_some(codejail_fs::TmpQuota { bytes, inodes })
    }
}

struct Registry {
    global: Limits,
    overrides: HashMap<String, HashMap<LimitName, u64>>,
}

static LIMITS: RwLock<Option<Registry>> = RwLock::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = LIMITS.write().unwrap_or_else(|e| e.into_inner());
    let reg = guard.get_or_insert_with(|| Registry {
        global: Limits::default(),
        overrides: HashMap::new(),
    });
    f(reg)
}

/// Sets a global limit (CodeJail's `set_limit`).
pub fn set_limit(name: LimitName, value: u64) {
    with(|r| r.global.set(name, value));
}

/// Overrides a limit for one context, such as a course
/// (CodeJail's `override_limit`).
pub fn override_limit(name: LimitName, value: u64, context: &str) {
    with(|r| {
        r.overrides
            .entry(context.to_owned())
            .or_default()
            .insert(name, value)
    });
}

/// Restores every default and drops every override.
pub fn reset_limits() {
    with(|r| {
        r.global = Limits::default();
        r.overrides.clear();
    });
}

/// The limits of a run: global, then the context's overrides, then the
/// call's own.
pub fn effective_limits(context: Option<&str>, per_call: &[(LimitName, u64)]) -> Limits {
    with(|r| {
        let mut limits = r.global.clone();
        if let Some(over) = context.and_then(|c| r.overrides.get(c)) {
            for (&n, &v) in over {
                limits.set(n, v);
            }
        }
        for &(n, v) in per_call {
            limits.set(n, v);
        }
        limits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_unknown_ones_are_errors() {
        assert_eq!("CPU".parse::<LimitName>(), Ok(LimitName::Cpu));
        assert_eq!("Realtime".parse::<LimitName>(), Ok(LimitName::Realtime));
        assert!(matches!(
            "walltime".parse::<LimitName>(),
            Err(LimitError::UnknownName(_))
        ));
        assert_eq!(
            parse_assignment("memory=1048576"),
            Ok((LimitName::Memory, 1 << 20))
        );
        assert!(matches!(
            parse_assignment("cpu=-1"),
            Err(LimitError::BadValue { .. })
        ));
        assert!(matches!(
            parse_assignment("cpu"),
            Err(LimitError::UnknownName(_))
        ));
    }

    #[test]
    fn defaults_are_codejails() {
        let l = Limits::default();
        let values: Vec<u64> = [
            LimitName::Cpu,
            LimitName::Realtime,
            LimitName::Vmem,
            LimitName::Fsize,
            LimitName::Nproc,
        ]
        .into_iter()
        .map(|n| l.get(n))
        .collect();
        assert_eq!(values, [1, 1, 0, 0, 15]);
        assert_eq!(l.get(LimitName::Output), 1 << 20);
        assert_eq!(l.tmp_quota(), None);
    }
}
