//! The concurrency class's victim run: its code, its home, its `tmp/`,
//! and whether it ran undisturbed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use codejail::JailError;

use crate::bait::Bait;
use crate::host::processes_with;
use crate::judge::{Kind, Verdict, tail};

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
pub(super) fn check_victim(
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
