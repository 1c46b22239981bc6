//! The supervisor, child side: cloned by the caller, it never execs. It
//! detaches (session, death signal, subreaper), moves its descriptors to
//! fixed slots, joins the run's namespaces, mounts, cgroups, clones the
//! program, waits for its end or the caller's kill request, kills and
//! reaps every process of the run (`super::reap`), and writes the
//! [`Report`]. The caller's handle on it is `crate::spawn::supervisor`.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::process::Signal;
use rustix::thread::ThreadNameSpaceType;

use super::program::exec_program;
use super::reap;
use super::sys::{self, fail, fail_on, or_fail, rx};
use super::wire::{Report, Step};
use super::{
    ChildFds, Confine, FD_CGROUP_PROCS, FD_CONTROL, FD_ERROR, FD_FIRST_FREE, FD_HOLDER,
    FD_LANDLOCK, FD_REPORT, Prepared,
};

/// `libc::CLONE_INTO_CGROUP` overflows its `c_int` type.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Starts the supervisor with `clone3(CLONE_PIDFD [| CLONE_INTO_CGROUP])`
/// and returns its pid and pidfd.
///
/// `exit_signal` is 0, so the caller's process gets no `SIGCHLD` for it and a
/// host application that reaps with `waitpid(-1, ..)` cannot steal its
/// status; it is waited for through the pidfd with `__WALL`.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(crate) fn spawn_supervisor(prep: &Prepared, fds: ChildFds) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    if let Some(dir) = fds.cgroup_v2 {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir as u64;
    }
    // SAFETY: `pidfd` outlives the call; the child branch holds a panic
    // barrier and runs `supervise`, which makes only async-signal-safe
    // calls and ends in _exit.
    let ret = unsafe { sys::clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        supervise(prep, fds);
    }
    Ok((ret, sys::take_pidfd(pidfd)))
}

/// The supervisor: never returns.
fn supervise(prep: &Prepared, fds: ChildFds) -> ! {
    detach(fds.error);
    let mut slots = Slots::remap(fds);
    let confine = &prep.confine;
    join_namespaces(confine, &slots);
    if !confine.mounts.is_empty() {
        mount_tmpfs(confine);
    }
    join_v1_cgroups(&mut slots);
    let (program, signals) = start_program(prep);
    // The program holds the run's stdio and the error pipe now; the
    // supervisor lets go so that end-of-file means what the caller thinks.
    for fd in [0, 1, 2, FD_ERROR] {
        slots.close(fd);
    }
    let mut status = None;
    let kill_requested = wait_for_end(program, &signals, &slots, &mut status);
    reap::kill_all_and_reap(program, &mut status, confine.pid_ns, slots.get(FD_HOLDER));
    let report = report(confine, status, kill_requested);
    if let Some(fd) = slots.get(FD_REPORT) {
        // One write shorter than PIPE_BUF: atomic. A failure only loses the
        // report, which the caller treats as a lost supervisor.
        let _ = rustix::io::write(fd, &report.encode());
    }
    sys::exit(0)
}

/// A session of its own (the run's processes are its process group),
/// `SIGKILL` when the caller dies, and every orphan of the run re-parented
/// here (without a pid namespace). Failures go to the caller's number for
/// the error pipe, not yet moved.
fn detach(error_fd: c_int) {
    if let Err(e) = rx(rustix::process::setsid()) {
        fail_on(error_fd, Step::Setsid, e);
    }
    if let Err(e) = rx(rustix::process::set_parent_process_death_signal(Some(
        Signal::KILL,
    ))) {
        fail_on(error_fd, Step::Pdeathsig, e);
    }
    let me = rustix::process::getpid();
    if let Err(e) = rx(rustix::process::set_child_subreaper(Some(me))) {
        fail_on(error_fd, Step::Subreaper, e);
    }
}

/// The supervisor's descriptor table once [`Slots::remap`] has moved the
/// run's descriptors to their slots (0..=9, in the order of `ChildFds`)
/// and closed every other one.
///
/// A slot is lent out ([`Slots::get`]) only while this table says it is
/// open, and closed only through [`Slots::close`], which marks it shut
/// first; the process is single-threaded and nothing else closes or
/// reopens a slot. So a borrowed descriptor never names a closed or
/// reused number.
struct Slots {
    open: [bool; FD_FIRST_FREE as usize],
}

impl Slots {
    /// Moves the run's descriptors to their slots and closes every other
    /// one, so the supervisor holds no pipe of another run started from
    /// another thread. Slots 0..=2 stay inheritable (the program's stdio);
    /// the others are close-on-exec. A failure is reported on the error
    /// pipe wherever it is at that moment.
    fn remap(fds: ChildFds) -> Slots {
        let wanted = [
            Some(fds.stdin),
            Some(fds.stdout),
            Some(fds.stderr),
            Some(fds.error),
            Some(fds.report),
            Some(fds.control),
            fds.holder,
            fds.landlock,
            fds.cgroup_procs[0],
            fds.cgroup_procs[1],
        ];
        // First a copy of each above every slot, so that no slot is
        // overwritten while it is still needed as a source.
        let mut moved = [None::<c_int>; FD_FIRST_FREE as usize];
        for (copy, fd) in moved.iter_mut().zip(wanted) {
            if let Some(fd) = fd {
                match sys::dup_above(fd, FD_FIRST_FREE) {
                    Ok(new) => *copy = Some(new),
                    Err(e) => fail_on(fds.error, Step::Descriptors, e),
                }
            }
        }
        // From here on the caller's number may be overwritten: the error
        // pipe's copy is the one to report on.
        let error = moved[FD_ERROR as usize].unwrap_or(fds.error);
        let mut open = [false; FD_FIRST_FREE as usize];
        for ((slot, copy), is_open) in (0..).zip(moved).zip(open.iter_mut()) {
            match copy {
                Some(copy) => {
                    let flags = if slot >= FD_ERROR { libc::O_CLOEXEC } else { 0 };
                    if let Err(e) = sys::dup3(copy, slot, flags) {
                        fail_on(error, Step::Descriptors, e);
                    }
                    *is_open = true;
                }
                // An unused slot may hold a descriptor of the caller's.
                None => sys::close(slot),
            }
        }
        // Everything from FD_FIRST_FREE on: the caller's descriptors and the
        // temporary copies.
        or_fail(Step::Descriptors, sys::close_range(FD_FIRST_FREE, 0));
        Slots { open }
    }

    /// The descriptor in `slot`, if one was moved there and is still open.
    fn get(&self, slot: c_int) -> Option<BorrowedFd<'_>> {
        let open = usize::try_from(slot)
            .ok()
            .and_then(|i| self.open.get(i))
            .copied()
            .unwrap_or(false);
        // SAFETY: `remap` put a descriptor in this slot and it has not been
        // closed (`close` clears the flag first); the borrow cannot outlive
        // `self`, and `close` needs `&mut self`, so it cannot run meanwhile.
        open.then(|| unsafe { BorrowedFd::borrow_raw(slot) })
    }

    /// Closes `slot` if it is open.
    fn close(&mut self, slot: c_int) {
        let entry = usize::try_from(slot)
            .ok()
            .and_then(|i| self.open.get_mut(i));
        if let Some(open) = entry.filter(|open| **open) {
            *open = false;
            sys::close(slot);
        }
    }
}

/// `setns(holder pidfd, the run's CLONE_NEW* flags)`: the user namespace
/// is entered first, which gives this process every capability in it,
/// hence the right to enter the others; then the host name.
fn join_namespaces(confine: &Confine, slots: &Slots) {
    if confine.namespaces != 0 {
        let Some(holder) = slots.get(FD_HOLDER) else {
            fail(Step::Setns, libc::EBADF);
        };
        let kinds = ThreadNameSpaceType::from_bits_retain(confine.namespaces as u32);
        or_fail(
            Step::Setns,
            rx(rustix::thread::move_into_thread_name_spaces(holder, kinds)),
        );
    }
    if confine.hostname {
        or_fail(Step::Hostname, rx(rustix::system::sethostname(b"codejail")));
    }
}

/// Makes every mount private (nothing propagates back to the host), then
/// mounts each tmpfs and, under Landlock, grants it the read-write rights:
/// a rule on the covered directory does not reach into a mount over it.
///
/// # References
/// - [`mount(2)`](https://man7.org/linux/man-pages/man2/mount.2.html)
/// - [`landlock_add_rule(2)`](https://man7.org/linux/man-pages/man2/landlock_add_rule.2.html)
fn mount_tmpfs(confine: &Confine) {
    or_fail(
        Step::Mount,
        rx(rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )),
    );
    for mount in &confine.mounts {
        let target = &mount.target;
        // No set-uid files, no devices, and no programs: what the jailed
        // code writes there, it cannot execute (CodeJail's posture).
        or_fail(
            Step::Mount,
            rx(rustix::mount::mount(
                c"tmpfs",
                target.as_c_str(),
                c"tmpfs",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                mount.data.as_c_str(),
            )),
        );
        if confine.mount_access == 0 {
            continue;
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = or_fail(
            Step::Landlock,
            rx(rustix::fs::open(target.as_c_str(), flags, Mode::empty())),
        );
        or_fail(
            Step::Landlock,
            sys::landlock_add_path_rule(FD_LANDLOCK, dir.as_raw_fd(), confine.mount_access),
        );
    }
}

/// Joins the v1 cgroups by writing `0` (this process) to each
/// `cgroup.procs` — before the program exists, so it is born inside.
fn join_v1_cgroups(slots: &mut Slots) {
    for slot in FD_CGROUP_PROCS {
        if let Some(procs) = slots.get(slot) {
            match rx(rustix::io::write(procs, b"0")) {
                Ok(1) => {}
                Ok(_) => fail(Step::JoinCgroup, libc::EIO),
                Err(e) => fail(Step::JoinCgroup, e),
            }
        }
        slots.close(slot);
    }
}

/// Default `SIGCHLD` (the caller may ignore it, which would auto-reap and
/// hide the program's status), blocked into a signalfd; then the program's
/// clone. It lands in the joined pid namespace, if any (`setns` applies to
/// children), as pid 2 there: the holder is init.
fn start_program(prep: &Prepared) -> (libc::pid_t, OwnedFd) {
    let chld = sys::sigset(&[libc::SIGCHLD]);
    or_fail(
        Step::Signals,
        sys::default_disposition(libc::SIGCHLD)
            .and_then(|()| sys::sigprocmask(libc::SIG_BLOCK, &chld)),
    );
    let signals = or_fail(Step::Signalfd, sys::signalfd(&chld));
    // exit_signal SIGCHLD, so that the program's end wakes the signalfd.
    let mut args = sys::empty_clone_args();
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: the child gets a private copy of this single-threaded process;
    // its branch holds a panic barrier and ends in execve or _exit.
    let program = or_fail(Step::Clone, unsafe { sys::clone3(&mut args) });
    if program == 0 {
        let _barrier = sys::PanicBarrier::new();
        exec_program(prep);
    }
    (program, signals)
}

/// Polls the signalfd and the control pipe until the program has ended
/// (its status is then in `status`) or the caller asks for the kill by
/// closing the control pipe (returns true).
fn wait_for_end(
    program: libc::pid_t,
    signals: &OwnedFd,
    slots: &Slots,
    status: &mut Option<c_int>,
) -> bool {
    let Some(control) = slots.get(FD_CONTROL) else {
        return true;
    };
    loop {
        let mut fds = [
            PollFd::new(signals, PollFlags::IN),
            PollFd::from_borrowed_fd(control, PollFlags::IN),
        ];
        if poll(&mut fds, None).is_err() {
            continue; // EINTR
        }
        let [chld, kill] = fds.map(|f| !f.revents().is_empty());
        if chld {
            reap::drain(signals);
            reap::reap(program, status, true);
            if status.is_some() {
                return false;
            }
        }
        if kill {
            return true;
        }
    }
}

/// The run's [`Report`]: the program's status, whether the kill was asked
/// for, the resources of every reaped process, and whether a tmpfs filled.
fn report(confine: &Confine, status: Option<c_int>, kill_requested: bool) -> Report {
    // Only a limited dimension can be full: tmpfs reports an unlimited one
    // as zero blocks (or inodes) of zero.
    let disk_full = confine.mounts.iter().any(|m| {
        rustix::fs::statfs(m.target.as_c_str()).is_ok_and(|st| {
            (m.limits_bytes && st.f_bavail == 0) || (m.limits_inodes && st.f_ffree == 0)
        })
    });
    let usage = sys::children_usage();
    let micros = |tv: libc::timeval| {
        (tv.tv_sec as u64)
            .saturating_mul(1_000_000)
            .saturating_add(tv.tv_usec as u64)
    };
    Report {
        // Unreachable fallback: the program is always reaped before this.
        wait_status: status.unwrap_or(libc::SIGKILL),
        kill_requested,
        cpu_micros: micros(usage.ru_utime).saturating_add(micros(usage.ru_stime)),
        max_rss_kib: usage.ru_maxrss as u64,
        disk_full,
    }
}
