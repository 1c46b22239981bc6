//! Ending a run from outside: a signal handler, a server shutting down.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// A handle that ends every run given it: when [`Cancel::cancel`] is
/// called (from any thread), each such run is killed with every process
/// it made, its jail directory removed, and it returns with
/// [`KillReason::Cancelled`](crate::KillReason::Cancelled). A call that
/// has not started (cancelled before it, or a warm call still waiting for
/// an interpreter) returns [`JailError::Cancelled`](crate::JailError::Cancelled)
/// instead. Clones share one state.
#[derive(Clone, Debug)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Readable (hung up) once cancelled.
    watch: OwnedFd,
    /// Dropped to cancel.
    trigger: Mutex<Option<OwnedFd>>,
}

impl Cancel {
    /// A new, not yet cancelled handle.
    ///
    /// # Errors
    /// When no pipe can be made (out of descriptors).
    pub fn new() -> std::io::Result<Cancel> {
        let (watch, trigger) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok(Cancel(Arc::new(Inner {
            watch,
            trigger: Mutex::new(Some(trigger)),
        })))
    }

    /// Cancels every run given this handle, now and later.
    pub fn cancel(&self) {
        self.0
            .trigger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .trigger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// A descriptor that becomes readable (hung up) once cancelled, for
    /// the process layer's `Spawn::cancel_on`.
    pub(crate) fn watch(&self) -> std::io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(&self.0.watch, 0)?)
    }
}

impl PartialEq for Cancel {
    fn eq(&self, other: &Cancel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cancel {}
