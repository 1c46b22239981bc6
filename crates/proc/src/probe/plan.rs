//! The layers of a run, from a policy and what the run needs.

use crate::SpawnError;
use crate::layers::{Layer, LayerSet, Policy};

use super::{Availability, Needs, Probe};

impl Probe {
    /// Why `layer` is not in a plan: unavailable here, or left out.
    fn missing(&self, layer: Layer, because: &str) -> SpawnError {
        let why = match self.availability(layer) {
            Availability::No(why) => why.clone(),
            Availability::Yes => "the policy leaves it out".into(),
        };
        let reason = if because.is_empty() {
            why
        } else {
            format!("{because}: {why}")
        };
        SpawnError::LayerUnavailable { layer, reason }
    }

    /// `by` needs `layer`, which is not in the plan: unavailable here, or
    /// left out by the policy.
    fn needed(&self, layer: Layer, by: &'static str, fix: &'static str) -> SpawnError {
        let reason = match self.availability(layer) {
            Availability::No(why) => why.clone(),
            Availability::Yes => "the policy leaves it out".into(),
        };
        SpawnError::LayerNeeded {
            layer,
            by,
            reason,
            fix,
        }
    }

    /// The layers a run gets under `policy`, or the first required layer
    /// that is missing and why ([`SpawnError::LayerUnavailable`]).
    ///
    /// [`Policy::Auto`] leaves the cgroup out unless `needs` asks for one or
    /// a delegated v2 tree with `memory` or `pids` makes it cheap and
    /// useful: joining a v1 cgroup costs milliseconds, and killing the run
    /// is the pid namespace's job already.
    ///
    /// # Errors
    /// [`SpawnError::LayerUnavailable`].
    pub fn plan(&self, policy: Policy, needs: Needs) -> Result<LayerSet, SpawnError> {
        let available = self.available();
        let require = |set: LayerSet| match set.iter().find(|l| !available.contains(*l)) {
            Some(layer) => Err(self.missing(layer, "")),
            None => Ok(()),
        };
        let (mut set, required) = match policy {
            Policy::None => (LayerSet::empty(), LayerSet::empty()),
            Policy::Auto => (available, LayerSet::empty()),
            Policy::Require(req) => {
                require(req)?;
                (available, req)
            }
            Policy::Only(only) => {
                require(only)?;
                (only, only)
            }
        };
        let cheap_and_useful = self.cgroups.v2_has("memory") || self.cgroups.v2_has("pids");
        if !matches!(policy, Policy::Only(_))
            && !needs.cgroup
            && !needs.cgroup_settings
            && !required.contains(Layer::Cgroup)
            && !cheap_and_useful
        {
            set.remove(Layer::Cgroup);
        }
        if needs.cgroup && !set.contains(Layer::Cgroup) {
            return Err(self.needed(
                Layer::Cgroup,
                "the memory limit",
                "set the memory limit to 0 (the vmem limit still bounds each process), or give this caller a cgroup it can write (codejail doctor says what is missing)",
            ));
        }
        if let (true, Some(why)) = (needs.cgroup, self.cgroups.why_no_memory()) {
            return Err(SpawnError::LayerUnavailable {
                layer: Layer::Cgroup,
                reason: format!("a memory limit needs the memory controller: {why}"),
            });
        }
        if needs.cgroup_settings {
            if !set.contains(Layer::Cgroup) {
                return Err(self.missing(Layer::Cgroup, "the run's cgroup settings need it"));
            }
            if let (None, Some(why)) = (&self.cgroups.v2, &self.cgroups.v2_missing) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::Cgroup,
                    reason: format!("the run's cgroup settings need a cgroup v2 tree: {why}"),
                });
            }
        }
        if !needs.apparmor_profile && set.contains(Layer::AppArmor) {
            if required.contains(Layer::AppArmor) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::AppArmor,
                    reason: "no AppArmor profile was given for the run".into(),
                });
            }
            set.remove(Layer::AppArmor);
        }
        // Without privilege, the other namespaces hang off a user namespace.
        let ns = Layer::OTHER_NAMESPACES;
        if !self.cap_sys_admin
            && ns.iter().any(|l| set.contains(*l))
            && !set.contains(Layer::UserNs)
        {
            if matches!(policy, Policy::Only(_)) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::UserNs,
                    reason: "the other namespaces need it without privilege".into(),
                });
            }
            for l in ns {
                set.remove(l);
            }
        }
        // The private root is built in the run's mount namespace.
        if set.contains(Layer::RootFs) && !set.contains(Layer::MountNs) {
            if required.contains(Layer::RootFs) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::RootFs,
                    reason: "it is built in the run's mount namespace, which the policy leaves out"
                        .into(),
                });
            }
            set.remove(Layer::RootFs);
        }
        // A root caller never runs the program as uid 0.
        if self.euid == 0 && set.contains(Layer::UserNs) && self.can_setuid {
            set.insert(Layer::Identity);
        }
        if needs.mount_ns && !set.contains(Layer::MountNs) {
            return Err(self.needed(
                Layer::MountNs,
                "the disk quota of tmp/",
                "set the disk and files limits to 0, or allow this caller mount namespaces (codejail doctor says what is missing)",
            ));
        }
        if needs.exec && set.contains(Layer::NoExec) {
            if required.contains(Layer::NoExec) {
                return Err(SpawnError::LayerUnavailable {
                    layer: Layer::NoExec,
                    reason: "the run allows starting other programs (allow_exec)".into(),
                });
            }
            set.remove(Layer::NoExec);
        }
        // The supervisor sets no_new_privs to install the exec guard, and
        // the program inherits it.
        if set.contains(Layer::Landlock)
            || set.contains(Layer::Seccomp)
            || set.contains(Layer::NoExec)
        {
            set.insert(Layer::NoNewPrivs);
        }
        Ok(set)
    }
}
