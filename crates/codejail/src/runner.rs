//! Something that runs code: a cold [`Jail`](crate::Jail) or a warm pool
//! ([`Warm`](crate::Warm)), behind one trait.

use serde_json::{Map, Value};

use crate::error::{JailError, SafeExecError};
use crate::request::{JailCode, JailResult, SafeExecOptions};

/// Runs code under a jail's contract: [`jail_code`](Runner::jail_code)
/// and [`safe_exec`](Runner::safe_exec) mean the same on every
/// implementation; only the cost differs.
pub trait Runner: Send + Sync {
    /// CodeJail's `jail_code`.
    ///
    /// # Errors
    /// [`JailError`] when the run could not be set up.
    fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError>;

    /// CodeJail's `safe_exec`.
    ///
    /// # Errors
    /// [`SafeExecError`].
    fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError>;
}

impl Runner for crate::Jail {
    fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        crate::Jail::jail_code(self, request)
    }

    fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        crate::Jail::safe_exec(self, code, globals, options)
    }
}

impl Runner for crate::Warm {
    fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        crate::Warm::jail_code(self, request)
    }

    fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        crate::Warm::safe_exec(self, code, globals, options)
    }
}
