//! The cloned processes of a run: the only module that forks, and the only
//! one allowed `unsafe`.
//!
//! A run is two processes, and, with namespaces, a third that holds them:
//!
//! * the **holder** ([`holder`]: `clone3(CLONE_NEW*)` from the caller,
//!   with a private root then `unshare(CLONE_NEWNET)`, execs `/bin/cat`),
//!   which keeps the run's namespaces;
//! * the **supervisor** ([`supervisor`]: `clone3` from the caller, never
//!   execs): signals of its own (default dispositions, `SIGPIPE`
//!   ignored, nothing blocked), new session, child subreaper,
//!   parent-death signal, the holder's namespaces joined (with a private
//!   root, but the network one). It starts the
//!   program, reaps every orphan of the run, and when the program ends —
//!   or the caller asks by closing the control pipe — kills every process
//!   left in the run and reaps them ([`reap`]), and writes a fixed-size
//!   [`Report`] to the caller;
//! * the **program** ([`program`]: `clone3` from the supervisor, into the
//!   run's cgroup — the supervisor stays out of it): signal
//!   mask and dispositions reset, descriptors above 2 closed on exec,
//!   rlimits, the private root and the holder's network namespace,
//!   identity, working directory, no_new_privs, Landlock, seccomp, then
//!   `execve`.
//!
//! [`held`] blocks signals for a thread of the caller while their handlers
//! are installed (the `codejail` command's stop signals).
//!
//! [`trial`] holds the probe's two system calls (the Landlock ABI, a trial
//! clone). [`sys`] wraps the raw system calls the children make, and
//! [`wire`] is what they say to the caller: `(step, errno)` on the
//! close-on-exec error pipe (end of file without a message means `execve`
//! succeeded) and the supervisor's [`Report`]. The caller's side of each
//! process — handles that wait, kill and reap — is in `crate::spawn`.
//!
//! Every child is a copy of one thread of a possibly multi-threaded caller,
//! so after `clone3` it makes only async-signal-safe calls (see [`sys`]):
//! nothing allocates, locks or logs, and every byte it needs lives in
//! [`Prepared`], built by the caller before the clone. Each child branch
//! starts with a [`sys::PanicBarrier`]. glibc's `fork()` is not used: it
//! runs `atfork` handlers and takes locks that another thread of the caller
//! may hold.
#![allow(unsafe_code)]

mod held;
mod holder;
mod program;
mod reap;
mod root;
mod supervisor;
mod sys;
mod trial;
mod wire;

use std::ffi::{CString, c_char, c_int};
use std::os::fd::RawFd;

pub use held::HeldSignals;
pub(crate) use holder::spawn_holder;
pub(crate) use root::Detail as RootDetail;
pub(crate) use supervisor::spawn_supervisor;
pub(crate) use trial::{
    RootTrial, exec_guard_fits, exec_guard_refused, landlock_abi, try_clone, try_clone_into_cgroup,
    try_exec_guard, try_root,
};
#[cfg(test)]
pub(crate) use wire::encode_error;
pub(crate) use wire::{ERROR_LEN, Report, Step, decode_error};

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
    cwd: CString,
    rlimits: Vec<(c_int, libc::rlimit)>,
    confine: Confine,
}

/// The confinement steps of a run, decided by the caller before the clone.
#[derive(Debug, Default)]
pub(crate) struct Confine {
    /// `CLONE_NEW*` flags of the run's namespaces, the holder's (see
    /// `spawn_holder`), which the supervisor joins (but the network
    /// namespace, with [`Confine::net_late`]).
    pub namespaces: u64,
    /// The supervisor makes a mount namespace of its own (`unshare`),
    /// which the program inherits.
    pub mount_ns: bool,
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
    /// The exec guard (`no_exec`): the supervisor installs it on itself
    /// with a listener before it clones the program, and lets only the
    /// program's own `execve` through.
    pub exec_guard: Option<Vec<libc::sock_filter>>,
    /// tmpfs mounts.
    pub mounts: Vec<Mount>,
    /// Landlock rights granted beneath each mount (0: no Landlock).
    pub mount_access: u64,
    /// `exec <profile>`, written to the AppArmor exec attribute.
    pub apparmor_exec: Option<CString>,
    /// The private root the program builds and enters (the `rootfs` layer).
    pub root: Option<Root>,
}

/// Most bind mounts a private root may hold: the program keeps one
/// descriptor per bind in a fixed array on its stack.
pub(crate) const MAX_BINDS: usize = 64;

/// A private root, as the program builds it (`root.rs`); planned by
/// `crate::root`.
#[derive(Debug, Default)]
pub(crate) struct Root {
    /// The ids the program creates the root's files with (a root caller
    /// in a user namespace: the sandbox ids, the only ones mapped there).
    pub fs_ids: Option<(libc::uid_t, libc::gid_t)>,
    /// Absolute host paths, each cloned as one mount before the new root
    /// covers anything; at most [`MAX_BINDS`].
    pub sources: Vec<CString>,
    /// The new root's tmpfs `mount(2)` data.
    pub tmpfs_data: CString,
    /// What the new root holds, in order (paths relative to it).
    pub ops: Vec<RootOp>,
    /// Mount a procfs of the run's pid namespace at `proc`.
    pub proc: bool,
    /// Make the new root's own tmpfs read-only at the end.
    pub read_only: bool,
}

/// One step of building a private root; paths are relative to it.
#[derive(Debug)]
pub(crate) enum RootOp {
    /// A directory.
    Dir { path: CString, mode: u32 },
    /// An empty file, mode 0: where a file is bound.
    File { path: CString },
    /// A whiteout (a character device 0:0, which needs no privilege to
    /// make): a name without contents. On the root's `nodev` tmpfs opening
    /// it fails with `EACCES` for every caller, root included.
    Whiteout { path: CString },
    /// A symbolic link.
    Link { target: CString, path: CString },
    /// Source `source`'s clone moved here, then remounted with `remount`
    /// (`MS_BIND` and the flags; `MS_REMOUNT` is added).
    Bind {
        source: usize,
        path: CString,
        remount: Option<rustix::mount::MountFlags>,
    },
}

/// One size- and inode-limited tmpfs the supervisor mounts.
#[derive(Debug)]
pub(crate) struct Mount {
    /// Where.
    pub target: CString,
    /// The `mount(2)` data string.
    pub data: CString,
    /// Whether the size is limited (a full one then means `ENOSPC`).
    pub limits_bytes: bool,
    /// Whether the inode count is limited.
    pub limits_inodes: bool,
}

impl Prepared {
    /// `argv` and `envp` become the null-terminated pointer arrays
    /// `execve` takes; `cwd` is where the program starts.
    pub(crate) fn new(
        program: CString,
        argv: Vec<CString>,
        envp: Vec<CString>,
        cwd: CString,
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

impl Prepared {
    /// The private root the program builds, if any.
    pub(crate) fn root(&self) -> Option<&Root> {
        self.confine.root.as_ref()
    }

    /// Whether the holder makes the network namespace after its clone
    /// ([`Confine::net_late`]).
    pub(crate) fn net_late(&self) -> bool {
        self.confine.net_late()
    }
}

impl Confine {
    /// The holder makes the network namespace after its clone, and the
    /// program joins it, last, once the holder says it exists: in a run
    /// with a network namespace and a private root, whose building the
    /// making overlaps (decision 0015; without a root to build, the
    /// program would only wait for it).
    pub(crate) fn net_late(&self) -> bool {
        self.namespaces & libc::CLONE_NEWNET as u64 != 0 && self.root.is_some()
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child's ends of the run's pipes and the other descriptors the
/// supervisor takes, as the caller's numbers: valid in the caller until
/// the clone returns, and in the supervisor (a copy of the caller's table)
/// until it moves them to their slots.
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
    /// Read end of the pipe on which the holder says whether it made the
    /// network namespace, which the program joins.
    pub holder_net: Option<RawFd>,
    /// The Landlock ruleset.
    pub landlock: Option<RawFd>,
    /// v1 `cgroup.procs` files the program writes itself into.
    pub cgroup_procs: [Option<RawFd>; 2],
    /// The v2 cgroup directory the supervisor clones the program into
    /// (`CLONE_INTO_CGROUP`).
    pub cgroup_v2: Option<RawFd>,
}

// The slots the supervisor moves its descriptors to (0..=11, in the order
// of `ChildFds`); the program keeps 0..=2 only.
const FD_ERROR: c_int = 3;
const FD_REPORT: c_int = 4;
const FD_CONTROL: c_int = 5;
const FD_HOLDER: c_int = 6;
const FD_HOLDER_NET: c_int = 7;
const FD_LANDLOCK: c_int = 8;
const FD_CGROUP_PROCS: [c_int; 2] = [9, 10];
const FD_CGROUP_V2: c_int = 11;
const FD_FIRST_FREE: c_int = 12;
