//! End to end: a jail directory from `codejail-fs`, a confined run from
//! `codejail-proc`, as the facade will compose them.

use std::path::Path;
use std::time::Duration;

use codejail_fs::{Contents, JailDir, JailOptions, TmpQuota};
use codejail_proc::{FsRules, KillReason, Layer, Limits, Outcome, Policy, Probe, Spawn, Tmpfs};

/// Each test's jails go in a parent directory of its own.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }

    fn jail(&self, quota: Option<TmpQuota>) -> JailDir {
        // A root caller's program runs as nobody: tmp/ is given to it.
        let owner = rustix::process::geteuid()
            .is_root()
            .then_some(codejail_proc::NOBODY);
        let jail = JailDir::create(&JailOptions {
            parent: Some(self.0.path().to_owned()),
            owner,
            tmp_quota: quota,
            ..JailOptions::default()
        })
        .unwrap();
        // The sandbox identity must be able to enter the private parent.
        std::fs::set_permissions(
            self.0.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        jail
    }

    fn leftovers(&self) -> usize {
        std::fs::read_dir(self.0.path()).unwrap().count()
    }
}

fn run_in(jail: &JailDir, code: &str, policy: Policy) -> Outcome {
    jail.stage(&Contents {
        code: Some(code.as_bytes()),
        files: &[],
        extra: &[],
        own: &[],
    })
    .unwrap();
    let mut rules = FsRules::default();
    rules.read.push(jail.path().to_owned());
    rules.read_write.push(jail.tmp().to_owned());
    let mut spawn = Spawn::new("/usr/bin/python3");
    spawn
        .args(["-E", "-B", "jailed_code"])
        .cwd(jail.path())
        .env("TMPDIR", jail.tmp())
        .fs_rules(rules)
        .policy(policy)
        .limits(Limits {
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        });
    if let Some(m) = jail.tmp_mount() {
        spawn.tmpfs(Tmpfs {
            target: m.target,
            bytes: m.bytes,
            inodes: m.inodes,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
        });
    }
    spawn.run().unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn have_mount_ns() -> bool {
    let probe = Probe::get();
    let needed: &[Layer] = if probe.euid == 0 {
        &[Layer::MountNs]
    } else {
        &[Layer::UserNs, Layer::MountNs]
    };
    needed
        .iter()
        .all(|l| codejail_tests::require(l.name(), probe.availability(*l).why_not()))
}

const ONE_BIG_FILE: &str = r#"
import errno, os
try:
    with open(os.environ["TMPDIR"] + "/big", "wb") as f:
        for i in range(64):
            f.write(b"x" * 65536)
    print("wrote 4 MiB")
except OSError as e:
    print(errno.errorcode[e.errno])
"#;

const MANY_SMALL_FILES: &str = r#"
import errno, os
n = 0
try:
    for n in range(10000):
        open(os.environ["TMPDIR"] + "/f%d" % n, "w").close()
    print("made 10000 files")
except OSError as e:
    print(errno.errorcode[e.errno], n < 200)
"#;

#[test]
fn the_tmp_quota_stops_one_big_file() {
    if !have_mount_ns() {
        return;
    }
    let dir = TestDir::new();
    let jail = dir.jail(Some(TmpQuota {
        bytes: 1 << 20,
        inodes: 100,
    }));
    let out = run_in(&jail, ONE_BIG_FILE, Policy::Auto);
    assert_eq!(
        text(&out.stdout),
        "ENOSPC\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.killed_by, Some(KillReason::Disk));
    assert!(out.layers.contains(Layer::MountNs));
    // The data went to the run's tmpfs, not to the disk.
    assert_eq!(std::fs::read_dir(jail.tmp()).unwrap().count(), 0);
    // Without the quota the same program fills the disk as far as it likes.
    let free = dir.jail(None);
    let out = run_in(&free, ONE_BIG_FILE, Policy::Auto);
    assert_eq!(text(&out.stdout), "wrote 4 MiB\n");
    assert_eq!(out.killed_by, None);
}

#[test]
fn the_tmp_quota_stops_many_small_files() {
    if !have_mount_ns() {
        return;
    }
    let dir = TestDir::new();
    let jail = dir.jail(Some(TmpQuota {
        bytes: 64 << 20,
        inodes: 100,
    }));
    let out = run_in(&jail, MANY_SMALL_FILES, Policy::Auto);
    assert_eq!(
        text(&out.stdout),
        "ENOSPC True\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.killed_by, Some(KillReason::Disk));
    let free = dir.jail(None);
    assert_eq!(
        text(&run_in(&free, MANY_SMALL_FILES, Policy::Auto).stdout),
        "made 10000 files\n"
    );
}

#[test]
fn links_planted_by_the_jailed_code_are_removed_not_followed() {
    let dir = TestDir::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep-me"), "caller's").unwrap();
    let jail = dir.jail(None);
    let code = format!(
        r#"
import os
tmp = os.environ["TMPDIR"]
os.symlink("/etc", tmp + "/etc")
os.symlink("{outside}", tmp + "/callers")
os.mkdir(tmp + "/locked")
os.symlink("{outside}/keep-me", tmp + "/locked/file")
os.chmod(tmp + "/locked", 0)
print("planted")
"#,
        outside = outside.path().display()
    );
    let out = run_in(&jail, &code, Policy::Auto);
    assert_eq!(
        text(&out.stdout),
        "planted\n",
        "stderr: {}",
        text(&out.stderr)
    );
    jail.remove().unwrap();
    assert_eq!(dir.leftovers(), 0);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep-me")).unwrap(),
        "caller's"
    );
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn the_jailed_code_cannot_write_its_home_but_can_write_tmp() {
    let dir = TestDir::new();
    let jail = dir.jail(None);
    let code = r#"
import os
for path in ["evil.py", os.environ["TMPDIR"] + "/ok"]:
    try:
        open(path, "w").write("x")
        print("wrote", os.path.basename(path))
    except OSError as e:
        print(e.strerror)
"#;
    let out = run_in(&jail, code, Policy::Auto);
    // A root caller's program is another uid, refused by ownership and
    // Landlock (EACCES, as under CodeJail); an unprivileged caller's owns
    // its home, which the private root therefore binds read-only.
    let refused = if !rustix::process::geteuid().is_root() && out.layers.contains(Layer::RootFs) {
        "Read-only file system"
    } else {
        "Permission denied"
    };
    assert_eq!(
        text(&out.stdout),
        format!("{refused}\nwrote ok\n"),
        "stderr: {}",
        text(&out.stderr)
    );
}
