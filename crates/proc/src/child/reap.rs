//! The supervisor's end of a run: kill every process of it and reap them,
//! with the pid namespace (kill its init, the holder) or without it (walk
//! `/proc` for children of this subreaper, kill, reap, repeat).

use std::ffi::{CStr, c_int};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags, RawDir};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

/// Reads what is pending on a non-blocking descriptor, and drops it.
pub(super) fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 512];
    while rustix::io::read(fd, &mut buf).is_ok_and(|n| n > 0) {}
}

/// Reaps children (one, or with `nohang` every one that has changed
/// state); records the program's raw status when it is among them.
/// Returns false once there are no children left at all.
pub(super) fn reap(program: libc::pid_t, status: &mut Option<c_int>, nohang: bool) -> bool {
    let mut options = WaitOptions::from_bits_retain(libc::__WALL as u32);
    if nohang {
        options |= WaitOptions::NOHANG;
    }
    loop {
        match rustix::process::wait(options) {
            Ok(Some((pid, st))) => {
                if pid.as_raw_pid() == program {
                    *status = Some(st.as_raw());
                }
                if !nohang {
                    return true;
                }
            }
            Ok(None) => return true, // children remain, none has changed state
            Err(Errno::INTR) => {}
            Err(_) => return false, // ECHILD
        }
    }
}

/// Kills every process of the run and reaps it.
///
/// In a pid namespace, the holder is its init: killing it makes the
/// kernel kill every process in the namespace, and the holder is gone only
/// once all of them are (its exit waits for them; the program, our child,
/// must be reaped here first). Without one, every process of the run is a
/// descendant of this subreaper: a process whose parent dies is re-parented
/// here, so repeating "kill my children, reap one" until none is left gets
/// grandchildren that called setsid() or double-forked too.
pub(super) fn kill_all_and_reap(
    program: libc::pid_t,
    status: &mut Option<c_int>,
    pid_ns: bool,
    holder: Option<BorrowedFd<'_>>,
    proc_dir: Option<&OwnedFd>,
) {
    if status.is_none() {
        // The program is our unreaped child (a zombie at worst), so its pid
        // cannot have been reused.
        if let Some(pid) = Pid::from_raw(program) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
    if let (true, Some(holder)) = (pid_ns, holder) {
        let _ = rustix::process::pidfd_send_signal(holder, Signal::KILL);
        while reap(program, status, false) {}
        // A pidfd polls readable once its process has exited.
        let mut gone = [PollFd::from_borrowed_fd(holder, PollFlags::IN)];
        while let Err(Errno::INTR) = poll(&mut gone, None) {}
        return;
    }
    loop {
        if !reap(program, status, true) {
            return;
        }
        if let Some(proc_dir) = proc_dir {
            kill_children(proc_dir);
        }
        if !reap(program, status, false) {
            return;
        }
    }
}

/// Sends SIGKILL to every process whose parent is this one, found by reading
/// `/proc/<pid>/stat` (the kernel here has no `/proc/self/task/*/children`).
/// Each target is an unreaped child of this process, so its pid cannot
/// have been reused between the read and the kill.
fn kill_children(proc_dir: &OwnedFd) {
    let me = rustix::process::getpid().as_raw_pid();
    // The directory is read again from its start on every round.
    if rustix::fs::seek(proc_dir, rustix::fs::SeekFrom::Start(0)).is_err() {
        return;
    }
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = RawDir::new(proc_dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name();
        let Some(pid) = parse_pid(name.to_bytes()) else {
            continue;
        };
        if parent_of(proc_dir, name) == Some(me) {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// Parses a run of digits, ending at a NUL or at the end of the slice.
fn parse_pid(name: &[u8]) -> Option<libc::pid_t> {
    let mut pid: libc::pid_t = 0;
    let mut digits = 0;
    for &b in name {
        if b == 0 {
            break;
        }
        if !b.is_ascii_digit() || digits >= 9 {
            return None;
        }
        pid = pid * 10 + libc::pid_t::from(b - b'0');
        digits += 1;
    }
    (digits > 0).then_some(pid)
}

/// The parent pid from `/proc/<name>/stat`: field 4, after the last ')'.
fn parent_of(proc_dir: &OwnedFd, name: &CStr) -> Option<libc::pid_t> {
    let name = name.to_bytes();
    let mut path = [0u8; 32];
    let len = name.len() + b"/stat".len();
    if len >= path.len() {
        return None; // no pid is that long; the last byte stays NUL
    }
    path[..name.len()].copy_from_slice(name);
    path[name.len()..len].copy_from_slice(b"/stat");
    let path = CStr::from_bytes_until_nul(&path).ok()?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let file = rustix::fs::openat(proc_dir, path, flags, Mode::empty()).ok()?;
    let mut stat = [0u8; 512];
    let n = rustix::io::read(&file, &mut stat).ok()?;
    let stat = stat.get(..n)?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    // ") S PPID ..."
    let rest = stat.get(close + 4..)?;
    let end = rest.iter().position(|&b| b == b' ')?;
    parse_pid(rest.get(..end)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_parse_from_nul_terminated_names() {
        assert_eq!(parse_pid(b"1234\0\0"), Some(1234));
        assert_eq!(parse_pid(b"self\0"), None);
        assert_eq!(parse_pid(b"\0"), None);
        assert_eq!(parse_pid(b"12a\0"), None);
    }

    #[test]
    fn the_parent_is_read_from_proc() {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let proc_dir = rustix::fs::open(c"/proc", flags, Mode::empty()).unwrap();
        let me = std::ffi::CString::new(std::process::id().to_string()).unwrap();
        let parent = rustix::process::getppid().map_or(0, Pid::as_raw_pid);
        assert_eq!(parent_of(&proc_dir, &me), Some(parent));
        assert_eq!(parent_of(&proc_dir, c"no-such-process"), None);
    }
}
