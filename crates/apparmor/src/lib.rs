//! AppArmor profiles for codejail's sandbox interpreter.
//!
//! CodeJail asks an administrator to hand-write a profile named after the
//! sandbox interpreter's path, load it with `apparmor_parser`, and switch it
//! between complain and enforce mode with `aa-complain`/`aa-enforce`. This
//! crate does that from a typed [`Profile`]: [`Profile::render`] (text,
//! deterministic), [`validate`] (the real parser, `-Q -K`: works without
//! AppArmor in the kernel), [`Status`], and [`load`], [`remove`],
//! [`set_mode`]; and [`UsernsProfile`], which grants the `codejail`
//! program user namespaces where AppArmor restricts them
//! ([`validate_userns`]). It knows nothing of processes or Python; the process layer
//! takes only a profile *name* to switch to at exec.
#![deny(missing_docs)]

mod admin;
mod profile;
mod userns;

pub use admin::{
    AdminError, Mode, ProfileState, Status, ValidateError, load, remove, set_mode, validate,
};
pub use profile::{DEFAULT_PROFILE_NAME, DEFAULT_VENV, Profile, ProfileError, file_name_for};
pub use userns::{USERNS_PROFILE_NAME, UsernsCheck, UsernsProfile, validate_userns};
