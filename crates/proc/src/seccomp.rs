//! The seccomp-bpf filters: documented tables of what the jailed program
//! may not ask of the kernel, and the classic BPF programs made from them.
//!
//! Three filters come from the tables ([`Filter`]):
//!
//! - [`Filter::Main`], the program's own, installed last before `execve`:
//!   everything in [`DENIED`] fails with `EPERM`, except the syscalls of
//!   [`ANSWERED_EACCES`], which fail with `EACCES`; `clone3` fails with
//!   `ENOSYS` (its flags live in memory a filter cannot read, and `ENOSYS`
//!   makes libc fall back to `clone`, whose flags are checked). Everything
//!   else is allowed: the filter narrows the kernel surface, the other
//!   layers decide what the program may reach.
//! - [`Filter::MainNoUnixSockets`]: the same, and [`UNIX_SOCKETS`] too,
//!   for a run where nothing else keeps the program from the host's
//!   pathname unix sockets (no mount namespace of its own, and no Landlock
//!   unix-socket right): no `socket(AF_UNIX, ..)` and no datagram
//!   `socketpair`, the one kind of connected socket that can still send to
//!   a path. Stream socket pairs keep working.
//! - [`Filter::ExecGuard`], the supervisor's (the `no_exec` layer): `execve`
//!   and `execveat` are handed to the supervisor (user notification), which
//!   lets exactly one through, the program's own, and answers every other
//!   with `EACCES`. The program inherits it from the supervisor, beneath
//!   its own filter: when filters are stacked the kernel takes the most
//!   severe answer (`ERRNO` before `USER_NOTIF` before `ALLOW`), so the
//!   main filter must keep allowing both calls, and does (a test checks).
//!
//! In all three, a syscall of a foreign ABI (i386 through `int 0x80`, x32)
//! kills the process: an i386 `execve` is another number, which the guard
//! would not see.
//!
//! Each program is a binary search over its table's syscall numbers, so a
//! syscall is decided after about seven comparisons. That matters at load
//! time more than at run time: the kernel runs the filter once for every
//! syscall number when it is installed (to cache which are always
//! allowed), and a linear chain made that cost about 0.3 ms per run.
//!
//! Arguments are compared on their low 32 bits, which are all each of
//! these syscalls reads: the kernel takes `ioctl`'s request as an
//! `unsigned int`, so a 64-bit comparison would let `TIOCSTI` through with
//! a high bit set.
//!
//! The programs are built at run time (once per process) and checked by
//! the unit tests, which run each of them in a small BPF interpreter
//! against its table for every syscall number and for random arguments.

use crate::layers::{Layer, LayerSet};

/// When a syscall of the table is refused. Arguments are compared on their
/// low 32 bits (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// When argument `arg` differs from `value`.
    ArgNe(u8, u32),
    /// When argument `arg` equals `value`.
    ArgEq(u8, u32),
    /// When argument `arg` has any of the bits of `mask` set.
    ArgHasBits(u8, u32),
    /// When argument `arg` is neither of two values.
    ArgNeither(u8, u32, u32),
    /// When argument `arg`, masked with `mask`, equals `value`.
    ArgMaskedEq(u8, u32, u32),
}

impl When {
    /// Whether a call with these arguments is refused.
    pub fn refuses(self, args: &[u64; 6]) -> bool {
        let low = |arg: u8| args[usize::from(arg)] as u32;
        match self {
            When::Always => true,
            When::ArgNe(a, v) => low(a) != v,
            When::ArgEq(a, v) => low(a) == v,
            When::ArgHasBits(a, mask) => low(a) & mask != 0,
            When::ArgNeither(a, x, y) => low(a) != x && low(a) != y,
            When::ArgMaskedEq(a, mask, v) => low(a) & mask == v,
        }
    }
}

/// Namespace flags of `clone`: creating namespaces is refused. The kernel
/// reads only the low 32 bits of `clone`'s flags.
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

/// The refused syscalls, with why.
// The ioctl request type is `c_ulong` here and `c_int` on other targets.
#[allow(clippy::unnecessary_cast)]
pub const DENIED: &[(&str, libc::c_long, When)] = &[
    // Reading or changing other processes.
    ("ptrace", libc::SYS_ptrace, When::Always),
    // Acting on another process by pid: a warm pool's worker shares its
    // zygote's uid and namespaces, so without these it could lower the
    // zygote's limits or priority, or pin it to a CPU, and every worker
    // forked afterwards would inherit that. The same calls on the caller
    // itself (pid 0) keep working. (Threads are named by their tid, not 0:
    // a library that pins its own threads gets EPERM and goes on.)
    ("prlimit64", libc::SYS_prlimit64, When::ArgNe(0, 0)),
    // setpriority(which, who): PRIO_PGRP or PRIO_USER with who 0 reach
    // the caller's group or every process of its uid.
    ("setpriority", libc::SYS_setpriority, When::ArgNe(0, 0)),
    ("setpriority", libc::SYS_setpriority, When::ArgNe(1, 0)),
    // ioprio_set(which, who): only IOPRIO_WHO_PROCESS (1) of itself (0).
    ("ioprio_set", libc::SYS_ioprio_set, When::ArgNe(0, 1)),
    ("ioprio_set", libc::SYS_ioprio_set, When::ArgNe(1, 0)),
    (
        "sched_setscheduler",
        libc::SYS_sched_setscheduler,
        When::ArgNe(0, 0),
    ),
    (
        "sched_setparam",
        libc::SYS_sched_setparam,
        When::ArgNe(0, 0),
    ),
    ("sched_setattr", libc::SYS_sched_setattr, When::ArgNe(0, 0)),
    (
        "sched_setaffinity",
        libc::SYS_sched_setaffinity,
        When::ArgNe(0, 0),
    ),
    ("migrate_pages", libc::SYS_migrate_pages, When::ArgNe(0, 0)),
    ("move_pages", libc::SYS_move_pages, When::ArgNe(0, 0)),
    (
        "get_robust_list",
        libc::SYS_get_robust_list,
        When::ArgNe(0, 0),
    ),
    // Comparing kernel objects of two processes; pidfds, which name a
    // process for process_madvise, process_mrelease, setns and
    // pidfd_getfd (signals through them are Landlock's scope).
    ("kcmp", libc::SYS_kcmp, When::Always),
    ("pidfd_open", libc::SYS_pidfd_open, When::Always),
    ("process_madvise", libc::SYS_process_madvise, When::Always),
    ("process_mrelease", libc::SYS_process_mrelease, When::Always),
    ("process_vm_readv", libc::SYS_process_vm_readv, When::Always),
    (
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        When::Always,
    ),
    ("pidfd_getfd", libc::SYS_pidfd_getfd, When::Always),
    // Large kernel attack surface with no use in jailed code.
    ("bpf", libc::SYS_bpf, When::Always),
    ("perf_event_open", libc::SYS_perf_event_open, When::Always),
    ("userfaultfd", libc::SYS_userfaultfd, When::Always),
    ("keyctl", libc::SYS_keyctl, When::Always),
    ("add_key", libc::SYS_add_key, When::Always),
    ("request_key", libc::SYS_request_key, When::Always),
    ("io_uring_setup", libc::SYS_io_uring_setup, When::Always),
    ("io_uring_enter", libc::SYS_io_uring_enter, When::Always),
    (
        "io_uring_register",
        libc::SYS_io_uring_register,
        When::Always,
    ),
    // The filesystem tree and namespaces.
    ("mount", libc::SYS_mount, When::Always),
    ("umount2", libc::SYS_umount2, When::Always),
    ("pivot_root", libc::SYS_pivot_root, When::Always),
    ("chroot", libc::SYS_chroot, When::Always),
    ("fsopen", libc::SYS_fsopen, When::Always),
    ("fsconfig", libc::SYS_fsconfig, When::Always),
    ("fsmount", libc::SYS_fsmount, When::Always),
    ("fspick", libc::SYS_fspick, When::Always),
    ("move_mount", libc::SYS_move_mount, When::Always),
    ("open_tree", libc::SYS_open_tree, When::Always),
    ("mount_setattr", libc::SYS_mount_setattr, When::Always),
    ("open_tree_attr", SYS_OPEN_TREE_ATTR, When::Always),
    // The mounts of the run's mount namespace, by id (Linux 6.8): where
    // the run shares the host's mounts they name the host's layout (home
    // directories, volumes); Python has no use for them. /proc's mountinfo
    // is Landlock's to refuse.
    ("statmount", SYS_STATMOUNT, When::Always),
    ("listmount", SYS_LISTMOUNT, When::Always),
    // Watching files: Landlock does not mediate inotify or fanotify, and
    // the private root's binds are the host's own trees (`/usr`, the
    // devices), so a watch there sees the host's activity on them (which
    // programs and libraries it opens, its writes to /dev/null) while the
    // run lasts. Python needs neither.
    ("inotify_init", libc::SYS_inotify_init, When::Always),
    ("inotify_init1", libc::SYS_inotify_init1, When::Always),
    ("fanotify_init", libc::SYS_fanotify_init, When::Always),
    (
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        When::Always,
    ),
    (
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        When::Always,
    ),
    ("unshare", libc::SYS_unshare, When::Always),
    ("setns", libc::SYS_setns, When::Always),
    (
        "clone",
        libc::SYS_clone,
        When::ArgHasBits(0, CLONE_NS_FLAGS),
    ),
    // The machine itself.
    ("kexec_load", libc::SYS_kexec_load, When::Always),
    ("kexec_file_load", libc::SYS_kexec_file_load, When::Always),
    ("init_module", libc::SYS_init_module, When::Always),
    ("finit_module", libc::SYS_finit_module, When::Always),
    ("delete_module", libc::SYS_delete_module, When::Always),
    ("reboot", libc::SYS_reboot, When::Always),
    ("swapon", libc::SYS_swapon, When::Always),
    ("swapoff", libc::SYS_swapoff, When::Always),
    ("acct", libc::SYS_acct, When::Always),
    ("quotactl", libc::SYS_quotactl, When::Always),
    ("syslog", libc::SYS_syslog, When::Always),
    ("settimeofday", libc::SYS_settimeofday, When::Always),
    ("clock_settime", libc::SYS_clock_settime, When::Always),
    ("clock_adjtime", libc::SYS_clock_adjtime, When::Always),
    ("adjtimex", libc::SYS_adjtimex, When::Always),
    ("vhangup", libc::SYS_vhangup, When::Always),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl, When::Always),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm, When::Always),
    // Execution-domain tricks (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE...):
    // only the query (0xffffffff) and the default (0) are allowed.
    (
        "personality",
        libc::SYS_personality,
        When::ArgNeither(0, 0, 0xffff_ffff),
    ),
    // IPC objects that outlive the processes that made them (runs of a warm
    // pool share an IPC namespace, one after another).
    ("shmget", libc::SYS_shmget, When::Always),
    ("semget", libc::SYS_semget, When::Always),
    ("msgget", libc::SYS_msgget, When::Always),
    ("mq_open", libc::SYS_mq_open, When::Always),
    // Typing into the caller's terminal.
    (
        "ioctl",
        libc::SYS_ioctl,
        When::ArgEq(1, libc::TIOCSTI as u32),
    ),
    (
        "ioctl",
        libc::SYS_ioctl,
        When::ArgEq(1, libc::TIOCLINUX as u32),
    ),
    // Every socket family but AF_UNIX (no raw, netlink, vsock, inet...).
    (
        "socket",
        libc::SYS_socket,
        When::ArgNe(0, libc::AF_UNIX as u32),
    ),
];

/// `open_tree_attr(2)` (Linux 6.15), `statmount(2)` and `listmount(2)`
/// (Linux 6.8): numbers of the generic table, the same on x86_64 and
/// aarch64, which the `libc` crate does not name for these targets yet.
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;
const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;

/// What [`Filter::MainNoUnixSockets`] refuses besides [`DENIED`], both
/// with `EACCES`: creating a unix socket, which could `connect` or
/// `sendto` a pathname socket of the host (Landlock before ABI 9 does not
/// mediate either); and a datagram socket pair, whose sockets may still
/// `sendto` any path (a connected stream or seqpacket pair cannot:
/// `EISCONN`). Python's `socket.socketpair()`, `multiprocessing.Pipe()`
/// and asyncio's self-pipe are stream pairs and keep working.
pub const UNIX_SOCKETS: &[(&str, libc::c_long, When)] = &[
    (
        "socket",
        libc::SYS_socket,
        When::ArgEq(0, libc::AF_UNIX as u32),
    ),
    (
        "socketpair",
        libc::SYS_socketpair,
        When::ArgMaskedEq(1, SOCK_TYPE_MASK, libc::SOCK_DGRAM as u32),
    ),
];

/// The socket type's bits of `socket`'s and `socketpair`'s type argument
/// (the rest are `SOCK_NONBLOCK` and `SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u32 = 0xf;

/// What [`Filter::ExecGuard`] hands to the supervisor: every way to start
/// a program.
pub const EXEC: &[(&str, libc::c_long, When)] = &[
    ("execve", libc::SYS_execve, When::Always),
    ("execveat", libc::SYS_execveat, When::Always),
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const DENY: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
const DENY_ACCES: u32 = SECCOMP_RET_ERRNO | libc::EACCES as u32;
const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The syscalls of [`DENIED`] and [`UNIX_SOCKETS`] refused with `EACCES`
/// instead of `EPERM`: `socket` (of a family other than `AF_UNIX`, and of
/// `AF_UNIX` too where [`UNIX_SOCKETS`] applies) and the datagram
/// `socketpair`, because that is what AppArmor answers, what CodeJail's
/// users see (`PermissionError: [Errno 13]`) and what codejail-service's
/// start-up check requires.
pub const ANSWERED_EACCES: &[libc::c_long] = &[libc::SYS_socket, libc::SYS_socketpair];
/// x32 syscall numbers have this bit set on x86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One of the filters made from the tables (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// The program's filter: [`DENIED`].
    Main,
    /// The program's filter where nothing else keeps it from the host's
    /// pathname unix sockets: [`DENIED`] and [`UNIX_SOCKETS`].
    MainNoUnixSockets,
    /// The supervisor's: [`EXEC`] handed to it (user notification).
    ExecGuard,
}

impl Filter {
    /// Every filter, for the tests.
    pub const ALL: [Filter; 3] = [Filter::Main, Filter::MainNoUnixSockets, Filter::ExecGuard];

    /// The program's filter for a run of `layers` on a kernel of Landlock
    /// ABI `landlock_abi`: without a private root (`rootfs`, which needs a
    /// mount namespace: without it the run sees the host's mounts, so the
    /// host's pathname unix sockets are there to name) and without
    /// Landlock's unix-socket right
    /// ([`refuses_unix_sockets`](crate::refuses_unix_sockets)), it refuses
    /// unix sockets too.
    pub fn for_run(layers: LayerSet, landlock_abi: Option<i32>) -> Filter {
        let landlock_refuses = layers.contains(Layer::Landlock)
            && landlock_abi.is_some_and(crate::fsrules::refuses_unix_sockets);
        if layers.contains(Layer::RootFs) || landlock_refuses {
            Filter::Main
        } else {
            Filter::MainNoUnixSockets
        }
    }

    /// The filter's table: the syscalls it refuses (or hands to the
    /// supervisor), with when.
    pub fn table(self) -> Vec<(&'static str, libc::c_long, When)> {
        match self {
            Filter::Main => DENIED.to_vec(),
            Filter::MainNoUnixSockets => DENIED.iter().chain(UNIX_SOCKETS).copied().collect(),
            Filter::ExecGuard => EXEC.to_vec(),
        }
    }

    /// The filter's answer to syscall `nr` of its table when it refuses.
    fn refusal(self, nr: u32) -> u32 {
        match self {
            Filter::ExecGuard => SECCOMP_RET_USER_NOTIF,
            Filter::Main | Filter::MainNoUnixSockets
                if ANSWERED_EACCES.iter().any(|&n| n as u32 == nr) =>
            {
                DENY_ACCES
            }
            Filter::Main | Filter::MainNoUnixSockets => DENY,
        }
    }

    /// Whether `clone3` gets `ENOSYS` (the program's filters: its flags
    /// are out of a filter's sight).
    fn answers_clone3(self) -> bool {
        self != Filter::ExecGuard
    }
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

// struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The low half of `args[arg]` (both supported targets are little-endian).
fn offset_arg_low(arg: u8) -> u32 {
    16 + 8 * u32::from(arg)
}

/// Where a jump goes: the next instruction, a few further, or one of the
/// returns shared by the whole program (placed at its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Skip(usize),
    /// The shared `RET` of this value.
    Ret(u32),
}

/// An instruction before its jumps are resolved.
#[derive(Clone, Copy, Debug)]
struct Op {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn op(code: u16, k: u32) -> Op {
    Op {
        code,
        k,
        jt: To::Skip(0),
        jf: To::Skip(0),
    }
}

fn branch(code: u16, k: u32, jt: To, jf: To) -> Op {
    Op { code, k, jt, jf }
}

/// One syscall's leaf: refuse it when any of `whens` holds (going to
/// `deny`), else allow. The accumulator holds the syscall number on entry.
fn leaf(nr: u32, whens: &[When], deny: To) -> Vec<Op> {
    let allow = To::Ret(SECCOMP_RET_ALLOW);
    if whens.contains(&When::Always) {
        return vec![branch(JEQ, nr, deny, allow)];
    }
    // Each test ends in a jump to `deny` when it holds, and falls through
    // to the next test (the last one to the allowing return) when it does
    // not.
    let tests: Vec<(u8, Vec<Op>)> = whens
        .iter()
        .map(|&when| match when {
            When::Always => unreachable!("handled above"),
            When::ArgEq(a, v) => (a, vec![branch(JEQ, v, deny, To::Skip(0))]),
            When::ArgNe(a, v) => (a, vec![branch(JEQ, v, To::Skip(0), deny)]),
            When::ArgHasBits(a, mask) => (a, vec![branch(JSET, mask, deny, To::Skip(0))]),
            When::ArgNeither(a, x, y) => (
                a,
                vec![
                    branch(JEQ, x, To::Skip(1), To::Skip(0)),
                    branch(JEQ, y, To::Skip(0), deny),
                ],
            ),
            When::ArgMaskedEq(a, mask, v) => {
                (a, vec![op(AND_K, mask), branch(JEQ, v, deny, To::Skip(0))])
            }
        })
        .collect();
    let body: usize = tests.iter().map(|(_, ops)| 1 + ops.len()).sum();
    let mut code = vec![branch(JEQ, nr, To::Skip(0), allow)];
    for (arg, ops) in tests {
        code.push(op(LD_W_ABS, offset_arg_low(arg)));
        code.extend(ops);
    }
    debug_assert_eq!(code.len(), 1 + body);
    code.push(op(RET, SECCOMP_RET_ALLOW));
    code
}

/// A binary search over `leaves` (sorted by syscall number): `nr >= pivot`
/// jumps over the lower half.
fn search(filter: Filter, leaves: &[(u32, Vec<When>)]) -> Vec<Op> {
    if let [(nr, whens)] = leaves {
        return leaf(*nr, whens, To::Ret(filter.refusal(*nr)));
    }
    let (low, high) = leaves.split_at(leaves.len() / 2);
    let pivot = high[0].0;
    let low = search(filter, low);
    let mut code = vec![branch(JGE, pivot, To::Skip(low.len()), To::Skip(0))];
    code.extend(low);
    code.extend(search(filter, high));
    code
}

/// Compiles one filter (done once per process and cached by the caller).
///
/// # Errors
/// A table too large for classic BPF's 8-bit jumps, or an empty one (a
/// programming error, caught by the tests).
pub(crate) fn compile(filter: Filter) -> Result<Vec<libc::sock_filter>, String> {
    let mut table: std::collections::BTreeMap<u32, Vec<When>> = Default::default();
    for (_, nr, when) in filter.table() {
        let nr = u32::try_from(nr).map_err(|_| format!("syscall number {nr}"))?;
        table.entry(nr).or_default().push(when);
    }
    let leaves: Vec<(u32, Vec<When>)> = table.into_iter().collect();
    if leaves.is_empty() {
        return Err("an empty table".into());
    }
    let kill = To::Ret(SECCOMP_RET_KILL_PROCESS);
    let mut ops = vec![
        op(LD_W_ABS, OFFSET_ARCH),
        branch(JEQ, AUDIT_ARCH, To::Skip(0), kill), // foreign arch
        op(LD_W_ABS, OFFSET_NR),
        branch(JGE, X32_SYSCALL_BIT, kill, To::Skip(0)), // x32
    ];
    if filter.answers_clone3() {
        ops.push(branch(
            JEQ,
            libc::SYS_clone3 as u32,
            To::Ret(ENOSYS),
            To::Skip(0),
        ));
    }
    ops.extend(search(filter, &leaves));
    // The shared returns, after the code, in the order first jumped to.
    let mut returns: Vec<u32> = Vec::new();
    for o in &ops {
        for to in [o.jt, o.jf] {
            if let To::Ret(value) = to {
                if !returns.contains(&value) {
                    returns.push(value);
                }
            }
        }
    }
    let mut prog = Vec::with_capacity(ops.len() + returns.len());
    for (at, o) in ops.iter().enumerate() {
        let hop = |to: To| {
            let offset = match to {
                To::Skip(n) => n,
                To::Ret(value) => {
                    let i = returns.iter().position(|&r| r == value).unwrap_or(0);
                    ops.len() + i - at - 1
                }
            };
            u8::try_from(offset).map_err(|_| format!("a jump of {offset} instructions"))
        };
        prog.push(libc::sock_filter {
            code: o.code,
            jt: hop(o.jt)?,
            jf: hop(o.jf)?,
            k: o.k,
        });
    }
    prog.extend(returns.into_iter().map(|value| libc::sock_filter {
        code: RET,
        jt: 0,
        jf: 0,
        k: value,
    }));
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compiled(filter: Filter) -> Vec<libc::sock_filter> {
        compile(filter).unwrap()
    }

    /// Runs a classic BPF seccomp program on one call, as the kernel would.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        steps(prog, arch, nr, args).0
    }

    /// The verdict, and how many instructions it took.
    fn steps(prog: &[libc::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> (u32, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc, mut count) = (0usize, 0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            count += 1;
            let taken = |cond: bool| {
                if cond {
                    usize::from(i.jt)
                } else {
                    usize::from(i.jf)
                }
            };
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                AND_K => acc &= i.k,
                JEQ => pc += taken(acc == i.k),
                JGE => pc += taken(acc >= i.k),
                JSET => pc += taken(acc & i.k != 0),
                RET => return (i.k, count),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    /// What the tables say of one call.
    fn expected(filter: Filter, nr: u32, args: &[u64; 6]) -> u32 {
        if nr & X32_SYSCALL_BIT != 0 {
            return SECCOMP_RET_KILL_PROCESS;
        }
        if nr == libc::SYS_clone3 as u32 && filter != Filter::ExecGuard {
            return ENOSYS;
        }
        let refused = filter
            .table()
            .iter()
            .any(|&(_, n, when)| n as u32 == nr && when.refuses(args));
        let access = ANSWERED_EACCES.iter().any(|&n| n as u32 == nr);
        match (filter, refused, access) {
            (_, false, _) => SECCOMP_RET_ALLOW,
            (Filter::ExecGuard, true, _) => SECCOMP_RET_USER_NOTIF,
            (_, true, false) => DENY,
            (_, true, true) => DENY_ACCES,
        }
    }

    #[test]
    fn every_syscall_number_gets_what_the_table_says() {
        for filter in Filter::ALL {
            let prog = compiled(filter);
            for nr in 0..1024 {
                for args in [[0; 6], [u64::MAX; 6], [1, 2, 3, 4, 5, 6]] {
                    assert_eq!(
                        run(&prog, AUDIT_ARCH, nr, &args),
                        expected(filter, nr, &args),
                        "{filter:?}: nr {nr}, args {args:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_foreign_abi_is_killed() {
        for filter in Filter::ALL {
            let prog = compiled(filter);
            // i386: getpid (20), execve (11).
            for nr in [20, 11] {
                assert_eq!(
                    run(&prog, 0x4000_0003, nr, &[0; 6]),
                    SECCOMP_RET_KILL_PROCESS
                );
            }
            // x32: getpid (39), execve (520).
            for nr in [39, 520] {
                assert_eq!(
                    run(&prog, AUDIT_ARCH, X32_SYSCALL_BIT | nr, &[0; 6]),
                    SECCOMP_RET_KILL_PROCESS
                );
            }
        }
    }

    #[allow(clippy::unnecessary_cast)]
    #[test]
    fn arguments_are_judged_on_their_low_32_bits() {
        let prog = compiled(Filter::Main);
        let verdict = |nr: libc::c_long, arg: usize, value: u64| {
            let mut args = [0; 6];
            args[arg] = value;
            run(&prog, AUDIT_ARCH, nr as u32, &args)
        };
        let tiocsti = u64::from(libc::TIOCSTI as u32);
        for request in [tiocsti, tiocsti | 1 << 32, tiocsti | 0xffff_ffff << 32] {
            assert_eq!(verdict(libc::SYS_ioctl, 1, request), DENY);
        }
        assert_eq!(verdict(libc::SYS_ioctl, 1, 0x5401), SECCOMP_RET_ALLOW);
        let unix = libc::AF_UNIX as u64;
        assert_eq!(verdict(libc::SYS_socket, 0, unix), SECCOMP_RET_ALLOW);
        assert_eq!(
            verdict(libc::SYS_socket, 0, unix | 1 << 32),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            verdict(libc::SYS_socket, 0, libc::AF_INET as u64),
            DENY_ACCES
        );
        assert_eq!(
            verdict(libc::SYS_clone, 0, libc::SIGCHLD as u64),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            verdict(libc::SYS_clone, 0, libc::CLONE_NEWUSER as u64),
            DENY
        );
        for (persona, expected) in [
            (0, SECCOMP_RET_ALLOW),
            (0xffff_ffff, SECCOMP_RET_ALLOW),
            (0x0040_0000, DENY),
        ] {
            assert_eq!(verdict(libc::SYS_personality, 0, persona), expected);
        }
    }

    /// Where nothing else keeps the program from the host's unix sockets:
    /// no unix socket of its own, no datagram pair, stream pairs as before.
    #[test]
    fn without_unix_sockets_only_stream_pairs_are_left() {
        let main = compiled(Filter::Main);
        let none = compiled(Filter::MainNoUnixSockets);
        let call = |prog: &[libc::sock_filter], nr: libc::c_long, args: [u64; 6]| {
            run(prog, AUDIT_ARCH, nr as u32, &args)
        };
        let unix = libc::AF_UNIX as u64;
        let flags = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
        for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET] {
            let ty = ty as u64;
            let socket = [unix, ty, 0, 0, 0, 0];
            assert_eq!(call(&main, libc::SYS_socket, socket), SECCOMP_RET_ALLOW);
            assert_eq!(call(&none, libc::SYS_socket, socket), DENY_ACCES);
            for ty in [ty, ty | flags, ty | 1 << 40] {
                let pair = [unix, ty, 0, 0, 0, 0];
                assert_eq!(call(&main, libc::SYS_socketpair, pair), SECCOMP_RET_ALLOW);
                let dgram = ty & 0xf == libc::SOCK_DGRAM as u64;
                let want = if dgram { DENY_ACCES } else { SECCOMP_RET_ALLOW };
                assert_eq!(call(&none, libc::SYS_socketpair, pair), want, "{ty:#x}");
            }
        }
        let inet = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        assert_eq!(call(&none, libc::SYS_socket, inet), DENY_ACCES);
    }

    /// The guard hands the two exec calls to the supervisor and nothing
    /// else; the program's own filter must allow both, since the kernel
    /// takes the most severe answer of stacked filters.
    #[test]
    fn the_exec_guard_notifies_exec_only_and_the_main_filters_allow_it() {
        let guard = compiled(Filter::ExecGuard);
        for nr in 0..1024u32 {
            let exec = [libc::SYS_execve, libc::SYS_execveat]
                .iter()
                .any(|&n| n as u32 == nr);
            let want = if exec {
                SECCOMP_RET_USER_NOTIF
            } else {
                SECCOMP_RET_ALLOW
            };
            assert_eq!(run(&guard, AUDIT_ARCH, nr, &[0; 6]), want, "nr {nr}");
        }
        for filter in [Filter::Main, Filter::MainNoUnixSockets] {
            let prog = compiled(filter);
            for nr in [libc::SYS_execve, libc::SYS_execveat] {
                for args in [[0; 6], [u64::MAX; 6]] {
                    assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, &args), SECCOMP_RET_ALLOW);
                }
            }
        }
    }

    /// Seccomp refuses unix sockets only where nothing else keeps the
    /// program from the host's: no mount namespace, and no Landlock with
    /// its unix-socket right (ABI 9).
    #[test]
    fn unix_sockets_are_refused_by_seccomp_only_where_nothing_else_does() {
        let set = |names: &str| names.parse::<LayerSet>().unwrap();
        let all = set("userns,mountns,rootfs,landlock,seccomp");
        let no_mountns = set("userns,landlock,seccomp");
        // A mount namespace without the private root shares the host's
        // mounts, sockets included.
        let no_root = set("userns,mountns,landlock,seccomp");
        assert_eq!(Filter::for_run(no_root, Some(7)), Filter::MainNoUnixSockets);
        assert_eq!(Filter::for_run(all, Some(7)), Filter::Main);
        let without = Filter::MainNoUnixSockets;
        assert_eq!(Filter::for_run(no_mountns, Some(7)), without);
        assert_eq!(Filter::for_run(no_mountns, Some(8)), without);
        assert_eq!(Filter::for_run(no_mountns, Some(9)), Filter::Main);
        assert_eq!(Filter::for_run(no_mountns, Some(12)), Filter::Main);
        // Landlock's right counts only where Landlock applies.
        assert_eq!(Filter::for_run(set("userns,seccomp"), Some(9)), without);
        assert_eq!(Filter::for_run(set("seccomp"), None), without);
    }

    #[test]
    fn mounts_cannot_be_listed() {
        let prog = compiled(Filter::Main);
        for nr in [SYS_STATMOUNT, SYS_LISTMOUNT, SYS_OPEN_TREE_ATTR] {
            assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, &[0; 6]), DENY);
        }
    }

    /// The point of the layout: the kernel runs the filter for every
    /// syscall number when it is installed.
    #[test]
    fn a_call_is_decided_within_a_few_comparisons() {
        for filter in Filter::ALL {
            let prog = compiled(filter);
            let depth = (filter.table().len() as f64).log2().ceil() as usize;
            // Five of the prologue, the search, and the longest leaf (two
            // loads and comparisons, and a return).
            let most = 5 + depth + 6;
            for nr in 0..1024 {
                let (_, n) = steps(&prog, AUDIT_ARCH, nr, &[0; 6]);
                assert!(n <= most, "{filter:?}: syscall {nr} took {n} instructions");
            }
        }
    }

    proptest! {
        #[test]
        fn any_call_gets_what_the_table_says(pick in 0..Filter::ALL.len(), nr in 0u32..600, args in proptest::array::uniform6(any::<u64>())) {
            let filter = Filter::ALL[pick];
            let prog = compiled(filter);
            prop_assert_eq!(run(&prog, AUDIT_ARCH, nr, &args), expected(filter, nr, &args));
        }

        #[test]
        fn table_arguments_are_checked_exactly(pick in 0..Filter::MainNoUnixSockets.table().len(), value in any::<u32>(), high in any::<u32>(), use_table_value in any::<bool>()) {
            let filter = Filter::MainNoUnixSockets;
            let prog = compiled(filter);
            let (_, nr, when) = filter.table()[pick];
            let v = match (use_table_value, when) {
                (true, When::ArgEq(_, v) | When::ArgNe(_, v) | When::ArgHasBits(_, v) | When::ArgNeither(_, v, _) | When::ArgMaskedEq(_, _, v)) => v,
                _ => value,
            };
            let word = u64::from(high) << 32 | u64::from(v);
            let args = [word; 6];
            prop_assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, &args), expected(filter, nr as u32, &args));
        }
    }
}
