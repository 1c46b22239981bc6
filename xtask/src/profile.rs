//! `install-profile`, `remove-profile`, `profile-mode`, `gen-profile`.

use std::path::{Path, PathBuf};

use codejail_apparmor::{AdminError, Mode, Profile, UsernsCheck, UsernsProfile};

/// The committed profile of the default sandbox layout.
const REFERENCE: &str = "apparmor/opt.codejail.sandbox-venv.bin.python";

struct Args {
    python: Option<PathBuf>,
    codejail: Option<PathBuf>,
    name: Option<String>,
    extra_read: Vec<PathBuf>,
    jail_parent: Option<PathBuf>,
    complain: bool,
    dry_run: bool,
    positional: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        python: None,
        codejail: None,
        name: None,
        extra_read: Vec::new(),
        jail_parent: None,
        complain: false,
        dry_run: false,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--python" => out.python = Some(value("--python")?.into()),
            "--codejail" => out.codejail = Some(value("--codejail")?.into()),
            "--name" => out.name = Some(value("--name")?),
            "--extra-read" => out.extra_read.push(value("--extra-read")?.into()),
            "--jail-parent" => out.jail_parent = Some(value("--jail-parent")?.into()),
            "--complain" => out.complain = true,
            "--dry-run" => out.dry_run = true,
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option `{flag}`; run `cargo xtask help`"));
            }
            word => out.positional.push(word.to_owned()),
        }
    }
    Ok(out)
}

/// The profile for `--python`, its symbolic links resolved: AppArmor
/// attaches to the real path.
fn profile(args: &Args) -> Result<Profile, String> {
    let python = args.python.as_ref().ok_or("--python PATH is required")?;
    let real = std::fs::canonicalize(python).map_err(|e| {
        format!(
            "{}: {e}; give the sandbox interpreter's path",
            python.display()
        )
    })?;
    let jail_parent = args.jail_parent.clone().unwrap_or_else(std::env::temp_dir);
    let mut p = Profile::for_interpreter(&real, &jail_parent);
    if let Some(name) = &args.name {
        p.name = name.clone();
    }
    p.extra_read = args.extra_read.clone();
    p.complain = args.complain;
    Ok(p)
}

fn render_checked(p: &Profile) -> Result<String, String> {
    let text = p.render().map_err(|e| e.to_string())?;
    codejail_apparmor::validate(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// The user-namespace profile for `--codejail`, its symbolic links
/// resolved (AppArmor attaches to the real path).
fn userns_profile(path: &Path) -> Result<UsernsProfile, String> {
    let real = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "{}: {e}; give the installed codejail program's path",
            path.display()
        )
    })?;
    Ok(UsernsProfile::for_program(&real))
}

/// `--codejail PATH`: the profile granting `userns` to the program where
/// `kernel.apparmor_restrict_unprivileged_userns = 1`, validated, written
/// and loaded. A parser older than the `userns` rule (AppArmor 4.0)
/// cannot load it, and its AppArmor restricts nothing: nothing is
/// written then.
fn install_userns(path: &Path, dry_run: bool) -> Result<(), String> {
    let p = userns_profile(path)?;
    let text = p.render().map_err(|e| e.to_string())?;
    let check = codejail_apparmor::validate_userns(&text).map_err(|e| e.to_string())?;
    let file = p.file_name();
    let old_parser = "this apparmor_parser predates the userns rule (AppArmor 4.0); it accepts everything else of the profile";
    if dry_run {
        match check {
            UsernsCheck::Full => println!(
                "# would write {} and load it (apparmor_parser -Q -K accepts it)",
                file.display()
            ),
            UsernsCheck::WithoutUsernsRule => println!(
                "# would write {} and load it on a host with AppArmor 4.0 or later ({old_parser})",
                file.display()
            ),
        }
        print!("{text}");
        return Ok(());
    }
    if check == UsernsCheck::WithoutUsernsRule {
        return Err(format!(
            "{old_parser}, but cannot load it: this host's AppArmor cannot restrict user namespaces, so codejail needs no profile for them; nothing was written"
        ));
    }
    std::fs::write(&file, &text).map_err(|e| format!("could not write {}: {e}", file.display()))?;
    eprintln!("wrote {} (validated by apparmor_parser)", file.display());
    load_written(&file, &p.name)
}

fn load_written(file: &Path, name: &str) -> Result<(), String> {
    match codejail_apparmor::load(file) {
        Ok(()) => {
            eprintln!("loaded profile `{name}`");
            Ok(())
        }
        Err(AdminError::NotEnabled(why)) => {
            eprintln!(
                "NOT LOADED: {why}: this kernel cannot enforce the profile; codejail's other layers still apply"
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn install(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    if args.python.is_none() && args.codejail.is_none() {
        return Err(
            "give --python PATH (the sandbox interpreter's profile) or --codejail PATH (user namespaces for the codejail program), or both".into(),
        );
    }
    if let Some(path) = &args.codejail {
        install_userns(path, args.dry_run)?;
    }
    if args.python.is_none() {
        return Ok(());
    }
    let p = profile(&args)?;
    let text = render_checked(&p)?;
    let file = p.file_name();
    if args.dry_run {
        println!(
            "# would write {} and load it (apparmor_parser -Q -K accepts it)",
            file.display()
        );
        print!("{text}");
        return Ok(());
    }
    std::fs::write(&file, &text).map_err(|e| format!("could not write {}: {e}", file.display()))?;
    eprintln!("wrote {} (validated by apparmor_parser)", file.display());
    load_written(&file, &p.name)
}

pub(crate) fn remove(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let file = match &args.codejail {
        Some(path) => userns_profile(path)?.file_name(),
        None => profile(&args)?.file_name(),
    };
    codejail_apparmor::remove(&file).map_err(|e| e.to_string())?;
    std::fs::remove_file(&file).map_err(|e| format!("could not delete {}: {e}", file.display()))?;
    eprintln!("unloaded and deleted {}", file.display());
    Ok(())
}

pub(crate) fn mode(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let mode = match args.positional.first().map(String::as_str) {
        Some("enforce") => Mode::Enforce,
        Some("complain") => Mode::Complain,
        _ => return Err("profile-mode takes `enforce` or `complain`".into()),
    };
    let p = profile(&args)?;
    if args.dry_run {
        println!(
            "# would put profile `{}` ({}) in {mode:?} mode",
            p.name,
            p.file_name().display()
        );
        return Ok(());
    }
    codejail_apparmor::set_mode(&p, &p.file_name(), mode).map_err(|e| e.to_string())?;
    eprintln!("profile `{}` is now in {mode:?} mode", p.name);
    Ok(())
}

pub(crate) fn generate() -> Result<(), String> {
    let text = render_checked(&Profile::default_layout())?;
    let file = crate::root().join(REFERENCE);
    std::fs::write(&file, text).map_err(|e| format!("could not write {}: {e}", file.display()))?;
    eprintln!("wrote {}", Path::new(REFERENCE).display());
    Ok(())
}
