//! Running attacks: in the jail with its own layers, with a narrowing of
//! them, in an unsafe jail, or outside codejail; in parallel, with the
//! bait set up around them and the host compared before and after.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use codejail::{
    Availability, CallOptions, Jail, JailCode, JailError, Layer, LayerSet, LimitName, Probe,
    SafeExecError, SafeExecOptions, SpawnError, Warm,
};
use serde_json::Map;

use crate::bait::{Bait, unique};
use crate::header::{Attack, Containment, Sabotage, Stopper};
use crate::host::{HostState, processes_with};
use crate::judge::{Kind, Seen, Verdict, judge, not_tested, tail};

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

/// The layers a run of `attack` gets in `jail` with its own layers, or
/// which layer is missing for it to run at all and why.
///
/// # Errors
/// The missing layers with why, or the jail's own error.
pub fn planned_for(jail: &Jail, attack: &Attack) -> Result<LayerSet, (Vec<Layer>, String)> {
    let mut planned = jail
        .planned_layers()
        .map_err(|e| (Vec::new(), format!("the jail cannot run: {e}")))?;
    let limit = |name| attack.limits.iter().any(|(n, v)| *n == name && *v > 0);
    let probe = Probe::get();
    if limit(LimitName::Memory) && !jail.is_unsafe() {
        let why = match probe.availability(Layer::Cgroup) {
            Availability::Yes => probe.cgroups.why_no_memory(),
            Availability::No(why) => Some(why.clone()),
        };
        match why {
            None => planned.insert(Layer::Cgroup),
            Some(why) => {
                return Err((
                    vec![Layer::Cgroup],
                    format!("cgroup missing: {why} (its memory limit needs it)"),
                ));
            }
        }
    }
    if (limit(LimitName::Disk) || limit(LimitName::Files))
        && !jail.is_unsafe()
        && !planned.contains(Layer::MountNs)
    {
        return Err((
            vec![Layer::MountNs],
            format!(
                "mountns missing: {} (its tmp quota needs it)",
                why(Layer::MountNs)
            ),
        ));
    }
    Ok(planned)
}

fn why(layer: Layer) -> String {
    match Probe::get().availability(layer) {
        Availability::No(why) => why.clone(),
        Availability::Yes => "this jail's plan leaves it out".into(),
    }
}

/// The availability of a layer on this host, for [`not_tested`].
pub fn host_availability(layer: Layer) -> Availability {
    Probe::get().availability(layer).clone()
}

/// One job per attack, with the jail's own layers.
pub fn full_jobs(attacks: &[Attack]) -> Vec<Job> {
    attacks
        .iter()
        .map(|a| Job {
            attack: a.clone(),
            how: How::Full,
        })
        .collect()
}

/// The layers a policy of only `layers` needs from this caller: the
/// private root is built in a mount namespace; without privilege, a
/// namespace hangs off a user namespace.
pub fn with_userns_if_needed(mut layers: LayerSet) -> LayerSet {
    if layers.contains(Layer::RootFs) {
        layers.insert(Layer::MountNs);
    }
    if Probe::get().euid != 0 && Layer::OTHER_NAMESPACES.iter().any(|l| layers.contains(*l)) {
        layers.insert(Layer::UserNs);
    }
    layers
}

/// One job per `contained:` line of `attack`: with only that line's layers
/// (the unsafe jail when it names only the supervisor or the limits),
/// judged against that line alone; or, for a line that needs a root caller
/// this caller is not, `Err((requirement, why))`. Lines that hold on the
/// warm path only are left out: a narrowed run is a cold one (the warm
/// suite shows them).
pub fn single_layer_jobs(attack: &Attack) -> Vec<(Containment, Result<Job, Missing>)> {
    attack
        .contained
        .iter()
        .filter(|c| !c.by.contains(&Stopper::Warm))
        .map(|c| {
            if c.by.contains(&Stopper::Root) && Probe::get().euid != 0 {
                let why = format!(
                    "{}: `{}` holds for a root caller only (without privilege the kernel refuses first)",
                    attack.name(),
                    c.by_names()
                );
                return (c.clone(), Err(("identity".to_owned(), why)));
            }
            let layers = c.layers();
            let how = if layers.is_empty() {
                How::Unsafe
            } else {
                How::Only(with_userns_if_needed(layers))
            };
            let mut one = attack.clone();
            one.contained = vec![c.clone()];
            (c.clone(), Ok(Job { attack: one, how }))
        })
        .collect()
}

/// How the sabotage mode lets `attack` through in a jail that plans
/// `planned`: its stopping layers switched off (plus the layers the plan
/// would put back for them: user namespace for identity, Landlock,
/// seccomp and no_exec for no_new_privs, the private root with the mount
/// namespace), its limits raised, or a run outside codejail; or why it
/// cannot be shown here.
///
/// # Errors
/// What this caller or host lacks for the escape, as (requirement, why):
/// `identity` (not root), `cap_sys_resource`, `x32`.
pub fn sabotage_job(attack: &Attack, planned: LayerSet) -> Result<Job, Missing> {
    if let Some(missing) = lacking_needs(attack) {
        return Err(missing);
    }
    for need in &attack.escape_needs {
        if let Some(missing) = lacking(need) {
            return Err(missing);
        }
    }
    let mut a = attack.clone();
    let how = match &attack.sabotage {
        Sabotage::Outside { tty } => How::Outside { tty: *tty },
        Sabotage::Limits(limits) => {
            a.limits = limits.clone();
            How::Full
        }
        Sabotage::Layers => {
            let off = sabotage_off(attack.layers());
            let mut narrowed = planned;
            for l in off.iter() {
                narrowed.remove(l);
            }
            if narrowed.is_empty() {
                How::Unsafe
            } else {
                How::Only(narrowed)
            }
        }
    };
    Ok(Job { attack: a, how })
}

/// The first of what `attack` needs of this host in every mode (its
/// `needs:`) that the host lacks, as (requirement, why), or `None`.
pub fn lacking_needs(attack: &Attack) -> Option<Missing> {
    attack.needs.iter().find_map(|n| lacking(n))
}

/// What this host or caller lacks of what an escape or an attack needs
/// (`root`, `cap_sys_resource`, `x32`, `listmount`, `proc_kcore`,
/// `proc_sysrq`), as (requirement, why), or `None`.
fn lacking(need: &str) -> Option<Missing> {
    let (missing, requirement, why) = match need {
        "listmount" => (
            !kernel_has_listmount(),
            "listmount",
            "this kernel has no listmount/statmount (ENOSYS; Linux 6.8 added them)",
        ),
        "proc_kcore" => (
            !Path::new("/proc/kcore").exists(),
            "proc_kcore",
            "this host has no /proc/kcore (a kernel built without CONFIG_PROC_KCORE)",
        ),
        "proc_sysrq" => (
            !Path::new("/proc/sysrq-trigger").exists(),
            "proc_sysrq",
            "this host has no /proc/sysrq-trigger (a kernel built without CONFIG_MAGIC_SYSRQ)",
        ),
        "root" => (
            Probe::get().euid != 0,
            "identity",
            "what the escape reaches is root's, and this caller is not root",
        ),
        "cap_sys_resource" => (
            !has_capability(24),
            "cap_sys_resource",
            "this caller cannot raise a hard limit (no CAP_SYS_RESOURCE)",
        ),
        "x32" => (
            !kernel_has_x32(),
            "x32",
            "this kernel has no x32 ABI (getpid through it is ENOSYS)",
        ),
        other => (true, "unknown", other),
    };
    missing.then(|| (requirement.to_owned(), why.to_owned()))
}

/// Whether this process has capability `bit` in its effective set.
fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// Whether an x32 getpid works here (asked of a plain interpreter: this
/// crate has no `unsafe`).
fn kernel_has_x32() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("/usr/bin/python3")
            .args([
                "-E",
                "-c",
                "import ctypes, os\nlibc = ctypes.CDLL(None)\nlibc.syscall.restype = ctypes.c_long\nprint(libc.syscall(ctypes.c_long(0x40000000 | 39)) == os.getpid())",
            ])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout == b"True\n")
    })
}

/// Whether this kernel has `listmount` (asked of a plain interpreter, with
/// a request it refuses: `EFAULT` or `EINVAL` where it exists, `ENOSYS`
/// where it does not).
fn kernel_has_listmount() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("/usr/bin/python3")
            .args([
                "-E",
                "-c",
                "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\nr = libc.syscall(ctypes.c_long(458), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))\nprint(r == -1 and ctypes.get_errno() != errno.ENOSYS)",
            ])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout == b"True\n")
    })
}

/// The layers to switch off so that none of `stoppers` is applied.
pub fn sabotage_off(stoppers: LayerSet) -> LayerSet {
    let mut off = stoppers;
    if off.contains(Layer::Identity) {
        // A root caller in a user namespace always switches uid; for an
        // unprivileged caller the user namespace is what stands for the
        // uid switch (a process of another user namespace is out of its
        // reach).
        off.insert(Layer::UserNs);
    }
    if off.contains(Layer::NoNewPrivs) {
        off.insert(Layer::Landlock);
        off.insert(Layer::Seccomp);
        off.insert(Layer::NoExec);
    }
    if off.contains(Layer::UserNs) && Probe::get().euid != 0 {
        for l in Layer::OTHER_NAMESPACES {
            off.insert(l);
        }
    }
    if off.contains(Layer::MountNs) {
        // The private root is built in the mount namespace.
        off.insert(Layer::RootFs);
    }
    off
}

/// Runs `jobs` on `threads` threads with the bait set up, and compares the
/// host before and after.
///
/// # Errors
/// When the bait cannot be set up or a run cannot be started at all.
pub fn run_jobs(target: &Target<'_>, jobs: &[Job], threads: usize) -> Result<Report, String> {
    run_all(target, jobs, threads, false)
}

/// Runs `jobs` that are expected to get through (the sabotage mode), then
/// puts back what the escapes changed in the bait; the host must be as
/// before afterwards.
///
/// # Errors
/// As [`run_jobs`], and when an escape cannot be undone.
pub fn run_sabotage(target: &Target<'_>, jobs: &[Job], threads: usize) -> Result<Report, String> {
    run_all(target, jobs, threads, true)
}

fn run_all(
    target: &Target<'_>,
    jobs: &[Job],
    threads: usize,
    undo: bool,
) -> Result<Report, String> {
    // In the sabotage mode escapes happen at the same time: damage to what
    // all runs share (the victim, the secret) cannot be laid at one run's
    // door, so each run is judged on what is its own alone.
    let shared = !undo;
    let before = HostState::take(target.jail_parent);
    let bait = Bait::new(target.jail_parent, target.jail)
        .map_err(|e| format!("could not set up the bait: {e}"))?;
    let next = AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let verdict = run_one(target, job, &bait, shared);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, verdict));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut report = Report::default();
    let mut error = None;
    for (_, verdict) in results {
        match verdict {
            Ok(v) => report.verdicts.push(v),
            Err(e) => error = error.or(Some(e)),
        }
    }
    if undo {
        bait.restore()
            .map_err(|e| format!("could not undo the escapes: {e}"))?;
    }
    report.host.extend(bait.damage());
    drop(bait);
    report
        .host
        .extend(HostState::take(target.jail_parent).changes_since(&before));
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Whether a jail error means a layer is missing, and which.
fn missing_layer(e: &JailError) -> Option<(Layer, String)> {
    match e {
        JailError::Spawn(
            SpawnError::LayerUnavailable { layer, reason }
            | SpawnError::LayerNeeded { layer, reason, .. },
        ) => Some((*layer, format!("{layer} missing: {reason}"))),
        JailError::LayersNotNarrowed { asked, planned } => {
            let layer = asked.iter().find(|l| !planned.contains(*l))?;
            Some((layer, format!("{layer} missing: {}", why(layer))))
        }
        _ => None,
    }
}

/// What a run gave back, however it ran.
struct Ran {
    stdout: String,
    stderr: String,
    status: i32,
    killed_by: Option<&'static str>,
    layers: LayerSet,
    warm: bool,
    /// `safe_exec` gave the globals back, or buffered more than it would
    /// parse: the flood got through (what, in words).
    flooded: Option<String>,
}

/// The victim run of a concurrency attack: it keeps a secret in its tmp/,
/// marked with its token (its first argument), so that an attack counts
/// only its own victim, not another job's running at the same time, for a
/// while, then says what its tmp/ holds.
pub const VICTIM_CODE: &str = "import os, sys, time\n\
tmp = os.environ['TMPDIR']\n\
open(os.path.join(tmp, 'secret'), 'w').write('other-run-secret ' + sys.argv[1])\n\
time.sleep(3)\n\
print(sorted(os.listdir(tmp)), open(os.path.join(tmp, 'secret')).read())\n";

/// What the victim prints when nothing touched its tmp/.
pub fn victim_output(token: &str) -> String {
    format!("['secret'] other-run-secret {token}\n")
}

fn run_one(target: &Target<'_>, job: &Job, bait: &Bait, shared: bool) -> Result<Verdict, String> {
    let attack = &job.attack;
    let token = format!("codejail-attack-{}", unique());
    let victim_token = format!("codejail-victim-run-{}", unique());
    if let Some((requirement, why)) = lacking_needs(attack) {
        let mut v = Verdict::new(attack, Kind::NotTested, why);
        v.lacking = vec![requirement];
        return Ok(v);
    }
    if let How::Outside { tty } = job.how {
        return run_outside(target, attack, bait, &token, &victim_token, tty, shared);
    }
    if job.how == How::Full {
        let planned = match planned_for(target.jail, attack) {
            Ok(p) => p,
            Err((missing, why)) => {
                let mut v = Verdict::new(attack, Kind::NotTested, why);
                v.missing = missing;
                return Ok(v);
            }
        };
        let warm = target.warm.is_some() && !needs_cold(attack);
        if let Some((missing, why)) = not_tested(attack, planned, warm, &host_availability) {
            let mut v = Verdict::new(attack, Kind::NotTested, why);
            v.missing = missing;
            v.layers = planned;
            return Ok(v);
        }
    }
    let (jail, warm, layers) = match job.how {
        How::Full => (target.jail, target.warm, None),
        How::Only(set) => (target.jail, None, Some(set)),
        How::Unsafe => (
            target
                .unsafe_jail
                .ok_or_else(|| format!("{}: no unsafe jail to run it in", attack.name()))?,
            None,
            None,
        ),
        How::Outside { .. } => unreachable!("handled above"),
    };
    let run = |victim_home: Option<&Path>| {
        let context = context(bait, &victim_token, victim_home);
        run_in(jail, warm, attack, layers, &token, context)
    };
    let mut tmp_damage = None;
    let (ran, victim) = if attack.class == "concurrency" {
        let victim_request = JailCode {
            code: Some(VICTIM_CODE.to_owned()),
            argv: vec![victim_token.clone()],
            call: CallOptions {
                limits: quota_for(
                    vec![(LimitName::Realtime, 10), (LimitName::Fsize, 1000)],
                    layers,
                    jail,
                ),
                layers,
                ..CallOptions::default()
            },
            ..JailCode::default()
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| jail.jail_code(&victim_request));
            let home = victim_home(&victim_token);
            let tmp = home.as_ref().map(|h| h.join("tmp"));
            let before = tmp.as_deref().and_then(|t| std::fs::metadata(t).ok());
            let ran = run(home.as_deref());
            tmp_damage = tmp_changed(tmp.as_deref(), before.as_ref());
            let victim = h.join().unwrap_or_else(|_| {
                Err(JailError::Warm(codejail::WarmError::Io {
                    step: "join the victim run",
                    source: std::io::Error::other("the victim's thread panicked"),
                }))
            });
            (ran, Some(victim))
        })
    } else {
        (run(None), None)
    };
    let ran = match ran {
        Ok(ran) => ran,
        Err(e) => {
            return match missing_layer(&e) {
                Some((layer, why)) => {
                    let mut v = Verdict::new(attack, Kind::NotTested, why);
                    v.missing = vec![layer];
                    Ok(v)
                }
                None => Err(format!("{}: {e}", attack.name())),
            };
        }
    };
    let mut survivors = processes_with(&token);
    survivors.extend(processes_with(&victim_token));
    let mut damage = bait.damage_of(&token, shared);
    // A warm call's processes carry the zygote's command line, not the
    // token: count the pool's processes instead (one call at a time).
    if let Some(stray) = warm.map(Warm::stray_processes).filter(|n| *n > 0) {
        damage.push(format!("{stray} processes of the warm call outlived it"));
    }
    if let Some(flood) = ran.flooded {
        damage.push(flood);
    }
    damage.extend(tmp_damage);
    let seen = Seen {
        stdout: &ran.stdout,
        stderr: &ran.stderr,
        status: ran.status,
        killed_by: ran.killed_by,
        layers: ran.layers,
        survivors: &survivors,
        damage: &damage,
        warm: ran.warm,
    };
    let mut verdict = judge(attack, &seen);
    if let Some(victim) = victim {
        check_victim(&mut verdict, victim, &victim_token);
    }
    Ok(verdict)
}

/// Waits (bounded) for the victim run of `token` to have written its
/// secret, and returns its home (its program's working directory), or
/// `None` if it never started.
pub fn victim_home(token: &str) -> Option<PathBuf> {
    // Its tmp/ is in its own mount namespace (the quota's tmpfs): wait for
    // its process, then give it the moment it takes to write its secret
    // (it then sleeps for seconds).
    for _ in 0..250 {
        let home = processes_with(token)
            .into_iter()
            .find_map(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).ok());
        if let Some(home) = home {
            std::thread::sleep(Duration::from_millis(300));
            return Some(home);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The other run's `tmp/` on the host (the directory under its tmpfs, in
/// the caller's mount namespace) changed its mode or owner since `before`,
/// in words. (Its times move when that run writes there without a tmpfs.)
/// Nothing when it is gone: that run has ended, and its own result says
/// whether it was disturbed.
pub fn tmp_changed(tmp: Option<&Path>, before: Option<&std::fs::Metadata>) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let (tmp, before) = (tmp?, before?);
    let after = std::fs::metadata(tmp).ok()?;
    let was = (before.mode(), before.uid(), before.gid());
    let now = (after.mode(), after.uid(), after.gid());
    (was != now).then(|| {
        format!(
            "the other run's tmp/ {} was changed: mode {:o} -> {:o}, owner {}:{} -> {}:{}",
            tmp.display(),
            was.0,
            now.0,
            was.1,
            was.2,
            now.1,
            now.2
        )
    })
}

/// The victim run of a concurrency attack must have run undisturbed:
/// status 0 and its own tmp/ as it left it.
fn check_victim(
    verdict: &mut Verdict,
    victim: Result<codejail::JailResult, JailError>,
    token: &str,
) {
    let expected = victim_output(token);
    let problem = match victim {
        Err(e) => Some((Kind::Inconclusive, format!("the victim run failed: {e}"))),
        Ok(r) => {
            let out = String::from_utf8_lossy(&r.stdout).into_owned();
            if r.status == 0 && r.killed_by.is_none() && out == expected {
                None
            } else if r.status < 0 && r.killed_by.is_none() {
                Some((
                    Kind::NotContained,
                    format!("the victim run was killed by signal {}", -r.status),
                ))
            } else if out.contains("planted") || (r.status == 0 && out != expected) {
                Some((
                    Kind::NotContained,
                    format!("the victim run's tmp/ was changed: {}", out.trim()),
                ))
            } else {
                Some((
                    Kind::Inconclusive,
                    format!(
                        "the victim run failed: status {}, killed by {}, stdout {:?}, stderr {}",
                        r.status,
                        r.killed_by.map_or("nothing", |k| k.as_str()),
                        out,
                        tail(&String::from_utf8_lossy(&r.stderr), 500)
                    ),
                ))
            }
        }
    };
    if let Some((kind, detail)) = problem {
        // An escape stays an escape; otherwise the victim's failure decides.
        if verdict.kind != Kind::NotContained {
            verdict.kind = kind;
            verdict.detail = format!("{}; {}", detail, verdict.detail);
        }
    }
}

/// Whether the warm path sends `attack` down the cold path: limits that
/// need a cgroup or a tmpfs.
fn needs_cold(attack: &Attack) -> bool {
    attack
        .limits
        .iter()
        .any(|(n, v)| *v > 0 && matches!(n, LimitName::Memory | LimitName::Disk | LimitName::Files))
}

/// The context of one run: the bait's, this run's victim (its token, and
/// its home when it is running).
pub fn context(bait: &Bait, victim_token: &str, victim_home: Option<&Path>) -> Vec<u8> {
    let mut ctx = bait.context_value();
    ctx["victim_run"] = victim_token.into();
    if let Some(home) = victim_home {
        ctx["victim_home"] = home.to_string_lossy().into();
    }
    ctx.to_string().into_bytes()
}

/// A run's limits, for a run narrowed to `layers` (or of an unsafe
/// jail): without a mount namespace `tmp/` can have no quota, and a jail
/// then writes nowhere unless the quota is off too (DISK and FILES 0),
/// which the attacks and victims that write there need.
fn quota_for(
    mut limits: Vec<(LimitName, u64)>,
    layers: Option<LayerSet>,
    jail: &Jail,
) -> Vec<(LimitName, u64)> {
    let no_mount_ns = match layers {
        Some(set) => !set.contains(Layer::MountNs),
        None => jail.is_unsafe(),
    };
    if no_mount_ns {
        for name in [LimitName::Disk, LimitName::Files] {
            if !limits.iter().any(|(n, _)| *n == name) {
                limits.push((name, 0));
            }
        }
    }
    limits
}

fn run_in(
    jail: &Jail,
    warm: Option<&Warm>,
    attack: &Attack,
    layers: Option<LayerSet>,
    token: &str,
    context: Vec<u8>,
) -> Result<Ran, JailError> {
    let call = CallOptions {
        limits: quota_for(attack.run_limits(), layers, jail),
        layers,
        slug: Some(format!("selftest/{}", attack.name())),
        ..CallOptions::default()
    };
    if attack.safe_exec {
        let options = SafeExecOptions {
            call,
            ..SafeExecOptions::default()
        };
        let mut globals = Map::new();
        let program = attack.program();
        let result = match warm {
            Some(w) => w.safe_exec(&program, &mut globals, &options),
            None if jail.is_unsafe() => jail.not_safe_exec(&program, &mut globals, &options),
            None => jail.safe_exec(&program, &mut globals, &options),
        };
        return match result {
            Ok(()) => Ok(Ran {
                stdout: String::new(),
                stderr: String::new(),
                status: 0,
                killed_by: None,
                layers: layers.unwrap_or_default(),
                warm: warm.is_some(),
                flooded: Some(format!("safe_exec returned {} globals", globals.len())),
            }),
            Err(SafeExecError::Failed { result, .. }) => Ok(Ran {
                stdout: String::new(),
                stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
                status: result.status,
                killed_by: result.killed_by.map(|k| k.as_str()),
                layers: result.layers,
                warm: result.warm,
                flooded: None,
            }),
            Err(SafeExecError::Jail(e)) => Err(e),
            Err(e) => Ok(Ran {
                stdout: String::new(),
                stderr: format!("safe_exec failed: {e}"),
                status: 0,
                killed_by: None,
                layers: layers.unwrap_or_default(),
                warm: warm.is_some(),
                flooded: None,
            }),
        };
    }
    let request = JailCode {
        code: Some(attack.program()),
        argv: vec![token.to_owned()],
        stdin: context,
        call,
        ..JailCode::default()
    };
    let r = match warm {
        Some(w) => w.jail_code(&request)?,
        None => jail.jail_code(&request)?,
    };
    Ok(Ran {
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        status: r.status,
        killed_by: r.killed_by.map(|k| k.as_str()),
        layers: r.layers,
        warm: r.warm,
        flooded: None,
    })
}

/// The sabotage mode for what cannot be switched off: the same program as
/// a plain child of the caller (its environment, its descriptors, its
/// session), outside codejail. Whatever it leaves running is found by its
/// token, killed and waited for.
fn run_outside(
    target: &Target<'_>,
    attack: &Attack,
    bait: &Bait,
    token: &str,
    victim_token: &str,
    tty: bool,
    shared: bool,
) -> Result<Verdict, String> {
    let home = tempfile_dir(target.jail_parent, token)?;
    let tmp = home.join("tmp");
    let fail = |e: std::io::Error| format!("{}: outside run: {e}", attack.name());
    std::fs::create_dir(&tmp).map_err(fail)?;
    let mut cmd = Command::new(&target.jail.config().bin);
    cmd.args(["-E", "-B", "-c", &attack.program(), token])
        .current_dir(&home)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The suite's own terminal for the program's stderr: what it types
    // there reaches no one.
    let pty = if tty {
        let (master, slave) = pseudo_terminal().map_err(fail)?;
        cmd.stderr(Stdio::from(slave));
        Some(master)
    } else {
        None
    };
    let mut child = cmd.spawn().map_err(fail)?;
    drop(cmd);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let context = context(bait, victim_token, None);
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&context);
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr: Box<dyn Read + Send> = match (child.stderr.take(), pty) {
        (Some(pipe), _) => Box::new(pipe),
        (None, Some(master)) => Box::new(std::fs::File::from(master)),
        (None, None) => Box::new(std::io::empty()),
    };
    // Detached children keep the pipes open: read until the program
    // itself ends, then take what is there.
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(fail)? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break child.wait().map_err(fail)?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    // What outlived the program: the escape, observed (a moving target is
    // looked for a few times), then undone.
    let mut survivors = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        survivors = processes_with(token);
        if !survivors.is_empty() {
            break;
        }
    }
    let cleanup = kill_all(token);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&home);
    cleanup.map_err(|e| format!("{}: {e}", attack.name()))?;
    let damage = bait.damage_of(token, shared);
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let status = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    let seen = Seen {
        stdout: &stdout,
        stderr: &stderr,
        status,
        killed_by: None,
        layers: LayerSet::empty(),
        survivors: &survivors,
        damage: &damage,
        warm: false,
    };
    let mut v = judge(attack, &seen);
    v.detail = format!("outside codejail: {}", v.detail);
    Ok(v)
}

/// A pseudo-terminal pair: (master, slave).
fn pseudo_terminal() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, slave))
}

/// A fresh directory for an outside run.
fn tempfile_dir(parent: &Path, token: &str) -> Result<std::path::PathBuf, String> {
    let dir = parent.join(format!("codejail-bait-outside-{token}"));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Kills every process whose command line has `token`, and waits (bounded)
/// until none is left.
fn kill_all(token: &str) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let pids = processes_with(token);
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "processes {pids:?} of an outside run would not die"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stoppers of `attack` that are layers, as names (for messages).
pub fn stopper_names(attack: &Attack) -> Vec<String> {
    attack
        .stoppers()
        .into_iter()
        .map(|s: Stopper| s.to_string())
        .collect()
}
