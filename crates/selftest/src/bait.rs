//! What the host offers the attacks to go for, all of it the suite's own
//! and undone on drop: an escape in the sabotage mode reaches only these.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use codejail::Jail;
use serde_json::{Value, json};

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

/// The System V objects and POSIX message queue of the host that the IPC
/// attacks try to reach, made and removed by a small Python helper (this
/// crate has no `unsafe`).
const IPC_HELPER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
op, shm, sem, msg, mq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].encode()
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0
def remove(which):
    for kind, key in which:
        if kind == "mq":
            libc.mq_unlink(mq)
            continue
        get, ctl = {"shm": (libc.shmget, libc.shmctl), "sem": (libc.semget, libc.semctl), "msg": (libc.msgget, libc.msgctl)}[kind]
        i = get(key, 0, 0)
        if i >= 0:
            ctl(i, IPC_RMID, 0) if kind == "sem" else ctl(i, IPC_RMID, None)
everything = [("shm", shm), ("sem", sem), ("msg", msg), ("mq", None)]
if op == "create":
    os.umask(0)
    made = []
    for kind, key in everything:
        if kind == "shm":
            r = libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o666)
        elif kind == "sem":
            r = libc.semget(key, 1, IPC_CREAT | IPC_EXCL | 0o666)
        elif kind == "msg":
            r = libc.msgget(key, IPC_CREAT | IPC_EXCL | 0o666)
        else:
            r = libc.mq_open(mq, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666, None)
            if r >= 0:
                os.close(r)
        if r == -1:
            e = ctypes.get_errno()
            remove(made)
            sys.exit("%s: %s" % (kind, os.strerror(e)))
        made.append((kind, key))
else:
    remove(everything)
"#;

#[derive(Debug)]
struct Ipc {
    /// The interpreter that runs the helper.
    python: PathBuf,
    shm: u32,
    sem: u32,
    msg: u32,
    mq: String,
}

impl Ipc {
    fn helper(&self, op: &str) -> std::io::Result<()> {
        let out = Command::new(&self.python)
            .args(["-E", "-c", IPC_HELPER, op])
            .args([self.shm, self.sem, self.msg].map(|k| k.to_string()))
            .arg(&self.mq)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the IPC bait could not be {op}d: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
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

/// A stream and a datagram pathname unix socket of the caller's, bound
/// outside every jail: world-writable in a world-searchable directory for
/// a root caller (a system service's socket, such as D-Bus's), the
/// caller's private ones (0600 in a 0700 directory, an ssh agent's) for an
/// unprivileged caller, whose jail has its uid. What reaches them sends its
/// token, which the bait reads.
#[derive(Debug)]
struct Sockets {
    dir: PathBuf,
    stream: UnixListener,
    stream_path: PathBuf,
    dgram: UnixDatagram,
    dgram_path: PathBuf,
    /// What came in: the tokens of the runs that reached them.
    seen: Mutex<Vec<String>>,
}

impl Sockets {
    fn new(dir: PathBuf, private: bool) -> std::io::Result<Sockets> {
        std::fs::create_dir(&dir)?;
        let (dir_mode, mode) = if private {
            (0o700, 0o600)
        } else {
            (0o755, 0o666)
        };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode))?;
        let stream_path = dir.join("stream.sock");
        let dgram_path = dir.join("dgram.sock");
        let stream = UnixListener::bind(&stream_path)?;
        stream.set_nonblocking(true)?;
        let dgram = UnixDatagram::bind(&dgram_path)?;
        dgram.set_nonblocking(true)?;
        for p in [&stream_path, &dgram_path] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(Sockets {
            dir,
            stream,
            stream_path,
            dgram,
            dgram_path,
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Takes in what has come: pending connections (each sends its token,
    /// or nothing) and datagrams.
    fn drain(&self) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok((mut conn, _)) = self.stream.accept() {
            let mut text = Vec::new();
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = (&mut conn).take(256).read_to_end(&mut text);
            seen.push(format!(
                "a connection to {} ({})",
                self.stream_path.display(),
                String::from_utf8_lossy(&text)
            ));
        }
        let mut buf = [0u8; 256];
        while let Ok(n) = self.dgram.recv(&mut buf) {
            seen.push(format!(
                "a datagram on {} ({})",
                self.dgram_path.display(),
                String::from_utf8_lossy(&buf[..n])
            ));
        }
        seen.clone()
    }
}

/// A host file and a directory beside it that the jail's sandbox user
/// owns (chowned to it for a root caller, group the caller's: a `chown` to
/// its own group changes something; a root caller's runs that take a uid
/// of their own from a range are not that user), or the caller's own for
/// an unprivileged caller, whose jail has its uid: what `chmod`, `chown`,
/// `utimes` and `setxattr`, which Landlock does not mediate, may reach.
#[derive(Debug)]
struct Owned {
    /// The caller's directory they are in.
    dir: PathBuf,
    /// The uid (and gid) they are given, for a root caller.
    owner: Option<(u32, u32)>,
}

impl Owned {
    fn file(&self) -> PathBuf {
        self.dir.join("owned-file")
    }

    fn subdir(&self) -> PathBuf {
        self.dir.join("owned-dir")
    }

    /// Makes (or makes again) the file and the directory.
    fn make(&self) -> std::io::Result<()> {
        let (file, dir) = (self.file(), self.subdir());
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::write(
            &file,
            "a file of the jail's sandbox user, outside the jail\n",
        )?;
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.owner {
            for p in [&file, &dir] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }
}

/// What is compared of a watched path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Mode, owner, modification and change times, extended attributes:
    /// nothing else touches it.
    Everything,
    /// Mode and owner only: runs come and go in it.
    Permissions,
}

/// The metadata of a watched path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    xattrs: Vec<String>,
}

impl Meta {
    fn of(path: &Path, scope: Scope) -> std::io::Result<Meta> {
        let m = std::fs::symlink_metadata(path)?;
        let everything = scope == Scope::Everything;
        Ok(Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: if everything {
                (m.mtime(), m.mtime_nsec())
            } else {
                (0, 0)
            },
            ctime: if everything {
                (m.ctime(), m.ctime_nsec())
            } else {
                (0, 0)
            },
            xattrs: if everything { xattrs(path) } else { Vec::new() },
        })
    }

    /// What differs from `before`, in words.
    fn changes_since(&self, before: &Meta) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode != before.mode {
            out.push(format!("mode {:o} -> {:o}", before.mode, self.mode));
        }
        if (self.uid, self.gid) != (before.uid, before.gid) {
            out.push(format!(
                "owner {}:{} -> {}:{}",
                before.uid, before.gid, self.uid, self.gid
            ));
        }
        if self.mtime != before.mtime {
            out.push(format!("mtime {} -> {}", before.mtime.0, self.mtime.0));
        }
        if self.xattrs != before.xattrs {
            out.push(format!(
                "extended attributes {:?} -> {:?}",
                before.xattrs, self.xattrs
            ));
        }
        // Last: a change of anything sets it, and alone it says that
        // something was set to what it was (a chmod to the same mode).
        if out.is_empty() && self.ctime != before.ctime {
            out.push("changed (its ctime moved)".into());
        }
        out
    }
}

/// The names of a path's extended attributes, sorted.
fn xattrs(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => {
            let mut names: Vec<String> = buf[..n]
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// A host path whose metadata must stay as it was.
#[derive(Clone, Debug)]
struct Watched {
    path: PathBuf,
    /// What it is, in words.
    what: &'static str,
    scope: Scope,
    before: Meta,
}

impl Watched {
    fn new(path: &Path, what: &'static str, scope: Scope) -> std::io::Result<Watched> {
        Ok(Watched {
            path: path.to_owned(),
            what,
            scope,
            before: Meta::of(path, scope)?,
        })
    }

    /// What changed, in words, or `None`.
    fn damage(&self) -> Option<String> {
        let changes = match Meta::of(&self.path, self.scope) {
            Ok(now) => now.changes_since(&self.before),
            Err(e) => vec![format!("cannot be looked at: {e}")],
        };
        (!changes.is_empty()).then(|| {
            format!(
                "{} {} was changed: {}",
                self.what,
                self.path.display(),
                changes.join(", ")
            )
        })
    }

    /// Puts its mode and owner back (times and attributes cannot all be),
    /// and takes it as it is now.
    fn reset(&mut self) -> std::io::Result<()> {
        let now = std::fs::symlink_metadata(&self.path)?;
        if now.mode() & 0o7777 != self.before.mode & 0o7777 {
            std::fs::set_permissions(
                &self.path,
                std::fs::Permissions::from_mode(self.before.mode & 0o7777),
            )?;
        }
        if (now.uid(), now.gid()) != (self.before.uid, self.before.gid) {
            std::os::unix::fs::lchown(&self.path, Some(self.before.uid), Some(self.before.gid))?;
        }
        for name in xattrs(&self.path) {
            if !self.before.xattrs.contains(&name) {
                rustix::fs::lremovexattr(&self.path, name.as_str())?;
            }
        }
        self.before = Meta::of(&self.path, self.scope)?;
        Ok(())
    }
}

/// The device and inode of a host path, as the attacks compare them (a
/// path of the run's own root has others), or null.
fn ids(path: &Path) -> Value {
    std::fs::metadata(path).map_or(Value::Null, |m| json!([m.dev(), m.ino()]))
}

/// The host's mount points under `/sys` and `/run`, which no run's own
/// root has (from the caller's mount table).
fn host_mounts() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| ["/sys", "/run"].iter().any(|p| Path::new(m).starts_with(p)))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
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

    /// The JSON context an attack reads on stdin.
    pub fn context(&self) -> Vec<u8> {
        self.context_value().to_string().into_bytes()
    }

    /// The context as a value.
    pub fn context_value(&self) -> Value {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        json!({
            "port": self.tcp.local_addr().map(|a| a.port()).unwrap_or(0),
            "udp_port": self.udp.local_addr().map(|a| a.port()).unwrap_or(0),
            "victim_pid": self.victim_pid,
            "secret_path": self.secret_path,
            "secret_text": SECRET,
            "caller_file": self.caller_file,
            "abstract": self.abstract_name,
            "hostname": hostname.trim(),
            "jail_parent": self.jail_parent,
            "other_file": self.other_dir.join("tmp/secret"),
            "scratch_tmp": self.scratch[0],
            "scratch_var_tmp": self.scratch[1],
            "scratch_dev_shm": self.scratch[2],
            "shm_key": self.ipc.shm,
            "sem_key": self.ipc.sem,
            "msg_key": self.ipc.msg,
            "mq_name": self.ipc.mq,
            "caller_pid": std::process::id(),
            "gateway": gateway(),
            "resolver": resolver(),
            "unix_stream": self.sockets.stream_path,
            "unix_dgram": self.sockets.dgram_path,
            "owned_file": self.owned.file(),
            "owned_dir": self.owned.subdir(),
            "host_ids": {
                "/etc": ids(Path::new("/etc")),
                "/etc/shadow": ids(Path::new("/etc/shadow")),
                "/tmp": ids(Path::new("/tmp")),
                "/proc": ids(Path::new("/proc")),
                "jail_parent": ids(&self.jail_parent),
            },
            "host_mounts": host_mounts(),
            "victim_home": Value::Null,
        })
    }

    /// The victim's host pid.
    pub fn victim_pid(&self) -> u32 {
        self.victim_pid
    }

    /// What any attack may have damaged, in words: the victim dead, the
    /// secret changed, a file left in a scratch directory. Empty when
    /// nothing was.
    pub fn damage(&self) -> Vec<String> {
        self.damage_where(true, |_| true)
    }

    /// What the run with `token` may have damaged: files whose name has the
    /// token in a scratch directory (an attack names what it writes there
    /// after its first argument), and with `shared`, the victim and the
    /// secret (which a run going on at the same time may have damaged).
    pub fn damage_of(&self, token: &str, shared: bool) -> Vec<String> {
        self.damage_where(shared, |name| name.contains(token))
    }

    fn damage_where(&self, shared: bool, ours: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        if shared {
            out.extend(self.shared_damage());
        }
        for what in self.sockets.drain() {
            if ours(&what) {
                out.push(format!("the caller's unix socket received {what}"));
            }
        }
        for dir in &self.scratch {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if ours(&e.file_name().to_string_lossy()) {
                        out.push(format!("{} was written", e.path().display()));
                    }
                }
            }
        }
        out
    }

    /// The victim dead, the secret changed.
    fn shared_damage(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut victim = self.victim.lock().unwrap_or_else(|e| e.into_inner());
        match victim.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => out.push(format!(
                "the host process the attacks aim at (pid {}) ended: {status}",
                self.victim_pid
            )),
            Err(e) => out.push(format!("the victim cannot be waited for: {e}")),
        }
        for (path, text) in [
            (&self.secret_path, SECRET),
            (&self.caller_file, CALLER_DATA),
        ] {
            match std::fs::read_to_string(path) {
                Ok(s) if s == text => {}
                _ => out.push(format!(
                    "the caller's file {} was changed or removed (by this run or one at the same time)",
                    path.display()
                )),
            }
        }
        let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(watched.iter().filter_map(Watched::damage));
        out
    }

    /// Puts back what an escape changed (the sabotage mode): the secret's
    /// contents, the scratch directories emptied.
    ///
    /// # Errors
    /// When a file cannot be written or removed.
    pub fn restore(&self) -> std::io::Result<()> {
        std::fs::write(&self.secret_path, SECRET)?;
        std::fs::write(&self.caller_file, CALLER_DATA)?;
        self.owned.make()?;
        self.sockets
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.sockets.drain();
        self.sockets
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for w in self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            w.reset()?;
        }
        for dir in &self.scratch {
            for e in std::fs::read_dir(dir)?.flatten() {
                let path = e.path();
                if e.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// The host's default gateway (from `/proc/net/route`), or a documentation
/// address when it has none.
fn gateway() -> String {
    std::fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"00000000"))
                .then(|| u32::from_str_radix(f.get(2)?, 16).ok())
                .flatten()
        })
        .map(|g| std::net::Ipv4Addr::from(g.swap_bytes()).to_string())
        .unwrap_or_else(|| "192.0.2.1".into())
}

/// The host's first IPv4 resolver (from `/etc/resolv.conf`), or the local
/// stub's address.
fn resolver() -> String {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or("127.0.0.53")
        .to_owned()
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
