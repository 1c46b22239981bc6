//! Running jobs on a few threads, one attack each, and judging what
//! each run saw.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use codejail::{
    CallOptions, Jail, JailCode, JailError, Layer, LayerSet, LimitName, SafeExecError,
    SafeExecOptions, SpawnError, Warm,
};
use serde_json::Map;

use crate::bait::{Bait, unique};
use crate::header::Attack;
use crate::host::{HostState, processes_with};
use crate::judge::{Kind, Seen, Verdict, judge, not_tested};

use super::outside::run_outside;
use super::plan::{host_availability, lacking_needs, planned_for, why};
use super::victim::{VICTIM_CODE, check_victim, context, tmp_changed, victim_home};
use super::{How, Job, Report, Target};

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
                    if target.cancel.is_some_and(codejail::Cancel::is_cancelled) {
                        break;
                    }
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
        run_in(jail, warm, attack, layers, &token, context, target.cancel)
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
                cancel: target.cancel.cloned(),
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

/// Whether the warm path sends `attack` down the cold path: limits that
/// need a cgroup or a tmpfs.
fn needs_cold(attack: &Attack) -> bool {
    attack
        .limits
        .iter()
        .any(|(n, v)| *v > 0 && matches!(n, LimitName::Memory | LimitName::Disk | LimitName::Files))
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
    cancel: Option<&codejail::Cancel>,
) -> Result<Ran, JailError> {
    let call = CallOptions {
        limits: quota_for(attack.run_limits(), layers, jail),
        layers,
        slug: Some(format!("selftest/{}", attack.name())),
        cancel: cancel.cloned(),
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
