//! The program, cloned by the supervisor: it sets itself up, step by step
//! ("The child setup, in order" in ARCHITECTURE.md), and execs, or reports
//! the step that failed on the error pipe.

use std::ffi::{CStr, c_int};

use rustix::fs::{Mode, OFlags};
use rustix::process::Signal;
use rustix::thread::{Gid, Uid};

use super::sys::{self, Errno, fail, or_fail, rx};
use super::wire::Step;
use super::{Confine, FD_ERROR, FD_HOLDER, FD_HOLDER_NET, FD_LANDLOCK, Prepared};

/// The program: sets itself up and execs, or reports the failed step.
pub(super) fn exec_program(prep: &Prepared) -> ! {
    or_fail(Step::Signals, sys::reset_signals());
    // Every descriptor from FD_ERROR on is closed at exec: the program
    // starts with 0..=2 only, while the error pipe works until then.
    or_fail(
        Step::Descriptors,
        sys::close_range(FD_ERROR, libc::CLOSE_RANGE_CLOEXEC as c_int),
    );
    for (resource, limit) in &prep.rlimits {
        or_fail(Step::Setrlimit, sys::setrlimit(*resource, limit));
    }
    let confine = &prep.confine;
    // Through the host's procfs, before the private root replaces it.
    if let Some(exec) = &confine.apparmor_exec {
        or_fail(Step::AppArmor, set_apparmor_exec(exec));
    }
    // While the program still has its capabilities in the run's
    // namespaces.
    if let Some(root) = &confine.root {
        super::root::build(root);
    }
    if confine.net_late() {
        join_net_ns();
    }
    if let Some((uid, gid)) = confine.identity {
        switch_identity(uid, gid, confine.setgroups);
    }
    // The death signal is cleared by a change of credentials, so it is set
    // after them: the program dies with its supervisor.
    or_fail(
        Step::Pdeathsig,
        rx(rustix::process::set_parent_process_death_signal(Some(
            Signal::KILL,
        ))),
    );
    or_fail(Step::Chdir, rx(rustix::process::chdir(prep.cwd.as_c_str())));
    confine_self(confine);
    let err = {
        // SAFETY: argv and envp are the null-terminated pointer arrays
        // `Prepared::new` built over the CStrings it owns; `prep` outlives
        // the call.
        unsafe { sys::execve(&prep.program, &prep.argv_ptrs, &prep.envp_ptrs) }
    };
    fail(Step::Execve, err)
}

/// In a run with a private root: waits for the holder's word that it made
/// the run's network namespace, then joins it: `setns(holder pidfd,
/// CLONE_NEWNET)`, with the capabilities the program still has in the
/// run's user namespace (or as root). The last of the set-up that needs
/// them, so that the kernel makes the namespace on the holder's CPU while
/// this process builds the root. The errno the holder met fails the step
/// [`Step::NetNs`]; a failed `setns`, or a holder gone without a word
/// (`ESRCH`), fails [`Step::JoinNetNs`]. Nothing but this set-up runs
/// before `execve`, which comes after.
fn join_net_ns() {
    match sys::read_word(FD_HOLDER_NET) {
        Ok(Some(0)) => {}
        Ok(Some(errno)) => fail(Step::NetNs, errno),
        Ok(None) => fail(Step::JoinNetNs, libc::ESRCH),
        Err(errno) => fail(Step::JoinNetNs, errno),
    }
    // SAFETY: `setns` takes two integers; the holder's pidfd is open in
    // this copy of the supervisor's descriptor table (closed on exec).
    let joined = unsafe { libc::setns(FD_HOLDER, libc::CLONE_NEWNET) };
    if joined != 0 {
        fail(Step::JoinNetNs, sys::errno());
    }
}

/// `setgroups([])` (where allowed), `setresgid`, `setresuid`: raw system
/// calls through rustix, for this thread only. glibc's `setuid()` and
/// friends broadcast to every thread they believe exists and wait for
/// threads this copy does not have.
///
/// `u32::MAX` is no id: the kernel reads it as -1, "leave unchanged", so
/// the program would keep the caller's identity (host root, for a root
/// caller). It is refused with `EINVAL`.
fn switch_identity(uid: libc::uid_t, gid: libc::gid_t, setgroups: bool) {
    if uid == libc::uid_t::MAX {
        fail(Step::Setuid, libc::EINVAL);
    }
    if gid == libc::gid_t::MAX {
        fail(Step::Setgid, libc::EINVAL);
    }
    if setgroups {
        or_fail(Step::Setgroups, rx(rustix::thread::set_thread_groups(&[])));
    }
    let gid = Gid::from_raw_unchecked(gid);
    or_fail(
        Step::Setgid,
        rx(rustix::thread::set_thread_res_gid(gid, gid, gid)),
    );
    let uid = Uid::from_raw_unchecked(uid);
    or_fail(
        Step::Setuid,
        rx(rustix::thread::set_thread_res_uid(uid, uid, uid)),
    );
}

/// The last steps, in order: no_new_privs (which Landlock and seccomp
/// need without `CAP_SYS_ADMIN`), Landlock, then seccomp, whose filter may
/// refuse system calls the earlier steps make.
fn confine_self(confine: &Confine) {
    if confine.no_new_privs {
        or_fail(Step::NoNewPrivs, rx(rustix::thread::set_no_new_privs(true)));
    }
    if confine.landlock {
        or_fail(Step::Landlock, sys::landlock_restrict_self(FD_LANDLOCK));
    }
    if let Some(filter) = &confine.seccomp {
        or_fail(Step::Seccomp, sys::seccomp_set_filter(filter));
    }
}

/// Asks AppArmor to switch to a profile at the next exec, by writing
/// `exec <profile>` to the task's exec attribute — after checking, through
/// the same descriptor, that it is on procfs, so that nothing mounted over
/// `/proc` can take the write. Before Landlock, which would refuse it.
///
/// # References
/// - [`proc_pid_attr(5)`](https://man7.org/linux/man-pages/man5/proc_pid_attr.5.html)
/// - `aa_change_onexec(3)`, which libapparmor implements the same way
fn set_apparmor_exec(exec: &CStr) -> Result<(), Errno> {
    let flags = OFlags::WRONLY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(
        c"/proc/thread-self/attr/apparmor/exec",
        flags,
        Mode::empty(),
    ) {
        Err(rustix::io::Errno::NOENT) => rx(rustix::fs::open(
            c"/proc/self/attr/exec",
            flags,
            Mode::empty(),
        ))?,
        other => rx(other)?,
    };
    let on_proc =
        rustix::fs::fstatfs(&fd).is_ok_and(|st| st.f_type == rustix::fs::PROC_SUPER_MAGIC);
    if !on_proc {
        return Err(libc::EXDEV);
    }
    let bytes = exec.to_bytes();
    match rx(rustix::io::write(&fd, bytes))? {
        n if n == bytes.len() => Ok(()),
        _ => Err(libc::EIO),
    }
}
