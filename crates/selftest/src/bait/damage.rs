//! What the attacks damaged of the bait, and putting it back.

use super::watch::Watched;
use super::{Bait, CALLER_DATA, SECRET};

impl Bait {
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
