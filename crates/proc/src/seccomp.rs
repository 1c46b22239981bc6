//! The seccomp-bpf filter: one documented table of what the jailed program
//! may not ask of the kernel, and the classic BPF program made from it.
//!
//! Everything in [`DENIED`] fails with `EPERM`, except the syscalls of
//! [`ANSWERED_EACCES`], which fail with `EACCES`; `clone3` fails with `ENOSYS`
//! (its flags live in memory a filter cannot read, and `ENOSYS` makes libc
//! fall back to `clone`, whose flags are checked); a syscall of a foreign
//! ABI (i386 through `int 0x80`, x32) kills the process. Everything else is
//! allowed: the filter narrows the kernel surface, the other layers decide
//! what the program may reach.
//!
//! The program is a binary search over the table's syscall numbers, so a
//! syscall is decided after about seven comparisons. That matters at load
//! time more than at run time: the kernel runs the filter once for every
//! syscall number when it is installed (to cache which are always
//! allowed), and a linear chain made that cost about 0.3 ms per run.
//!
//! Arguments are compared on their low 32 bits, which are all each of
//! these syscalls reads: the kernel takes `ioctl`'s request as an
//! `unsigned int`, so a 64-bit comparison would let `TIOCSTI` through with
//! a high bit set.

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

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const DENY: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
const DENY_ACCES: u32 = SECCOMP_RET_ERRNO | libc::EACCES as u32;

/// The syscalls of [`DENIED`] refused with `EACCES` instead of `EPERM`:
/// `socket` of a family other than `AF_UNIX`, because that is what
/// AppArmor answers, what CodeJail's users see (`PermissionError: [Errno
/// 13]`) and what codejail-service's start-up check requires.
pub const ANSWERED_EACCES: &[libc::c_long] = &[libc::SYS_socket];
/// x32 syscall numbers have this bit set on x86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
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

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Where a jump of the search goes: the next instruction, a few further,
/// or one of the three returns shared by the whole search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Skip(usize),
    Allow,
    /// `EPERM`.
    Deny,
    /// `EACCES` ([`ANSWERED_EACCES`]).
    DenyAccess,
}

/// A search instruction before its jumps are resolved.
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
    if whens.contains(&When::Always) {
        return vec![branch(JEQ, nr, deny, To::Allow)];
    }
    // Each test ends in a jump to Deny when it holds, and falls through to
    // the next test (the last one to Allow) when it does not.
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
        })
        .collect();
    let body: usize = tests.iter().map(|(_, ops)| 1 + ops.len()).sum();
    let mut code = vec![branch(JEQ, nr, To::Skip(0), To::Allow)];
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
fn search(leaves: &[(u32, Vec<When>)]) -> Vec<Op> {
    if let [(nr, whens)] = leaves {
        let deny = if ANSWERED_EACCES.iter().any(|&n| n as u32 == *nr) {
            To::DenyAccess
        } else {
            To::Deny
        };
        return leaf(*nr, whens, deny);
    }
    let (low, high) = leaves.split_at(leaves.len() / 2);
    let pivot = high[0].0;
    let low = search(low);
    let mut code = vec![branch(JGE, pivot, To::Skip(low.len()), To::Skip(0))];
    code.extend(low);
    code.extend(search(high));
    code
}

/// Compiles [`DENIED`] (done once per process and cached by the caller).
///
/// # Errors
/// A table too large for classic BPF's 8-bit jumps (a programming error,
/// caught by the tests).
pub(crate) fn compile() -> Result<Vec<libc::sock_filter>, String> {
    let mut table: std::collections::BTreeMap<u32, Vec<When>> = Default::default();
    for &(_, nr, when) in DENIED {
        let nr = u32::try_from(nr).map_err(|_| format!("syscall number {nr}"))?;
        table.entry(nr).or_default().push(when);
    }
    let leaves: Vec<(u32, Vec<When>)> = table.into_iter().collect();
    let search = search(&leaves);
    let (allow, deny, deny_access) = (search.len(), search.len() + 1, search.len() + 2);
    let mut prog = vec![
        stmt(LD_W_ABS, OFFSET_ARCH),
        libc::sock_filter {
            code: JEQ,
            jt: 0,
            jf: 4,
            k: AUDIT_ARCH,
        }, // foreign arch -> kill
        stmt(LD_W_ABS, OFFSET_NR),
        libc::sock_filter {
            code: JGE,
            jt: 2,
            jf: 0,
            k: X32_SYSCALL_BIT,
        }, // x32 -> kill
        libc::sock_filter {
            code: JEQ,
            jt: 0,
            jf: 2,
            k: libc::SYS_clone3 as u32,
        },
        stmt(RET, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(RET, SECCOMP_RET_KILL_PROCESS),
    ];
    for (at, op) in search.iter().enumerate() {
        let hop = |to: To| {
            let offset = match to {
                To::Skip(n) => n,
                To::Allow => allow - at - 1,
                To::Deny => deny - at - 1,
                To::DenyAccess => deny_access - at - 1,
            };
            u8::try_from(offset).map_err(|_| format!("a jump of {offset} instructions"))
        };
        prog.push(libc::sock_filter {
            code: op.code,
            jt: hop(op.jt)?,
            jf: hop(op.jf)?,
            k: op.k,
        });
    }
    prog.push(stmt(RET, SECCOMP_RET_ALLOW));
    prog.push(stmt(RET, DENY));
    prog.push(stmt(RET, DENY_ACCES));
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
                JEQ => pc += taken(acc == i.k),
                JGE => pc += taken(acc >= i.k),
                JSET => pc += taken(acc & i.k != 0),
                RET => return (i.k, count),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    /// What the table says of one call.
    fn expected(nr: u32, args: &[u64; 6]) -> u32 {
        if nr == libc::SYS_clone3 as u32 {
            return SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        }
        if nr & X32_SYSCALL_BIT != 0 {
            return SECCOMP_RET_KILL_PROCESS;
        }
        let refused = DENIED
            .iter()
            .any(|&(_, n, when)| n as u32 == nr && when.refuses(args));
        let access = ANSWERED_EACCES.iter().any(|&n| n as u32 == nr);
        match (refused, access) {
            (false, _) => SECCOMP_RET_ALLOW,
            (true, false) => DENY,
            (true, true) => DENY_ACCES,
        }
    }

    #[test]
    fn every_syscall_number_gets_what_the_table_says() {
        let prog = compile().unwrap();
        for nr in 0..1024 {
            for args in [[0; 6], [u64::MAX; 6], [1, 2, 3, 4, 5, 6]] {
                assert_eq!(
                    run(&prog, AUDIT_ARCH, nr, &args),
                    expected(nr, &args),
                    "nr {nr}, args {args:?}"
                );
            }
        }
    }

    #[test]
    fn a_foreign_abi_is_killed() {
        let prog = compile().unwrap();
        assert_eq!(
            run(&prog, 0x4000_0003, 39, &[0; 6]),
            SECCOMP_RET_KILL_PROCESS
        ); // i386
        assert_eq!(
            run(&prog, AUDIT_ARCH, X32_SYSCALL_BIT | 39, &[0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
    }

    #[allow(clippy::unnecessary_cast)]
    #[test]
    fn arguments_are_judged_on_their_low_32_bits() {
        let prog = compile().unwrap();
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

    /// The point of the layout: the kernel runs the filter for every
    /// syscall number when it is installed.
    #[test]
    fn a_call_is_decided_within_a_few_comparisons() {
        let prog = compile().unwrap();
        let depth = (DENIED.len() as f64).log2().ceil() as usize;
        // Five of the prologue, the search, and the longest leaf (ioctl's
        // two loads and comparisons, and a return).
        let most = 5 + depth + 6;
        for nr in 0..1024 {
            let (_, n) = steps(&prog, AUDIT_ARCH, nr, &[0; 6]);
            assert!(n <= most, "syscall {nr} took {n} instructions");
        }
    }

    proptest! {
        #[test]
        fn any_call_gets_what_the_table_says(nr in 0u32..600, args in proptest::array::uniform6(any::<u64>())) {
            let prog = compile().unwrap();
            prop_assert_eq!(run(&prog, AUDIT_ARCH, nr, &args), expected(nr, &args));
        }

        #[test]
        fn table_arguments_are_checked_exactly(pick in 0..DENIED.len(), value in any::<u32>(), high in any::<u32>(), use_table_value in any::<bool>()) {
            let prog = compile().unwrap();
            let (_, nr, when) = DENIED[pick];
            let v = match (use_table_value, when) {
                (true, When::ArgEq(_, v) | When::ArgNe(_, v) | When::ArgHasBits(_, v) | When::ArgNeither(_, v, _)) => v,
                _ => value,
            };
            let word = u64::from(high) << 32 | u64::from(v);
            let args = [word; 6];
            prop_assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, &args), expected(nr as u32, &args));
        }
    }
}
