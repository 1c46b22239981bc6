//! The escape corpus (`fixtures/attacks/`), embedded, and what it takes to
//! run it: the header of each attack ([`Attack`]: what stops it and exactly
//! what it then shows), the host-side bait ([`Bait`]), runs in the jail,
//! with a narrowing of its layers, in an unsafe jail or outside codejail
//! ([`run_jobs`], [`run_sabotage`]), the verdict on positive evidence
//! ([`judge`]), and checks of the host afterwards ([`HostState`]). Used by
//! `codejail selftest` and the escape tests; the facade knows nothing of
//! it.
//!
//! A verdict is one of four ([`Kind`]): *contained* (no `ESCAPED` line, the
//! evidence the header states for the first of its `contained:` lines
//! whose stoppers the run applied, no process left, the bait intact), *NOT
//! CONTAINED* (an `ESCAPED` line, a process left, the bait damaged),
//! *inconclusive* (anything else: a crash, another errno, an unexpected
//! kill, no evidence) and *not tested* (no layer that stops it in this
//! run).
#![deny(missing_docs)]

mod bait;
mod header;
mod host;
mod judge;
mod suite;

pub use bait::{Bait, SECRET};
pub use header::{
    Attack, CLASSES, Containment, ESCAPE_NEEDS, Evidence, NEEDS, PRELUDE, Sabotage, Stopper, parse,
};
pub use host::{HostState, processes_with};
pub use judge::{Kind, STDERR_MAX, Seen, Verdict, judge, missing_layers, not_tested, tail};
pub use suite::{
    How, Job, Missing, Report, Target, VICTIM_CODE, context, full_jobs, host_availability,
    lacking_needs, planned_for, run_jobs, run_sabotage, sabotage_job, sabotage_off,
    single_layer_jobs, stopper_names, tmp_changed, victim_home, victim_output,
    with_userns_if_needed,
};

include!(concat!(env!("OUT_DIR"), "/attacks.rs"));

/// The whole corpus, in file-name order.
///
/// # Panics
/// If a file's header is malformed (a test checks every file).
pub fn corpus() -> Vec<Attack> {
    CORPUS
        .iter()
        .map(|(f, c)| parse(f, c).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}
