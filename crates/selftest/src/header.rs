//! An attack's header: what it tries, and exactly what it sees when each
//! layer stops it.

use std::fmt;

use codejail::{Layer, LayerSet, LimitName};

/// What stops an attack: a confinement layer, or one of the two
/// protections every run has whatever its layers (they cannot be switched
/// off with [`CallOptions::layers`](codejail::CallOptions::layers)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stopper {
    /// A confinement layer.
    Layer(Layer),
    /// The supervisor: empty environment, closed descriptors, pipes for
    /// stdio, a new session, the kill of every process of the run.
    Supervisor,
    /// The run's limits (rlimits, the output cap, the deadline).
    Limits,
    /// Not a stopper but a condition: the run is a cold one (the evidence
    /// differs on the warm path, where the parent is the zygote).
    Cold,
    /// The condition that the run is a warm one.
    Warm,
    /// The condition that the caller is root: without privilege the
    /// kernel's own capability checks come before the layer's (an
    /// unprivileged caller never has what they ask for).
    Root,
    /// The condition that the run's seccomp filter is the one that
    /// refuses unix sockets: the run has no mount namespace, and no
    /// Landlock with its unix-socket right
    /// ([`Filter::for_run`](codejail::seccomp::Filter::for_run)).
    NoUnix,
}

impl Stopper {
    /// Whether it was there in a run that applied `layers`, warm or not.
    pub fn applied(self, layers: LayerSet, warm: bool) -> bool {
        match self {
            Stopper::Layer(l) => layers.contains(l),
            Stopper::Supervisor | Stopper::Limits => true,
            Stopper::Cold => !warm,
            Stopper::Warm => warm,
            Stopper::Root => codejail::Probe::get().euid == 0,
            Stopper::NoUnix => {
                let abi = codejail::Probe::get().landlock_abi;
                codejail::seccomp::Filter::for_run(layers, abi)
                    == codejail::seccomp::Filter::MainNoUnixSockets
            }
        }
    }

    /// Whether it is a condition rather than something that stops.
    pub fn is_condition(self) -> bool {
        matches!(
            self,
            Stopper::Cold | Stopper::Warm | Stopper::Root | Stopper::NoUnix
        )
    }

    /// The layer, if it is one.
    pub fn layer(self) -> Option<Layer> {
        match self {
            Stopper::Layer(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for Stopper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopper::Layer(l) => write!(f, "{l}"),
            Stopper::Supervisor => f.write_str("supervisor"),
            Stopper::Limits => f.write_str("limits"),
            Stopper::Cold => f.write_str("cold"),
            Stopper::Warm => f.write_str("warm"),
            Stopper::Root => f.write_str("root"),
            Stopper::NoUnix => f.write_str("nounix"),
        }
    }
}

/// What an attack shows when it is stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// It prints `CONTAINED: <text>` (its only `CONTAINED:` line) and exits
    /// 0 without being killed.
    Line(String),
    /// codejail kills the run for this reason (`cpu`, `realtime`,
    /// `memory`, `output`, `disk`).
    Killed(String),
    /// It dies of this signal (number, name), not killed by codejail: e.g.
    /// `SIGSYS` from seccomp.
    Signal(i32, String),
    /// It prints this line (proof that it made a process meant to outlive
    /// the run), exits 0, and no process of the run is left afterwards.
    Reaped(String),
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Line(t) => write!(f, "CONTAINED: {t}"),
            Evidence::Killed(r) => write!(f, "killed by {r}"),
            Evidence::Signal(_, name) => write!(f, "signal {name}"),
            Evidence::Reaped(m) => write!(f, "host clean after {m}"),
        }
    }
}

/// One `contained:` line of a header: when all of `by` are applied (and no
/// earlier line's are), the attack shows `evidence`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Containment {
    /// The stoppers that must all be there (`landlock`, `userns+limits`).
    pub by: Vec<Stopper>,
    /// What the attack then shows.
    pub evidence: Evidence,
}

impl Containment {
    /// Whether every one of its stoppers is in a run that applied
    /// `layers`, warm or not.
    pub fn applies(&self, layers: LayerSet, warm: bool) -> bool {
        self.by.iter().all(|s| s.applied(layers, warm))
    }

    /// Its stoppers, joined with `+`.
    pub fn by_names(&self) -> String {
        self.by
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Its layers (the pseudo-stoppers left out).
    pub fn layers(&self) -> LayerSet {
        self.by.iter().filter_map(|s| s.layer()).collect()
    }
}

/// How the sabotage mode lets an attack through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Run it with every layer that stops it switched off (the jail's
    /// layers narrowed, or an unsafe jail when none would be left).
    Layers,
    /// Run it with these limits instead of its own (resource attacks).
    Limits(Vec<(LimitName, u64)>),
    /// What stops it cannot be switched off (the supervisor): run the same
    /// program as a plain child process of the caller, outside codejail;
    /// with `tty`, its stderr a pseudo-terminal of the suite's own.
    Outside {
        /// stderr is a pseudo-terminal.
        tty: bool,
    },
}

/// One attack of the corpus, from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attack {
    /// The file name, e.g. `fs_read_etc_passwd.py`.
    pub file: String,
    /// Its class (see [`CLASSES`]).
    pub class: String,
    /// What it tries.
    pub attack: String,
    /// What the attacker would see if it got through.
    pub success: String,
    /// What stops it and what it then shows, in the order the stoppers act.
    pub contained: Vec<Containment>,
    /// Limits for its run.
    pub limits: Vec<(LimitName, u64)>,
    /// How the sabotage mode lets it through.
    pub sabotage: Sabotage,
    /// What its escape needs besides its layers switched off: `root` (what
    /// it reaches is root's), `cap_sys_resource` (a caller with that
    /// capability), `x32` (a kernel with the x32 ABI). Without them the
    /// sabotage mode cannot show it getting through.
    pub escape_needs: Vec<String>,
    /// What the attack needs of this host in every mode (`listmount`: a
    /// kernel with the system call; `proc_kcore`, `proc_sysrq`: the host
    /// has the file it goes for). Without it there is nothing to attack
    /// and nothing to show: every mode reports it not tested.
    pub needs: Vec<String>,
    /// Run through `safe_exec` instead of `jail_code`.
    pub safe_exec: bool,
    /// The program as written.
    pub code: String,
}

/// The classes of the corpus.
pub const CLASSES: &[&str] = &[
    "filesystem",
    "resources",
    "process",
    "kernel",
    "network",
    "leaks",
    "concurrency",
    "ipc",
    "intrusion",
    "exec",
];

/// What an escape may need besides its layers switched off.
pub const ESCAPE_NEEDS: &[&str] = &["root", "cap_sys_resource", "x32"];

/// What an attack may need of the host in every mode (`needs:`).
pub const NEEDS: &[&str] = &["listmount", "proc_kcore", "proc_sysrq"];

/// The helpers every attack starts with (`fixtures/attacks/_prelude.py`).
pub const PRELUDE: &str = include_str!("../../../fixtures/attacks/_prelude.py");

impl Attack {
    /// The attack's short name (the file name without `.py`).
    pub fn name(&self) -> &str {
        self.file.trim_end_matches(".py")
    }

    /// The program that runs: the prelude, executed on the attack's first
    /// line so that a traceback's line numbers are the file's, then the
    /// attack.
    pub fn program(&self) -> String {
        // Rust's escaping of an ASCII string with newlines is Python's too
        // (a test checks the prelude is plain ASCII).
        format!(
            "exec(compile({:?}, \"_prelude.py\", \"exec\"))  {}",
            PRELUDE, self.code
        )
    }

    /// The limits of its run: its header's, and a wall-clock limit of 10
    /// seconds where the header names none (a kill where none was expected
    /// is inconclusive, and a loaded host must not make it one).
    pub fn run_limits(&self) -> Vec<(LimitName, u64)> {
        let mut limits = self.limits.clone();
        if !limits.iter().any(|(n, _)| *n == LimitName::Realtime) {
            limits.push((LimitName::Realtime, 10));
        }
        limits
    }

    /// Every stopper its header names.
    pub fn stoppers(&self) -> Vec<Stopper> {
        let mut out: Vec<Stopper> = self
            .contained
            .iter()
            .flat_map(|c| c.by.iter().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The layers its header names.
    pub fn layers(&self) -> LayerSet {
        self.stoppers()
            .into_iter()
            .filter_map(Stopper::layer)
            .collect()
    }

    /// The containment a run with `layers` must show: the first line whose
    /// stoppers were all applied.
    pub fn expected(&self, layers: LayerSet, warm: bool) -> Option<&Containment> {
        self.contained.iter().find(|c| c.applies(layers, warm))
    }
}

fn parse_stopper(s: &str) -> Result<Stopper, String> {
    match s {
        "supervisor" => Ok(Stopper::Supervisor),
        "limits" => Ok(Stopper::Limits),
        "cold" => Ok(Stopper::Cold),
        "warm" => Ok(Stopper::Warm),
        "root" => Ok(Stopper::Root),
        "nounix" => Ok(Stopper::NoUnix),
        other => other
            .parse()
            .map(Stopper::Layer)
            .map_err(|e: codejail::UnknownLayer| {
                format!("{e}, supervisor, limits, cold, warm, root, nounix")
            }),
    }
}

fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGSYS" => 31,
        "SIGKILL" => 9,
        "SIGSEGV" => 11,
        "SIGXCPU" => 24,
        "SIGXFSZ" => 25,
        "SIGABRT" => 6,
        _ => return None,
    })
}

fn parse_evidence(text: &str) -> Result<Evidence, String> {
    const REASONS: &[&str] = &["cpu", "realtime", "memory", "output", "disk"];
    if let Some(reason) = text.strip_prefix("killed by ") {
        return if REASONS.contains(&reason) {
            Ok(Evidence::Killed(reason.to_owned()))
        } else {
            Err(format!(
                "unknown kill reason `{reason}`; known: {REASONS:?}"
            ))
        };
    }
    if let Some(name) = text.strip_prefix("signal ") {
        return signal_number(name)
            .map(|n| Evidence::Signal(n, name.to_owned()))
            .ok_or_else(|| format!("unknown signal `{name}`"));
    }
    if let Some(marker) = text.strip_prefix("host clean after ") {
        return Ok(Evidence::Reaped(marker.to_owned()));
    }
    if text.is_empty() {
        return Err("empty evidence".into());
    }
    Ok(Evidence::Line(text.to_owned()))
}

/// Parses a corpus file's header: `# key: value` lines up to the first
/// line that is not a comment; a line starting `#   ` continues the
/// previous value. Unknown keys are errors (a misspelt key must not drop
/// an expectation silently).
///
/// # Errors
/// A message naming the file and the bad line.
pub fn parse(file: &str, code: &str) -> Result<Attack, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in code.lines().take_while(|l| l.starts_with('#')) {
        let body = line.trim_start_matches('#');
        if body.starts_with("   ") {
            let Some(last) = fields.last_mut() else {
                return Err(format!("{file}: `{line}` continues nothing"));
            };
            last.1.push(' ');
            last.1.push_str(body.trim());
            continue;
        }
        let Some((key, value)) = body.split_once(':') else {
            return Err(format!("{file}: `{line}` is not `# key: value`"));
        };
        fields.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    let mut a = Attack {
        file: file.to_owned(),
        class: String::new(),
        attack: String::new(),
        success: String::new(),
        contained: Vec::new(),
        limits: Vec::new(),
        sabotage: Sabotage::Layers,
        escape_needs: Vec::new(),
        needs: Vec::new(),
        safe_exec: false,
        code: code.to_owned(),
    };
    for (key, value) in fields {
        let bad = |e: String| format!("{file}: `# {key}: {value}`: {e}");
        match key.as_str() {
            "class" => {
                if !CLASSES.contains(&value.as_str()) {
                    return Err(bad(format!("unknown class; known: {}", CLASSES.join(", "))));
                }
                a.class = value;
            }
            "attack" => a.attack = value,
            "success" => a.success = value,
            "contained" => {
                let (by, evidence) = value
                    .split_once("=>")
                    .ok_or_else(|| bad("takes `STOPPER[+STOPPER...] => EVIDENCE`".into()))?;
                let by = by
                    .split('+')
                    .map(|s| parse_stopper(s.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?;
                let evidence = parse_evidence(evidence.trim()).map_err(bad)?;
                a.contained.push(Containment { by, evidence });
            }
            "limits" => a.limits = parse_limits(&value).map_err(bad)?,
            "sabotage" => {
                a.sabotage = match value.as_str() {
                    "outside" => Sabotage::Outside { tty: false },
                    "outside-tty" => Sabotage::Outside { tty: true },
                    limits => Sabotage::Limits(parse_limits(limits).map_err(bad)?),
                }
            }
            "escape-needs" => {
                for need in value.split(',').map(str::trim) {
                    if !ESCAPE_NEEDS.contains(&need) {
                        return Err(bad(format!("known: {}", ESCAPE_NEEDS.join(", "))));
                    }
                    a.escape_needs.push(need.to_owned());
                }
            }
            "needs" => {
                for need in value.split(',').map(str::trim) {
                    if !NEEDS.contains(&need) {
                        return Err(bad(format!("known: {}", NEEDS.join(", "))));
                    }
                    a.needs.push(need.to_owned());
                }
            }
            "mode" => {
                if value != "safe_exec" {
                    return Err(bad("only `safe_exec` is known".into()));
                }
                a.safe_exec = true;
            }
            _ => return Err(bad("unknown header key".into())),
        }
    }
    if a.class.is_empty() || a.attack.is_empty() || a.success.is_empty() || a.contained.is_empty() {
        return Err(format!(
            "{file}: the header needs class, attack, success and at least one contained line"
        ));
    }
    if a.safe_exec
        && a.contained
            .iter()
            .any(|c| !matches!(c.evidence, Evidence::Killed(_)))
    {
        return Err(format!(
            "{file}: a safe_exec attack's evidence must be a kill (its printing goes to stderr)"
        ));
    }
    if a.sabotage == Sabotage::Layers && a.layers().is_empty() {
        return Err(format!(
            "{file}: nothing but the supervisor or the limits stops it: say `sabotage: outside` or give raised limits"
        ));
    }
    if let Some(c) = a
        .contained
        .iter()
        .find(|c| c.by.iter().all(|s| s.is_condition()))
    {
        return Err(format!(
            "{file}: `{}` names conditions but nothing that stops the attack",
            c.by_names()
        ));
    }
    Ok(a)
}

fn parse_limits(value: &str) -> Result<Vec<(LimitName, u64)>, String> {
    value
        .split(',')
        .map(|l| codejail::parse_assignment(l.trim()).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# class: network\n\
# attack: connect out\n\
# success: a connection\n\
# contained: seccomp => socket: EPERM\n\
# contained: userns+limits => fork: EAGAIN\n\
# contained: pidns+cold => parent: not visible\n\
# contained: cgroup => killed by memory\n\
# contained: seccomp => signal SIGSYS\n\
# contained: supervisor => host clean after DETACHED\n\
# limits: realtime=5,memory=64M\n\
# escape-needs: root, x32\n\
# needs: listmount\n\
print(1)\n";

    #[test]
    fn a_header_parses_into_stoppers_and_evidence() {
        let a = parse("net_x.py", GOOD).unwrap();
        assert_eq!(a.name(), "net_x");
        assert_eq!(a.contained.len(), 6);
        assert_eq!(
            a.contained[1].by,
            [Stopper::Layer(Layer::UserNs), Stopper::Limits]
        );
        assert_eq!(
            a.contained[0].evidence,
            Evidence::Line("socket: EPERM".into())
        );
        assert_eq!(a.contained[3].evidence, Evidence::Killed("memory".into()));
        assert_eq!(
            a.contained[4].evidence,
            Evidence::Signal(31, "SIGSYS".into())
        );
        assert_eq!(a.contained[5].evidence, Evidence::Reaped("DETACHED".into()));
        assert_eq!(
            a.limits,
            [(LimitName::Realtime, 5), (LimitName::Memory, 64 << 20)]
        );
        assert_eq!(a.escape_needs, ["root", "x32"]);
        assert_eq!(a.needs, ["listmount"]);
        assert_eq!(a.sabotage, Sabotage::Layers);
        // The first line whose stoppers were applied is the one expected.
        let seccomp: LayerSet = [Layer::Seccomp].into_iter().collect();
        assert_eq!(a.expected(seccomp, false), Some(&a.contained[0]));
        let pidns: LayerSet = [Layer::PidNs].into_iter().collect();
        assert_eq!(a.expected(pidns, false), Some(&a.contained[2]));
        // Warm, the cold-only line does not hold: the supervisor's does.
        assert_eq!(a.expected(pidns, true), Some(&a.contained[5]));
    }

    #[test]
    fn a_bad_header_is_an_error_naming_the_file_and_line() {
        let bad = |text: &str| parse("x.py", text).unwrap_err();
        let base = "# class: kernel\n# attack: a\n# success: b\n";
        let e = bad(&format!("{base}# contained: seccom => EPERM\n"));
        assert!(e.contains("x.py: `# contained: seccom => EPERM`"), "{e}");
        let e = bad(&format!("{base}# contained: seccomp EPERM\n"));
        assert!(e.contains("STOPPER"), "{e}");
        let e = bad(&format!("{base}# contained: seccomp => killed by oom\n"));
        assert!(e.contains("unknown kill reason"), "{e}");
        let e = bad(&format!(
            "{base}# contained: seccomp => EPERM\n# stopped-by: seccomp\n"
        ));
        assert!(e.contains("unknown header key"), "{e}");
        let e = bad(&format!("{base}# contained: limits => MemoryError\n"));
        assert!(e.contains("sabotage: outside"), "{e}");
        let e = bad(&format!(
            "{base}# contained: cold => EPERM\n# sabotage: outside\n"
        ));
        assert!(e.contains("names conditions"), "{e}");
        let e = bad("# class: kernel\n# attack: a\n# contained: seccomp => EPERM\n");
        assert!(e.contains("needs class, attack, success"), "{e}");
        let e = bad(&format!(
            "{base}# contained: seccomp => EPERM\n# needs: fusermount\n"
        ));
        assert!(e.contains("known: listmount"), "{e}");
        let e = bad("# class: magic\n# attack: a\n");
        assert!(e.contains("unknown class"), "{e}");
    }

    #[test]
    fn every_corpus_file_parses_and_the_prelude_pastes_as_a_literal() {
        let corpus = crate::corpus();
        assert!(corpus.len() >= 80);
        assert!(PRELUDE.is_ascii());
        let program = corpus[0].program();
        assert!(program.starts_with("exec(compile(\""), "{program}");
        // The attack's first line stays the program's first line.
        assert_eq!(program.lines().count(), corpus[0].code.lines().count());
    }
}
