//! Confinement layers, sets of them, and the policy that picks them.

use std::fmt;
use std::str::FromStr;

/// One independent confinement layer of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Layer {
    /// The program runs as a sandbox uid/gid with no supplementary groups
    /// (a caller with `CAP_SETUID`), never as host uid 0.
    Identity,
    /// A user namespace of its own, with a one-id mapping; it also makes
    /// `RLIMIT_NPROC` count this run's processes only (Linux ≥ 5.14).
    UserNs,
    /// A pid namespace whose init is the run's holder (a process that only
    /// keeps the run's namespaces): killing it ends every process of the
    /// run. The supervisor stays outside, out of the run's sight and reach.
    PidNs,
    /// A network namespace with no interface up: no network at all.
    NetNs,
    /// A mount namespace of its own.
    MountNs,
    /// A private root filesystem, built in the run's mount namespace: a
    /// small tmpfs holding read-only binds of what the program may read or
    /// execute, its home, a minimal `/dev`, a fresh procfs of the run's pid
    /// namespace, and nothing else of the host (see `crate::root`). Needs
    /// [`Layer::MountNs`].
    RootFs,
    /// An IPC namespace (System V IPC, POSIX message queues).
    IpcNs,
    /// A UTS namespace: the host name reads `codejail`.
    UtsNs,
    /// A cgroup of its own: memory limit, process limit, kill of the run.
    Cgroup,
    /// `PR_SET_NO_NEW_PRIVS`: exec cannot gain privileges (set-uid files).
    NoNewPrivs,
    /// Landlock: filesystem access limited to the given paths; TCP bind and
    /// connect denied (ABI ≥ 4); signals and abstract unix sockets scoped
    /// to the run (ABI ≥ 6).
    Landlock,
    /// A seccomp-bpf filter refusing the kernel surface in [`crate::seccomp`].
    Seccomp,
    /// An AppArmor profile the program switches to at exec
    /// ([`Spawn::apparmor_profile`](crate::Spawn::apparmor_profile)); only
    /// where the kernel has AppArmor and a profile is given.
    AppArmor,
    /// No new programs: the supervisor answers every `execve` and
    /// `execveat` of the run with `EACCES` but the program's own first one
    /// (seccomp user notification; see [`crate::seccomp::Filter::ExecGuard`]).
    /// Left out when the run allows exec ([`Spawn::allow_exec`](crate::Spawn::allow_exec)).
    NoExec,
}

impl Layer {
    /// Every layer, in the order the child applies them (`no_exec` acts
    /// last, at the first `execve`, though the supervisor installs it
    /// first).
    pub const ALL: [Layer; 14] = [
        Layer::Identity,
        Layer::UserNs,
        Layer::PidNs,
        Layer::NetNs,
        Layer::MountNs,
        Layer::RootFs,
        Layer::IpcNs,
        Layer::UtsNs,
        Layer::Cgroup,
        Layer::NoNewPrivs,
        Layer::AppArmor,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::NoExec,
    ];

    /// The namespaces besides the user namespace. Without privilege each of
    /// them can be made only inside a user namespace of the caller's.
    pub const OTHER_NAMESPACES: [Layer; 5] = [
        Layer::PidNs,
        Layer::NetNs,
        Layer::MountNs,
        Layer::IpcNs,
        Layer::UtsNs,
    ];

    /// The stable short name: `identity`, `userns`, `pidns`, `netns`,
    /// `mountns`, `rootfs`, `ipcns`, `utsns`, `cgroup`, `no_new_privs`, `apparmor`,
    /// `landlock`, `seccomp`, `no_exec`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Identity => "identity",
            Layer::UserNs => "userns",
            Layer::PidNs => "pidns",
            Layer::NetNs => "netns",
            Layer::MountNs => "mountns",
            Layer::RootFs => "rootfs",
            Layer::IpcNs => "ipcns",
            Layer::UtsNs => "utsns",
            Layer::Cgroup => "cgroup",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::AppArmor => "apparmor",
            Layer::NoExec => "no_exec",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layer name that is not one of [`Layer::name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown confinement layer `{0}`; known: identity, userns, pidns, netns, mountns, rootfs, ipcns, utsns, cgroup, no_new_privs, apparmor, landlock, seccomp, no_exec"
)]
pub struct UnknownLayer(pub String);

impl FromStr for Layer {
    type Err = UnknownLayer;

    fn from_str(s: &str) -> Result<Layer, UnknownLayer> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| UnknownLayer(s.to_owned()))
    }
}

/// A set of layers.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LayerSet(u32);

impl LayerSet {
    /// No layer.
    pub const fn empty() -> LayerSet {
        LayerSet(0)
    }

    /// Every layer.
    pub fn all() -> LayerSet {
        Layer::ALL.into_iter().collect()
    }

    /// Whether `layer` is in the set.
    pub fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    /// Adds `layer`.
    pub fn insert(&mut self, layer: Layer) {
        self.0 |= layer.bit();
    }

    /// Removes `layer`.
    pub fn remove(&mut self, layer: Layer) {
        self.0 &= !layer.bit();
    }

    /// The set without `layer`.
    pub fn without(mut self, layer: Layer) -> LayerSet {
        self.remove(layer);
        self
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers of the set, in [`Layer::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        Layer::ALL.into_iter().filter(move |l| self.contains(*l))
    }

    /// The names of the layers, in order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Layer::name).collect()
    }
}

impl FromIterator<Layer> for LayerSet {
    fn from_iter<I: IntoIterator<Item = Layer>>(iter: I) -> LayerSet {
        let mut set = LayerSet::empty();
        for l in iter {
            set.insert(l);
        }
        set
    }
}

impl fmt::Debug for LayerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for LayerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl FromStr for LayerSet {
    type Err = UnknownLayer;

    /// Parses `landlock,seccomp` (commas, optional spaces).
    fn from_str(s: &str) -> Result<LayerSet, UnknownLayer> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Layer::from_str)
            .collect()
    }
}

/// Which layers a run asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Every layer this machine offers to this caller.
    #[default]
    Auto,
    /// Every layer this machine offers, and these must be among them: a
    /// missing one is an error that names it and says why (fail closed).
    Require(LayerSet),
    /// Exactly these layers, each required; nothing else. For tests that
    /// show what one layer stops on its own.
    Only(LayerSet),
    /// No confinement at all (CodeJail's unsafe mode): only rlimits, the
    /// deadline, the output cap and the kill of the run.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for layer in Layer::ALL {
            assert_eq!(layer.name().parse::<Layer>(), Ok(layer));
        }
        let set: LayerSet = "landlock, seccomp".parse().unwrap();
        assert_eq!(set.names(), ["landlock", "seccomp"]);
        assert_eq!(set.to_string(), "landlock,seccomp");
        assert!("landlock,apparmour".parse::<LayerSet>().is_err());
    }

    #[test]
    fn set_operations() {
        let mut set = LayerSet::all();
        assert!(set.contains(Layer::Seccomp));
        set.remove(Layer::Seccomp);
        assert!(!set.contains(Layer::Seccomp));
        assert_eq!(set.iter().count(), Layer::ALL.len() - 1);
        assert!(LayerSet::empty().is_empty());
    }
}
