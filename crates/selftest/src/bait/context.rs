//! What an attack is told about the bait and the host (its context).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{Value, json};

use super::{Bait, SECRET};

impl Bait {
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
