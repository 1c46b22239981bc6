//! The seccomp-bpf filter: one documented table of what the jailed program
//! may not ask of the kernel.
//!
//! Everything in [`DENIED`] fails with `EPERM`; `clone3` fails with `ENOSYS`
//! (its flags live in memory a filter cannot read, and `ENOSYS` makes libc
//! fall back to `clone`, whose flags are checked); a syscall of a foreign
//! ABI (i386 through `int 0x80`, x32) kills the process. Everything else is
//! allowed: the filter narrows the kernel surface, the other layers decide
//! what the program may reach.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// When a syscall of the table is refused.
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// Always.
    Always,
    /// When argument `arg` differs from `value`.
    ArgNe(u8, u64),
    /// When argument `arg` equals `value`.
    ArgEq(u8, u64),
    /// When argument `arg` has any of the bits of `mask` set.
    ArgHasBits(u8, u64),
    /// When argument `arg` is neither of two values.
    ArgNeither(u8, u64, u64),
}

/// Namespace flags of `clone`: creating namespaces is refused.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

/// The refused syscalls, with why.
// The ioctl request type is `c_ulong` here and `c_int` on other targets.
#[allow(clippy::unnecessary_cast)]
pub const DENIED: &[(&str, libc::c_long, When)] = &[
    // Reading or changing other processes.
    ("ptrace", libc::SYS_ptrace, When::Always),
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
        When::ArgEq(1, libc::TIOCSTI as u64),
    ),
    (
        "ioctl",
        libc::SYS_ioctl,
        When::ArgEq(1, libc::TIOCLINUX as u64),
    ),
    // Every socket family but AF_UNIX (no raw, netlink, vsock, inet...).
    (
        "socket",
        libc::SYS_socket,
        When::ArgNe(0, libc::AF_UNIX as u64),
    ),
];

/// The seccompiler rules for one table entry; no rule means "always".
fn rules(when: When) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    use SeccompCmpArgLen::{Dword, Qword};
    let one = |conds: Vec<SeccompCondition>| SeccompRule::new(conds).map(|r| vec![r]);
    match when {
        When::Always => Ok(Vec::new()),
        When::ArgNe(arg, v) => one(vec![SeccompCondition::new(
            arg,
            Dword,
            SeccompCmpOp::Ne,
            v,
        )?]),
        When::ArgEq(arg, v) => one(vec![SeccompCondition::new(
            arg,
            Qword,
            SeccompCmpOp::Eq,
            v,
        )?]),
        When::ArgNeither(arg, a, b) => one(vec![
            SeccompCondition::new(arg, Dword, SeccompCmpOp::Ne, a)?,
            SeccompCondition::new(arg, Dword, SeccompCmpOp::Ne, b)?,
        ]),
        // Rules of one syscall are or-ed: one rule per bit of the mask.
        When::ArgHasBits(arg, mask) => (0..64)
            .map(|b| 1u64 << b)
            .filter(|bit| mask & bit != 0)
            .map(|bit| {
                SeccompRule::new(vec![SeccompCondition::new(
                    arg,
                    Qword,
                    SeccompCmpOp::MaskedEq(bit),
                    bit,
                )?])
            })
            .collect(),
    }
}

#[cfg(target_arch = "x86_64")]
const ARCH: (TargetArch, u32) = (TargetArch::x86_64, 0xc000_003e); // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const ARCH: (TargetArch, u32) = (TargetArch::aarch64, 0xc000_00b7); // AUDIT_ARCH_AARCH64

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// x32 syscall numbers have this bit set on x86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Compiles the filter (done once per process and cached by the caller).
///
/// The first seven instructions are written here because seccompiler
/// cannot express them: a foreign ABI is killed, and `clone3` gets
/// `ENOSYS`. BPF jumps are relative, so seccompiler's program, appended
/// after them, is unchanged.
pub(crate) fn compile() -> Result<BpfProgram, seccompiler::BackendError> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // struct seccomp_data { int nr; __u32 arch; ... }
    let prologue = [
        stmt(LD_W_ABS, 4),                                  // 0: A = arch
        jump(JEQ, ARCH.1, 0, 4),                            // 1: foreign arch -> 6
        stmt(LD_W_ABS, 0),                                  // 2: A = nr
        jump(JGE, X32_SYSCALL_BIT, 2, 0),                   // 3: x32 -> 6
        jump(JEQ, libc::SYS_clone3 as u32, 0, 2),           // 4: clone3 -> 5, else -> 7
        stmt(RET, SECCOMP_RET_ERRNO | libc::ENOSYS as u32), // 5
        stmt(RET, SECCOMP_RET_KILL_PROCESS),                // 6
    ];
    let mut table: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(_, nr, when) in DENIED {
        let entry = table.entry(nr).or_default();
        let new = rules(when)?;
        if new.is_empty() {
            entry.clear();
        } else {
            entry.extend(new);
        }
    }
    let filter = SeccompFilter::new(
        table,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH.0,
    )?;
    let body: BpfProgram = filter.try_into()?;
    Ok(prologue.into_iter().chain(body).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_starts_with_the_arch_check() {
        let prog = compile().unwrap();
        assert!(prog.len() > DENIED.len());
        assert_eq!(prog[1].k, ARCH.1);
        assert_eq!(prog[6].k, SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn every_entry_names_its_syscall_once_per_condition() {
        let mut names: Vec<_> = DENIED.iter().map(|(n, _, _)| *n).collect();
        names.dedup();
        assert!(names.contains(&"ptrace") && names.contains(&"socket"));
    }
}
