//! The supervisor, child side: cloned by the caller, it never execs. It
//! detaches (session, death signal, subreaper), moves its descriptors to
//! fixed slots, joins the run's namespaces, mounts, installs the exec
//! guard (`no_exec`), clones the program into the run's cgroups (the
//! supervisor itself stays out of them, so a limit the program hits cannot
//! kill it), waits for its end or the caller's kill request while
//! answering the guard's notifications, kills and reaps every process of
//! the run (`super::reap`), and writes the [`Report`]. The caller's handle
//! on it is `crate::spawn::supervisor`.

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
use super::sys::{self, NotifAnswer, NotifBuf, fail, fail_on, or_fail, rx};
use super::wire::{Report, Step};
use super::{
    ChildFds, Confine, FD_CGROUP_PROCS, FD_CGROUP_V2, FD_CONTROL, FD_ERROR, FD_FIRST_FREE,
    FD_HOLDER, FD_HOLDER_NET, FD_LANDLOCK, FD_REPORT, Prepared,
};

/// Starts the supervisor with `clone3(CLONE_PIDFD)` and returns its pid
/// and pidfd.
///
/// `exit_signal` is 0, so the caller's process gets no `SIGCHLD` for it and a
/// host application that reaps with `waitpid(-1, ..)` cannot steal its
/// status; it is waited for through the pidfd with `__WALL`.
///
/// The clone holds every signal ([`sys::clone3_signals_held`]) until the
/// supervisor has its own ([`own_signals`]).
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(crate) fn spawn_supervisor(prep: &Prepared, fds: ChildFds) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    let mut args = sys::pidfd_clone_args(&mut pidfd);
    // SAFETY: `pidfd` outlives the call; the child branch holds a panic
    // barrier and runs `supervise`, which makes only async-signal-safe
    // calls and ends in _exit.
    let ret = unsafe { sys::clone3_signals_held(&mut args) };
    let ret = ret.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        let _barrier = sys::PanicBarrier::new();
        supervise(prep, fds);
    }
    Ok((ret, sys::take_pidfd(pidfd)))
}

/// The supervisor: never returns.
fn supervise(prep: &Prepared, fds: ChildFds) -> ! {
    // Out of the caller's process group before its signals are
    // unblocked: `own_signals` discards what the group was sent meanwhile.
    detach(fds.error);
    own_signals(fds.error);
    let mut slots = Slots::remap(fds);
    let confine = &prep.confine;
    join_namespaces(confine, &slots);
    if confine.mount_ns {
        // SAFETY: rustix marks unshare unsafe for CLONE_FILES and
        // CLONE_FS, which change what other threads of the process share
        // with it; NEWNS alone (it implies CLONE_FS, and this process has
        // a single thread) changes nothing another thread relies on.
        let unshared =
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) };
        or_fail(Step::MountNs, rx(unshared));
    }
    if !confine.mounts.is_empty() || confine.root.is_some() {
        mount_tmpfs(confine);
    }
    // Without a pid namespace, the end of the run walks /proc for this
    // process's children: opened now, since the program's pivot_root into
    // a private root moves this process's root too.
    let proc_dir = if confine.pid_ns {
        None
    } else {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Some(or_fail(
            Step::Descriptors,
            rx(rustix::fs::open(c"/proc", flags, Mode::empty())),
        ))
    };
    let listener = confine.exec_guard.as_deref().map(install_exec_guard);
    let (program, signals) = start_program(prep, &slots);
    // The program holds the run's stdio, the error pipe and the cgroups
    // now; the supervisor lets go so that end-of-file means what the
    // caller thinks.
    let [procs_a, procs_b] = FD_CGROUP_PROCS;
    for fd in [
        0,
        1,
        2,
        FD_ERROR,
        FD_HOLDER_NET,
        procs_a,
        procs_b,
        FD_CGROUP_V2,
    ] {
        slots.close(fd);
    }
    let mut guard = listener.map(|listener| ExecGuard {
        listener: Some(listener),
        program,
        continued: false,
        buf: NotifBuf::zeroed(),
    });
    let mut status = None;
    wait_for_end(program, &signals, guard.as_mut(), &slots, &mut status);
    reap::kill_all_and_reap(
        program,
        &mut status,
        confine.pid_ns,
        slots.get(FD_HOLDER),
        proc_dir.as_ref(),
    );
    let report = report(confine, status);
    if let Some(fd) = slots.get(FD_REPORT) {
        // One write shorter than PIPE_BUF: atomic. A failure only loses the
        // report, which the caller treats as a lost supervisor.
        let _ = rustix::io::write(fd, &report.encode());
    }
    sys::exit(0)
}

/// The supervisor's own signal dispositions and mask, not the caller's
/// (it is a copy of the caller that never execs): every signal to its
/// default action, so that a signal sent to it from outside (`SIGTERM`)
/// ends it and the caller reports the run lost, as for `SIGKILL`, rather
/// than running the caller's handler here or waiting blocked; `SIGPIPE`
/// ignored, so that a write to a pipe the caller closed fails with
/// `EPIPE`; nothing blocked (the caller blocked everything around the
/// clone). A signal that came before, while it was still in the caller's
/// process group (`detach` makes it a session of its own), is discarded.
/// `start_program` blocks `SIGCHLD` for its `signalfd`.
fn own_signals(error_fd: c_int) {
    let own = sys::reset_signals().and_then(|()| sys::ignore(libc::SIGPIPE));
    if let Err(e) = own {
        fail_on(error_fd, Step::Signals, e);
    }
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
/// run's descriptors to their slots (0..=11, in the order of `ChildFds`)
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
            fds.holder_net,
            fds.landlock,
            fds.cgroup_procs[0],
            fds.cgroup_procs[1],
            fds.cgroup_v2,
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

/// `setns(holder pidfd, the run's CLONE_NEW* flags)`, but the network
/// namespace with [`Confine::net_late`] (the program joins that one, once
/// the holder has made it): the user namespace is entered first, which
/// gives this process every capability in it, hence the right to enter
/// the others; then the host name.
fn join_namespaces(confine: &Confine, slots: &Slots) {
    let namespaces = if confine.net_late() {
        confine.namespaces & !(libc::CLONE_NEWNET as u64)
    } else {
        confine.namespaces
    };
    if namespaces != 0 {
        let Some(holder) = slots.get(FD_HOLDER) else {
            fail(Step::Setns, libc::EBADF);
        };
        let kinds = ThreadNameSpaceType::from_bits_retain(namespaces as u32);
        or_fail(
            Step::Setns,
            rx(rustix::thread::move_into_thread_name_spaces(holder, kinds)),
        );
    }
    if confine.hostname {
        or_fail(Step::Hostname, rx(rustix::system::sethostname(b"codejail")));
    }
}

/// Makes every mount private (nothing propagates back to the host, and
/// the program's `pivot_root` needs it), then mounts each tmpfs and,
/// under Landlock, grants it the read-write rights:
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

/// In the program, before anything else: joins the v1 cgroups by writing
/// `0` (this process) to each `cgroup.procs`, so that everything it starts
/// is born inside. The slots stay open here (close-on-exec); the
/// supervisor closes its own copies.
fn join_v1_cgroups(slots: &Slots) {
    for slot in FD_CGROUP_PROCS {
        if let Some(procs) = slots.get(slot) {
            match rx(rustix::io::write(procs, b"0")) {
                Ok(1) => {}
                Ok(_) => fail(Step::JoinCgroup, libc::EIO),
                Err(e) => fail(Step::JoinCgroup, e),
            }
        }
    }
}

/// `SIGCHLD`, at its default since [`own_signals`] (the caller may ignore
/// it, which would auto-reap and hide the program's status), blocked into
/// a signalfd; then the program's
/// clone: into the run's v2 cgroup when there is one (`CLONE_INTO_CGROUP`),
/// then into its v1 cgroups by the program itself. It lands in the joined
/// pid namespace, if any (`setns` applies to children), as pid 2 there:
/// the holder is init.
fn start_program(prep: &Prepared, slots: &Slots) -> (libc::pid_t, OwnedFd) {
    let chld = sys::sigset(&[libc::SIGCHLD]);
    // SIGCHLD's disposition is the default (`own_signals`).
    or_fail(Step::Signals, sys::sigprocmask(libc::SIG_BLOCK, &chld));
    let signals = or_fail(Step::Signalfd, sys::signalfd(&chld));
    // exit_signal SIGCHLD, so that the program's end wakes the signalfd.
    let mut args = sys::empty_clone_args();
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(dir) = slots.get(FD_CGROUP_V2) {
        args.flags |= sys::CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: the child gets a private copy of this single-threaded process;
    // its branch holds a panic barrier and ends in execve or _exit.
    let program = or_fail(Step::Clone, unsafe { sys::clone3(&mut args) });
    if program == 0 {
        let _barrier = sys::PanicBarrier::new();
        join_v1_cgroups(slots);
        exec_program(prep);
    }
    (program, signals)
}

/// The exec guard (`no_exec`): no_new_privs (which a process needs to
/// install a filter without `CAP_SYS_ADMIN` in its user namespace, and
/// harmless in one that never execs; the program sets it anyway), then
/// [`crate::seccomp::Filter::ExecGuard`] on this process with a listener,
/// before the program is cloned, so that the program and everything it
/// starts inherit it. The supervisor never calls `execve`, so the filter
/// never waits on itself.
///
/// # References
/// - [`seccomp_unotify(2)`](https://man7.org/linux/man-pages/man2/seccomp_unotify.2.html)
fn install_exec_guard(filter: &[libc::sock_filter]) -> OwnedFd {
    or_fail(Step::NoNewPrivs, rx(rustix::thread::set_no_new_privs(true)));
    or_fail(Step::ExecGuard, sys::seccomp_set_filter_listener(filter))
}

/// The supervisor's side of the exec guard: the listener, the one
/// `execve` it lets through (the program's, before it has exec'd), and a
/// buffer on this stack for the notifications.
struct ExecGuard {
    /// `None` once given up (see [`ExecGuard::answer`]): every notifying
    /// call then fails with `ENOSYS`.
    listener: Option<OwnedFd>,
    program: libc::pid_t,
    /// The program's own `execve` was let through.
    continued: bool,
    buf: NotifBuf,
}

impl ExecGuard {
    /// Answers one notification: `CONTINUE` for the program's first
    /// `execve` (the only one it makes before it runs: it is this
    /// process's unreaped child, single-threaded, with no child of its
    /// own, running code prepared here), `EACCES` for every other — any
    /// later call of the program, any thread or process it starts. An
    /// error answer is sound whatever the caller's memory says (the kernel
    /// never runs the call), and `CONTINUE` is given once, on the pid
    /// alone, before any code of the program's runs: nothing of what
    /// seccomp_unotify(2) warns about (a decision on memory another thread
    /// may change) applies, and no target memory is read, which is what
    /// `SECCOMP_IOCTL_NOTIF_ID_VALID` guards.
    ///
    /// A call interrupted before its answer (`ENOENT` here) notifies
    /// again when it restarts, so the program's pass is spent only once
    /// the kernel took it. A listener that cannot be read is closed: the
    /// kernel then fails every notifying call with `ENOSYS`, still a
    /// refusal, and the supervisor never spins on it.
    fn answer(&mut self) {
        let Some(fd) = self.listener.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let (id, pid) = match sys::notif_recv(fd, &mut self.buf) {
            Ok(notification) => notification,
            Err(libc::ENOENT | libc::EINTR) => return,
            Err(_) => {
                self.listener = None;
                return;
            }
        };
        let first = !self.continued && i64::from(pid) == i64::from(self.program);
        let answer = if first {
            NotifAnswer::Continue
        } else {
            NotifAnswer::Fail(libc::EACCES)
        };
        if sys::notif_send(fd, id, answer, &mut self.buf).is_ok() && first {
            self.continued = true;
        }
    }
}

/// Polls the signalfd, the control pipe and the exec guard's listener
/// until the program has ended (its status is then in `status`) or the
/// caller asks for the kill by closing the control pipe, answering each
/// notification of the guard as it comes.
fn wait_for_end(
    program: libc::pid_t,
    signals: &OwnedFd,
    mut guard: Option<&mut ExecGuard>,
    slots: &Slots,
    status: &mut Option<c_int>,
) {
    let Some(control) = slots.get(FD_CONTROL) else {
        return;
    };
    loop {
        let listener = guard.as_ref().and_then(|g| g.listener.as_ref());
        // Without a listener the third entry asks for nothing.
        let (exec_fd, exec_events) = match listener {
            Some(fd) => (fd, PollFlags::IN),
            None => (signals, PollFlags::empty()),
        };
        let mut fds = [
            PollFd::new(signals, PollFlags::IN),
            PollFd::from_borrowed_fd(control, PollFlags::IN),
            PollFd::new(exec_fd, exec_events),
        ];
        if poll(&mut fds, None).is_err() {
            continue; // EINTR
        }
        let [chld, kill, exec] = fds.map(|f| f.revents());
        if let Some(g) = guard.as_deref_mut().filter(|_| !exec.is_empty()) {
            if exec.contains(PollFlags::IN) {
                g.answer();
            } else {
                // Hung up or failed, with nothing to read: given up.
                g.listener = None;
            }
        }
        if !chld.is_empty() {
            reap::drain(signals);
            reap::reap(program, status, true);
            if status.is_some() {
                return;
            }
        }
        if !kill.is_empty() {
            return;
        }
    }
}

/// The run's [`Report`]: the program's status, the resources of every
/// reaped process, and whether a tmpfs filled.
fn report(confine: &Confine, status: Option<c_int>) -> Report {
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
        cpu_micros: micros(usage.ru_utime).saturating_add(micros(usage.ru_stime)),
        max_rss_kib: usage.ru_maxrss as u64,
        disk_full,
    }
}
