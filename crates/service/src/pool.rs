//! The warm pool that serves, behind a bounded queue: at most `size` calls
//! run (one per interpreter), at most `queue_length` more wait, the rest
//! are turned away at once. Calls run on blocking threads (the facade is
//! synchronous) and keep their slot until the jail returns, even when the
//! client has gone. A pool that lost interpreters is rebuilt, and the
//! start-up checks run again on the new one before it serves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use codejail::{Cancel, Health, Jail, JailError, SafeExecError, Warm, WarmError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::checks::{self, CheckResult};

/// One pool and the calls it has out.
#[derive(Debug)]
struct Generation {
    warm: Warm,
    running: AtomicUsize,
}

/// The serving pool, its queue and its checks.
#[derive(Debug)]
pub struct Pool {
    jail: Arc<Jail>,
    size: usize,
    queue_length: usize,
    current: RwLock<Arc<Generation>>,
    slots: Arc<Semaphore>,
    admitted: AtomicUsize,
    running: AtomicUsize,
    checks: RwLock<Vec<CheckResult>>,
    probes: Vec<SocketAddr>,
    rebuild_wanted: AtomicBool,
    rebuilding: Mutex<()>,
    /// Ends the calls in flight at shutdown (a call that had not started
    /// then ends [`JailError::Cancelled`], answered 503).
    pub cancel: Cancel,
}

/// A request's place in the queue; freed when dropped.
#[derive(Debug)]
pub struct Admission(Arc<Pool>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// No interpreter became free before the request's deadline.
#[derive(Debug)]
pub struct Busy;

impl Pool {
    /// Starts `size` warm interpreters of `jail` and runs the checks on
    /// them.
    ///
    /// # Errors
    /// The pool could not start.
    pub fn start(
        jail: Arc<Jail>,
        size: usize,
        queue_length: usize,
        probes: Vec<SocketAddr>,
    ) -> Result<Arc<Pool>, JailError> {
        let warm = jail.warm(size)?;
        let results = checks::run(&warm, &probes);
        Ok(Arc::new(Pool {
            jail,
            size,
            queue_length,
            current: RwLock::new(Arc::new(Generation {
                warm,
                running: AtomicUsize::new(0),
            })),
            slots: Arc::new(Semaphore::new(size)),
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            checks: RwLock::new(results),
            probes,
            rebuild_wanted: AtomicBool::new(false),
            rebuilding: Mutex::new(()),
            cancel: Cancel::new().map_err(|e| {
                JailError::Warm(WarmError::Io {
                    step: "make a cancel handle",
                    source: e,
                })
            })?,
        }))
    }

    /// Whether every start-up check passed on the serving pool.
    pub fn safe(&self) -> bool {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|c| c.failure.is_none())
    }

    /// The checks' results.
    pub fn checks(&self) -> Vec<CheckResult> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The serving pool's health.
    pub fn health(&self) -> Health {
        self.generation().warm.health()
    }

    /// Requests waiting for an interpreter.
    pub fn queued(&self) -> usize {
        self.admitted
            .load(Ordering::SeqCst)
            .saturating_sub(self.running.load(Ordering::SeqCst))
    }

    /// Calls running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn generation(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A place in the queue, or `None` when it is full.
    pub fn admit(self: &Arc<Pool>) -> Option<Admission> {
        let before = self.admitted.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(self.clone());
        (before < self.size + self.queue_length).then_some(admission)
    }

    /// Runs `job` on a free interpreter, waiting for one until `deadline`.
    ///
    /// # Errors
    /// [`Busy`] at the deadline.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Pool>,
        admission: Admission,
        deadline: Instant,
        job: impl FnOnce(&Warm) -> Result<R, SafeExecError> + Send + 'static,
    ) -> Result<Result<R, SafeExecError>, Busy> {
        let permit: OwnedSemaphorePermit =
            tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned())
                .await
                .map_err(|_| Busy)?
                .map_err(|_| Busy)?;
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _held = (permit, admission);
            let generation = pool.generation();
            pool.running.fetch_add(1, Ordering::SeqCst);
            generation.running.fetch_add(1, Ordering::SeqCst);
            let result = job(&generation.warm);
            generation.running.fetch_sub(1, Ordering::SeqCst);
            pool.running.fetch_sub(1, Ordering::SeqCst);
            if let Err(SafeExecError::Jail(JailError::Warm(
                WarmError::Lost(_) | WarmError::Start(_) | WarmError::Busy { .. },
            ))) = &result
            {
                pool.rebuild_wanted.store(true, Ordering::SeqCst);
            }
            result
        });
        match task.await {
            Ok(result) => Ok(result),
            // The job panicked: the caller answers 500 (CatchPanic does
            // not see a panic on another thread).
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Interpreters the serving pool lost (failed and not restarted).
    fn lost(&self) -> usize {
        let generation = self.generation();
        let health = generation.warm.health();
        health
            .size
            .saturating_sub(health.idle + generation.running.load(Ordering::SeqCst))
    }

    /// Rebuilds the pool when a call saw it fail and it is short of
    /// interpreters: a new pool, checked, then swapped in (calls on the
    /// old one finish there). Blocking; returns whether it rebuilt.
    pub fn maybe_rebuild(&self) -> bool {
        if !self.rebuild_wanted.swap(false, Ordering::SeqCst) {
            return false;
        }
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let lost = self.lost();
        if lost == 0 {
            return false;
        }
        tracing::warn!(lost, "the warm pool lost interpreters; rebuilding it");
        match self.jail.warm(self.size) {
            Ok(warm) => {
                let results = checks::run(&warm, &self.probes);
                *self.checks.write().unwrap_or_else(|e| e.into_inner()) = results;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Generation {
                    warm,
                    running: AtomicUsize::new(0),
                });
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the warm pool could not be rebuilt; will try again");
                self.rebuild_wanted.store(true, Ordering::SeqCst);
                false
            }
        }
    }

    /// Waits until no call runs, at most `grace`; then cancels the calls
    /// still admitted (one running is killed, one not yet started ends
    /// [`JailError::Cancelled`]). Returns the calls still admitted.
    pub async fn drain(&self, grace: Duration) -> usize {
        let end = Instant::now() + grace;
        while self.admitted.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.cancel.cancel();
        self.admitted.load(Ordering::SeqCst)
    }
}
