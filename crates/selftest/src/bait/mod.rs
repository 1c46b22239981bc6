//! What the host offers the attacks to go for, all of it the suite's own
//! and undone on drop: an escape in the sabotage mode reaches only these.
//!
//! Here: the bait and its set-up; `context`: what an attack is told;
//! `damage`: what it damaged, and undoing it; `ipc`, `sockets`, `owned`:
//! the host objects it goes for; `watch`: the host metadata compared.

mod context;
mod damage;
mod ipc;
mod owned;
mod sockets;
mod watch;

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use codejail::Jail;

use ipc::Ipc;
use owned::Owned;
use sockets::Sockets;
use watch::{Scope, Watched};

/// The text of the caller's secret file.
pub const SECRET: &str = "the caller's secret: 7f3a9c";

/// The text of the caller's file that attacks try to damage.
const CALLER_DATA: &str = "the caller's data\n";

/// What the owned file and directory are, in the damage they report.
const OWNED_FILE: &str =
    "a host file of the jail's sandbox user (the caller's own, for an unprivileged caller)";
const OWNED_DIR: &str =
    "a host directory of the jail's sandbox user (the caller's own, for an unprivileged caller)";

/// A name no other run of this process uses, and no prefix of another
/// (tokens are looked for as substrings of command lines).
pub(crate) fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{:08}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host-side bait: a TCP and a UDP port on 127.0.0.1, a process to
/// signal and trace (the victim), the caller's secret file and an
/// inheritable descriptor to it, an abstract unix socket, a stream and a
/// datagram pathname unix socket, a host file and directory the jail's uid
/// owns (the caller's own for an unprivileged caller), System V IPC
/// objects and a POSIX message queue, scratch directories an escaping
/// write lands in (in `/tmp`, `/var/tmp` and `/dev/shm`), and a fake
/// sibling jail. The metadata of the caller's files, of the owned ones, of
/// the jail parent and of the caller's temp dir is taken when it is set up
/// and compared after every run (mode, owner, times, extended
/// attributes): the host's side of what an attack did, not only what it
/// printed. Everything is removed, killed or closed on drop.
#[derive(Debug)]
pub struct Bait {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    _abstract_socket: std::os::unix::net::UnixListener,
    abstract_name: String,
    victim: Mutex<Child>,
    victim_pid: u32,
    secret_dir: PathBuf,
    secret_path: PathBuf,
    /// A file of the caller's the attacks may try to damage (the secret
    /// stays intact for those that read it at the same time).
    caller_file: PathBuf,
    /// Left open without close-on-exec, as a careless caller might.
    _secret_fd: OwnedFd,
    scratch: Vec<PathBuf>,
    jail_parent: PathBuf,
    other_dir: PathBuf,
    ipc: Ipc,
    sockets: Sockets,
    owned: Owned,
    /// The host's metadata the attacks must leave as it was.
    watched: Mutex<Vec<Watched>>,
}

/// The directories an escaping write may land in, one per place.
const SCRATCH_PARENTS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

impl Bait {
    /// Sets the bait up for runs of `jail` made under `jail_parent`: the
    /// jail's interpreter makes and removes the IPC objects, and its uid
    /// owns the owned file and directory (for a root caller).
    ///
    /// # Errors
    /// Any failure to open a socket, start the victim, write a file or make
    /// the IPC objects; what was made so far is undone.
    pub fn new(jail_parent: &Path, jail: &Jail) -> std::io::Result<Bait> {
        use std::os::linux::net::SocketAddrExt;
        let python = &jail.config().bin;
        let root = rustix::process::geteuid().is_root();
        let id = unique();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let abstract_name = format!("codejail-bait-{id}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?;
        let abstract_socket = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        let temp = std::env::temp_dir();
        let secret_dir = temp.join(format!("codejail-bait-secret-{id}"));
        let sockets_dir = temp.join(format!("codejail-bait-sockets-{id}"));
        let owned = Owned {
            dir: temp.join(format!("codejail-bait-owned-{id}")),
            owner: root.then(|| (jail.identity().0, rustix::process::getgid().as_raw())),
        };
        let other_dir = jail_parent.join(format!("codejail-bait-other-{id}"));
        let scratch: Vec<PathBuf> = SCRATCH_PARENTS
            .iter()
            .map(|p| Path::new(p).join(format!("codejail-bait-scratch-{id}")))
            .collect();
        // Keys of this process and bait: the pid (22 bits), a count, the kind.
        let pid = std::process::id() & 0x3f_ffff;
        let n = id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            & 0x3f;
        let key = |k: u32| 0x4000_0000 | (pid << 8) | (n << 2) | k;
        let ipc = Ipc {
            python: python.to_owned(),
            shm: key(0),
            sem: key(1),
            msg: key(2),
            mq: format!("/codejail-bait-{id}"),
        };
        // Half-made bait is undone by this guard's drop.
        let mut guard = Undo {
            dirs: Vec::new(),
            ipc: None,
        };
        std::fs::create_dir_all(&secret_dir)?;
        guard.dirs.push(secret_dir.clone());
        let secret_path = secret_dir.join("secret.txt");
        std::fs::write(&secret_path, SECRET)?;
        let caller_file = secret_dir.join("data.txt");
        std::fs::write(&caller_file, CALLER_DATA)?;
        let file = std::fs::File::open(&secret_path)?;
        // dup() gives a descriptor without close-on-exec.
        let secret_fd = rustix::io::dup(&file)?;
        guard.dirs.push(other_dir.clone());
        std::fs::create_dir_all(other_dir.join("tmp"))?;
        std::fs::write(other_dir.join("tmp/secret"), "other-run-secret")?;
        for dir in &scratch {
            guard.dirs.push(dir.clone());
            std::fs::create_dir(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
        }
        guard.dirs.push(sockets_dir.clone());
        let sockets = Sockets::new(sockets_dir, !root)?;
        guard.dirs.push(owned.dir.clone());
        std::fs::create_dir(&owned.dir)?;
        std::fs::set_permissions(&owned.dir, std::fs::Permissions::from_mode(0o755))?;
        owned.make()?;
        let mut watched = vec![
            Watched::new(&secret_dir, "the caller's directory", Scope::Everything)?,
            Watched::new(&secret_path, "the caller's secret", Scope::Everything)?,
            Watched::new(&caller_file, "the caller's file", Scope::Everything)?,
            Watched::new(
                &sockets.dir,
                "the caller's socket directory",
                Scope::Everything,
            )?,
            Watched::new(&owned.dir, "the caller's directory", Scope::Everything)?,
            Watched::new(&owned.file(), OWNED_FILE, Scope::Everything)?,
            Watched::new(&owned.subdir(), OWNED_DIR, Scope::Everything)?,
            Watched::new(jail_parent, "the jail parent", Scope::Permissions)?,
        ];
        if temp != jail_parent {
            watched.push(Watched::new(
                &temp,
                "the caller's temp dir",
                Scope::Permissions,
            )?);
        }
        ipc.helper("create")?;
        guard.ipc = Some(&ipc);
        let victim = Command::new("/bin/sleep")
            .arg("3600")
            .stdin(Stdio::null())
            .spawn()?;
        std::mem::forget(guard);
        Ok(Bait {
            tcp,
            udp,
            _abstract_socket: abstract_socket,
            abstract_name,
            victim_pid: victim.id(),
            victim: Mutex::new(victim),
            secret_dir,
            secret_path,
            caller_file,
            _secret_fd: secret_fd,
            scratch,
            jail_parent: jail_parent.to_owned(),
            other_dir,
            ipc,
            sockets,
            owned,
            watched: Mutex::new(watched),
        })
    }

    /// The victim's host pid.
    pub fn victim_pid(&self) -> u32 {
        self.victim_pid
    }
}

/// Undoes a half-made bait.
struct Undo<'a> {
    dirs: Vec<PathBuf>,
    ipc: Option<&'a Ipc>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(ipc) = self.ipc {
            let _ = ipc.helper("remove");
        }
    }
}

impl Drop for Bait {
    fn drop(&mut self) {
        let victim = self.victim.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = victim.kill();
        let _ = victim.wait();
        let _ = self.ipc.helper("remove");
        let _ = std::fs::remove_dir_all(&self.secret_dir);
        let _ = std::fs::remove_dir_all(&self.other_dir);
        let _ = std::fs::remove_dir_all(&self.sockets.dir);
        let _ = std::fs::remove_dir_all(&self.owned.dir);
        // The jail parent and the temp dir are the caller's: their modes
        // go back to what they were, whatever a run did.
        for w in self.watched.get_mut().unwrap_or_else(|e| e.into_inner()) {
            if w.scope == Scope::Permissions {
                let _ = w.reset();
            }
        }
        for d in &self.scratch {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
