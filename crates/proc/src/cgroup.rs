//! A cgroup per run: memory and process limits, out-of-memory detection,
//! kill of the whole run, removal afterwards.
//!
//! On cgroup v2 the supervisor is cloned straight into the run's cgroup
//! (`CLONE_INTO_CGROUP`, about 0.2 ms). On v1 it writes itself into each
//! hierarchy's `cgroup.procs` before it starts the program, which costs
//! 6–16 ms on a quiet machine (the kernel's thread-group lock); that is why
//! the caller only asks for this layer on v1 when a memory limit needs it.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::probe::Cgroups;

/// The cgroup directories of one run; removed on drop.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    /// v2 directory, for `CLONE_INTO_CGROUP` and `cgroup.kill`.
    v2: Option<PathBuf>,
    /// v1 directories (memory, pids).
    v1: Vec<PathBuf>,
    /// Where the out-of-memory kill count is read.
    oom_file: Option<PathBuf>,
}

/// Why the run's cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {}: could not {step}: {source}", path.display())]
pub struct CgroupError {
    /// The step, e.g. `create the directory`, `write memory.max`.
    pub step: &'static str,
    /// The directory or file.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

fn err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_owned();
    move |source| CgroupError { step, path, source }
}

fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "codejail-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn write(path: &Path, value: &str, step: &'static str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(err(step, path))
}

impl RunCgroup {
    /// Creates the run's cgroup(s) with the limits set.
    ///
    /// `memory`: bytes, swap off. `pids`: processes of the run.
    pub(crate) fn create(
        cg: &Cgroups,
        memory: Option<u64>,
        pids: Option<u64>,
    ) -> Result<RunCgroup, CgroupError> {
        let name = unique_name();
        let mut run = RunCgroup {
            v2: None,
            v1: Vec::new(),
            oom_file: None,
        };
        let v2_memory = memory.is_some() && cg.v2_has("memory");
        let v2_pids = pids.is_some() && cg.v2_has("pids");
        if let Some(base) = &cg.v2 {
            let dir = base.join(&name);
            fs::create_dir(&dir).map_err(err("create the directory", &dir))?;
            run.v2 = Some(dir.clone());
            if let (true, Some(bytes)) = (v2_memory, memory) {
                write(
                    &dir.join("memory.max"),
                    &bytes.to_string(),
                    "write memory.max",
                )?;
                if dir.join("memory.swap.max").exists() {
                    write(&dir.join("memory.swap.max"), "0", "write memory.swap.max")?;
                }
                run.oom_file = Some(dir.join("memory.events"));
            }
            if let (true, Some(n)) = (v2_pids, pids) {
                write(&dir.join("pids.max"), &n.to_string(), "write pids.max")?;
            }
        }
        if let (false, Some(bytes), Some(base)) = (v2_memory, memory, &cg.v1_memory) {
            let dir = base.join(&name);
            fs::create_dir(&dir).map_err(err("create the directory", &dir))?;
            run.v1.push(dir.clone());
            write(
                &dir.join("memory.limit_in_bytes"),
                &bytes.to_string(),
                "write memory.limit_in_bytes",
            )?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(
                    &memsw,
                    &bytes.to_string(),
                    "write memory.memsw.limit_in_bytes",
                )?;
            }
            run.oom_file = Some(dir.join("memory.oom_control"));
        }
        if let (false, Some(n), Some(base)) = (v2_pids, pids, &cg.v1_pids) {
            // Only worth the v1 join when the run joins v1 anyway.
            if !run.v1.is_empty() {
                let dir = base.join(&name);
                fs::create_dir(&dir).map_err(err("create the directory", &dir))?;
                run.v1.push(dir.clone());
                write(&dir.join("pids.max"), &n.to_string(), "write pids.max")?;
            }
        }
        Ok(run)
    }

    /// The v2 directory, opened for `CLONE_INTO_CGROUP`.
    pub(crate) fn v2_dir(&self) -> Result<Option<OwnedFd>, CgroupError> {
        self.v2
            .as_ref()
            .map(|dir| {
                rustix::fs::open(
                    dir,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("open the directory", dir)(e.into()))
            })
            .transpose()
    }

    /// The v1 `cgroup.procs` files, opened for the supervisor to join.
    pub(crate) fn v1_procs(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.v1
            .iter()
            .map(|dir| {
                let file = dir.join("cgroup.procs");
                rustix::fs::open(&file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| err("open cgroup.procs", &file)(e.into()))
            })
            .collect()
    }

    /// Whether the kernel killed a process of the run for lack of memory.
    pub(crate) fn oom_killed(&self) -> bool {
        let Some(file) = &self.oom_file else {
            return false;
        };
        let Ok(text) = fs::read_to_string(file) else {
            return false;
        };
        text.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }

    /// Whether a memory limit is in force.
    pub(crate) fn limits_memory(&self) -> bool {
        self.oom_file.is_some()
    }

    /// Kills every process left in the run's cgroups.
    ///
    /// On v2, `cgroup.kill`: the kernel kills every member at once.
    /// Elsewhere (v1, or a kernel without `cgroup.kill`), each member is
    /// killed through a pidfd, never by number: a pid read from
    /// `cgroup.procs` may be reaped and reused by an unrelated process
    /// before the kill. See [`kill_members`].
    pub(crate) fn kill_all(&self) {
        if let Some(dir) = &self.v2 {
            if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        for dir in self.v2.iter().chain(&self.v1) {
            let procs = dir.join("cgroup.procs");
            for _ in 0..100 {
                if kill_members(&procs) == 0 {
                    break;
                }
                std::thread::yield_now();
            }
        }
    }
}

/// The pids listed in a `cgroup.procs` file (none if it cannot be read).
fn members(procs: &Path) -> Vec<i32> {
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Sends `SIGKILL` to each process listed in `procs`, through a pidfd;
/// returns how many were listed.
///
/// For each listed pid a pidfd is opened, then the file is read again, and
/// only a pid still listed is signalled, through its pidfd. If the process
/// the pidfd names was reaped before that second read, the signal fails
/// (`ESRCH`: a pidfd never names another process); if it was not, its pid
/// could not have been reused, so the second read saw that very process as
/// a member.
fn kill_members(procs: &Path) -> usize {
    let listed = members(procs);
    let opened: Vec<(i32, OwnedFd)> = listed
        .iter()
        .filter_map(|&pid| {
            let fd = rustix::process::pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty());
            Some((pid, fd.ok()?))
        })
        .collect();
    let still = members(procs);
    for (pid, pidfd) in &opened {
        if still.contains(pid) {
            let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
        }
    }
    listed.len()
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in self.v2.iter().chain(&self.v1) {
            // The run's processes are reaped before this runs; a cgroup is
            // removable once its last task is released, which can lag.
            let mut removed = false;
            for _ in 0..200 {
                match fs::remove_dir(dir) {
                    Ok(()) => {
                        removed = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        removed = true;
                        break;
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            if !removed {
                tracing::warn!(cgroup = %dir.display(), "could not remove the run's cgroup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Probe;

    #[test]
    fn a_run_cgroup_is_created_with_its_limits_and_removed_on_drop() {
        let cgroups = &Probe::get().cgroups;
        let none = cgroups.v2.is_none() && !cgroups.has_memory();
        if !codejail_tests::require(
            "cgroup",
            none.then_some("no writable cgroup for this caller"),
        ) {
            return;
        }
        let run = RunCgroup::create(cgroups, Some(64 << 20), Some(7)).unwrap();
        let dirs: Vec<PathBuf> = run.v2.iter().chain(&run.v1).cloned().collect();
        assert!(!dirs.is_empty());
        for dir in &dirs {
            assert!(dir.is_dir(), "{}", dir.display());
        }
        if let Some(file) = &run.oom_file {
            let limit_file = file.with_file_name(if file.ends_with("memory.events") {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            });
            assert_eq!(
                fs::read_to_string(limit_file).unwrap().trim(),
                (64u64 << 20).to_string()
            );
        }
        assert!(!run.oom_killed());
        drop(run);
        for dir in &dirs {
            assert!(!dir.exists(), "{} was left behind", dir.display());
        }
    }

    /// The v1 kill (no `cgroup.kill`) gets a member, through its pidfd,
    /// and leaves a process outside the cgroup alone.
    #[test]
    fn a_v1_kill_gets_the_members_and_no_one_else() {
        use std::os::unix::process::ExitStatusExt;
        let mut v1_only = Probe::get().cgroups.clone();
        v1_only.v2 = None;
        if v1_only.v1_memory.is_none() {
            let note = "NOT TESTED on this machine: no writable v1 memory cgroup\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            return;
        }
        let run = RunCgroup::create(&v1_only, Some(64 << 20), None).unwrap();
        let sleep = || {
            std::process::Command::new("/bin/sleep")
                .arg("60")
                .spawn()
                .unwrap()
        };
        let (mut member, mut outsider) = (sleep(), sleep());
        fs::write(run.v1[0].join("cgroup.procs"), member.id().to_string()).unwrap();
        run.kill_all();
        assert_eq!(member.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(
            outsider.try_wait().unwrap().is_none(),
            "an outsider was killed"
        );
        outsider.kill().unwrap();
        outsider.wait().unwrap();
    }
}
