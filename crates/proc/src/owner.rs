//! Who made a leftover: the owner recorded in the names of what a caller
//! makes (jail directories, warm pool directories, run cgroups, the
//! probe's trial cgroups), so that what a killed caller left can be told
//! from what a running one holds.
//!
//! A name carries `<pid>.<start>`, where `<start>` is the owner's start
//! time in clock ticks since boot (field 22 of `/proc/<pid>/stat`): a pid
//! reused by another process is not taken for the owner.

use std::sync::OnceLock;

/// This process, as it appears in the names of what it makes:
/// `<pid>.<start>`.
pub fn stamp() -> &'static str {
    static STAMP: OnceLock<String> = OnceLock::new();
    STAMP.get_or_init(|| {
        let pid = std::process::id();
        let start = start_time(pid).unwrap_or(0);
        format!("{pid}.{start}")
    })
}

/// A process's start time, in clock ticks after boot (reads
/// `/proc/<pid>/stat`); `None` when there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// The parent of `pid` (reads `/proc/<pid>/stat`), as this process sees
/// it; `None` when there is no such process.
pub fn parent_of(pid: u32) -> Option<i32> {
    stat_field(pid, 4)?.parse().ok()
}

/// Field `n` of `/proc/<pid>/stat`, numbered from 1 as proc(5) does; only
/// fields after the command name (3 and on).
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after
        .split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_owned)
}

/// The owner recorded in a name `codejail-<pid>.<start>-...` or
/// `codejail-warm-<pid>.<start>-...`: (pid, start time).
pub fn owner_of(name: &str) -> Option<(u32, u64)> {
    let rest = name
        .strip_prefix("codejail-warm-")
        .or_else(|| name.strip_prefix("codejail-"))?;
    let (stamp, _rest) = rest.split_once('-')?;
    let (pid, start) = stamp.split_once('.')?;
    // Digits only: `parse` also takes a leading `+`, which no name of
    // ours has.
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(start) {
        return None;
    }
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether the process that made a name still runs.
pub fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Host pids of live processes whose command line contains `token`
/// (reads `/proc/<pid>/cmdline`): how the processes of a run or a pool are
/// found from outside. A zombie is not one: its memory, and with it its
/// command line, is gone. Nor is a process in the middle of an `execve`,
/// between the kernel's taking its new memory and setting its arguments
/// (a short window, each time it executes): a search for something that
/// may be moving looks more than once.
pub fn processes_with(token: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(token)
                .then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_back_from_names() {
        assert_eq!(owner_of("codejail-123.456-abcdef"), Some((123, 456)));
        assert_eq!(owner_of("codejail-warm-7.8-xYz012"), Some((7, 8)));
        assert_eq!(owner_of("codejail-123.456-0"), Some((123, 456)));
        assert_eq!(owner_of("codejail-abcdef"), None);
        assert_eq!(owner_of("codejail-selftest-12"), None);
        assert_eq!(owner_of("codejail-12-probe-0"), None);
        assert_eq!(owner_of("codejail-+12.5-x"), None);
        assert_eq!(owner_of("codejail-12.+5-x"), None);
        assert_eq!(owner_of("codejail-warm-+12.5-x"), None);
        assert_eq!(owner_of("codejail-.5-x"), None);
        assert_eq!(owner_of("other"), None);
        let me = std::process::id();
        assert!(alive(me, start_time(me).unwrap()));
        assert!(!alive(me, start_time(me).unwrap() + 1));
        let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
        assert_eq!(parent_of(me), Some(parent));
        assert_eq!(
            owner_of(&format!("codejail-{}-abcdef", stamp())).map(|o| o.0),
            Some(me)
        );
    }

    /// A live process is found by a token of its command line; once it
    /// is a zombie (killed, not yet reaped) it is not: the kernel shows a
    /// zombie's command line empty (so no state check is needed; a search
    /// by anything a zombie keeps, its name or stat, would fail here).
    #[test]
    fn processes_are_found_by_their_command_line_zombies_not() {
        let token = format!("{}.{}", std::process::id(), 271828);
        let mut child = std::process::Command::new("/bin/sleep")
            .arg(&token)
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // `spawn` returns once the child's `execve` is under way (the
        // parent is let go when the old image is released), which is
        // before the kernel gives the new image its arguments: until then
        // its command line reads empty.
        let started = std::time::Instant::now();
        let mut live = processes_with(&token);
        while live.is_empty() && started.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
            live = processes_with(&token);
        }
        child.kill().unwrap();
        // A zombie until the wait below: its stat says `Z` once it died.
        let died = std::time::Instant::now();
        while stat_field(child.id(), 3).as_deref() != Some("Z")
            && died.elapsed() < std::time::Duration::from_secs(5)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let zombie = processes_with(&token);
        child.wait().unwrap();
        assert_eq!(live, vec![pid]);
        assert_eq!(zombie, Vec::<i32>::new());
    }
}
