//! Names of entries staged into a jail.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Names the jail reserves for itself.
pub const RESERVED: [&str; 2] = ["tmp", "jailed_code"];

/// Names starting with this are codejail's own files (the `safe_exec`
/// driver's bytecode, a warm call's argv): a caller's file may not take
/// one (see [`Contents::own`](crate::Contents::own)).
pub const RESERVED_PREFIX: &str = ".codejail-";

/// Why a name cannot be staged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("an extra file has an empty name; give it a file name")]
    Empty,
    /// `.` or `..`.
    #[error("`{0}` is not a file name; use a plain name such as `data.txt`")]
    Dot(String),
    /// A `/` would put it in another directory.
    #[error("`{0}` contains `/`; a staged name is one path component")]
    Slash(String),
    /// A NUL byte cannot be in a file name.
    #[error("`{0}` contains a NUL byte; remove it")]
    Nul(String),
    /// `tmp`, `jailed_code`, or a name starting with `.codejail-`.
    #[error("`{0}` is reserved by the jail; rename the file")]
    Reserved(String),
    /// Two entries of one jail have the same name.
    #[error("`{0}` is staged twice; give each file its own name")]
    Duplicate(String),
}

/// Checks that `name` is one plain path component: not empty, not `.` or
/// `..`, no `/`, no NUL, not reserved (nor starting with
/// [`RESERVED_PREFIX`]). Any name it accepts, joined to the jail directory,
/// names an entry directly inside it.
pub fn validate_name(name: &OsStr) -> Result<(), NameError> {
    validate_component(name)?;
    if name.as_bytes().starts_with(RESERVED_PREFIX.as_bytes()) {
        return Err(NameError::Reserved(name.to_string_lossy().into_owned()));
    }
    Ok(())
}

/// [`validate_name`] without the reserved prefix: one plain component.
pub(crate) fn validate_component(name: &OsStr) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let shown = || name.to_string_lossy().into_owned();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes == b"." || bytes == b".." {
        return Err(NameError::Dot(shown()));
    }
    if bytes.contains(&b'/') {
        return Err(NameError::Slash(shown()));
    }
    if bytes.contains(&0) {
        return Err(NameError::Nul(shown()));
    }
    if RESERVED.iter().any(|r| r.as_bytes() == bytes) {
        return Err(NameError::Reserved(shown()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::path::{Component, Path};

    #[test]
    fn bad_names_are_refused_with_their_reason() {
        let check = |s: &str| validate_name(OsStr::new(s));
        assert_eq!(check(""), Err(NameError::Empty));
        assert!(matches!(check("."), Err(NameError::Dot(_))));
        assert!(matches!(check(".."), Err(NameError::Dot(_))));
        assert!(matches!(check("a/b"), Err(NameError::Slash(_))));
        assert!(matches!(check("/etc"), Err(NameError::Slash(_))));
        assert!(matches!(check("a\0b"), Err(NameError::Nul(_))));
        assert!(matches!(check("tmp"), Err(NameError::Reserved(_))));
        assert!(matches!(check("jailed_code"), Err(NameError::Reserved(_))));
        assert_eq!(check("..."), Ok(()));
        assert_eq!(check(".hidden"), Ok(()));
        assert_eq!(check("data file.txt"), Ok(()));
    }

    proptest! {
        #[test]
        fn no_accepted_name_resolves_outside_the_jail(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let name = OsString::from_vec(bytes);
            if validate_name(&name).is_ok() {
                let joined = Path::new("/jail").join(&name);
                let parts: Vec<_> = joined.components().collect();
                prop_assert_eq!(parts.len(), 3, "{:?}", joined);
                prop_assert!(matches!(parts[2], Component::Normal(_)));
                prop_assert_eq!(joined.parent(), Some(Path::new("/jail")));
            }
        }

        #[test]
        fn names_with_a_slash_or_nul_are_always_refused(
            a in proptest::collection::vec(any::<u8>(), 0..10),
            b in proptest::collection::vec(any::<u8>(), 0..10),
            sep in prop_oneof![Just(b'/'), Just(0u8)],
        ) {
            let mut bytes = a;
            bytes.push(sep);
            bytes.extend(b);
            prop_assert!(validate_name(&OsString::from_vec(bytes)).is_err());
        }
    }
}
