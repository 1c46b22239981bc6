//! CodeJail's limits: names, values with their units and ranges, the global
//! values and the per-context overrides.
//!
//! A value enters through [`LimitName::parse_value`] (the command line, the
//! settings file) or [`LimitName::check`] (the library): either it is in
//! the limit's range, or it is a [`LimitError`] that names the limit and
//! the range. Nothing downstream has to guard against a value that would
//! overflow.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, RwLock};
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
    /// Bytes in the jail's `tmp/` (a tmpfs quota; default 64 MiB); with
    /// FILES 0 too, no quota.
    Disk,
    /// Files in the jail's `tmp/` (a tmpfs inode quota; default 1024);
    /// with DISK 0 too, no quota.
    Files,
    /// Bytes kept per output stream (default 4 MiB).
    Output,
    /// Accepted for compatibility with CodeJail's settings and ignored:
    /// CodeJail used it to run jails through a long-lived proxy process.
    Proxy,
}

/// What a limit's value measures, which decides the units it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Whole seconds: `2`, `2s`, `5m`, `1h`.
    Seconds,
    /// Bytes: `1048576`, `64K`, `64M`, `1G`, `1GiB` (powers of 1024), `1GB`
    /// (powers of 1000).
    Bytes,
    /// A count: a plain number.
    Count,
}

/// Wall-clock and CPU limits past a year are certainly mistakes (and keep
/// every deadline representable).
const MAX_SECONDS: u64 = 366 * 24 * 3600;
/// The kernel's `PID_MAX_LIMIT`: no run can have more processes.
const MAX_PROCESSES: u64 = 1 << 22;
/// Byte limits stay below what `i64` holds: cgroup and tmpfs files take
/// signed values.
const MAX_BYTES: u64 = i64::MAX as u64;

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

    /// The built-in default: CodeJail's for its limits, this project's for
    /// the others.
    pub fn default_value(self) -> u64 {
        match self {
            LimitName::Cpu | LimitName::Realtime => 1,
            LimitName::Nproc => 15,
            // CodeJail's own tests write 3.84 MB to stdout and to stderr.
            LimitName::Output => 4 << 20,
            // A writable tmp/ always has a quota: FSIZE bounds one file,
            // not how many.
            LimitName::Disk => 64 << 20,
            LimitName::Files => 1024,
            _ => 0,
        }
    }

    fn unit(self) -> Unit {
        match self {
            LimitName::Cpu | LimitName::Realtime => Unit::Seconds,
            LimitName::Vmem
            | LimitName::Fsize
            | LimitName::Memory
            | LimitName::Disk
            | LimitName::Output => Unit::Bytes,
            LimitName::Nproc | LimitName::Files | LimitName::Proxy => Unit::Count,
        }
    }

    /// The largest value accepted.
    pub fn max_value(self) -> u64 {
        match self {
            LimitName::Cpu | LimitName::Realtime => MAX_SECONDS,
            LimitName::Nproc => MAX_PROCESSES,
            LimitName::Files => u64::from(u32::MAX),
            LimitName::Proxy => u64::MAX,
            _ => MAX_BYTES,
        }
    }

    /// Checks a value against the limit's range.
    ///
    /// # Errors
    /// [`LimitError::OutOfRange`].
    pub fn check(self, value: u64) -> Result<u64, LimitError> {
        if value > self.max_value() {
            return Err(LimitError::OutOfRange {
                name: self,
                value: value.to_string(),
            });
        }
        Ok(value)
    }

    /// Parses a value: a whole number, or one with a unit (`64M`, `1GiB`,
    /// `2s`, `5m`), then checks its range.
    ///
    /// # Errors
    /// [`LimitError::BadValue`] or [`LimitError::OutOfRange`].
    pub fn parse_value(self, text: &str) -> Result<u64, LimitError> {
        let bad = || LimitError::BadValue {
            name: self,
            value: text.to_owned(),
        };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, suffix) = t.split_at(split);
        if digits.is_empty() {
            return Err(bad());
        }
        let multiplier: u64 = match (self.unit(), suffix.trim()) {
            (_, "") => 1,
            (Unit::Seconds, "s") => 1,
            (Unit::Seconds, "m") => 60,
            (Unit::Seconds, "h") => 3600,
            (Unit::Bytes, s) => byte_multiplier(s).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        let out_of_range = || LimitError::OutOfRange {
            name: self,
            value: text.to_owned(),
        };
        let n: u64 = digits.parse().map_err(|_| out_of_range())?;
        let value = n.checked_mul(multiplier).ok_or_else(out_of_range)?;
        self.check(value).map_err(|_| out_of_range())
    }

    /// The range and units, in words, for messages and docs.
    pub fn range(self) -> String {
        match self.unit() {
            Unit::Seconds => format!(
                "whole seconds from 0 to {} (a year), with an optional s, m or h",
                self.max_value()
            ),
            Unit::Bytes => "bytes from 0 to 2^63-1, with an optional K, M, G, T (powers of 1024; also KiB, MiB, ...) or KB, MB, GB, TB (powers of 1000)".to_owned(),
            Unit::Count => format!("a whole number from 0 to {}", self.max_value()),
        }
    }
}

fn byte_multiplier(suffix: &str) -> Option<u64> {
    let upper = suffix.to_ascii_uppercase();
    let (power, base) = match upper.as_str() {
        "B" => (0, 1024),
        "K" | "KIB" => (1, 1024),
        "M" | "MIB" => (2, 1024),
        "G" | "GIB" => (3, 1024),
        "T" | "TIB" => (4, 1024),
        "KB" => (1, 1000),
        "MB" => (2, 1000),
        "GB" => (3, 1000),
        "TB" => (4, 1000),
        _ => return None,
    };
    Some(u64::pow(base, power))
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit name that does not exist, or a value that is not a number in
/// the limit's range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Not a limit.
    #[error(
        "unknown limit `{0}`; known: cpu, realtime, vmem, fsize, nproc, memory, disk, files, output, proxy"
    )]
    UnknownName(String),
    /// `NAME` without `=VALUE`.
    #[error("limit `{0}` has no value; write NAME=VALUE, e.g. cpu=2")]
    MissingValue(String),
    /// Not a whole number with a unit this limit takes.
    #[error("limit {name} takes {}, not `{value}`", name.range())]
    BadValue {
        /// The limit.
        name: LimitName,
        /// The value given.
        value: String,
    },
    /// A number past the limit's range.
    #[error("limit {name} = {value} is out of range: it takes {}", name.range())]
    OutOfRange {
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
            .ok_or_else(|| LimitError::UnknownName(s.trim().to_owned()))
    }
}

/// Parses `NAME=VALUE` (the command line's `--limit`); the value may have
/// a unit ([`LimitName::parse_value`]).
///
/// # Errors
/// [`LimitError`] for an unknown name, a missing or bad value.
pub fn parse_assignment(text: &str) -> Result<(LimitName, u64), LimitError> {
    let Some((name, value)) = text.split_once('=') else {
        // Say "unknown" only when it is not a limit at all.
        let name: LimitName = text.parse()?;
        return Err(LimitError::MissingValue(name.as_str().to_owned()));
    };
    let name: LimitName = name.parse()?;
    Ok((name, name.parse_value(value)?))
}

/// A full set of limit values: CodeJail's `LIMITS` dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSet(HashMap<LimitName, u64>);

impl Default for LimitSet {
    /// CodeJail's defaults (CPU 1, REALTIME 1, VMEM 0, FSIZE 0, NPROC 15)
    /// and this project's (MEMORY off, DISK 64 MiB, FILES 1024, OUTPUT
    /// 4 MiB).
    fn default() -> LimitSet {
        LimitSet(
            LimitName::ALL
                .into_iter()
                .map(|n| (n, n.default_value()))
                .collect(),
        )
    }
}

impl LimitSet {
    /// One value.
    pub fn get(&self, name: LimitName) -> u64 {
        self.0
            .get(&name)
            .copied()
            .unwrap_or_else(|| name.default_value())
    }

    /// Sets one value.
    ///
    /// # Errors
    /// [`LimitError::OutOfRange`]; the set is then unchanged.
    pub fn set(&mut self, name: LimitName, value: u64) -> Result<(), LimitError> {
        self.0.insert(name, name.check(value)?);
        Ok(())
    }

    /// The wall-clock limit (0: none).
    pub fn realtime(&self) -> Option<Duration> {
        Some(self.get(LimitName::Realtime))
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
    }

    /// The process layer's limits.
    pub(crate) fn to_proc(&self) -> codejail_proc::Limits {
        let on = |n| Some(self.get(n));
        codejail_proc::Limits {
            cpu_secs: on(LimitName::Cpu),
            wall: self.realtime(),
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
    global: LimitSet,
    overrides: HashMap<String, HashMap<LimitName, u64>>,
}

static LIMITS: RwLock<Option<Registry>> = RwLock::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = LIMITS.write().unwrap_or_else(|e| e.into_inner());
    let reg = guard.get_or_insert_with(|| Registry {
        global: LimitSet::default(),
        overrides: HashMap::new(),
    });
    f(reg)
}

/// Sets a global limit (CodeJail's `set_limit`).
///
/// # Errors
/// [`LimitError::OutOfRange`]; nothing is changed then.
pub fn set_limit(name: LimitName, value: u64) -> Result<(), LimitError> {
    name.check(value)?;
    with(|r| r.global.set(name, value))
}

/// Overrides a limit for one context, such as a course
/// (CodeJail's `override_limit`).
///
/// # Errors
/// [`LimitError::OutOfRange`]; nothing is changed then.
pub fn override_limit(name: LimitName, value: u64, context: &str) -> Result<(), LimitError> {
    name.check(value)?;
    with(|r| {
        r.overrides
            .entry(context.to_owned())
            .or_default()
            .insert(name, value)
    });
    Ok(())
}

/// Restores every default and drops every override.
pub fn reset_limits() {
    with(|r| {
        r.global = LimitSet::default();
        r.overrides.clear();
    });
}

/// The limits of a run: global, then the context's overrides, then the
/// call's own.
///
/// A context that has no overrides gets the global limits, as in
/// CodeJail; the first time each such context is seen, it is logged (a
/// misspelled course id is otherwise invisible).
///
/// # Errors
/// [`LimitError::OutOfRange`] for a per-call value out of its range.
pub fn effective_limits(
    context: Option<&str>,
    per_call: &[(LimitName, u64)],
) -> Result<LimitSet, LimitError> {
    let (mut limits, unknown) = with(|r| {
        let mut limits = r.global.clone();
        let over = context.and_then(|c| r.overrides.get(c));
        for (&n, &v) in over.into_iter().flatten() {
            limits.0.insert(n, v);
        }
        (
            limits,
            context.filter(|_| over.is_none()).map(str::to_owned),
        )
    });
    if let Some(context) = unknown {
        note_unknown_context(&context);
    }
    for &(n, v) in per_call {
        limits.set(n, v)?;
    }
    Ok(limits)
}

/// Contexts remembered for [`note_unknown_context`]: the names callers
/// send may be anyone's (a service passes a request's), so the memory is
/// bounded; past it each new name is said again, which costs a log line,
/// not memory.
const SEEN_CONTEXTS: usize = 1024;

/// The contexts already said (at most [`SEEN_CONTEXTS`]).
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn note_unknown_context(context: &str) {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(context) {
        return;
    }
    if seen.len() < SEEN_CONTEXTS {
        seen.insert(context.to_owned());
    }
    tracing::info!(
        context,
        "limit context `{context}` has no overrides; the global limits apply"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_contexts_are_remembered_in_bounded_memory() {
        for i in 0..(SEEN_CONTEXTS + 500) {
            note_unknown_context(&format!("context-{i}"));
        }
        let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        assert!(seen.as_ref().is_some_and(|s| s.len() <= SEEN_CONTEXTS));
    }

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
        assert_eq!(
            parse_assignment("cpu"),
            Err(LimitError::MissingValue("cpu".into()))
        );
        assert!(matches!(
            parse_assignment("walltime"),
            Err(LimitError::UnknownName(_))
        ));
    }

    #[test]
    fn values_take_units() {
        let v = |n: LimitName, t: &str| n.parse_value(t);
        assert_eq!(v(LimitName::Memory, "64M"), Ok(64 << 20));
        assert_eq!(v(LimitName::Memory, "64MiB"), Ok(64 << 20));
        assert_eq!(v(LimitName::Disk, "1GiB"), Ok(1 << 30));
        assert_eq!(v(LimitName::Disk, "1GB"), Ok(1_000_000_000));
        assert_eq!(v(LimitName::Output, "4k"), Ok(4096));
        assert_eq!(v(LimitName::Realtime, "2s"), Ok(2));
        assert_eq!(v(LimitName::Realtime, "5m"), Ok(300));
        assert_eq!(v(LimitName::Cpu, " 3 "), Ok(3));
        assert!(matches!(
            v(LimitName::Cpu, "2M"),
            Err(LimitError::BadValue { .. })
        ));
        assert!(matches!(
            v(LimitName::Nproc, "2s"),
            Err(LimitError::BadValue { .. })
        ));
        assert!(matches!(
            v(LimitName::Memory, "1.5G"),
            Err(LimitError::BadValue { .. })
        ));
    }

    #[test]
    fn every_u64_is_either_in_range_or_a_typed_error() {
        for name in LimitName::ALL {
            for value in [0, 1, name.max_value(), u64::MAX, 1 << 32, 1 << 63] {
                match name.check(value) {
                    Ok(v) => assert!(v <= name.max_value()),
                    Err(LimitError::OutOfRange { name: n, .. }) => assert_eq!(n, name),
                    Err(e) => panic!("{e}"),
                }
                let text = value.to_string();
                assert_eq!(name.parse_value(&text).ok(), name.check(value).ok());
            }
        }
        assert!(matches!(
            LimitName::Realtime.parse_value("18446744073709551615"),
            Err(LimitError::OutOfRange { .. })
        ));
        assert!(matches!(
            LimitName::Nproc.parse_value("4294967296"),
            Err(LimitError::OutOfRange { .. })
        ));
        assert!(matches!(
            LimitName::Memory.parse_value("99999999999999999999999"),
            Err(LimitError::OutOfRange { .. })
        ));
        assert!(matches!(
            LimitName::Memory.parse_value("16777216T"),
            Err(LimitError::OutOfRange { .. })
        ));
        let message = LimitName::Nproc.parse_value("4294967296").unwrap_err();
        assert_eq!(
            message.to_string(),
            "limit nproc = 4294967296 is out of range: it takes a whole number from 0 to 4194304"
        );
    }

    #[test]
    fn defaults_are_codejails() {
        let l = LimitSet::default();
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
        assert_eq!(l.get(LimitName::Output), 4 << 20);
        assert_eq!(
            l.tmp_quota(),
            Some(codejail_fs::TmpQuota {
                bytes: 64 << 20,
                inodes: 1024
            })
        );
    }
}
