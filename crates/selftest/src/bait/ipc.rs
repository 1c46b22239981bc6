//! The host's System V objects and POSIX message queue.

use std::path::PathBuf;
use std::process::{Command, Stdio};

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
pub(super) struct Ipc {
    /// The interpreter that runs the helper.
    pub(super) python: PathBuf,
    pub(super) shm: u32,
    pub(super) sem: u32,
    pub(super) msg: u32,
    pub(super) mq: String,
}

impl Ipc {
    pub(super) fn helper(&self, op: &str) -> std::io::Result<()> {
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
