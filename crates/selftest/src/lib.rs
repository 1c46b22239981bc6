//! The escape corpus (`fixtures/attacks/`), embedded, and what it takes to
//! run it: the host-side bait ([`Bait`]), one run per attack
//! ([`run_attack`]), the verdict ([`judge`]), and checks of the host
//! afterwards ([`HostState`]). Used by `codejail selftest` and the escape
//! tests; the facade knows nothing of it.
#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};

use codejail::{
    CallOptions, Jail, JailCode, Layer, LayerSet, LimitName, Probe, SafeExecError, SafeExecOptions,
    Warm,
};
use serde_json::{Map, json};

include!(concat!(env!("OUT_DIR"), "/attacks.rs"));

/// One attack of the corpus, from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attack {
    /// The file name, e.g. `fs_read_etc_passwd.py`.
    pub file: &'static str,
    /// `filesystem`, `resources`, `process`, `kernel`, `network`, `leaks`,
    /// `concurrency`.
    pub class: String,
    /// What it tries.
    pub attack: String,
    /// The layers (or `limits`, `supervisor`) that stop it.
    pub stopped_by: Vec<String>,
    /// A layer that stops it on its own.
    pub alone: Option<Layer>,
    /// Limits for its run.
    pub limits: Vec<(LimitName, u64)>,
    /// The kill reason containment shows as.
    pub killed_by: Option<String>,
    /// A layer without which it cannot be judged.
    pub needs: Option<Layer>,
    /// The class's representative for the sabotage mode.
    pub sabotage: bool,
    /// Run through `safe_exec`.
    pub safe_exec: bool,
    /// The program.
    pub code: &'static str,
}

impl Attack {
    /// The attack's short name (the file name without `.py`).
    pub fn name(&self) -> &str {
        self.file.trim_end_matches(".py")
    }
}

/// Parses a corpus file's header.
///
/// # Errors
/// A message naming the file and the bad header line.
pub fn parse(file: &'static str, code: &'static str) -> Result<Attack, String> {
    let mut a = Attack {
        file,
        class: String::new(),
        attack: String::new(),
        stopped_by: Vec::new(),
        alone: None,
        limits: Vec::new(),
        killed_by: None,
        needs: None,
        sabotage: false,
        safe_exec: false,
        code,
    };
    for line in code.lines().take_while(|l| l.starts_with('#')) {
        let Some((key, value)) = line.trim_start_matches('#').split_once(':') else {
            continue;
        };
        let value = value.trim();
        let bad = |e: String| format!("{file}: `{}`: {e}", line.trim());
        match key.trim() {
            "class" => a.class = value.to_owned(),
            "attack" => a.attack = value.to_owned(),
            "stopped-by" => a.stopped_by = value.split(',').map(|s| s.trim().to_owned()).collect(),
            "alone" => {
                a.alone = Some(
                    value
                        .parse()
                        .map_err(|e: codejail::UnknownLayer| bad(e.to_string()))?,
                )
            }
            "needs" => {
                a.needs = Some(
                    value
                        .parse()
                        .map_err(|e: codejail::UnknownLayer| bad(e.to_string()))?,
                )
            }
            "limits" => {
                a.limits = value
                    .split(',')
                    .map(|l| codejail::parse_assignment(l).map_err(|e| bad(e.to_string())))
                    .collect::<Result<_, _>>()?;
            }
            "killed-by" => a.killed_by = Some(value.to_owned()),
            "sabotage" => a.sabotage = value == "yes",
            "mode" => a.safe_exec = value == "safe_exec",
            _ => {}
        }
    }
    if a.class.is_empty() || a.attack.is_empty() || a.stopped_by.is_empty() {
        return Err(format!(
            "{file}: the header needs class, attack and stopped-by"
        ));
    }
    Ok(a)
}

/// The whole corpus.
///
/// # Panics
/// If a file's header is malformed (a test checks every file).
pub fn corpus() -> Vec<Attack> {
    CORPUS
        .iter()
        .map(|(f, c)| parse(f, c).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// What the host offers the attacks to go for: a TCP and a UDP port, a
/// process to signal, the caller's secret file and an open descriptor to
/// it, an abstract socket, the host name, and a fake sibling jail. Cleaned
/// up on drop.
#[derive(Debug)]
pub struct Bait {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    _abstract_socket: std::os::unix::net::UnixListener,
    abstract_name: String,
    victim: Child,
    secret_dir: PathBuf,
    secret_path: PathBuf,
    /// Left open without close-on-exec, as a careless caller might.
    _secret_fd: OwnedFd,
    jail_parent: PathBuf,
    other_dir: PathBuf,
}

/// The text of the caller's secret file.
pub const SECRET: &str = "the caller's secret: 7f3a9c";

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Bait {
    /// Sets the bait up for jails made under `jail_parent`.
    ///
    /// # Errors
    /// Any failure to open a socket, start the victim or write a file.
    pub fn new(jail_parent: &Path) -> std::io::Result<Bait> {
        use std::os::linux::net::SocketAddrExt;
        let id = unique();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let abstract_name = format!("codejail-bait-{id}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?;
        let abstract_socket = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        let victim = Command::new("/bin/sleep").arg("3600").spawn()?;
        let secret_dir = std::env::temp_dir().join(format!("codejail-bait-secret-{id}"));
        std::fs::create_dir_all(&secret_dir)?;
        let secret_path = secret_dir.join("secret.txt");
        std::fs::write(&secret_path, SECRET)?;
        let file = std::fs::File::open(&secret_path)?;
        // dup() gives a descriptor without close-on-exec.
        let secret_fd = rustix::io::dup(&file)?;
        let other_dir = jail_parent.join(format!("codejail-bait-other-{id}"));
        std::fs::create_dir_all(other_dir.join("tmp"))?;
        std::fs::write(other_dir.join("tmp/secret"), "other-run-secret")?;
        Ok(Bait {
            tcp,
            udp,
            _abstract_socket: abstract_socket,
            abstract_name,
            victim,
            secret_dir,
            secret_path,
            _secret_fd: secret_fd,
            jail_parent: jail_parent.to_owned(),
            other_dir,
        })
    }

    /// The JSON context an attack reads on stdin.
    pub fn context(&self) -> Vec<u8> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        json!({
            "port": self.tcp.local_addr().map(|a| a.port()).unwrap_or(0),
            "udp_port": self.udp.local_addr().map(|a| a.port()).unwrap_or(0),
            "victim_pid": self.victim.id(),
            "secret_path": self.secret_path,
            "secret_text": SECRET,
            "abstract": self.abstract_name,
            "hostname": hostname.trim(),
            "jail_parent": self.jail_parent,
            "other_file": self.other_dir.join("tmp/secret"),
        })
        .to_string()
        .into_bytes()
    }

    /// What an attack may have damaged: the victim alive, the secret intact.
    pub fn check(&mut self) -> Result<(), String> {
        if self.victim.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Err("the host process the attacks aim at was killed".into());
        }
        match std::fs::read_to_string(&self.secret_path) {
            Ok(s) if s == SECRET => Ok(()),
            _ => Err(format!(
                "the caller's file {} was changed or removed",
                self.secret_path.display()
            )),
        }
    }
}

impl Drop for Bait {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
        let _ = std::fs::remove_dir_all(&self.secret_dir);
        let _ = std::fs::remove_dir_all(&self.other_dir);
    }
}

/// The verdict on one attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The attack.
    pub name: String,
    /// Its class.
    pub class: String,
    /// No `ESCAPED` line, the expected kill, the host intact.
    pub contained: bool,
    /// The `ESCAPED` line, or what else went wrong, or how it was stopped.
    pub detail: String,
    /// The applied layers among those the attack's header says stop it.
    pub stopped_by: Vec<String>,
}

/// Judges one run from what it printed and how it ended.
pub fn judge(attack: &Attack, stdout: &str, killed_by: Option<&str>, layers: LayerSet) -> Verdict {
    let escaped = stdout
        .lines()
        .find(|l| l.starts_with("ESCAPED"))
        .map(str::to_owned);
    let kill_ok = match (&attack.killed_by, killed_by) {
        (Some(want), got) => got == Some(want.as_str()),
        (None, _) => true,
    };
    let stopped_by: Vec<String> = attack
        .stopped_by
        .iter()
        .filter(|s| match s.parse::<Layer>() {
            Ok(layer) => layers.contains(layer),
            Err(_) => true, // limits, supervisor: always there
        })
        .cloned()
        .collect();
    let (contained, detail) = match (escaped, kill_ok) {
        (Some(line), _) => (false, line),
        (None, false) => (
            false,
            format!(
                "expected a kill by {}, got {}",
                attack.killed_by.as_deref().unwrap_or("-"),
                killed_by.unwrap_or("none")
            ),
        ),
        (None, true) => (
            true,
            stdout
                .lines()
                .find(|l| l.starts_with("contained"))
                .unwrap_or("")
                .trim()
                .to_owned(),
        ),
    };
    Verdict {
        name: attack.name().to_owned(),
        class: attack.class.clone(),
        contained,
        detail,
        stopped_by,
    }
}

/// Why an attack was not run here.
pub fn unavailable(attack: &Attack) -> Option<String> {
    let probe = Probe::get();
    let needs = attack.needs.into_iter().chain(attack.alone);
    needs
        .filter_map(|l| match probe.availability(l) {
            codejail::Availability::No(why) => Some(format!("layer {l} is unavailable: {why}")),
            codejail::Availability::Yes => None,
        })
        .next()
}

/// Runs one attack in `jail` with only `layers` (or the jail's own), `token` as
/// its first argument (so that its processes can be found on the host).
///
/// # Errors
/// When the run could not be set up at all.
pub fn run_attack(
    jail: &Jail,
    warm: Option<&Warm>,
    attack: &Attack,
    bait: &Bait,
    layers: Option<LayerSet>,
    token: &str,
) -> Result<Verdict, codejail::JailError> {
    if attack.safe_exec {
        let options = SafeExecOptions {
            call: CallOptions {
                limits: attack.limits.clone(),
                layers,
                ..CallOptions::default()
            },
            ..SafeExecOptions::default()
        };
        let mut globals = Map::new();
        let result = match warm {
            Some(w) => w.safe_exec(attack.code, &mut globals, &options),
            None => jail.safe_exec(attack.code, &mut globals, &options),
        };
        return Ok(match result {
            Ok(()) => Verdict {
                name: attack.name().to_owned(),
                class: attack.class.clone(),
                contained: false,
                detail: format!("ESCAPED: {} globals came back", globals.len()),
                stopped_by: Vec::new(),
            },
            Err(SafeExecError::Failed { result, .. }) => {
                let killed = result.killed_by.map(|k| k.as_str());
                judge(
                    attack,
                    &String::from_utf8_lossy(&result.stdout),
                    killed,
                    result.layers,
                )
            }
            Err(SafeExecError::Jail(e)) => return Err(e),
            Err(e) => Verdict {
                name: attack.name().to_owned(),
                class: attack.class.clone(),
                contained: true,
                detail: e.to_string(),
                stopped_by: vec!["limits".into()],
            },
        });
    }
    let request = JailCode {
        code: Some(attack.code.to_owned()),
        argv: vec![token.to_owned()],
        stdin: bait.context(),
        call: CallOptions {
            limits: attack.limits.clone(),
            layers,
            slug: Some(format!("selftest/{}", attack.name())),
            ..CallOptions::default()
        },
    };
    let result = match warm {
        Some(w) => w.jail_code(&request)?,
        None => jail.jail_code(&request)?,
    };
    let o = &result;
    Ok(judge(
        attack,
        &String::from_utf8_lossy(&o.stdout),
        o.killed_by.map(|k| k.as_str()),
        o.layers,
    ))
}

/// Host pids of live processes whose command line contains `token`.
pub fn processes_with(token: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(token)).then_some(pid)
        })
        .collect()
}

/// What the host looks like, for before-and-after comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// `codejail-*` entries in the jail parent (the bait's sibling excluded).
    pub jails: BTreeSet<String>,
    /// `codejail-<this pid>-*` cgroups.
    pub cgroups: BTreeSet<PathBuf>,
    /// The caller's open descriptors.
    pub descriptors: usize,
    /// Names in directories an escape would write to.
    pub listings: BTreeSet<String>,
}

impl HostState {
    /// Looks at the host now.
    pub fn take(jail_parent: &Path) -> HostState {
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let jails = names(jail_parent)
            .into_iter()
            .filter(|n| n.starts_with("codejail-") && !n.starts_with("codejail-bait-"))
            .collect();
        let prefix = format!("codejail-{}-", std::process::id());
        let cg = &Probe::get().cgroups;
        let cgroups = cg
            .v2
            .iter()
            .chain(&cg.v1_memory)
            .chain(&cg.v1_pids)
            .flat_map(|dir| {
                names(dir)
                    .into_iter()
                    .filter(|n| n.starts_with(&prefix))
                    .map(move |n| dir.join(n))
            })
            .collect();
        let descriptors = std::fs::read_dir("/proc/self/fd")
            .map(|r| r.count())
            .unwrap_or(0);
        let listings = [
            "/", "/etc", "/root", "/home", "/var/tmp", "/dev/shm", "/run",
        ]
        .iter()
        .flat_map(|d| {
            names(Path::new(d))
                .into_iter()
                .map(move |n| format!("{d}/{n}"))
        })
        .filter(|n| !n.contains("codejail-bait-"))
        .collect();
        HostState {
            jails,
            cgroups,
            descriptors,
            listings,
        }
    }

    /// What changed since `before`, in words; empty when nothing did.
    pub fn changes_since(&self, before: &HostState) -> Vec<String> {
        let mut out = Vec::new();
        for j in self.jails.difference(&before.jails) {
            out.push(format!("jail directory {j} was left behind"));
        }
        for c in self.cgroups.difference(&before.cgroups) {
            out.push(format!("cgroup {} was left behind", c.display()));
        }
        if self.descriptors != before.descriptors {
            out.push(format!(
                "the caller's descriptors went from {} to {}",
                before.descriptors, self.descriptors
            ));
        }
        for n in self.listings.difference(&before.listings) {
            out.push(format!("{n} appeared"));
        }
        out
    }
}

/// The result of running the corpus.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One verdict per attack run.
    pub verdicts: Vec<Verdict>,
    /// Attacks not run here, with why.
    pub skipped: Vec<(String, String)>,
    /// What the runs left on the host; empty when clean.
    pub host: Vec<String>,
}

impl Report {
    /// Whether everything run was contained and the host is clean.
    pub fn all_contained(&self) -> bool {
        self.verdicts.iter().all(|v| v.contained) && self.host.is_empty()
    }
}

/// How to run each attack: `None` skips it, `Some(None)` uses the jail's
/// own layers, `Some(Some(set))` runs it with only those (a narrowing of
/// the jail's layers).
pub type PolicyFor<'a> = dyn Fn(&Attack) -> Option<Option<LayerSet>> + Sync + 'a;

/// Runs `attacks` in `jail` (whose jail parent must be `jail_parent`) on
/// `threads` threads — through the warm pool `warm` when given — checks that
/// no process of any run is left, and compares the host before and after.
///
/// # Errors
/// When the bait cannot be set up or a run cannot be started.
pub fn run_suite(
    jail: &Jail,
    warm: Option<&Warm>,
    jail_parent: &Path,
    attacks: &[Attack],
    policy_for: &PolicyFor<'_>,
    threads: usize,
) -> Result<Report, String> {
    let before = HostState::take(jail_parent);
    let mut bait = Bait::new(jail_parent).map_err(|e| format!("could not set up the bait: {e}"))?;
    let mut report = Report::default();
    let mut todo = Vec::new();
    for a in attacks {
        match (unavailable(a), policy_for(a)) {
            (Some(why), _) => report.skipped.push((a.name().to_owned(), why)),
            (None, None) => {}
            (None, Some(policy)) => todo.push((a, policy)),
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let bait_ref = &bait;
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(attack, policy)) = todo.get(i) else {
                        break;
                    };
                    let verdict = run_one(jail, warm, attack, bait_ref, policy);
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
    for (_, verdict) in results {
        report.verdicts.push(verdict?);
    }
    if let Err(e) = bait.check() {
        report.host.push(e);
    }
    drop(bait);
    report
        .host
        .extend(HostState::take(jail_parent).changes_since(&before));
    Ok(report)
}

/// One attack, with a concurrent victim run for the concurrency class and
/// a check that none of its processes survived.
fn run_one(
    jail: &Jail,
    warm: Option<&Warm>,
    attack: &Attack,
    bait: &Bait,
    policy: Option<LayerSet>,
) -> Result<Verdict, String> {
    let token = format!("codejail-attack-{}", unique());
    let run = || {
        run_attack(jail, warm, attack, bait, policy, &token)
            .map_err(|e| format!("{}: {e}", attack.name()))
    };
    let mut verdict = if attack.class == "concurrency" {
        let holder_code = "import os, time\nopen(os.path.join(os.environ['TMPDIR'], 'secret'), 'w').write('other-run-secret')\ntime.sleep(3)";
        let holder = JailCode {
            code: Some(holder_code.to_owned()),
            call: CallOptions {
                limits: vec![(LimitName::Realtime, 10), (LimitName::Fsize, 1000)],
                layers: policy,
                ..CallOptions::default()
            },
            ..JailCode::default()
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| jail.jail_code(&holder));
            // Wait (bounded) for the other run's secret to exist.
            let parent = jail
                .config()
                .jail_parent
                .clone()
                .unwrap_or_else(std::env::temp_dir);
            for _ in 0..100 {
                let ready = std::fs::read_dir(&parent)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.starts_with("codejail-")
                            && !n.starts_with("codejail-bait-")
                            && e.path().join("tmp/secret").exists()
                    });
                if ready {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let v = run();
            let _ = h.join();
            v
        })?
    } else {
        run()?
    };
    let left = processes_with(&token);
    if !left.is_empty() {
        verdict.contained = false;
        verdict.detail = format!("processes {left:?} outlived the run");
    }
    // A warm call's processes carry the zygote's command line, not the
    // token: count the pool's processes instead (one call at a time).
    if let Some(stray) = warm.map(Warm::stray_processes).filter(|n| *n > 0) {
        verdict.contained = false;
        verdict.detail = format!("{stray} processes of the warm call outlived it");
    }
    Ok(verdict)
}
