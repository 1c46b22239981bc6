//! CodeJail's module-level API: jails registered by name, and the free
//! functions that use them. A thin layer over [`Jail`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::config::{JailConfig, Lang};
use crate::error::{ConfigError, JailError, SafeExecError};
use crate::jail::Jail;
use crate::request::{JailCode, JailResult, SafeExecOptions};

static JAILS: RwLock<Option<HashMap<String, Arc<Jail>>>> = RwLock::new(None);

/// Configures a jail called `name` running `bin` (as `user`, when the
/// caller can switch uid) with automatic confinement, and records it
/// (CodeJail's `configure`). As in CodeJail, the jail called `python`
/// runs Python 3 (with `-E -B`), any other name runs `bin` as it is; use
/// [`configure_with`] to choose the language.
///
/// # Errors
/// [`ConfigError`]: the interpreter is missing, the user unknown.
pub fn configure(
    name: &str,
    bin: impl Into<PathBuf>,
    user: Option<&str>,
) -> Result<Arc<Jail>, ConfigError> {
    let mut config = JailConfig::new(bin);
    config.user = user.map(str::to_owned);
    if name != "python" {
        config.lang = Lang::other();
    }
    configure_with(name, config)
}

/// Configures a jail from a full [`JailConfig`] and records it under
/// `name`, replacing (and logging) an earlier jail of that name.
///
/// # Errors
/// [`ConfigError`]: the interpreter is missing, the user unknown; the
/// registry is then unchanged.
pub fn configure_with(name: &str, config: JailConfig) -> Result<Arc<Jail>, ConfigError> {
    let jail = Arc::new(Jail::new(name, config)?);
    let replaced = JAILS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(name.to_owned(), jail.clone());
    if let Some(old) = replaced.filter(|old| old.config() != jail.config()) {
        tracing::info!(
            jail = name,
            old = %old.config().bin.display(),
            new = %jail.config().bin.display(),
            "jail `{name}` configured again; the new configuration replaces the old"
        );
    }
    Ok(jail)
}

/// The jail configured as `name` (CodeJail's `get_codejail`).
///
/// # Errors
/// [`JailError::NotConfigured`].
pub fn get_codejail(name: &str) -> Result<Arc<Jail>, JailError> {
    JAILS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(name).cloned())
        .ok_or_else(|| JailError::NotConfigured {
            name: name.to_owned(),
        })
}

/// Whether a jail called `name` is configured.
pub fn is_configured(name: &str) -> bool {
    get_codejail(name).is_ok()
}

/// CodeJail's `jail_code(command, ...)`: [`Jail::jail_code`] on the jail
/// configured as `name`.
///
/// # Errors
/// [`JailError`].
pub fn jail_code(name: &str, request: &JailCode) -> Result<JailResult, JailError> {
    get_codejail(name)?.jail_code(request)
}

/// CodeJail's `safe_exec(code, globals, ...)` on the jail configured as
/// `name`.
///
/// # Errors
/// [`SafeExecError`].
pub fn safe_exec(
    name: &str,
    code: &str,
    globals: &mut Map<String, Value>,
    options: &SafeExecOptions,
) -> Result<(), SafeExecError> {
    get_codejail(name)?.safe_exec(code, globals, options)
}

/// CodeJail's `not_safe_exec` on the jail configured as `name`.
///
/// # Errors
/// [`SafeExecError`].
pub fn not_safe_exec(
    name: &str,
    code: &str,
    globals: &mut Map<String, Value>,
    options: &SafeExecOptions,
) -> Result<(), SafeExecError> {
    get_codejail(name)?.not_safe_exec(code, globals, options)
}
