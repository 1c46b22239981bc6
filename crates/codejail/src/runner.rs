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

    /// `safe_exec` on JSON text of Python's dialect: the caller's globals
    /// in, the code's JSON-safe globals out
    /// ([`Jail::safe_exec_json`](crate::Jail::safe_exec_json)).
    ///
    /// # Errors
    /// [`SafeExecError`].
    fn safe_exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError>;

    /// [`Runner::safe_exec_json`], answering with `globals_json` updated
    /// with the code's globals (what a CodeJail caller's `globals_dict`
    /// holds afterwards).
    ///
    /// # Errors
    /// [`SafeExecError`].
    fn safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError>;

    /// CodeJail's `safe_exec`: `globals` updated with the code's JSON-safe
    /// globals ([`Jail::safe_exec`](crate::Jail::safe_exec)).
    ///
    /// # Errors
    /// [`SafeExecError`].
    fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        let text = serde_json::to_string(globals).expect("a map always serializes");
        let result = self.safe_exec_json(code, &text, options)?;
        crate::jail::update(globals, &result)
    }
}

impl Runner for crate::Jail {
    fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        crate::Jail::jail_code(self, request)
    }

    fn safe_exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        crate::Jail::safe_exec_json(self, code, globals_json, options)
    }

    fn safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        crate::Jail::safe_exec_json_updated(self, code, globals_json, options)
    }
}

impl Runner for crate::Warm {
    fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        crate::Warm::jail_code(self, request)
    }

    fn safe_exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        crate::Warm::safe_exec_json(self, code, globals_json, options)
    }

    fn safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        crate::Warm::safe_exec_json_updated(self, code, globals_json, options)
    }
}
