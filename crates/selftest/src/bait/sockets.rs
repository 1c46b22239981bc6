//! The caller's pathname unix sockets.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A stream and a datagram pathname unix socket of the caller's, bound
/// outside every jail: world-writable in a world-searchable directory for
/// a root caller (a system service's socket, such as D-Bus's), the
/// caller's private ones (0600 in a 0700 directory, an ssh agent's) for an
/// unprivileged caller, whose jail has its uid. What reaches them sends its
/// token, which the bait reads.
#[derive(Debug)]
pub(super) struct Sockets {
    pub(super) dir: PathBuf,
    pub(super) stream: UnixListener,
    pub(super) stream_path: PathBuf,
    pub(super) dgram: UnixDatagram,
    pub(super) dgram_path: PathBuf,
    /// What came in: the tokens of the runs that reached them.
    pub(super) seen: Mutex<Vec<String>>,
}

impl Sockets {
    pub(super) fn new(dir: PathBuf, private: bool) -> std::io::Result<Sockets> {
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
    pub(super) fn drain(&self) -> Vec<String> {
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
