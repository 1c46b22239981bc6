//! The parser, the kernel's state, and loading profiles.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Enforce or complain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Violations are denied and logged.
    Enforce,
    /// Violations are only logged.
    Complain,
}

/// Whether the kernel has AppArmor, and which profiles it has loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// AppArmor cannot be used here, for this reason.
    NotAvailable(String),
    /// AppArmor is enabled; these profiles are loaded.
    Enabled {
        /// (name, mode) of every loaded profile.
        loaded: Vec<(String, Mode)>,
    },
}

/// One profile's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileState {
    /// The kernel has no AppArmor.
    NotAvailable,
    /// AppArmor is enabled but the profile is not loaded.
    NotLoaded,
    /// Loaded, in this mode.
    Loaded(Mode),
}

impl Status {
    /// Reads `/sys/module/apparmor/parameters/enabled` and the securityfs
    /// profile list. "Not available" is a value, not an error.
    pub fn detect() -> Status {
        Status::detect_in(Path::new("/sys"))
    }

    fn detect_in(sys: &Path) -> Status {
        match std::fs::read_to_string(sys.join("module/apparmor/parameters/enabled")) {
            Ok(s) if s.trim() == "Y" => {}
            Ok(_) => {
                return Status::NotAvailable(
                    "AppArmor is built into this kernel but disabled".into(),
                );
            }
            Err(_) => return Status::NotAvailable("AppArmor is not enabled in this kernel".into()),
        }
        let profiles = sys.join("kernel/security/apparmor/profiles");
        let Ok(list) = std::fs::read_to_string(&profiles) else {
            return Status::NotAvailable(format!(
                "{} is not readable (is securityfs mounted?)",
                profiles.display()
            ));
        };
        let loaded = list
            .lines()
            .filter_map(|l| {
                let (name, mode) = l.rsplit_once(" (")?;
                let mode = if mode.starts_with("complain") {
                    Mode::Complain
                } else {
                    Mode::Enforce
                };
                Some((name.to_owned(), mode))
            })
            .collect();
        Status::Enabled { loaded }
    }

    /// The state of the profile called `name`.
    pub fn profile(&self, name: &str) -> ProfileState {
        match self {
            Status::NotAvailable(_) => ProfileState::NotAvailable,
            Status::Enabled { loaded } => loaded
                .iter()
                .find(|(n, _)| n == name)
                .map_or(ProfileState::NotLoaded, |(_, m)| ProfileState::Loaded(*m)),
        }
    }
}

/// Why a profile did not validate.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// `apparmor_parser` is not installed.
    #[error("apparmor_parser was not found; install the `apparmor` package")]
    ParserMissing,
    /// Running the parser failed.
    #[error("could not run apparmor_parser: {0}")]
    Run(#[source] io::Error),
    /// The parser rejected the profile.
    #[error("apparmor_parser rejected the profile: {output}")]
    Rejected {
        /// What the parser said (its noise about the kernel removed).
        output: String,
    },
}

/// Why a profile could not be loaded, removed or switched.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The kernel cannot load profiles; nothing was changed.
    #[error("{0}; nothing was changed")]
    NotEnabled(String),
    /// The parser is missing or failed to run.
    #[error(transparent)]
    Parser(#[from] ValidateError),
    /// Reading or writing the profile file failed.
    #[error("could not {step} {}: {source}", path.display())]
    File {
        /// The step.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn parser() -> Result<PathBuf, ValidateError> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("apparmor_parser"))
        .find(|p| p.is_file())
        .ok_or(ValidateError::ParserMissing)
}

/// Runs `apparmor_parser` with `args`, feeding `stdin`; the lines that are
/// not its remarks about a kernel without AppArmor are the error.
fn run_parser(args: &[&str], stdin: Option<&str>) -> Result<(), ValidateError> {
    let mut child = Command::new(parser()?)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ValidateError::Run)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(ValidateError::Run)?;
    }
    let out = child.wait_with_output().map_err(ValidateError::Run)?;
    if out.status.success() {
        return Ok(());
    }
    let output = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Cache read/write disabled"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ValidateError::Rejected { output })
}

/// Compiles `text` with `apparmor_parser -Q -K` (skip the kernel load and
/// the cache): works on machines whose kernel has no AppArmor.
///
/// # Errors
/// [`ValidateError::Rejected`] with the parser's message.
pub fn validate(text: &str) -> Result<(), ValidateError> {
    run_parser(&["-Q", "-K"], Some(text))
}

fn require_enabled() -> Result<(), AdminError> {
    match Status::detect() {
        Status::NotAvailable(why) => Err(AdminError::NotEnabled(why)),
        Status::Enabled { .. } => Ok(()),
    }
}

/// Loads or replaces the profile in `file` (`apparmor_parser -r`).
///
/// # Errors
/// [`AdminError::NotEnabled`] (and no change) without AppArmor.
pub fn load(file: &Path) -> Result<(), AdminError> {
    require_enabled()?;
    Ok(run_parser(&["-r", &file.to_string_lossy()], None)?)
}

/// Unloads the profile in `file` (`apparmor_parser -R`).
///
/// # Errors
/// [`AdminError::NotEnabled`] (and no change) without AppArmor.
pub fn remove(file: &Path) -> Result<(), AdminError> {
    require_enabled()?;
    Ok(run_parser(&["-R", &file.to_string_lossy()], None)?)
}

/// Rewrites `file` from `profile` with the mode's flag and reloads it.
///
/// # Errors
/// [`AdminError::NotEnabled`] (and no change) without AppArmor.
pub fn set_mode(profile: &crate::Profile, file: &Path, mode: Mode) -> Result<(), AdminError> {
    require_enabled()?;
    let mut p = profile.clone();
    p.complain = mode == Mode::Complain;
    let text = p.render().map_err(|e| AdminError::File {
        step: "render",
        path: file.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    validate(&text)?;
    std::fs::write(file, text).map_err(|source| AdminError::File {
        step: "write",
        path: file.to_owned(),
        source,
    })?;
    load(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    /// Why the real parser cannot be run here, if it cannot.
    fn parser_missing() -> Option<String> {
        parser().err().map(|e| e.to_string())
    }

    #[test]
    fn every_rendered_profile_compiles_with_the_real_parser() {
        if !codejail_tests::require("apparmor_parser", parser_missing().as_deref()) {
            return;
        }
        let mut complain =
            Profile::for_interpreter(Path::new("/srv/my venv/bin/python3"), Path::new("/var/tmp"));
        complain.complain = true;
        complain.extra_read.push(PathBuf::from("/srv/course data"));
        for profile in [Profile::default_layout(), complain] {
            let text = profile.render().unwrap();
            validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    #[test]
    fn the_parser_error_is_returned() {
        if !codejail_tests::require("apparmor_parser", parser_missing().as_deref()) {
            return;
        }
        let err = validate("profile broken { /foo bar, }").unwrap_err();
        match err {
            ValidateError::Rejected { output } => {
                assert!(output.contains("syntax error"), "{output}");
                assert!(!output.contains("Cache read/write"), "{output}");
            }
            other => panic!("expected a rejection, got {other}"),
        }
    }

    #[test]
    fn status_reads_the_kernel_and_securityfs() {
        let sys = tempfile_dir();
        assert!(matches!(Status::detect_in(&sys), Status::NotAvailable(_)));
        std::fs::create_dir_all(sys.join("module/apparmor/parameters")).unwrap();
        std::fs::write(sys.join("module/apparmor/parameters/enabled"), "Y\n").unwrap();
        std::fs::create_dir_all(sys.join("kernel/security/apparmor")).unwrap();
        std::fs::write(
            sys.join("kernel/security/apparmor/profiles"),
            "codejail-python (complain)\n/usr/bin/man (enforce)\n",
        )
        .unwrap();
        let status = Status::detect_in(&sys);
        assert_eq!(
            status.profile("codejail-python"),
            ProfileState::Loaded(Mode::Complain)
        );
        assert_eq!(
            status.profile("/usr/bin/man"),
            ProfileState::Loaded(Mode::Enforce)
        );
        assert_eq!(status.profile("other"), ProfileState::NotLoaded);
        let _ = std::fs::remove_dir_all(&sys);
    }

    #[test]
    fn without_apparmor_admin_calls_change_nothing() {
        if let Status::Enabled { .. } = Status::detect() {
            let note = "NOT TESTED on this machine: AppArmor is enabled here\n";
            let _ = io::Write::write_all(&mut io::stderr(), note.as_bytes());
            return;
        }
        let file = Path::new("/nonexistent/profile");
        for result in [
            load(file),
            remove(file),
            set_mode(&Profile::default_layout(), file, Mode::Complain),
        ] {
            match result {
                Err(AdminError::NotEnabled(why)) => assert!(why.contains("AppArmor"), "{why}"),
                other => panic!("expected NotEnabled, got {other:?}"),
            }
        }
        assert!(!file.exists());
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("codejail-apparmor-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
