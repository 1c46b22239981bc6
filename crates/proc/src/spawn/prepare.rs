//! From a [`Spawn`] to what the children need, all built before the
//! clone: the program's path, the confinement steps of the planned layers,
//! and every C string and rlimit (`child::Prepared`).

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::holder;
use super::{DEFAULT_PATH, Spawn};
use crate::SpawnError;
use crate::child::{Confine, Prepared};
use crate::fsrules;
use crate::layers::{Layer, LayerSet};
use crate::probe::{Needs, Probe};

/// A run's input, checked, and what its children need, built; nothing
/// exists yet that would have to be undone.
pub(super) struct Plan {
    /// The program's absolute path.
    pub program: PathBuf,
    pub layers: LayerSet,
    /// The Landlock ABI, when the Landlock layer applies.
    pub landlock_abi: Option<i32>,
    pub ruleset: Option<OwnedFd>,
    /// The `CLONE_NEW*` flags of the run's namespaces (its holder's).
    pub namespaces: u64,
    pub prep: Prepared,
}

impl Spawn {
    /// Resolves the program, plans the layers, builds the Landlock ruleset
    /// and every C string: all of a run's bad input is refused here.
    pub(super) fn plan(&self) -> Result<Plan, SpawnError> {
        let program = self.resolve_program()?;
        let probe = Probe::get();
        let layers = probe.plan(self.policy, self.needs())?;
        let landlock_abi = probe
            .landlock_abi
            .filter(|_| layers.contains(Layer::Landlock));
        let ruleset = match landlock_abi {
            Some(abi) => Some(self.fs.ruleset(abi)?),
            None => {
                self.fs.check()?;
                None
            }
        };
        let mut confine = self.confine(probe, layers)?;
        confine.mount_access = landlock_abi.map_or(0, fsrules::read_write_access);
        let namespaces = confine.namespaces;
        let prep = self.prepare(&program, confine, super::nproc_overhead(layers))?;
        Ok(Plan {
            program,
            layers,
            landlock_abi,
            ruleset,
            namespaces,
            prep,
        })
    }

    pub(super) fn resolve_program(&self) -> Result<PathBuf, SpawnError> {
        let not_found = || SpawnError::NotFound {
            program: self.program.clone(),
        };
        if self.program.as_os_str().as_bytes().contains(&b'/') {
            return std::path::absolute(&self.program).map_err(|_| not_found());
        }
        let path = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.program))
            .find(|candidate| candidate.is_file())
            .ok_or_else(not_found)
    }

    /// What this run asks for that only some layers can give.
    pub(super) fn needs(&self) -> Needs {
        Needs {
            cgroup: self.limits.memory().is_some(),
            mount_ns: !self.tmpfs.is_empty(),
            apparmor_profile: self.apparmor.is_some(),
        }
    }

    /// The confinement steps for the planned layers.
    pub(super) fn confine(&self, probe: &Probe, layers: LayerSet) -> Result<Confine, SpawnError> {
        let flag = |layer, flag: libc::c_int| {
            if layers.contains(layer) {
                flag as u64
            } else {
                0
            }
        };
        let namespaces = flag(Layer::UserNs, libc::CLONE_NEWUSER)
            | flag(Layer::PidNs, libc::CLONE_NEWPID)
            | flag(Layer::NetNs, libc::CLONE_NEWNET)
            | flag(Layer::MountNs, libc::CLONE_NEWNS)
            | flag(Layer::IpcNs, libc::CLONE_NEWIPC)
            | flag(Layer::UtsNs, libc::CLONE_NEWUTS);
        let seccomp = if layers.contains(Layer::Seccomp) {
            Some(seccomp_filter().map_err(SpawnError::Seccomp)?.to_vec())
        } else {
            None
        };
        Ok(Confine {
            namespaces,
            pid_ns: layers.contains(Layer::PidNs),
            hostname: layers.contains(Layer::UtsNs),
            identity: layers.contains(Layer::Identity).then_some(self.identity),
            // In an unprivileged user namespace setgroups is denied.
            setgroups: probe.euid == 0 || !layers.contains(Layer::UserNs),
            no_new_privs: layers.contains(Layer::NoNewPrivs),
            landlock: layers.contains(Layer::Landlock),
            seccomp,
            mounts: self
                .tmpfs
                .iter()
                .map(|m| {
                    let target = CString::new(m.target.as_os_str().as_bytes());
                    match (target, CString::new(m.data())) {
                        (Ok(target), Ok(data)) => Ok(crate::child::Mount {
                            target,
                            data,
                            limits_bytes: m.bytes > 0,
                            limits_inodes: m.inodes > 0,
                        }),
                        _ => Err(SpawnError::Nul {
                            what: "tmpfs target",
                        }),
                    }
                })
                .collect::<Result<_, _>>()?,
            mount_access: 0,
            apparmor_exec: match (&self.apparmor, layers.contains(Layer::AppArmor)) {
                (Some(name), true) => {
                    Some(
                        CString::new(format!("exec {name}")).map_err(|_| SpawnError::Nul {
                            what: "AppArmor profile",
                        })?,
                    )
                }
                _ => None,
            },
        })
    }

    /// The ids of the run's user namespace: the sandbox ids (root caller)
    /// or the caller's own, one each.
    pub(super) fn id_maps(&self, probe: &Probe) -> holder::IdMaps {
        let (uid, gid) = if probe.euid == 0 {
            self.identity
        } else {
            (probe.euid, rustix::process::getegid().as_raw())
        };
        holder::IdMaps {
            uid,
            gid,
            deny_setgroups: probe.euid != 0,
        }
    }

    pub(super) fn prepare(
        &self,
        program: &Path,
        confine: Confine,
        nproc_extra: u64,
    ) -> Result<Prepared, SpawnError> {
        let cstr = |what: &'static str, bytes: &[u8]| {
            CString::new(bytes).map_err(|_| SpawnError::Nul { what })
        };
        let arg0 = self.arg0.as_deref().unwrap_or(self.program.as_os_str());
        let argv = std::iter::once(arg0)
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| cstr("argument", a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut envp = self
            .env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.as_bytes().contains(&b'=') {
                    return Err(SpawnError::Nul {
                        what: "environment",
                    });
                }
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr("environment", &kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            envp.push(cstr(
                "environment",
                format!("PATH={DEFAULT_PATH}").as_bytes(),
            )?);
        }
        let cwd = self.cwd.as_deref().unwrap_or(Path::new("/"));
        let cwd = cstr("cwd", cwd.as_os_str().as_bytes())?;
        Ok(Prepared::new(
            cstr("program", program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd,
            self.limits.rlimits(nproc_extra),
            confine,
        ))
    }
}

/// The compiled seccomp filter, built once per process.
fn seccomp_filter() -> Result<&'static [libc::sock_filter], String> {
    static FILTER: std::sync::OnceLock<Result<Vec<libc::sock_filter>, String>> =
        std::sync::OnceLock::new();
    FILTER
        .get_or_init(crate::seccomp::compile)
        .as_deref()
        .map_err(Clone::clone)
}
