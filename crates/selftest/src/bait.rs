//! What the host offers the attacks to go for, all of it the suite's own
//! and undone on drop: an escape in the sabotage mode reaches only these.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// The text of the caller's secret file.
pub const SECRET: &str = "the caller's secret: 7f3a9c";

/// The text of the caller's file that attacks try to damage.
const CALLER_DATA: &str = "the caller's data\n";

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
/// inheritable descriptor to it, an abstract unix socket, System V IPC
/// objects and a POSIX message queue, scratch directories an escaping
/// write lands in (in `/tmp`, `/var/tmp` and `/dev/shm`), and a fake
/// sibling jail. Everything is removed, killed or closed on drop.
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
}

/// The directories an escaping write may land in, one per place.
const SCRATCH_PARENTS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

impl Bait {
    /// Sets the bait up for jails made under `jail_parent`; `python` (the
    /// jail's interpreter) makes and removes the IPC objects.
    ///
    /// # Errors
    /// Any failure to open a socket, start the victim, write a file or make
    /// the IPC objects; what was made so far is undone.
    pub fn new(jail_parent: &Path, python: &Path) -> std::io::Result<Bait> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::fs::PermissionsExt;
        let id = unique();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let abstract_name = format!("codejail-bait-{id}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?;
        let abstract_socket = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        let secret_dir = std::env::temp_dir().join(format!("codejail-bait-secret-{id}"));
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
        for d in &self.scratch {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
