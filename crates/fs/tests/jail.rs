//! Jail directories end to end: layout, staging, names, removal.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use codejail_fs::{Contents, JailDir, JailOptions, NameError, StageError, TmpQuota};

/// A private parent directory per test, so that leftovers are countable.
fn parent() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn options(parent: &Path) -> JailOptions {
    JailOptions {
        parent: Some(parent.to_owned()),
        ..JailOptions::default()
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Whether this caller is root, through the workspace's one gate: a root
/// caller is what the `identity` layer needs, so CI's root pass declares
/// it and its unprivileged pass does not.
#[track_caller]
fn root_for(why: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    codejail_tests::require("identity", (!root).then_some(why))
}

#[test]
fn a_jail_has_a_read_only_home_and_a_writable_tmp() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    let name = jail
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("codejail-"), "{name}");
    assert_eq!(jail.path().parent(), Some(parent.path()));
    // Without a sandbox identity the program is the caller: nobody else
    // of the host may read a stranger's code.
    assert_eq!(mode(jail.path()), 0o700);
    assert_eq!(jail.tmp(), jail.path().join("tmp"));
    assert!(jail.tmp().is_absolute());
    assert_eq!(
        mode(jail.tmp()),
        0o1777,
        "without an owner tmp/ is world-writable and sticky"
    );
    assert_eq!(entries(jail.path()), ["tmp"]);
    assert_eq!(jail.tmp_mount(), None);
}

#[test]
fn tmp_belongs_to_the_sandbox_identity() {
    if !root_for("chown needs root") {
        return;
    }
    let parent = parent();
    let jail = JailDir::create(&JailOptions {
        owner: Some((65534, 65534)),
        ..options(parent.path())
    })
    .unwrap();
    let meta = std::fs::metadata(jail.tmp()).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(mode(jail.tmp()), 0o700);
    let home = std::fs::metadata(jail.path()).unwrap();
    assert_eq!(home.uid(), 0, "home stays the caller's");
    // Readable by the sandbox's group, by no other user of the host.
    assert_eq!((home.gid(), mode(jail.path())), (65534, 0o750));
    jail.stage(&Contents {
        code: Some(b"print(1)"),
        ..Contents::default()
    })
    .unwrap();
    let code = std::fs::metadata(jail.path().join("jailed_code")).unwrap();
    assert_eq!((code.uid(), code.gid()), (0, 65534));
    assert_eq!(mode(&jail.path().join("jailed_code")), 0o640);
}

#[test]
fn the_quota_is_described_for_the_process_layer() {
    let parent = parent();
    let quota = TmpQuota {
        bytes: 1 << 20,
        inodes: 100,
    };
    let jail = JailDir::create(&JailOptions {
        owner: Some((1234, 5678)),
        tmp_quota: Some(quota),
        ..options(parent.path())
    });
    // Creating with an owner needs root; the description does not.
    let jail = match jail {
        Ok(jail) => jail,
        Err(e) => {
            // Root must manage; anyone else goes through the gate.
            assert!(!root_for("a tmp/ with an owner needs root"), "{e}");
            return;
        }
    };
    let mount = jail.tmp_mount().unwrap();
    assert_eq!(mount.target, jail.tmp());
    assert_eq!(
        (mount.bytes, mount.inodes, mount.mode, mount.uid, mount.gid),
        (1 << 20, 100, 0o700, 1234, 5678)
    );
}

#[test]
fn code_extra_files_and_copies_are_staged() {
    let parent = parent();
    let src = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();

    let script = src.path().join("doit.py");
    std::fs::write(&script, "print(1)").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = src.path().join("data.txt");
    std::fs::write(&data, "private").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tree = src.path().join("pkg");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/mod.py"), "x = 1").unwrap();
    symlink("sub/mod.py", tree.join("relative")).unwrap();
    symlink(outside.path().join("secret"), tree.join("absolute")).unwrap();
    symlink("does-not-exist", tree.join("dangling")).unwrap();
    let top_link = src.path().join("link");
    symlink(outside.path().join("secret"), &top_link).unwrap();

    let jail = JailDir::create(&options(parent.path())).unwrap();
    let files = [script, data, tree, top_link];
    let extra = [("blob.bin".to_owned(), vec![0u8, 255, 10, 13, 0])];
    jail.stage(&Contents {
        code: Some(b"print('hi')"),
        files: &files,
        extra: &extra,
        own: &[],
    })
    .unwrap();

    let home = jail.path();
    assert_eq!(
        entries(home),
        [
            "blob.bin",
            "data.txt",
            "doit.py",
            "jailed_code",
            "link",
            "pkg",
            "tmp"
        ]
    );
    assert_eq!(
        std::fs::read(home.join("jailed_code")).unwrap(),
        b"print('hi')"
    );
    assert_eq!(
        std::fs::read(home.join("blob.bin")).unwrap(),
        [0u8, 255, 10, 13, 0]
    );
    assert_eq!(
        mode(&home.join("doit.py")),
        0o700,
        "the executable bit is kept"
    );
    assert_eq!(
        mode(&home.join("data.txt")),
        0o600,
        "the caller's alone (its program runs as the caller) whatever the source mode"
    );
    assert_eq!(mode(&home.join("jailed_code")), 0o600);
    assert_eq!(mode(&home.join("pkg")), 0o700);
    assert_eq!(
        std::fs::read_to_string(home.join("pkg/sub/mod.py")).unwrap(),
        "x = 1"
    );
    // Links are copied as links, never followed.
    for (link, target) in [
        ("pkg/relative", PathBuf::from("sub/mod.py")),
        ("pkg/absolute", outside.path().join("secret")),
        ("pkg/dangling", PathBuf::from("does-not-exist")),
        ("link", outside.path().join("secret")),
    ] {
        let path = home.join(link);
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{link}"
        );
        assert_eq!(std::fs::read_link(&path).unwrap(), target, "{link}");
    }
    // A relative link inside the copied tree keeps working.
    assert_eq!(
        std::fs::read_to_string(home.join("pkg/relative")).unwrap(),
        "x = 1"
    );
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    type Check = fn(&StageError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        ("", |e| matches!(e, StageError::Name(NameError::Empty))),
        (".", |e| matches!(e, StageError::Name(NameError::Dot(_)))),
        ("..", |e| matches!(e, StageError::Name(NameError::Dot(_)))),
        ("../escape", |e| {
            matches!(e, StageError::Name(NameError::Slash(_)))
        }),
        ("/etc/cron.d/evil", |e| {
            matches!(e, StageError::Name(NameError::Slash(_)))
        }),
        ("a\0b", |e| matches!(e, StageError::Name(NameError::Nul(_)))),
        ("tmp", |e| {
            matches!(e, StageError::Name(NameError::Reserved(_)))
        }),
        ("jailed_code", |e| {
            matches!(e, StageError::Name(NameError::Reserved(_)))
        }),
    ];
    for (name, expected) in cases {
        // A good entry first: it must not be written either.
        let extra = [
            ("good.txt".to_owned(), b"x".to_vec()),
            (name.to_owned(), b"evil".to_vec()),
        ];
        let err = jail
            .stage(&Contents {
                code: Some(b"1"),
                files: &[],
                extra: &extra,
                own: &[],
            })
            .unwrap_err();
        assert!(expected(&err), "{name:?}: {err:?}");
        assert!(err.to_string().len() > 10, "{err}");
        assert_eq!(entries(jail.path()), ["tmp"], "{name:?} wrote something");
    }
    let twice = [("same".to_owned(), vec![]), ("same".to_owned(), vec![])];
    let err = jail
        .stage(&Contents {
            code: None,
            files: &[],
            extra: &twice,
            own: &[],
        })
        .unwrap_err();
    assert!(
        matches!(err, StageError::Name(NameError::Duplicate(ref n)) if n == "same"),
        "{err:?}"
    );
    let err = jail
        .stage(&Contents {
            code: None,
            files: &[PathBuf::from("/")],
            extra: &[],
            own: &[],
        })
        .unwrap_err();
    assert!(matches!(err, StageError::NoFileName { .. }), "{err:?}");
    assert_eq!(entries(jail.path()), ["tmp"]);
}

#[test]
fn removal_does_not_follow_links_planted_in_tmp() {
    let parent = parent();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep-me"), "caller's file").unwrap();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    let tmp = jail.tmp().to_owned();
    symlink("/etc", tmp.join("etc")).unwrap();
    symlink(outside.path(), tmp.join("callers-dir")).unwrap();
    symlink(outside.path().join("keep-me"), tmp.join("callers-file")).unwrap();
    std::fs::create_dir(tmp.join("d")).unwrap();
    symlink(outside.path(), tmp.join("d/deeper")).unwrap();
    let home = jail.path().to_owned();
    jail.remove().unwrap();
    assert!(!home.exists());
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep-me")).unwrap(),
        "caller's file"
    );
    assert!(Path::new("/etc/passwd").exists());
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn removal_restores_permissions_the_jailed_code_took_away() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    let tmp = jail.tmp().to_owned();
    std::fs::create_dir_all(tmp.join("locked/inner/deepest")).unwrap();
    std::fs::write(tmp.join("locked/inner/deepest/file"), "x").unwrap();
    std::fs::write(tmp.join("locked/file"), "x").unwrap();
    for p in ["locked/inner/deepest/file", "locked/file"] {
        std::fs::set_permissions(tmp.join(p), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    for p in ["locked/inner/deepest", "locked/inner", "locked"] {
        std::fs::set_permissions(tmp.join(p), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o500)).unwrap();
    jail.remove().unwrap();
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn removal_deletes_trees_owned_by_another_uid() {
    if !root_for("files of another uid need root to create") {
        return;
    }
    let parent = parent();
    let jail = JailDir::create(&JailOptions {
        owner: Some((65534, 65534)),
        ..options(parent.path())
    })
    .unwrap();
    let tmp = jail.tmp().to_owned();
    std::fs::create_dir_all(tmp.join("theirs/sub")).unwrap();
    std::fs::write(tmp.join("theirs/sub/f"), "x").unwrap();
    for p in ["theirs/sub/f", "theirs/sub", "theirs"] {
        std::os::unix::fs::lchown(tmp.join(p), Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(tmp.join(p), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    jail.remove().unwrap();
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn removal_handles_a_tree_deeper_than_path_max() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    // 3,000 levels of 40-byte names: about 120 KB of path, far past
    // PATH_MAX; made with openat like the jailed code would.
    let name = "d".repeat(40);
    let mut dir = rustix::fs::open(
        jail.tmp(),
        rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..3000 {
        rustix::fs::mkdirat(&dir, name.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            name.as_str(),
            rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    rustix::fs::symlinkat("/etc", &dir, "bottom-link").unwrap();
    drop(dir);
    jail.remove().unwrap();
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn a_thousand_create_stage_remove_cycles_leave_nothing() {
    let parent = parent();
    let extra = [("data".to_owned(), vec![7u8; 100])];
    for i in 0..1000 {
        let jail = JailDir::create(&options(parent.path())).unwrap();
        jail.stage(&Contents {
            code: Some(b"print(1)"),
            files: &[],
            extra: &extra,
            own: &[],
        })
        .unwrap();
        std::fs::write(jail.tmp().join("out"), "x").unwrap();
        if i % 3 == 0 {
            jail.remove().unwrap();
        } else {
            drop(jail);
        }
    }
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn a_panic_still_removes_the_jail() {
    let parent = parent();
    let path = parent.path().to_owned();
    let result = std::panic::catch_unwind(move || {
        let jail = JailDir::create(&options(&path)).unwrap();
        std::fs::write(jail.tmp().join("f"), "x").unwrap();
        panic!("the caller failed mid-run");
    });
    assert!(result.is_err());
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn a_failed_staging_leaves_nothing_once_dropped() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    let missing = [PathBuf::from("/nonexistent/file")];
    let err = jail
        .stage(&Contents {
            code: Some(b"x"),
            files: &missing,
            extra: &[],
            own: &[],
        })
        .unwrap_err();
    assert!(matches!(err, StageError::Read { .. }), "{err:?}");
    drop(jail);
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

/// Names starting with `.codejail-` are codejail's own: a caller's file
/// may not take one; codejail's own files must.
#[test]
fn the_codejail_prefix_is_reserved_for_codejails_own_files() {
    let parent = parent();
    let jail = JailDir::create(&options(parent.path())).unwrap();
    for name in [".codejail-driver", ".codejail-argv.json", ".codejail-x"] {
        let extra = [(name.to_owned(), b"x".to_vec())];
        let err = jail
            .stage(&Contents {
                extra: &extra,
                ..Contents::default()
            })
            .unwrap_err();
        assert!(
            matches!(err, StageError::Name(NameError::Reserved(ref n)) if n == name),
            "{name}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("`{name}` is reserved by the jail; rename the file")
        );
    }
    let err = jail
        .stage(&Contents {
            own: &[("driver", b"x")],
            ..Contents::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, StageError::Name(NameError::Reserved(_))),
        "{err}"
    );
    jail.stage(&Contents {
        own: &[(".codejail-driver", b"bytecode")],
        ..Contents::default()
    })
    .unwrap();
    assert_eq!(
        std::fs::read(jail.path().join(".codejail-driver")).unwrap(),
        b"bytecode"
    );
}

/// Copying a directory that holds the jail (the jail parent inside it)
/// would copy the jail into itself: refused, naming the directory given.
#[test]
fn a_directory_that_contains_the_jail_is_refused() {
    let outer = parent();
    let jails = outer.path().join("deep/jails");
    std::fs::create_dir_all(&jails).unwrap();
    std::fs::write(outer.path().join("data.txt"), "data").unwrap();
    let jail = JailDir::create(&options(&jails)).unwrap();
    let files = [outer.path().to_owned()];
    let err = jail
        .stage(&Contents {
            files: &files,
            ..Contents::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, StageError::ContainsJail { ref path } if path == outer.path()),
        "{err}"
    );
    assert!(err.to_string().len() < 300, "{err}");
    drop(jail);
    assert_eq!(entries(&jails), Vec::<String>::new());
}
