//! The verdict on one run of an attack, from what it showed: positive
//! evidence of containment, an escape, or neither.

use std::fmt;

use codejail::{Availability, Layer, LayerSet};

use crate::header::{Attack, Evidence};

/// The four verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// It showed exactly the evidence its header states for the layers
    /// applied, and the host checks passed.
    Contained,
    /// It printed `ESCAPED`, left a process behind, or damaged the host.
    NotContained,
    /// Neither: it crashed, saw another error, timed out where nothing
    /// should, or showed no evidence. Fails the run like an escape.
    Inconclusive,
    /// It can be judged only with a layer this run lacks.
    NotTested,
}

impl Kind {
    /// `contained`, `NOT CONTAINED`, `inconclusive`, `not tested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Contained => "contained",
            Kind::NotContained => "NOT CONTAINED",
            Kind::Inconclusive => "inconclusive",
            Kind::NotTested => "not tested",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most bytes of an attack's stderr a verdict keeps.
pub const STDERR_MAX: usize = 2000;

/// The verdict on one attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The attack.
    pub name: String,
    /// Its class.
    pub class: String,
    /// The verdict.
    pub kind: Kind,
    /// Contained: the evidence seen. Not contained: the escape. Inconclusive:
    /// what was expected and what was seen. Not tested: which layers are
    /// missing and why.
    pub detail: String,
    /// The stoppers the evidence came from (`landlock`, or
    /// `landlock`, `apparmor` when both were applied and give the same).
    pub evidence_from: Vec<String>,
    /// The layers the run applied (empty when it did not run).
    pub layers: LayerSet,
    /// Whether a warm interpreter ran it.
    pub warm: bool,
    /// The end of its stderr, for an inconclusive verdict.
    pub stderr: String,
    /// The layers whose absence left it untested (not tested only).
    pub missing: Vec<Layer>,
    /// What this host lacks that the attack needs in every mode (its
    /// `needs:`, e.g. `listmount`): not tested, with no layer missing.
    pub lacking: Vec<String>,
    /// Whether the attack ran (a not-tested verdict may come before a run,
    /// or from one that applied none of its stoppers).
    pub ran: bool,
}

impl Verdict {
    /// A verdict of `kind` for `attack`, with nothing else known yet.
    pub fn new(attack: &Attack, kind: Kind, detail: impl Into<String>) -> Verdict {
        Verdict {
            name: attack.name().to_owned(),
            class: attack.class.clone(),
            kind,
            detail: detail.into(),
            evidence_from: Vec::new(),
            layers: LayerSet::empty(),
            warm: false,
            stderr: String::new(),
            missing: Vec::new(),
            lacking: Vec::new(),
            ran: false,
        }
    }

    /// Whether it passes: contained.
    pub fn contained(&self) -> bool {
        self.kind == Kind::Contained
    }
}

/// What one run of an attack showed.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// Its stdout (for a `safe_exec` attack, what the code printed).
    pub stdout: &'a str,
    /// Its stderr.
    pub stderr: &'a str,
    /// Exit code, or minus the signal number.
    pub status: i32,
    /// Why codejail ended it (`KillReason::as_str`).
    pub killed_by: Option<&'a str>,
    /// The layers it applied.
    pub layers: LayerSet,
    /// Host pids of its processes still alive afterwards.
    pub survivors: &'a [i32],
    /// Damage to the host it may have done (the victim killed, the
    /// caller's file changed).
    pub damage: &'a [String],
    /// Whether a warm interpreter ran it.
    pub warm: bool,
}

/// The end of `text`, at most `max` bytes, on a character boundary.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Judges one run: contained only on the evidence the header states for
/// the first of its `contained:` lines whose stoppers the run applied.
pub fn judge(attack: &Attack, seen: &Seen<'_>) -> Verdict {
    let mut v = Verdict::new(attack, Kind::Inconclusive, "");
    v.layers = seen.layers;
    v.warm = seen.warm;
    v.ran = true;
    let lines: Vec<&str> = seen.stdout.lines().collect();
    if let Some(line) = lines.iter().find(|l| l.starts_with("ESCAPED")) {
        v.kind = Kind::NotContained;
        v.detail = line.trim().to_owned();
        return v;
    }
    if !seen.survivors.is_empty() {
        v.kind = Kind::NotContained;
        v.detail = format!("processes {:?} outlived the run", seen.survivors);
        return v;
    }
    if let Some(damage) = seen.damage.first() {
        v.kind = Kind::NotContained;
        v.detail = damage.clone();
        return v;
    }
    let Some(expected) = attack.expected(seen.layers, seen.warm) else {
        v.kind = Kind::NotTested;
        v.missing = missing_layers(attack, seen.layers, seen.warm);
        v.detail = format!(
            "the run applied {} and none of the layers that stop it; it showed: {}",
            names(seen.layers),
            shown(seen)
        );
        v.stderr = tail(seen.stderr, STDERR_MAX);
        return v;
    };
    let claims: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("CONTAINED:"))
        .map(str::trim)
        .collect();
    let ended_alone = seen.status == 0 && seen.killed_by.is_none();
    let matched = match &expected.evidence {
        Evidence::Line(text) => claims == [text.as_str()] && ended_alone,
        Evidence::Killed(reason) => seen.killed_by == Some(reason.as_str()),
        Evidence::Signal(n, _) => seen.status == -n && seen.killed_by.is_none(),
        Evidence::Reaped(marker) => lines.iter().any(|l| l.trim() == marker) && ended_alone,
    };
    // The stoppers applied that give the same evidence: the evidence came
    // from one of them.
    v.evidence_from = attack
        .contained
        .iter()
        .filter(|c| c.applies(seen.layers, seen.warm) && c.evidence == expected.evidence)
        .map(|c| c.by_names())
        .collect();
    if matched {
        v.kind = Kind::Contained;
        v.detail = expected.evidence.to_string();
        return v;
    }
    let mut detail = format!(
        "expected `{}` ({}), got {}",
        expected.evidence,
        v.evidence_from.join(" or "),
        shown(seen)
    );
    // Evidence another stopper gives: the one expected did not act.
    if let Some(other) = attack.contained.iter().find(|c| {
        c.evidence != expected.evidence
            && match &c.evidence {
                Evidence::Line(t) => claims == [t.as_str()],
                Evidence::Killed(r) => seen.killed_by == Some(r.as_str()),
                Evidence::Signal(n, _) => seen.status == -n,
                Evidence::Reaped(_) => false,
            }
    }) {
        detail.push_str(&format!(
            ": that is what {} gives, so {} did not act",
            other.by_names(),
            v.evidence_from.join(" or ")
        ));
    }
    v.detail = detail;
    v.stderr = tail(seen.stderr, STDERR_MAX);
    v
}

/// What a run showed, in words: its `CONTAINED:` lines, status and kill.
fn shown(seen: &Seen<'_>) -> String {
    let mut got: Vec<String> = seen
        .stdout
        .lines()
        .filter(|l| l.starts_with("CONTAINED:"))
        .map(|l| l.trim().to_owned())
        .collect();
    if seen.status != 0 {
        got.push(format!("status {}", seen.status));
    }
    if let Some(k) = seen.killed_by {
        got.push(format!("killed by {k}"));
    }
    if got.is_empty() {
        got.push("no evidence".into());
    }
    got.join(", ")
}

fn names(layers: LayerSet) -> String {
    if layers.is_empty() {
        "no layer".into()
    } else {
        layers.names().join(",")
    }
}

/// For each `contained:` line a run with `layers` could not have used, its
/// first layer missing from `layers` (deduplicated; lines that apply only
/// on the other path count for nothing).
pub fn missing_layers(attack: &Attack, layers: LayerSet, warm: bool) -> Vec<Layer> {
    let mut out: Vec<Layer> = attack
        .contained
        .iter()
        .filter_map(|c| c.by.iter().find(|s| !s.applied(layers, warm))?.layer())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Why `attack` cannot be judged in a run (warm or not) that applies
/// `planned`, or `None`
/// when it can: each missing layer with why (`availability` says whether
/// this host offers it; an offered layer is missing from the plan).
pub fn not_tested(
    attack: &Attack,
    planned: LayerSet,
    warm: bool,
    availability: &dyn Fn(Layer) -> Availability,
) -> Option<(Vec<Layer>, String)> {
    if attack.expected(planned, warm).is_some() {
        return None;
    }
    let missing = missing_layers(attack, planned, warm);
    let why = missing
        .iter()
        .map(|l| match availability(*l) {
            Availability::No(why) => format!("{l} missing: {why}"),
            Availability::Yes => format!("{l} missing: this jail's plan leaves it out"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some((missing, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::parse;
    use crate::suite::Report;

    fn attack() -> Attack {
        parse(
            "fs_x.py",
            "# class: filesystem\n# attack: read a file\n# success: its contents\n\
             # contained: landlock => open: EACCES\n# contained: identity => open: EACCES\n\
             # contained: netns => connect: ENETUNREACH\n",
        )
        .unwrap()
    }

    fn layers(names: &str) -> LayerSet {
        names.parse().unwrap()
    }

    fn seen<'a>(stdout: &'a str, status: i32, layers: LayerSet) -> Seen<'a> {
        Seen {
            stdout,
            stderr: "Traceback ...\nNameError: name 'opne' is not defined\n",
            status,
            killed_by: None,
            layers,
            survivors: &[],
            damage: &[],
            warm: false,
        }
    }

    #[test]
    fn contained_needs_the_exact_evidence_of_the_layer_that_acts_first() {
        let a = attack();
        let all = layers("identity,landlock,netns");
        let v = judge(&a, &seen("CONTAINED: open: EACCES\n", 0, all));
        assert_eq!(v.kind, Kind::Contained, "{v:?}");
        assert_eq!(v.evidence_from, ["landlock", "identity"]);
        let v = judge(
            &a,
            &seen("CONTAINED: open: EACCES\n", 0, layers("identity")),
        );
        assert_eq!(
            (v.kind, v.evidence_from.as_slice()),
            (Kind::Contained, ["identity".to_owned()].as_slice())
        );
    }

    #[test]
    fn a_crash_a_typo_a_wrong_errno_or_silence_is_inconclusive() {
        let a = attack();
        let all = layers("identity,landlock,netns");
        // A typo: NameError, status 1, no evidence.
        let v = judge(&a, &seen("", 1, all));
        assert_eq!(v.kind, Kind::Inconclusive);
        assert!(v.detail.contains("got status 1"), "{}", v.detail);
        assert!(v.stderr.contains("NameError"));
        // The wrong errno.
        let v = judge(&a, &seen("CONTAINED: open: EPERM\n", 0, all));
        assert_eq!(v.kind, Kind::Inconclusive);
        assert!(v.detail.contains("expected `CONTAINED: open: EACCES` (landlock or identity), got CONTAINED: open: EPERM"), "{}", v.detail);
        // Another layer's evidence: the one expected did not act.
        let v = judge(&a, &seen("CONTAINED: connect: ENETUNREACH\n", 0, all));
        assert_eq!(v.kind, Kind::Inconclusive);
        assert!(
            v.detail
                .contains("that is what netns gives, so landlock or identity did not act"),
            "{}",
            v.detail
        );
        // The evidence, then a crash.
        let v = judge(&a, &seen("CONTAINED: open: EACCES\n", 1, all));
        assert_eq!(v.kind, Kind::Inconclusive);
        // Two claims.
        let v = judge(
            &a,
            &seen("CONTAINED: open: EACCES\nCONTAINED: open: EACCES\n", 0, all),
        );
        assert_eq!(v.kind, Kind::Inconclusive);
        // A timeout where none was expected.
        let mut s = seen("CONTAINED: open: EACCES\n", -9, all);
        s.killed_by = Some("realtime");
        assert_eq!(judge(&a, &s).kind, Kind::Inconclusive);
        // Nothing at all.
        assert_eq!(judge(&a, &seen("", 0, all)).kind, Kind::Inconclusive);
    }

    #[test]
    fn an_escape_a_survivor_or_damage_is_not_contained_whatever_else_it_printed() {
        let a = attack();
        let all = layers("identity,landlock,netns");
        let v = judge(
            &a,
            &seen("CONTAINED: open: EACCES\nESCAPED read it\n", 0, all),
        );
        assert_eq!(
            (v.kind, v.detail.as_str()),
            (Kind::NotContained, "ESCAPED read it")
        );
        let mut s = seen("CONTAINED: open: EACCES\n", 0, all);
        s.survivors = &[4242];
        assert_eq!(judge(&a, &s).kind, Kind::NotContained);
        let damage = ["the caller's file was changed".to_owned()];
        let mut s = seen("CONTAINED: open: EACCES\n", 0, all);
        s.damage = &damage;
        assert_eq!(judge(&a, &s).kind, Kind::NotContained);
    }

    #[test]
    fn kills_signals_and_reaping_are_judged_exactly() {
        let a = parse(
            "res_x.py",
            "# class: resources\n# attack: a\n# success: b\n# contained: limits => killed by cpu\n# sabotage: cpu=10\n",
        )
        .unwrap();
        let mut s = seen("", -24, LayerSet::empty());
        s.killed_by = Some("cpu");
        assert_eq!(judge(&a, &s).kind, Kind::Contained);
        s.killed_by = Some("realtime");
        assert_eq!(judge(&a, &s).kind, Kind::Inconclusive);
        let k = parse(
            "k_x.py",
            "# class: kernel\n# attack: a\n# success: b\n# contained: seccomp => signal SIGSYS\n",
        )
        .unwrap();
        let sec = layers("seccomp");
        assert_eq!(judge(&k, &seen("", -31, sec)).kind, Kind::Contained);
        assert_eq!(judge(&k, &seen("", -11, sec)).kind, Kind::Inconclusive);
        let p = parse(
            "proc_x.py",
            "# class: process\n# attack: a\n# success: b\n# contained: supervisor => host clean after DETACHED\n# sabotage: outside\n",
        )
        .unwrap();
        assert_eq!(
            judge(&p, &seen("DETACHED\n", 0, LayerSet::empty())).kind,
            Kind::Contained
        );
        assert_eq!(
            judge(&p, &seen("", 0, LayerSet::empty())).kind,
            Kind::Inconclusive
        );
        let mut s = seen("DETACHED\n", 0, LayerSet::empty());
        s.survivors = &[77];
        assert_eq!(judge(&p, &s).kind, Kind::NotContained);
    }

    /// A host without Landlock, simulated: the filesystem attacks that
    /// only Landlock stops are not tested, and the report fails naming
    /// Landlock unless the operator accepts its absence.
    #[test]
    fn a_host_without_landlock_fails_naming_it_unless_accepted() {
        let no_landlock = |l: Layer| {
            if l == Layer::Landlock {
                Availability::No("not in this kernel".into())
            } else {
                Availability::Yes
            }
        };
        // As `planned_for` plans them, with the cgroup that the memory
        // attack's limit brings (and every other layer there is).
        let planned = layers(
            "identity,userns,pidns,netns,mountns,rootfs,ipcns,utsns,cgroup,no_new_privs,seccomp,no_exec",
        );
        let mut report = Report::default();
        for a in crate::corpus() {
            match not_tested(&a, planned, false, &no_landlock) {
                Some((missing, why)) => {
                    let mut v = Verdict::new(&a, Kind::NotTested, why);
                    v.missing = missing;
                    v.layers = planned;
                    report.verdicts.push(v);
                }
                None => {
                    let mut v = Verdict::new(&a, Kind::Contained, "(not run)");
                    v.layers = planned;
                    report.verdicts.push(v);
                }
            }
        }
        // Listing / is Landlock's alone to refuse (the private root's `/`
        // is a directory of its own, which its owner may list).
        let list = report
            .verdicts
            .iter()
            .find(|v| v.name == "fs_list_root_dir")
            .unwrap();
        assert_eq!(list.kind, Kind::NotTested);
        assert_eq!(list.detail, "landlock missing: not in this kernel");
        assert_eq!(list.missing, [Layer::Landlock]);
        // /etc/passwd and /etc/shadow are also the private root's (a
        // whiteout) and, for shadow, the sandbox uid's to refuse: still
        // tested.
        for name in ["fs_read_etc_passwd", "fs_read_etc_shadow"] {
            let v = report.verdicts.iter().find(|v| v.name == name).unwrap();
            assert_eq!(v.kind, Kind::Contained, "{name}");
        }
        assert!(
            report.count(Kind::NotTested) >= 5,
            "{}",
            report.count(Kind::NotTested)
        );
        let failures = report.failures(LayerSet::empty());
        assert!(!report.passed(LayerSet::empty()));
        assert!(
            failures.iter().any(|f| f.contains(
                "fs_list_root_dir (filesystem): not tested: landlock missing: not in this kernel"
            )),
            "{failures:?}"
        );
        assert!(
            failures.iter().all(|f| f.contains("landlock missing")),
            "{failures:?}"
        );
        // Accepting another layer's absence does not do.
        assert!(!report.passed(layers("apparmor,cgroup")));
        assert!(report.passed(layers("landlock")));
    }
}
