//! The profile model and its rendering.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The sandbox virtualenv of the default layout (`cargo xtask setup-sandbox`).
pub const DEFAULT_VENV: &str = "/opt/codejail/sandbox-venv";

/// The profile name codejail uses unless told otherwise.
pub const DEFAULT_PROFILE_NAME: &str = "codejail-python";

/// An AppArmor profile for a sandbox interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (what `exec <name>` switches to).
    pub name: String,
    /// The executable it attaches to: the interpreter's real path (AppArmor
    /// attaches to the path after symbolic links are resolved).
    pub attach: PathBuf,
    /// The policy ABI, rendered as `abi <ABI>,`.
    pub abi: String,
    /// Abstractions included in the profile body.
    pub includes: Vec<String>,
    /// The sandbox environment, readable and mappable (`<env>/** mr,`).
    pub sandbox_env: Option<PathBuf>,
    /// More read-only directories (`<dir>/** r,`).
    pub extra_read: Vec<PathBuf>,
    /// Where jail directories are made (`<dir>/codejail-*/`).
    pub jail_parent: PathBuf,
    /// Complain (log, do not enforce) instead of enforce.
    pub complain: bool,
}

/// Why a profile cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A path is not absolute.
    #[error("{what} `{}` is not an absolute path; give the full path", path.display())]
    NotAbsolute {
        /// Which field.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A path has characters AppArmor would read as glob, variable, quote or
    /// line syntax; quoting cannot make them literal.
    #[error("{what} `{}` contains `{ch}`, which AppArmor treats specially; use a path without it", path.display())]
    Special {
        /// Which field.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The offending character.
        ch: char,
    },
    /// A path is not UTF-8.
    #[error("{what} `{}` is not UTF-8; use a UTF-8 path", path.display())]
    NotUtf8 {
        /// Which field.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The name is empty or not a plain identifier.
    #[error("profile name `{0}` must be letters, digits, `-`, `_` or `.`")]
    BadName(String),
}

impl Profile {
    /// The profile for an interpreter (already resolved to its real path),
    /// with codejail's defaults: ABI 3.0, `abstractions/base` and
    /// `abstractions/python`, the interpreter's environment (the directory
    /// above its `bin/`) readable, jails under `jail_parent`.
    pub fn for_interpreter(attach: &Path, jail_parent: &Path) -> Profile {
        let sandbox_env = attach.parent().and_then(Path::parent).map(Path::to_owned);
        Profile {
            name: DEFAULT_PROFILE_NAME.to_owned(),
            attach: attach.to_owned(),
            abi: "abi/3.0".to_owned(),
            includes: vec![
                "abstractions/base".to_owned(),
                "abstractions/python".to_owned(),
            ],
            sandbox_env,
            extra_read: Vec::new(),
            jail_parent: jail_parent.to_owned(),
            complain: false,
        }
    }

    /// The profile of the default sandbox layout (`/opt/codejail/sandbox-venv`,
    /// jails in `/tmp`); committed as `apparmor/opt.codejail.sandbox-venv.bin.python`.
    pub fn default_layout() -> Profile {
        Profile::for_interpreter(
            &Path::new(DEFAULT_VENV).join("bin/python"),
            Path::new("/tmp"),
        )
    }

    /// Where the profile goes: `/etc/apparmor.d/` and the attach path with
    /// `/` replaced by `.` (`/home/sandbox/venv/bin/python` →
    /// `/etc/apparmor.d/home.sandbox.venv.bin.python`).
    pub fn file_name(&self) -> PathBuf {
        file_name_for(&self.attach)
    }

    /// The profile text. Deterministic: the same model gives the same bytes.
    ///
    /// # Errors
    /// [`ProfileError`] for a bad name or a path AppArmor would misread.
    pub fn render(&self) -> Result<String, ProfileError> {
        check_name(&self.name)?;
        let attach = path_token("the interpreter", &self.attach, "")?;
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line("# codejail: AppArmor profile for the sandbox interpreter.");
        line("# Generated; edit the profile model, not this file.");
        line(&format!("abi <{}>,", self.abi));
        line("");
        line("#include <tunables/global>");
        line("");
        let mut flags = vec!["mediate_deleted", "no_attach_disconnected"];
        if self.complain {
            flags.push("complain");
        }
        line(&format!(
            "profile {} {attach} flags=({}) {{",
            self.name,
            flags.join(", ")
        ));
        for include in &self.includes {
            line(&format!("  #include <{include}>"));
        }
        line("");
        line(&format!("  {attach} mr,"));
        if let Some(env) = &self.sandbox_env {
            line(&format!(
                "  {} mr,",
                path_token("the sandbox environment", env, "/**")?
            ));
        }
        for dir in &self.extra_read {
            line(&format!(
                "  {} r,",
                path_token("an extra read-only directory", dir, "/**")?
            ));
        }
        line("");
        line("  # The jail: home read and run, everything below it written by the");
        line("  # jailed code only where the file system lets it (tmp/).");
        line(&format!(
            "  {} rix,",
            path_token("the jail parent", &self.jail_parent, "/codejail-*/")?
        ));
        line(&format!(
            "  {} wrix,",
            path_token("the jail parent", &self.jail_parent, "/codejail-*/**")?
        ));
        line("");
        line("  # Only codejail may signal the sandbox; no network rule: no network.");
        line("  signal (receive) set=(kill),");
        line("}");
        Ok(out)
    }
}

/// A profile name must be a plain identifier.
pub(crate) fn check_name(name: &str) -> Result<(), ProfileError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ProfileError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Where the profile for `attach` goes: `/etc/apparmor.d/` and the path
/// without its leading `/`, with every `/` replaced by `.`.
pub fn file_name_for(attach: &Path) -> PathBuf {
    let dotted = attach
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', ".");
    Path::new("/etc/apparmor.d").join(dotted)
}

/// A path as an AppArmor path token, with `suffix` (a glob of ours)
/// appended; quoted when it has spaces or separators, refused when it has
/// characters no quoting makes literal.
pub(crate) fn path_token(
    what: &'static str,
    path: &Path,
    suffix: &str,
) -> Result<String, ProfileError> {
    let text = path.to_str().ok_or_else(|| ProfileError::NotUtf8 {
        what,
        path: path.to_owned(),
    })?;
    if !path.is_absolute() {
        return Err(ProfileError::NotAbsolute {
            what,
            path: path.to_owned(),
        });
    }
    if let Some(ch) = text
        .chars()
        .find(|c| c.is_control() || "\"\\*?[]{}^@".contains(*c))
    {
        return Err(ProfileError::Special {
            what,
            path: path.to_owned(),
            ch,
        });
    }
    let body = format!("{}{suffix}", text.trim_end_matches('/'));
    let needs_quotes = body
        .chars()
        .any(|c| c.is_whitespace() || ",#()=+!<>".contains(c));
    let mut token = String::new();
    if needs_quotes {
        let _ = write!(token, "\"{body}\"");
    } else {
        token = body;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_layout_renders_like_the_snapshot() {
        insta::assert_snapshot!(Profile::default_layout().render().unwrap());
    }

    #[test]
    fn complain_mode_extra_dirs_and_quoting() {
        let mut p = Profile::for_interpreter(
            Path::new("/srv/my venv/bin/python3.11"),
            Path::new("/var/tmp/"),
        );
        p.name = "course-42".into();
        p.extra_read = vec![
            PathBuf::from("/srv/course data"),
            PathBuf::from("/usr/share/dict"),
        ];
        p.complain = true;
        insta::assert_snapshot!(p.render().unwrap());
    }

    #[test]
    fn the_file_name_is_the_dotted_path() {
        assert_eq!(
            file_name_for(Path::new("/home/sandbox/venv/bin/python")),
            Path::new("/etc/apparmor.d/home.sandbox.venv.bin.python")
        );
        assert_eq!(
            Profile::default_layout().file_name(),
            Path::new("/etc/apparmor.d/opt.codejail.sandbox-venv.bin.python")
        );
    }

    #[test]
    fn paths_apparmor_would_misread_are_refused() {
        for (bad, ch) in [
            ("/srv/a*b", '*'),
            ("/srv/@{HOME}", '@'),
            ("/srv/q\"uote", '"'),
            ("/srv/new\nline", '\n'),
        ] {
            let mut p = Profile::default_layout();
            p.extra_read = vec![PathBuf::from(bad)];
            assert_eq!(
                p.render(),
                Err(ProfileError::Special {
                    what: "an extra read-only directory",
                    path: bad.into(),
                    ch
                })
            );
        }
        let mut p = Profile::default_layout();
        p.extra_read = vec![PathBuf::from("relative/dir")];
        assert!(matches!(p.render(), Err(ProfileError::NotAbsolute { .. })));
        p = Profile::default_layout();
        p.name = "bad name".into();
        assert!(matches!(p.render(), Err(ProfileError::BadName(_))));
    }
}

#[cfg(test)]
mod reference {
    use super::Profile;

    #[test]
    fn the_committed_reference_profile_matches_the_renderer() {
        let committed = include_str!("../../../apparmor/opt.codejail.sandbox-venv.bin.python");
        assert!(
            Profile::default_layout().render().unwrap() == committed,
            "apparmor/opt.codejail.sandbox-venv.bin.python is stale: run `cargo xtask gen-profile`"
        );
    }
}
