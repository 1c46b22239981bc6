//! The profile that lets the `codejail` program make user namespaces
//! where AppArmor restricts them (Ubuntu 23.10 and later,
//! `kernel.apparmor_restrict_unprivileged_userns = 1`).
//!
//! It confines nothing (`flags=(unconfined)`): it only grants the
//! `userns` permission to the program at its path, as Ubuntu's own
//! profiles for browsers and container tools do. The sysctl stays on for
//! every other program. The `userns` rule is AppArmor 4.0's: an older
//! `apparmor_parser` cannot compile it, and an older AppArmor has no such
//! restriction either, so [`validate_userns`] then checks everything else
//! of the profile and says the rule itself was not checked.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::admin::{ValidateError, validate};
use crate::profile::{ProfileError, file_name_for, path_token};

/// The profile name unless told otherwise.
pub const USERNS_PROFILE_NAME: &str = "codejail";

/// The profile granting `userns` to a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernsProfile {
    /// The profile's name.
    pub name: String,
    /// The program's real path (AppArmor attaches after symbolic links
    /// are resolved): the program that makes the namespaces (the
    /// `codejail` binary, or a program that uses the library).
    pub attach: PathBuf,
}

/// How far [`validate_userns`] could check a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsernsCheck {
    /// The parser compiled all of it.
    Full,
    /// The parser predates the `userns` rule (AppArmor 4.0): everything
    /// else compiled; this host's AppArmor cannot restrict user
    /// namespaces, so the profile is not needed here.
    WithoutUsernsRule,
}

impl UsernsProfile {
    /// The profile for `attach`, named `codejail`.
    pub fn for_program(attach: &Path) -> UsernsProfile {
        UsernsProfile {
            name: USERNS_PROFILE_NAME.to_owned(),
            attach: attach.to_owned(),
        }
    }

    /// Where it goes: `/etc/apparmor.d/` and the dotted path.
    pub fn file_name(&self) -> PathBuf {
        file_name_for(&self.attach)
    }

    /// The profile text. Deterministic.
    ///
    /// # Errors
    /// [`ProfileError`] for a bad name or a path AppArmor would misread.
    pub fn render(&self) -> Result<String, ProfileError> {
        crate::profile::check_name(&self.name)?;
        let attach = path_token("the program", &self.attach, "")?;
        let name = &self.name;
        Ok(format!(
            "# codejail: lets {attach} make user namespaces where AppArmor restricts\n\
             # them (kernel.apparmor_restrict_unprivileged_userns = 1). It confines\n\
             # nothing; the sysctl stays on for every other program.\n\
             # Generated; edit the profile model, not this file.\n\
             abi <abi/4.0>,\n\
             \n\
             include <tunables/global>\n\
             \n\
             profile {name} {attach} flags=(unconfined) {{\n\
             \x20 userns,\n\
             \n\
             \x20 # Site-specific additions and overrides.\n\
             \x20 include if exists <local/{name}>\n\
             }}\n"
        ))
    }
}

/// Whether this host's `apparmor_parser` knows the `userns` rule.
fn parser_knows_userns() -> Result<bool, ValidateError> {
    static KNOWS: OnceLock<bool> = OnceLock::new();
    if let Some(knows) = KNOWS.get() {
        return Ok(*knows);
    }
    let knows = match validate("abi <abi/4.0>,\nprofile codejail-userns-probe {\n  userns,\n}\n") {
        Ok(()) => true,
        Err(ValidateError::Rejected { .. }) => false,
        Err(other) => return Err(other),
    };
    Ok(*KNOWS.get_or_init(|| knows))
}

/// Compiles a [`UsernsProfile`]'s text with `apparmor_parser -Q -K`; with
/// a parser older than the `userns` rule, the text without that rule
/// under ABI 3.0 ([`UsernsCheck::WithoutUsernsRule`]).
///
/// # Errors
/// [`ValidateError`]: the parser is missing or rejects the profile.
pub fn validate_userns(text: &str) -> Result<UsernsCheck, ValidateError> {
    if parser_knows_userns()? {
        validate(text)?;
        return Ok(UsernsCheck::Full);
    }
    let older: String = text
        .replace("abi <abi/4.0>,", "abi <abi/3.0>,")
        .lines()
        .filter(|l| l.trim() != "userns,")
        .map(|l| format!("{l}\n"))
        .collect();
    validate(&older)?;
    Ok(UsernsCheck::WithoutUsernsRule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userns_profile_renders_like_the_snapshot() {
        let p = UsernsProfile::for_program(Path::new("/usr/local/bin/codejail"));
        assert_eq!(
            p.file_name(),
            Path::new("/etc/apparmor.d/usr.local.bin.codejail")
        );
        insta::assert_snapshot!(p.render().unwrap());
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        let mut p = UsernsProfile::for_program(Path::new("/opt/my tools/codejail"));
        assert!(p.render().unwrap().contains("\"/opt/my tools/codejail\""));
        p.attach = PathBuf::from("/opt/a*b/codejail");
        assert!(matches!(
            p.render(),
            Err(ProfileError::Special { ch: '*', .. })
        ));
        p.attach = PathBuf::from("codejail");
        assert!(matches!(p.render(), Err(ProfileError::NotAbsolute { .. })));
        p = UsernsProfile::for_program(Path::new("/usr/bin/codejail"));
        p.name = "two words".into();
        assert!(matches!(p.render(), Err(ProfileError::BadName(_))));
    }

    fn parser_missing() -> Option<String> {
        match validate("profile codejail-parser-probe {}\n") {
            Err(e @ (ValidateError::ParserMissing | ValidateError::Run(_))) => Some(e.to_string()),
            _ => None,
        }
    }

    /// With the real parser: the whole profile where it knows the
    /// `userns` rule, everything but the rule where it is older (said as
    /// not tested for the rule itself).
    #[test]
    fn support_the_userns_profile_compiles_with_the_real_parser() {
        if !codejail_tests::require("apparmor_parser", parser_missing().as_deref()) {
            return;
        }
        let p = UsernsProfile::for_program(Path::new("/opt/my tools/codejail"));
        let text = p.render().unwrap();
        let check = validate_userns(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let old = (check == UsernsCheck::WithoutUsernsRule)
            .then_some("apparmor_parser predates the userns rule (AppArmor 4.0)");
        if codejail_tests::require("apparmor_userns", old) {
            assert_eq!(check, UsernsCheck::Full);
        }
        // A profile the parser rejects is an error either way.
        let broken = text.replace("flags=(unconfined)", "flags=(nonsense)");
        assert!(matches!(
            validate_userns(&broken),
            Err(ValidateError::Rejected { .. })
        ));
    }
}
