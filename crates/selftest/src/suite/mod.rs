//! Running attacks: in the jail with its own layers, with a narrowing of
//! them, in an unsafe jail, or outside codejail; in parallel, with the
//! bait set up around them and the host compared before and after.
//!
//! `plan`: which jobs, with which layers; `run`: running them and judging
//! each; `victim`: the concurrency class's victim run; `outside`: the
//! sabotage mode's runs outside codejail.

mod outside;
mod plan;
mod run;
mod victim;

pub use plan::{
    full_jobs, host_availability, lacking_needs, planned_for, sabotage_job, sabotage_off,
    single_layer_jobs, stopper_names, with_userns_if_needed,
};
pub use run::{run_jobs, run_sabotage};
pub use victim::{VICTIM_CODE, context, tmp_changed, victim_home, victim_output};

use std::path::Path;

use codejail::{Jail, LayerSet, Warm};

use crate::header::Attack;
use crate::judge::{Kind, Verdict};

/// Where attacks run.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The jail under test.
    pub jail: &'a Jail,
    /// Its warm pool: runs with the jail's own layers go through it.
    pub warm: Option<&'a Warm>,
    /// A jail of the same program configured `unsafe`, for runs with no
    /// layer at all ([`How::Unsafe`]).
    pub unsafe_jail: Option<&'a Jail>,
    /// Where both make their jail directories.
    pub jail_parent: &'a Path,
    /// Once cancelled, no further attack starts and the runs under way end
    /// (their runs are given it); the report is then partial.
    pub cancel: Option<&'a codejail::Cancel>,
}

/// How one attack runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// With the jail's own layers (through the warm pool when there is
    /// one).
    Full,
    /// With only these layers: a narrowing of the jail's (cold).
    Only(LayerSet),
    /// In the unsafe jail: no layer, the supervisor and the limits only.
    Unsafe,
    /// As a plain child process of the caller, outside codejail (the
    /// sabotage mode, where the protection cannot be switched off); with
    /// `tty`, its stderr a pseudo-terminal of the suite's own.
    Outside {
        /// stderr is a pseudo-terminal.
        tty: bool,
    },
}

/// One attack to run, and how.
#[derive(Clone, Debug)]
pub struct Job {
    /// The attack (its limits or `contained:` lines may be changed from
    /// the corpus's: the sabotage and single-layer modes).
    pub attack: Attack,
    /// How it runs.
    pub how: How,
}

/// What this caller or host lacks for a run: (requirement for the test
/// gate, why).
pub type Missing = (String, String);

/// The result of running attacks.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One verdict per job, in the jobs' order.
    pub verdicts: Vec<Verdict>,
    /// What the runs left on the host, or did to the bait; empty when
    /// clean.
    pub host: Vec<String>,
}

impl Report {
    /// How many verdicts are of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.verdicts.iter().filter(|v| v.kind == kind).count()
    }

    /// The layers the verdicts rest on: every layer applied by a run that
    /// was judged contained.
    pub fn layers(&self) -> LayerSet {
        let mut all = LayerSet::empty();
        for v in self.verdicts.iter().filter(|v| v.contained()) {
            for l in v.layers.iter() {
                all.insert(l);
            }
        }
        all
    }

    /// Whether a not-tested verdict is accepted: every layer it misses is
    /// in `accepted`, or it misses no layer but what it goes for is not on
    /// this host (its `needs:`: a system call the kernel lacks, a file it
    /// does not have), so that there is nothing to attack.
    pub fn is_accepted(v: &Verdict, accepted: LayerSet) -> bool {
        v.kind == Kind::NotTested
            && if v.missing.is_empty() {
                !v.lacking.is_empty()
            } else {
                v.missing.iter().all(|l| accepted.contains(*l))
            }
    }

    /// Everything that fails the run, one line each: an attack not
    /// contained, inconclusive, or not tested (unless each layer it misses
    /// is in `accept_missing`), and the host not clean.
    pub fn failures(&self, accept_missing: LayerSet) -> Vec<String> {
        let mut out: Vec<String> = self
            .verdicts
            .iter()
            .filter(|v| !v.contained() && !Report::is_accepted(v, accept_missing))
            .map(|v| {
                let mut line = format!("{} ({}): {}: {}", v.name, v.class, v.kind, v.detail);
                if !v.stderr.is_empty() {
                    line.push_str(&format!("\n  stderr: {}", v.stderr.replace('\n', "\n  ")));
                }
                line
            })
            .collect();
        out.extend(self.host.iter().map(|h| format!("host: {h}")));
        out
    }

    /// Whether every attack was contained (or not tested, accepted) and
    /// the host is clean.
    pub fn passed(&self, accept_missing: LayerSet) -> bool {
        self.failures(accept_missing).is_empty()
    }
}
