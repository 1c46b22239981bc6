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
use crate::child::{Confine, Prepared, Root};
use crate::fsrules;
use crate::layers::{Layer, LayerSet};
use crate::probe::{Needs, Probe};
use crate::root;
use crate::seccomp::Filter;

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
        let mut confine = self.confine(probe, layers, landlock_abi)?;
        confine.mount_access = landlock_abi.map_or(0, fsrules::read_write_access);
        if layers.contains(Layer::RootFs) {
            confine.root = Some(self.root(probe, layers, &program)?);
        }
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
            cgroup_settings: !self.cgroup_settings.is_empty(),
            mount_ns: !self.tmpfs.is_empty(),
            apparmor_profile: self.apparmor.is_some(),
            exec: self.allow_exec,
        }
    }

    /// The confinement steps for the planned layers (`landlock_abi`: the
    /// kernel's, when the Landlock layer applies).
    pub(super) fn confine(
        &self,
        probe: &Probe,
        layers: LayerSet,
        landlock_abi: Option<i32>,
    ) -> Result<Confine, SpawnError> {
        let flag = |layer, flag: libc::c_int| {
            if layers.contains(layer) {
                flag as u64
            } else {
                0
            }
        };
        // The mount namespace is the supervisor's own (`unshare`), not the
        // holder's: the program's pivot_root into a private root moves
        // every process of its mount namespace, and the holder must keep
        // the root it exec'd `cat` from.
        let namespaces = flag(Layer::UserNs, libc::CLONE_NEWUSER)
            | flag(Layer::PidNs, libc::CLONE_NEWPID)
            | flag(Layer::NetNs, libc::CLONE_NEWNET)
            | flag(Layer::IpcNs, libc::CLONE_NEWIPC)
            | flag(Layer::UtsNs, libc::CLONE_NEWUTS);
        let seccomp = if layers.contains(Layer::Seccomp) {
            let filter = Filter::for_run(layers, landlock_abi);
            Some(compiled(filter)?.to_vec())
        } else {
            None
        };
        let exec_guard = if layers.contains(Layer::NoExec) {
            Some(exec_guard_filter()?.to_vec())
        } else {
            None
        };
        Ok(Confine {
            namespaces,
            mount_ns: layers.contains(Layer::MountNs),
            pid_ns: layers.contains(Layer::PidNs),
            hostname: layers.contains(Layer::UtsNs),
            identity: layers.contains(Layer::Identity).then_some(self.identity),
            // In an unprivileged user namespace setgroups is denied.
            setgroups: probe.euid == 0 || !layers.contains(Layer::UserNs),
            no_new_privs: layers.contains(Layer::NoNewPrivs),
            landlock: layers.contains(Layer::Landlock),
            seccomp,
            exec_guard,
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
            root: None,
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

    /// The plan of the run's private root (the `rootfs` layer).
    fn root(&self, probe: &Probe, layers: LayerSet, program: &Path) -> Result<Root, SpawnError> {
        let switches = layers.contains(Layer::Identity);
        let program_ids = if switches {
            self.identity
        } else {
            (probe.euid, rustix::process::getegid().as_raw())
        };
        let in_userns = layers.contains(Layer::UserNs);
        Ok(root::plan(&root::Input {
            fs: &self.fs,
            tmpfs: &self.tmpfs,
            program,
            cwd: self.cwd.as_deref().unwrap_or(Path::new("/")),
            program_ids,
            caller_ids: !switches,
            // A root caller's own ids are not mapped in the user namespace.
            fs_ids: (probe.euid == 0 && in_userns).then_some(program_ids),
            landlock: layers.contains(Layer::Landlock),
            // Only a pid namespace of the run's own: a procfs of the
            // caller's would show every process of the host.
            proc: probe.procfs.is_yes() && layers.contains(Layer::PidNs),
        })?)
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

/// A compiled seccomp filter, built once per process.
fn compiled(filter: Filter) -> Result<&'static [libc::sock_filter], SpawnError> {
    type Cache = std::sync::OnceLock<Result<Vec<libc::sock_filter>, String>>;
    static CACHE: [Cache; 3] = [Cache::new(), Cache::new(), Cache::new()];
    let slot = match filter {
        Filter::Main => &CACHE[0],
        Filter::MainNoUnixSockets => &CACHE[1],
        Filter::ExecGuard => &CACHE[2],
    };
    slot.get_or_init(|| crate::seccomp::compile(filter))
        .as_deref()
        .map_err(|e| SpawnError::Seccomp(e.clone()))
}

/// The supervisor's exec guard (the `no_exec` layer), compiled once.
pub(crate) fn exec_guard_filter() -> Result<&'static [libc::sock_filter], SpawnError> {
    compiled(Filter::ExecGuard)
}
