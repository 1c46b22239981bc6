//! A cgroup per run: memory and process limits, out-of-memory detection,
//! kill of the whole run, removal afterwards; and ([`host`]) where runs'
//! cgroups go on this host, set up once per process.
//!
//! Only the program and its descendants are in the run's cgroup: the
//! supervisor stays with the caller, so that a limit the program hits
//! (a tiny memory limit, a full `pids.max`) never kills or blocks the
//! process that reports on it. On cgroup v2 the supervisor clones the
//! program straight into the run's cgroup (`CLONE_INTO_CGROUP`, about
//! 0.2 ms). On v1 the program writes itself into each hierarchy's
//! `cgroup.procs` before it execs, which costs 6–16 ms on a quiet machine
//! (the kernel's thread-group lock); that is why the caller only asks for
//! this layer on v1 when a memory limit needs it.
//!
//! Which controller each limit needs (v2; v1 has one hierarchy each):
//!
//! | limit | file | controller | without it |
//! |---|---|---|---|
//! | memory | `memory.max`, `memory.swap.max` = 0 | `memory` | the run cannot start (nothing else enforces it) |
//! | nproc | `pids.max` | `pids` | skipped: `RLIMIT_NPROC` limits the run (per user namespace) |
//! | [`Spawn::cgroup_setting`](crate::Spawn::cgroup_setting) | the file named | its prefix | the run cannot start |

pub(crate) mod host;

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, PidfdFlags, Signal};

pub use self::host::{
    CgroupMode, CgroupOptions, Cgroups, DEFAULT_CONTROLLERS, DelegatedBy, Delegation, ENV, LEAF,
};
use crate::{Layer, SpawnError};

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
    // The owner in the name, as for jail directories: `codejail gc` and a
    // warm pool's start remove the cgroups of a caller that was killed.
    format!(
        "codejail-{}-{}",
        crate::owner::stamp(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// When a [`Setting`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Always: the run cannot start without it.
    Required,
    /// When its controller is delegated; another mechanism covers it
    /// otherwise (`pids.max`: `RLIMIT_NPROC`).
    IfDelegated,
    /// When the file exists (`memory.swap.max`: only with swap accounting).
    IfPresent,
}

/// One value written to a file of the run's v2 cgroup before its program
/// starts. The controller is the file name up to its first dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    pub file: String,
    pub value: String,
    pub need: Need,
}

impl Setting {
    pub(crate) fn new(file: impl Into<String>, value: impl ToString, need: Need) -> Setting {
        Setting {
            file: file.into(),
            value: value.to_string(),
            need,
        }
    }

    fn controller(&self) -> &str {
        self.file.split('.').next().unwrap_or("")
    }
}

/// The v2 settings of a run's limits, in the order they are written.
fn limit_settings(memory: Option<u64>, pids: Option<u64>) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(bytes) = memory {
        out.push(Setting::new("memory.max", bytes, Need::Required));
        out.push(Setting::new("memory.swap.max", 0, Need::IfPresent));
    }
    if let Some(n) = pids {
        out.push(Setting::new("pids.max", n, Need::IfDelegated));
    }
    out
}

/// Refuses a caller's setting that names no plain controller file, and
/// one whose controller runs cannot have (with why, as a missing layer).
/// Called before anything of the run exists.
pub(crate) fn check_settings(cg: &Cgroups, settings: &[Setting]) -> Result<(), SpawnError> {
    for s in settings {
        let controller = s.controller();
        let plain = !s.file.is_empty()
            && !s.file.contains(['/', '\0'])
            && s.file.contains('.')
            && !controller.is_empty()
            && controller != "cgroup"
            && !s.value.contains('\0');
        if !plain {
            return Err(SpawnError::Cgroup(CgroupError {
                step: "accept the setting",
                path: PathBuf::from(&s.file),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a setting names one controller file, such as `cpu.max` (not a `cgroup.` file, no `/`)",
                ),
            }));
        }
        let why = match &cg.v2 {
            Some(d) => d.why_not(controller),
            None => Some(
                cg.v2_missing
                    .clone()
                    .unwrap_or_else(|| "no cgroup v2 tree".into()),
            ),
        };
        if let Some(why) = why {
            return Err(SpawnError::LayerUnavailable {
                layer: Layer::Cgroup,
                reason: format!("the cgroup setting `{}` needs it: {why}", s.file),
            });
        }
    }
    Ok(())
}

fn write(path: &Path, value: &str, step: &'static str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(err(step, path))
}

impl RunCgroup {
    /// Creates the run's cgroup(s) with the limits and `settings` set.
    ///
    /// `memory`: bytes, swap off (v2 `memory` delegated, else v1).
    /// `pids`: processes of the run (v2 `pids` when delegated; v1 `pids`
    /// only when the run joins v1 anyway).
    pub(crate) fn create(
        cg: &Cgroups,
        memory: Option<u64>,
        pids: Option<u64>,
        settings: &[Setting],
    ) -> Result<RunCgroup, CgroupError> {
        let name = unique_name();
        let mut run = RunCgroup {
            v2: None,
            v1: Vec::new(),
            oom_file: None,
        };
        let v2_memory = memory.is_some() && cg.v2_has("memory");
        let v2_pids = pids.is_some() && cg.v2_has("pids");
        if let Some(delegation) = &cg.v2 {
            let dir = delegation.base.join(&name);
            fs::create_dir(&dir).map_err(err("create the directory", &dir))?;
            run.v2 = Some(dir.clone());
            let limits = limit_settings(memory.filter(|_| v2_memory), pids);
            for s in limits.iter().chain(settings) {
                let file = dir.join(&s.file);
                let skip = match s.need {
                    Need::Required => false,
                    Need::IfDelegated => !delegation.has(s.controller()),
                    Need::IfPresent => !file.exists(),
                };
                if !skip {
                    write(&file, &s.value, "write a controller file")?;
                }
            }
            if v2_memory {
                run.oom_file = Some(dir.join("memory.events"));
            }
        }
        if let (false, Some(bytes)) = (v2_memory, memory) {
            let Some(base) = &cg.v1_memory else {
                let base = cg.v2.as_ref().map_or(PathBuf::new(), |d| d.base.clone());
                return Err(CgroupError {
                    step: "find a memory controller for the memory limit",
                    path: base,
                    source: io::Error::new(
                        io::ErrorKind::Unsupported,
                        cg.why_no_memory().unwrap_or_default(),
                    ),
                });
            };
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
        // A run with the layer but nothing else to join gets a v1 memory
        // cgroup of its own (no limit): its kill of the run, as on v2.
        if run.v2.is_none() && run.v1.is_empty() {
            if let Some(base) = &cg.v1_memory {
                let dir = base.join(&name);
                fs::create_dir(&dir).map_err(err("create the directory", &dir))?;
                run.v1.push(dir);
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

    /// The v1 `cgroup.procs` files, opened for the program to join.
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
    /// Elsewhere (v1 groups, also beside a v2 one on a hybrid host, or a
    /// kernel without `cgroup.kill`), each member is killed through a
    /// pidfd, never by number: a pid read from `cgroup.procs` may be
    /// reaped and reused by an unrelated process before the kill. See
    /// [`kill_members`].
    pub(crate) fn kill_all(&self) {
        let v2_killed = self
            .v2
            .as_ref()
            .is_some_and(|dir| fs::write(dir.join("cgroup.kill"), "1").is_ok());
        let by_member = self.v2.iter().filter(|_| !v2_killed).chain(&self.v1);
        for dir in by_member {
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

/// Removes an empty cgroup directory, retrying while its last tasks are
/// released (which can lag behind their reaping). Gone already is fine.
fn remove(dir: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    last
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in self.v2.iter().chain(&self.v1) {
            // The run's processes are reaped before this runs, but for
            // one in uninterruptible sleep (killed, it dies when its wait
            // ends): then the directory is removed once it is empty.
            if let Err(e) = remove(dir) {
                tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove the run's cgroup yet; it is removed once its last process is gone");
                crate::leftover::remove_later(dir.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Probe;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("/bin/sleep")
            .arg("60")
            .spawn()
            .unwrap()
    }

    /// The signal that ended `child` within 5 s; `None` if it still runs
    /// (then it is killed).
    fn end_signal(child: &mut std::process::Child) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        for _ in 0..500 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.signal();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    #[test]
    fn a_run_cgroup_is_created_with_its_limits_and_removed_on_drop() {
        let cgroups = &Probe::get().cgroups;
        if !codejail_tests::require("cgroup_memory", cgroups.why_no_memory().as_deref()) {
            return;
        }
        let run = RunCgroup::create(cgroups, Some(64 << 20), Some(7), &[]).unwrap();
        let dirs: Vec<PathBuf> = run.v2.iter().chain(&run.v1).cloned().collect();
        assert!(!dirs.is_empty());
        for dir in &dirs {
            assert!(dir.is_dir(), "{}", dir.display());
        }
        let file = run.oom_file.as_ref().expect("a memory limit is in force");
        let limit_file = file.with_file_name(if file.ends_with("memory.events") {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        });
        assert_eq!(
            fs::read_to_string(limit_file).unwrap().trim(),
            (64u64 << 20).to_string()
        );
        assert!(!run.oom_killed());
        drop(run);
        for dir in &dirs {
            assert!(!dir.exists(), "{} was left behind", dir.display());
        }
    }

    /// A memory limit with no memory controller anywhere is an error, never
    /// a run without the limit.
    #[test]
    fn a_memory_limit_without_a_memory_controller_is_refused() {
        let mut cg = Probe::get().cgroups.clone();
        cg.v1_memory = None;
        if let Some(d) = &mut cg.v2 {
            d.controllers.retain(|c| c != "memory");
        }
        let e = RunCgroup::create(&cg, Some(64 << 20), None, &[]).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::Unsupported, "{e}");
    }

    #[test]
    fn settings_name_one_delegated_controller_file() {
        let cg = Cgroups {
            v2: Some(Delegation {
                base: "/sys/fs/cgroup/x".into(),
                by: DelegatedBy::Configured,
                leaf: None,
                controllers: vec!["cpu".into()],
                missing: vec![("io".into(), "io is not delegated here".into())],
            }),
            ..Cgroups::default()
        };
        let one = |file: &str| check_settings(&cg, &[Setting::new(file, "1", Need::Required)]);
        assert!(one("cpu.max").is_ok());
        for bad in ["cgroup.procs", "cpu/../../x", "", "cpumax", ".max"] {
            assert!(
                matches!(one(bad), Err(SpawnError::Cgroup(e)) if e.source.kind() == io::ErrorKind::InvalidInput),
                "{bad}"
            );
        }
        match one("io.max") {
            Err(SpawnError::LayerUnavailable { layer, reason }) => {
                assert_eq!(layer, Layer::Cgroup);
                assert!(reason.contains("io.max") && reason.contains("io is not delegated"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The v1 kill (no `cgroup.kill`) gets a member, through its pidfd,
    /// and leaves a process outside the cgroup alone.
    #[test]
    fn a_v1_kill_gets_the_members_and_no_one_else() {
        let mut v1_only = Probe::get().cgroups.clone();
        v1_only.v2 = None;
        if v1_only.v1_memory.is_none() {
            let note = "NOT TESTED on this machine: no writable v1 memory cgroup\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            return;
        }
        let run = RunCgroup::create(&v1_only, Some(64 << 20), None, &[]).unwrap();
        let (mut member, mut outsider) = (sleeper(), sleeper());
        fs::write(run.v1[0].join("cgroup.procs"), member.id().to_string()).unwrap();
        run.kill_all();
        assert_eq!(end_signal(&mut member), Some(libc::SIGKILL));
        assert!(
            outsider.try_wait().unwrap().is_none(),
            "an outsider was killed"
        );
        outsider.kill().unwrap();
        outsider.wait().unwrap();
    }

    /// On a hybrid host a run has a v2 cgroup and v1 ones: a successful
    /// `cgroup.kill` of the v2 one does not spare a member of a v1 one.
    #[test]
    fn a_hybrid_kill_gets_the_v1_members_after_cgroup_kill() {
        let cg = &Probe::get().cgroups;
        if cg.v2.is_none() || cg.v1_memory.is_none() {
            let note = "NOT TESTED on this machine: no hybrid host (a usable v2 tree and a writable v1 memory cgroup)\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            return;
        }
        let run = RunCgroup::create(cg, Some(64 << 20), None, &[]).unwrap();
        assert!(run.v2.is_some() && !run.v1.is_empty(), "{run:?}");
        let mut member = sleeper();
        // In the v1 group only, as a process that left the v2 one would be.
        fs::write(run.v1[0].join("cgroup.procs"), member.id().to_string()).unwrap();
        run.kill_all();
        assert_eq!(end_signal(&mut member), Some(libc::SIGKILL));
    }
}
