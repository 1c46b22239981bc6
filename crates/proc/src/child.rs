//! The only module that forks, and the only one allowed `unsafe`.
//!
//! A run is two processes, and, with namespaces, a third that holds them:
//!
//! * the **holder** (`clone3(CLONE_NEW*)` from the caller, execs
//!   `/bin/cat`): see [`spawn_holder`];
//! * the **supervisor** (`clone3` from the caller, never execs): new session,
//!   child subreaper, parent-death signal, the holder's namespaces joined.
//!   It starts the program, reaps every orphan of the run, and when the
//!   program ends — or the caller asks by closing the control pipe — kills
//!   every process left in the run, reaps them, and writes a fixed-size
//!   [`Report`] to the caller.
//! * the **program** (`clone3` from the supervisor): signal mask and
//!   dispositions reset, descriptors above 2 closed on exec, working
//!   directory, rlimits, identity, then `execve`.
//!
//! Both are copies of one thread of a possibly multi-threaded caller, so
//! after `clone3` they make only async-signal-safe calls: thin libc syscall
//! wrappers and `libc::syscall`. Nothing allocates, locks or logs; every byte
//! they need lives in [`Prepared`], built by the caller before the clone.
//! glibc's `fork()` is not used: it runs `atfork` handlers and takes locks
//! that another thread of the caller may hold.
//!
//! A failed step is reported as `(step, errno)` through the close-on-exec
//! error pipe; end of file on that pipe without a message means `execve`
//! succeeded.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int};
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// One step of the child setup; its index travels through the error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    Setsid,
    Pdeathsig,
    Subreaper,
    Descriptors,
    Setns,
    Hostname,
    Mount,
    JoinCgroup,
    Signals,
    Signalfd,
    Clone,
    Setrlimit,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    AppArmor,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Execve,
}

impl Step {
    const ALL: [Step; 21] = [
        Step::Setsid,
        Step::Pdeathsig,
        Step::Subreaper,
        Step::Descriptors,
        Step::Setns,
        Step::Hostname,
        Step::Mount,
        Step::JoinCgroup,
        Step::Signals,
        Step::Signalfd,
        Step::Clone,
        Step::Setrlimit,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Chdir,
        Step::AppArmor,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Seccomp,
        Step::Execve,
    ];

    /// The name used in errors, e.g. `SpawnError::Setup { step: "chdir" }`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Setsid => "setsid",
            Step::Pdeathsig => "prctl(PR_SET_PDEATHSIG)",
            Step::Subreaper => "prctl(PR_SET_CHILD_SUBREAPER)",
            Step::Descriptors => "descriptors",
            Step::Setns => "setns (join the run's namespaces)",
            Step::Hostname => "sethostname",
            Step::Mount => "mount the tmpfs",
            Step::JoinCgroup => "join the cgroup",
            Step::Signals => "signals",
            Step::Signalfd => "signalfd",
            Step::Clone => "clone3",
            Step::Setrlimit => "setrlimit",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Chdir => "chdir",
            Step::AppArmor => "AppArmor exec attribute",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::Landlock => "landlock_restrict_self",
            Step::Seccomp => "seccomp(SECCOMP_SET_MODE_FILTER)",
            Step::Execve => "execve",
        }
    }

    pub(crate) fn from_index(i: u32) -> Option<Step> {
        Step::ALL.get(i as usize).copied()
    }
}

/// Everything the two child processes need, built before the clone.
///
/// Holds raw pointers into its own `CString`s, so it must not be moved out of
/// the thread that built it (it is neither `Send` nor `Sync`).
pub(crate) struct Prepared {
    program: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    cwd: Option<CString>,
    rlimits: Vec<(c_int, libc::rlimit)>,
    confine: Confine,
}

/// The confinement steps of a run, decided by the caller before the clone.
#[derive(Debug, Default)]
pub(crate) struct Confine {
    /// `CLONE_NEW*` flags of the namespaces the supervisor joins: those of
    /// the holder passed in `ChildFds` (see `spawn_holder`).
    pub namespaces: u64,
    /// The holder is init of the run's pid namespace: killing it ends every
    /// process of the run.
    pub pid_ns: bool,
    /// Set the host name (UTS namespace).
    pub hostname: bool,
    /// The program switches to this uid/gid.
    pub identity: Option<(libc::uid_t, libc::gid_t)>,
    /// The program may call setgroups (not in an unprivileged user namespace).
    pub setgroups: bool,
    pub no_new_privs: bool,
    /// Restrict the program with the Landlock ruleset passed in `ChildFds`.
    pub landlock: bool,
    /// The compiled seccomp filter, installed last.
    pub seccomp: Option<Vec<libc::sock_filter>>,
    /// tmpfs mounts: (target, mount data).
    pub mounts: Vec<(CString, CString)>,
    /// Landlock rights granted beneath each mount (0: no Landlock).
    pub mount_access: u64,
    /// `exec <profile>`, written to the AppArmor exec attribute.
    pub apparmor_exec: Option<CString>,
}

impl Prepared {
    pub(crate) fn new(
        program: CString,
        argv: Vec<CString>,
        envp: Vec<CString>,
        cwd: Option<CString>,
        rlimits: Vec<(c_int, libc::rlimit)>,
        confine: Confine,
    ) -> Prepared {
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        Prepared {
            program,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            cwd,
            rlimits,
            confine,
        }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The caller's ends of nothing: these are the child's ends of the pipes,
/// as raw numbers, valid in the caller until the clone returns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildFds {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Write end of the error pipe (close-on-exec).
    pub error: RawFd,
    /// Write end of the report pipe.
    pub report: RawFd,
    /// Read end of the control pipe: readable or hung up means "kill now".
    pub control: RawFd,
    /// pidfd of the holder whose namespaces the supervisor joins.
    pub holder: Option<RawFd>,
    /// The Landlock ruleset.
    pub landlock: Option<RawFd>,
    /// v1 `cgroup.procs` files the supervisor writes itself into.
    pub cgroup_procs: [Option<RawFd>; 2],
    /// The v2 cgroup directory for `CLONE_INTO_CGROUP`.
    pub cgroup_v2: Option<RawFd>,
}

// Where the supervisor moves its descriptors; the program keeps 0..=2 only.
const FD_ERROR: c_int = 3;
const FD_REPORT: c_int = 4;
const FD_CONTROL: c_int = 5;
const FD_HOLDER: c_int = 6;
const FD_LANDLOCK: c_int = 7;
const FD_CGROUP_PROCS: [c_int; 2] = [8, 9];
const FD_FIRST_FREE: c_int = 10;
/// `libc::CLONE_INTO_CGROUP` overflows its `c_int` type.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What the supervisor tells the caller when the run is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// The program's raw wait status.
    pub wait_status: i32,
    /// The caller asked for the kill before the program ended by itself.
    pub kill_requested: bool,
    /// user + system CPU of every process of the run, in microseconds.
    pub cpu_micros: u64,
    /// Largest peak RSS of any process of the run.
    pub max_rss_kib: u64,
    /// A tmpfs of the run had no block or no inode left at its end.
    pub disk_full: bool,
}

const REPORT_LEN: usize = 40;

impl Report {
    fn encode(&self) -> [u8; REPORT_LEN] {
        let mut out = [0u8; REPORT_LEN];
        out[0..8].copy_from_slice(&i64::from(self.wait_status).to_ne_bytes());
        out[8..16].copy_from_slice(&u64::from(self.kill_requested).to_ne_bytes());
        out[16..24].copy_from_slice(&self.cpu_micros.to_ne_bytes());
        out[24..32].copy_from_slice(&self.max_rss_kib.to_ne_bytes());
        out[32..40].copy_from_slice(&u64::from(self.disk_full).to_ne_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Report> {
        let bytes: &[u8; REPORT_LEN] = bytes.try_into().ok()?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w
        };
        Some(Report {
            wait_status: i32::try_from(i64::from_ne_bytes(word(0))).ok()?,
            kill_requested: u64::from_ne_bytes(word(1)) != 0,
            cpu_micros: u64::from_ne_bytes(word(2)),
            max_rss_kib: u64::from_ne_bytes(word(3)),
            disk_full: u64::from_ne_bytes(word(4)) != 0,
        })
    }

    pub(crate) const LEN: usize = REPORT_LEN;
}

/// Length of one message on the error pipe: step index, errno.
pub(crate) const ERROR_LEN: usize = 8;

pub(crate) fn decode_error(bytes: &[u8; ERROR_LEN]) -> (Option<Step>, i32) {
    let mut step = [0u8; 4];
    let mut errno = [0u8; 4];
    step.copy_from_slice(&bytes[..4]);
    errno.copy_from_slice(&bytes[4..]);
    (
        Step::from_index(u32::from_ne_bytes(step)),
        i32::from_ne_bytes(errno),
    )
}

/// `clone3` with `args`: the child's pid in the parent, 0 in the child, or
/// the errno. Reads errno without allocating, so the supervisor can use it
/// too.
///
/// # Safety
/// Without `CLONE_VM` the child runs on a private copy of the calling
/// thread's memory; the caller's child branch must make only
/// async-signal-safe calls and end in `execve` or `_exit`, never return.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
unsafe fn clone3(args: &mut libc::clone_args) -> Result<libc::pid_t, i32> {
    // SAFETY: `args` is a live clone_args of the size passed; the contract
    // on the child side is the caller's.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_mut(args),
            size_of::<libc::clone_args>(),
        )
    };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret as libc::pid_t)
    }
}

/// Starts the supervisor with `clone3(CLONE_PIDFD)` and returns its pid and
/// pidfd.
///
/// `exit_signal` is 0, so the caller's process gets no `SIGCHLD` for it and a
/// host application that reaps with `waitpid(-1, ..)` cannot steal its
/// status; it is waited for through the pidfd with `__WALL`.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
pub(crate) fn spawn_supervisor(prep: &Prepared, fds: ChildFds) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    // SAFETY: clone_args is a plain C struct for which all-zero is valid.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = 0;
    if let Some(dir) = fds.cgroup_v2 {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir as u64;
    }
    // SAFETY: `pidfd` outlives the call; the child runs `supervise`, which
    // only makes async-signal-safe calls and ends in _exit.
    let ret = unsafe { clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        supervise(prep, fds);
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as i32, pidfd))
}

/// Starts a holder: a process made with `clone3(CLONE_PIDFD | namespaces)`
/// that only keeps those namespaces alive for one run (the supervisor
/// `setns`es into them through the holder's pidfd). The supervisor thus
/// stays outside the run's pid namespace, and the caller writes the id
/// maps without a handshake; measured, this is faster than cloning the
/// supervisor into new namespaces (see ARCHITECTURE.md).
///
/// The holder closes every descriptor but `keepalive`, the read end of a
/// pipe, puts it on its stdin (`/dev/null` on the others) and execs
/// `/bin/cat` (a small image, rather than a copy of the caller's memory
/// kept alive): it ends when the caller closes the write end, or when the
/// caller's process dies. In a pid namespace it is the namespace's init,
/// so killing it ends every process in it. Its `exit_signal` is 0: it is
/// reaped through its pidfd.
///
/// # References
/// - [`clone3(2)`](https://man7.org/linux/man-pages/man2/clone3.2.html)
/// - [`setns(2)`](https://man7.org/linux/man-pages/man2/setns.2.html), on a pidfd
/// - [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html)
pub(crate) fn spawn_holder(namespaces: u64, keepalive: RawFd) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: c_int = -1;
    // SAFETY: clone_args is a plain C struct for which all-zero is valid.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64 | namespaces;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = 0;
    let program = c"/bin/cat";
    let argv = [c"cat".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<c_char>()];
    // SAFETY: `pidfd` outlives the call; the child makes only
    // async-signal-safe calls and ends in execve or _exit.
    let ret = unsafe { clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        // SAFETY: dup3/close_range on descriptor numbers, then execve of a
        // static path with null-terminated arrays on this stack.
        unsafe {
            if keepalive != 0 && libc::dup3(keepalive, 0, 0) < 0 {
                libc::_exit(126);
            }
            libc::close_range(1, u32::MAX, 0);
            // cat checks its stdout before reading: /dev/null on 1 and 2.
            if libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) != 1 || libc::dup2(1, 2) != 2 {
                libc::_exit(126);
            }
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as i32, pidfd))
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot; after clone3
    // the copied thread keeps its TLS, so the slot is valid.
    unsafe { *libc::__errno_location() }
}

/// Turns a -1 return into the errno.
fn check(ret: c_int) -> Result<c_int, i32> {
    if ret == -1 { Err(errno()) } else { Ok(ret) }
}

/// Turns a -1 return of `libc::syscall` into the errno.
fn check_long(ret: libc::c_long) -> Result<libc::c_long, i32> {
    if ret == -1 { Err(errno()) } else { Ok(ret) }
}

/// Reports `(step, errno)` on the error pipe and exits. Async-signal-safe.
fn fail(step: Step, err: i32) -> ! {
    fail_on(FD_ERROR, step, err)
}

/// `fail` on a given descriptor: the caller's number for the error pipe,
/// before the supervisor has moved it to FD_ERROR.
fn fail_on(error_fd: RawFd, step: Step, err: i32) -> ! {
    let mut msg = [0u8; ERROR_LEN];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: writes 8 bytes from a live stack buffer; a short or failed write
    // only loses the message, and the caller then sees no report at all.
    unsafe {
        libc::write(error_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(126)
    }
}

fn or_fail<T>(step: Step, r: Result<T, i32>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(step, e),
    }
}

/// Moves the run's descriptors to 0..=5 and closes every other one, so the
/// supervisor holds no pipe of another run started from another thread.
fn remap_descriptors(fds: ChildFds) -> Result<(), i32> {
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
    let mut moved = [None::<c_int>; FD_FIRST_FREE as usize];
    for (slot, fd) in moved.iter_mut().zip(wanted) {
        if let Some(fd) = fd {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the copy lands
            // at FD_FIRST_FREE or above, clear of every target below.
            *slot = Some(check(unsafe {
                libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_FIRST_FREE)
            })?);
        }
    }
    for (target, fd) in moved.iter().enumerate() {
        let target = target as c_int;
        match fd {
            Some(fd) => {
                let flags = if target >= FD_ERROR {
                    libc::O_CLOEXEC
                } else {
                    0
                };
                // SAFETY: dup3 onto a slot below FD_FIRST_FREE; `fd` is at
                // least FD_FIRST_FREE so the two differ, and no slot is still
                // needed as a source.
                check(unsafe { libc::dup3(*fd, target, flags) })?;
            }
            // SAFETY: an unused slot may hold a descriptor of the caller's;
            // closing it (or nothing) is harmless.
            None => unsafe {
                libc::close(target);
            },
        }
    }
    // SAFETY: closes everything from FD_FIRST_FREE on, including the
    // temporary copies; nothing of this process refers to them afterwards.
    check(unsafe { libc::close_range(FD_FIRST_FREE as u32, u32::MAX, 0) })?;
    Ok(())
}

fn sigset(signals: &[c_int]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset with valid signal
    // numbers cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in signals {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// The supervisor: never returns.
fn supervise(prep: &Prepared, fds: ChildFds) -> ! {
    // Until FD_ERROR exists, a failure is reported through the caller's
    // descriptor number, which is still open here.
    // SAFETY: setsid and prctl take no pointers.
    if let Err(e) = check(unsafe { libc::setsid() }) {
        fail_on(fds.error, Step::Setsid, e);
    }
    // SAFETY: as above.
    if let Err(e) = check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) }) {
        fail_on(fds.error, Step::Pdeathsig, e);
    }
    // SAFETY: as above.
    if let Err(e) = check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }) {
        fail_on(fds.error, Step::Subreaper, e);
    }
    if let Err(e) = remap_descriptors(fds) {
        fail_on(fds.error, Step::Descriptors, e);
    }
    let confine = &prep.confine;
    if confine.namespaces != 0 {
        // The user namespace is entered first, which gives this process
        // every capability in it, hence the right to enter the others.
        // SAFETY: setns takes a descriptor and flags.
        or_fail(
            Step::Setns,
            check(unsafe { libc::setns(FD_HOLDER, confine.namespaces as c_int) }),
        );
    }
    if confine.hostname {
        let name = b"codejail";
        // SAFETY: passes a live buffer and its length.
        or_fail(
            Step::Hostname,
            check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }),
        );
    }
    if !confine.mounts.is_empty() {
        mount_tmpfs(confine);
    }
    for fd in FD_CGROUP_PROCS {
        if fds.cgroup_procs[(fd - FD_CGROUP_PROCS[0]) as usize].is_some() {
            // SAFETY: writes "0" (this process) to an open cgroup.procs.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if n != 1 {
                fail(Step::JoinCgroup, errno());
            }
        }
        // SAFETY: closing a slot this process no longer needs.
        unsafe { libc::close(fd) };
    }

    let chld = sigset(&[libc::SIGCHLD]);
    // SAFETY: a default SIGCHLD disposition (the caller may ignore SIGCHLD,
    // which would auto-reap and hide the program's status) and SIGCHLD
    // blocked so that it queues for the signalfd.
    or_fail(Step::Signals, unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        check(libc::sigaction(libc::SIGCHLD, &dfl, std::ptr::null_mut())).and_then(|_| {
            check(libc::sigprocmask(
                libc::SIG_BLOCK,
                &chld,
                std::ptr::null_mut(),
            ))
        })
    });
    // SAFETY: a new descriptor from a valid, initialised sigset.
    let sfd = or_fail(
        Step::Signalfd,
        check(unsafe { libc::signalfd(-1, &chld, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) }),
    );

    // SAFETY: all-zero clone_args is valid; exit_signal SIGCHLD so the
    // program's end wakes the signalfd. The program lands in the joined
    // pid namespace, if any (setns applies to children).
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: as for the supervisor: the child gets a private copy of this
    // single-threaded process and never returns (exec or _exit).
    let program = or_fail(Step::Clone, unsafe { clone3(&mut args) });
    if program == 0 {
        exec_program(prep);
    }

    // The program holds the run's stdio and the error pipe now; the
    // supervisor lets go so that end-of-file means what the caller thinks.
    for fd in [0, 1, 2, FD_ERROR] {
        // SAFETY: closing descriptors this process owns and no longer uses.
        unsafe { libc::close(fd) };
    }

    let mut status: Option<c_int> = None;
    let mut kill_requested = false;
    loop {
        let mut pfds = [
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: FD_CONTROL,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on a live two-element array.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if pfds[0].revents != 0 {
            drain(sfd);
            reap(program, &mut status, libc::WNOHANG);
            if status.is_some() {
                break;
            }
        }
        if pfds[1].revents != 0 {
            kill_requested = true;
            break;
        }
    }
    kill_all_and_reap(program, &mut status, prep.confine.pid_ns);
    let disk_full = prep
        .confine
        .mounts
        .iter()
        .any(|(target, _)| is_full(target));

    // SAFETY: getrusage fills a live, correctly sized struct.
    let usage = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let micros = |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64;
    let report = Report {
        // Unreachable fallback: the program is always reaped above.
        wait_status: status.unwrap_or(libc::SIGKILL),
        kill_requested,
        cpu_micros: micros(usage.ru_utime) + micros(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
        disk_full,
    };
    let bytes = report.encode();
    // SAFETY: one write of a live stack buffer, shorter than PIPE_BUF, so
    // it is atomic; then the process ends.
    unsafe {
        libc::write(FD_REPORT, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
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
    // SAFETY: static NUL-terminated strings and a null data pointer.
    or_fail(
        Step::Mount,
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        }),
    );
    for (target, data) in &confine.mounts {
        // SAFETY: NUL-terminated strings owned by `confine`.
        or_fail(
            Step::Mount,
            check(unsafe {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    data.as_ptr().cast(),
                )
            }),
        );
        if confine.mount_access == 0 {
            continue;
        }
        // SAFETY: opens a NUL-terminated path owned by `confine`.
        let fd = or_fail(
            Step::Landlock,
            check(unsafe {
                libc::open(
                    target.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            }),
        );
        #[repr(C, packed)]
        struct PathBeneath {
            allowed_access: u64,
            parent_fd: i32,
        }
        let rule = PathBeneath {
            allowed_access: confine.mount_access,
            parent_fd: fd,
        };
        const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;
        // SAFETY: the rule struct is live and laid out as the kernel's
        // packed landlock_path_beneath_attr; the ruleset sits at FD_LANDLOCK.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                FD_LANDLOCK,
                LANDLOCK_RULE_PATH_BENEATH,
                std::ptr::addr_of!(rule),
                0,
            )
        };
        if r != 0 {
            fail(Step::Landlock, errno());
        }
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(fd) };
    }
}

/// Asks AppArmor to switch to a profile at the next exec, by writing
/// `exec <profile>` to the task's exec attribute — after checking, through
/// the same descriptor, that it is on procfs, so that nothing mounted over
/// `/proc` can take the write.
///
/// # References
/// - [`proc_pid_attr(5)`](https://man7.org/linux/man-pages/man5/proc_pid_attr.5.html)
/// - `aa_change_onexec(3)`, which libapparmor implements the same way
fn set_apparmor_exec(exec: &CString) {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    // SAFETY: static NUL-terminated paths.
    let mut fd = unsafe {
        libc::open(
            c"/proc/thread-self/attr/apparmor/exec".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 && errno() == libc::ENOENT {
        // SAFETY: as above.
        fd = unsafe {
            libc::open(
                c"/proc/self/attr/exec".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
    }
    if fd < 0 {
        fail(Step::AppArmor, errno());
    }
    // SAFETY: fstatfs fills a live, correctly sized struct.
    let on_proc = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::fstatfs(fd, &mut st) == 0 && st.f_type as i64 == PROC_SUPER_MAGIC
    };
    if !on_proc {
        fail(Step::AppArmor, libc::EXDEV);
    }
    let bytes = exec.as_bytes();
    // SAFETY: writes a live buffer of its own length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n != bytes.len() as isize {
        fail(Step::AppArmor, if n < 0 { errno() } else { libc::EIO });
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
}

/// Whether the filesystem at `target` has no block or no inode left.
fn is_full(target: &CString) -> bool {
    // SAFETY: statfs fills a live, correctly sized struct.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(target.as_ptr(), &mut st) == 0 && (st.f_bavail == 0 || st.f_ffree == 0)
    }
}

fn drain(fd: c_int) {
    let mut buf = [0u8; 512];
    // SAFETY: reads into a live stack buffer from a non-blocking descriptor.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Reaps children; records the program's status when it is among them.
/// Returns false once there are no children left at all.
fn reap(program: libc::pid_t, status: &mut Option<c_int>, flags: c_int) -> bool {
    loop {
        let mut st: c_int = 0;
        // SAFETY: waitpid writes one int through a live pointer.
        let pid = unsafe { libc::waitpid(-1, &mut st, flags | libc::__WALL) };
        if pid > 0 {
            if pid == program {
                *status = Some(st);
            }
            if flags & libc::WNOHANG == 0 {
                return true;
            }
            continue;
        }
        if pid == 0 {
            return true; // children remain, none has changed state
        }
        if errno() == libc::EINTR {
            continue;
        }
        return false; // ECHILD
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
fn kill_all_and_reap(program: libc::pid_t, status: &mut Option<c_int>, pid_ns: bool) {
    if status.is_none() {
        // SAFETY: the program is our unreaped child (a zombie at worst), so
        // its pid cannot have been reused.
        unsafe { libc::kill(program, libc::SIGKILL) };
    }
    if pid_ns {
        // SAFETY: pidfd_send_signal with a pidfd, a signal and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                FD_HOLDER,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        while reap(program, status, 0) {}
        let mut gone = libc::pollfd {
            fd: FD_HOLDER,
            events: libc::POLLIN,
            revents: 0,
        };
        // A pidfd polls readable once its process has exited.
        // SAFETY: poll on one live pollfd.
        while unsafe { libc::poll(&mut gone, 1, -1) } < 0 && errno() == libc::EINTR {}
        return;
    }
    loop {
        if !reap(program, status, libc::WNOHANG) {
            return;
        }
        kill_children();
        if !reap(program, status, 0) {
            return;
        }
    }
}

/// Sends SIGKILL to every process whose parent is this one, found by reading
/// `/proc/<pid>/stat` (the kernel here has no `/proc/self/task/*/children`).
fn kill_children() {
    // SAFETY: getpid takes no arguments.
    let me = unsafe { libc::getpid() };
    // SAFETY: a static NUL-terminated path.
    let dir = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: getdents64 fills at most `buf.len()` bytes of a live buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            if let Some(pid) = parse_pid(name) {
                if parent_of(dir, name) == Some(me) {
                    // SAFETY: the target is our child, unreaped, so its pid
                    // still names it.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            off += reclen.max(1);
        }
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(dir) };
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
fn parent_of(proc_dir: c_int, name: &[u8]) -> Option<libc::pid_t> {
    let mut path = [0u8; 32];
    let len = name.iter().position(|&b| b == 0)?;
    if len + 6 > path.len() {
        return None;
    }
    path[..len].copy_from_slice(&name[..len]);
    path[len..len + 5].copy_from_slice(b"/stat");
    // SAFETY: `path` is NUL-terminated (zeroed beyond the copied bytes).
    let fd = unsafe {
        libc::openat(
            proc_dir,
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut stat = [0u8; 512];
    // SAFETY: reads into a live stack buffer, then closes our descriptor.
    let n = unsafe {
        let n = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return None;
    }
    let stat = &stat[..n as usize];
    let close = stat.iter().rposition(|&b| b == b')')?;
    // ") S PPID ..."
    let rest = stat.get(close + 4..)?;
    let end = rest.iter().position(|&b| b == b' ')?;
    parse_pid(&rest[..end])
}

/// The program: sets itself up and execs, or reports the failed step.
fn exec_program(prep: &Prepared) -> ! {
    // SAFETY: restores the default disposition of every catchable signal
    // (ignored ones, like the Rust runtime's SIGPIPE, survive exec) and an
    // empty mask; sigaction/sigprocmask with live, initialised arguments.
    or_fail(Step::Signals, unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let empty = sigset(&[]);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut(),
        ))
    });
    // SAFETY: marks every descriptor from FD_ERROR on close-on-exec, so the
    // program starts with 0..=2 only while the error pipe works until exec.
    or_fail(
        Step::Descriptors,
        check(unsafe {
            libc::close_range(
                FD_ERROR as u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC as c_int,
            )
        }),
    );
    for (resource, limit) in &prep.rlimits {
        // SAFETY: setrlimit reads a live rlimit struct.
        or_fail(
            Step::Setrlimit,
            check(unsafe { libc::setrlimit(*resource as libc::__rlimit_resource_t, limit) }),
        );
    }
    let confine = &prep.confine;
    if let Some((uid, gid)) = confine.identity {
        // Raw syscalls: glibc's setuid() and friends broadcast to every
        // thread it believes exists, and wait for threads this copy does
        // not have.
        if confine.setgroups {
            // SAFETY: setgroups with an empty list dereferences nothing.
            or_fail(
                Step::Setgroups,
                check_long(unsafe {
                    libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
                }),
            );
        }
        // SAFETY: integer arguments only.
        or_fail(
            Step::Setgid,
            check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }),
        );
        // SAFETY: integer arguments only.
        or_fail(
            Step::Setuid,
            check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }),
        );
    }
    // The death signal is cleared by a change of credentials, so it is set
    // after them: the program dies with its supervisor.
    // SAFETY: prctl with integer arguments.
    or_fail(
        Step::Pdeathsig,
        check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) }),
    );
    if let Some(cwd) = &prep.cwd {
        // SAFETY: a NUL-terminated path owned by `prep`.
        or_fail(Step::Chdir, check(unsafe { libc::chdir(cwd.as_ptr()) }));
    }
    if let Some(exec) = &confine.apparmor_exec {
        set_apparmor_exec(exec);
    }
    if confine.no_new_privs {
        // SAFETY: prctl with integer arguments.
        or_fail(
            Step::NoNewPrivs,
            check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }),
        );
    }
    if confine.landlock {
        // SAFETY: landlock_restrict_self(ruleset_fd, flags) takes integers.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, FD_LANDLOCK, 0) };
        if r != 0 {
            fail(Step::Landlock, errno());
        }
    }
    if let Some(filter) = &confine.seccomp {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: seccomp(SET_MODE_FILTER) reads `prog` and the instructions
        // it points to, both alive until exec; the kernel copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                std::ptr::addr_of!(prog),
            )
        };
        if r != 0 {
            fail(Step::Seccomp, errno());
        }
    }
    // SAFETY: program, argv and envp are NUL-terminated strings and
    // null-terminated pointer arrays owned by `prep`, alive until exec.
    unsafe {
        libc::execve(
            prep.program.as_ptr(),
            prep.argv_ptrs.as_ptr(),
            prep.envp_ptrs.as_ptr(),
        );
    }
    fail(Step::Execve, errno())
}

/// The kernel's Landlock ABI version.
///
/// # References
/// - [`landlock_create_ruleset(2)`](https://man7.org/linux/man-pages/man2/landlock_create_ruleset.2.html)
///   with `LANDLOCK_CREATE_RULESET_VERSION`
pub(crate) fn landlock_abi() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a null attribute pointer with size 0 is the documented way
    // to ask for the version; nothing is written.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v as i32)
    }
}

/// Clones a child with these `CLONE_NEW*` flags that exits at once, and
/// waits for it: whether the namespaces can really be created here.
pub(crate) fn try_clone(namespaces: u64) -> io::Result<()> {
    let mut pidfd: c_int = -1;
    // SAFETY: all-zero clone_args is valid.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PIDFD as u64 | namespaces;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    // SAFETY: the child only calls _exit.
    let ret = unsafe { clone3(&mut args) }.map_err(io::Error::from_raw_os_error)?;
    if ret == 0 {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    use rustix::process::{WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
    loop {
        match rustix::process::waitid(WaitId::PidFd(std::os::fd::AsFd::as_fd(&pidfd)), options) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = Report {
            wait_status: 0x0900,
            kill_requested: true,
            cpu_micros: 12,
            max_rss_kib: 34,
            disk_full: true,
        };
        assert_eq!(Report::decode(&r.encode()), Some(r));
        assert_eq!(Report::decode(&[0u8; 3]), None);
    }

    #[test]
    fn steps_round_trip_by_index() {
        for step in Step::ALL {
            assert_eq!(Step::from_index(step as u32), Some(step));
        }
        assert_eq!(Step::from_index(Step::ALL.len() as u32), None);
    }

    #[test]
    fn pids_parse_from_nul_terminated_names() {
        assert_eq!(parse_pid(b"1234\0\0"), Some(1234));
        assert_eq!(parse_pid(b"self\0"), None);
        assert_eq!(parse_pid(b"\0"), None);
        assert_eq!(parse_pid(b"12a\0"), None);
    }
}
