//! The run's namespaces, kept by a process of their own: the caller's
//! handle on the *holder*. (The process itself, cloned into the new
//! namespaces to exec `/bin/cat`, is `crate::child::holder`: as for the
//! supervisor, `child::X` is what runs in process X, `spawn::X` the
//! caller's handle on it.)
//!
//! The holder is created with the run's namespaces and does nothing but
//! keep them; the supervisor joins them with `setns` and its program is
//! born in them. In a run with a private root the network namespace is
//! the exception: the holder makes it after its clone and says so on a
//! pipe ([`Holder::net`]), and the program joins it once its root is
//! built (see `child::spawn_holder`). In a pid namespace the holder is init: killing it ends
//! every process of the namespace, and the supervisor, outside it, can
//! neither be seen nor signalled from it.
//!
//! A holder serves exactly one run. Dropping a [`Holder`] kills it (through
//! its pidfd) and reaps it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::Signal;

use crate::SpawnError;
use crate::child;

/// One id mapped to itself, each way, in the holder's user namespace (and
/// whether `setgroups` is denied there, as it must be for an unprivileged
/// caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdMaps {
    pub uid: u32,
    pub gid: u32,
    pub deny_setgroups: bool,
}

/// A process holding one run's namespaces.
#[derive(Debug)]
pub(crate) struct Holder {
    pidfd: OwnedFd,
    /// Its stdin's other end: closing it ends the holder.
    _keepalive: OwnedFd,
    /// With a network namespace, the read end of the pipe on which the
    /// holder says whether it made it (see `child::spawn_holder`); the
    /// program reads it.
    net: Option<OwnedFd>,
}

impl Holder {
    /// Makes the namespaces `namespaces` (`CLONE_NEW*` flags) and, with a
    /// user namespace, writes its id maps. With `net_late`, the holder
    /// makes the network namespace after its clone and says so on a pipe
    /// ([`Holder::net`]).
    pub(crate) fn create(
        namespaces: u64,
        net_late: bool,
        maps: Option<IdMaps>,
    ) -> Result<Holder, SpawnError> {
        // Checked here, once: a holder that cannot exec would die at once,
        // and the run would fail later with a less helpful `setns` error.
        static CAT: std::sync::OnceLock<Result<(), Errno>> = std::sync::OnceLock::new();
        CAT.get_or_init(|| rustix::fs::access("/bin/cat", rustix::fs::Access::EXEC_OK))
            .map_err(SpawnError::parent(
                "run /bin/cat, which holds a run's namespaces (install coreutils)",
            ))?;
        let (keep_r, keep_w) =
            pipe_with(PipeFlags::CLOEXEC).map_err(SpawnError::parent("create a pipe"))?;
        let net = (net_late && namespaces & libc::CLONE_NEWNET as u64 != 0)
            .then(|| pipe_with(PipeFlags::CLOEXEC))
            .transpose()
            .map_err(SpawnError::parent("create a pipe"))?;
        let (pid, pidfd) = child::spawn_holder(
            namespaces,
            keep_r.as_raw_fd(),
            net.as_ref().map(|(_, w)| w.as_raw_fd()),
        )
        .map_err(|source| SpawnError::Parent {
            step: "clone the namespace holder",
            source,
        })?;
        drop(keep_r);
        // Only the holder keeps the write end: were it to end without its
        // word, the program reads the end of the pipe rather than waiting.
        let net = net.map(|(r, _w)| r);
        let holder = Holder {
            pidfd,
            _keepalive: keep_w,
            net,
        };
        if let Some(maps) = maps {
            write_id_maps(pid, maps)?;
        }
        Ok(holder)
    }

    /// The holder's pidfd, for `setns`.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Where the holder says whether it made the network namespace, when
    /// it makes it after its clone.
    pub(crate) fn net(&self) -> Option<BorrowedFd<'_>> {
        self.net.as_ref().map(AsFd::as_fd)
    }

    /// Closes the caller's copy of [`Holder::net`], once the supervisor
    /// (and through it the program) has its own.
    pub(crate) fn release_net(&mut self) {
        self.net = None;
    }
}

impl Drop for Holder {
    /// Kills and reaps the holder. In a pid namespace its exit waits for
    /// every other process in the namespace to be gone; after a normal run
    /// the supervisor has seen to that already. The wait is bounded so that
    /// a zombie of the run that somebody else must reap, or a process in
    /// uninterruptible sleep, cannot hang us; a holder not reaped by then
    /// is reaped in the background once it has exited
    /// (`crate::leftover`).
    fn drop(&mut self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        crate::leftover::exited_within(self.pidfd.as_fd(), crate::leftover::REAP_WAIT);
        if crate::leftover::reap_now(self.pidfd.as_fd()) == crate::leftover::Reaped::Running {
            // A process of its pid namespace in uninterruptible sleep
            // keeps it from exiting: reaped once that wait ends.
            crate::leftover::reap_later_copy(self.pidfd.as_fd());
        }
    }
}

/// Maps one uid and one gid into the holder's new user namespace.
///
/// # References
/// - [`user_namespaces(7)`](https://man7.org/linux/man-pages/man7/user_namespaces.7.html),
///   "User and group ID mappings"
fn write_id_maps(pid: i32, maps: IdMaps) -> Result<(), SpawnError> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let write = |name: &str, text: String| {
        let file = dir.join(name);
        std::fs::write(&file, text).map_err(|source| SpawnError::IdMap { file, source })
    };
    if maps.deny_setgroups {
        write("setgroups", "deny".into())?;
    }
    write("gid_map", format!("{0} {0} 1", maps.gid))?;
    write("uid_map", format!("{0} {0} 1", maps.uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Probe};

    /// The pid behind a pidfd, from its `fdinfo`.
    fn pid_of(pidfd: BorrowedFd<'_>) -> String {
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .map(|p| p.trim().to_owned())
            .unwrap()
    }

    /// The holder's word comes only once its network namespace exists: as
    /// soon as the word is read, the holder is in a namespace other than
    /// the caller's. (Were the word written before `unshare`, which takes
    /// about half a millisecond, the holder would most often still be in
    /// the caller's namespace here.)
    #[test]
    fn deny_a_holders_word_before_its_network_namespace_exists() {
        let why = Probe::get().availability(Layer::NetNs).why_not();
        if !codejail_tests::require("netns", why) {
            return;
        }
        let callers = std::fs::read_link("/proc/self/ns/net").unwrap();
        let mut namespaces = libc::CLONE_NEWNET as u64;
        if !rustix::process::geteuid().is_root() {
            namespaces |= libc::CLONE_NEWUSER as u64;
        }
        for _ in 0..20 {
            let holder = Holder::create(namespaces, true, None).unwrap();
            let net = holder.net().expect("a holder that makes its namespace");
            let mut word = [0u8; 4];
            assert_eq!(rustix::io::read(net, &mut word), Ok(4));
            assert_eq!(i32::from_ne_bytes(word), 0);
            let pid = pid_of(holder.pidfd());
            let holders = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
            assert_ne!(holders, callers, "the word came before the namespace");
        }
    }
}
