//! The zygotes of a warm pool: the idle ones, taking one with a bound,
//! and a keeper thread that starts replacements, with backoff.
//!
//! Calls waiting for a zygote are served first come, first served; a
//! call that leaves the line (served, cancelled, out of time) wakes the
//! others.
//!
//! A call takes the zygote that has been idle longest. A zygote forks its
//! next worker after it answers, so the one just given back may still be
//! making that worker when the caller's next call comes; with two zygotes
//! or more, the one idle longest has had at least a whole call's time
//! (decision 0015, item 7; a pool of one gains nothing). For the
//! same reason the first zygotes retire in turn, not together: the one
//! started `i`-th of `n` retires after `max_calls - i * max_calls / n`
//! calls, its replacements after `max_calls`, so that calls spread over
//! the pool do not find every zygote retiring at once and wait for the
//! keeper to start one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::zygote::{Recipe, Zygote};
use crate::cancel::Cancel;
use crate::error::{JailError, WarmError};
use crate::jail::Jail;

/// The first wait after a failed start; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a call waiting for a zygote looks at its cancel handle.
const CANCEL_LOOK: Duration = Duration::from_millis(10);

/// What the pool's threads share.
#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<State>,
    /// Signalled when a zygote becomes idle, or a start fails.
    changed: Condvar,
    /// Signalled when the keeper has work (a zygote to start) or must stop.
    keeper_wake: Condvar,
    shutdown: AtomicBool,
    /// Zygotes that exist: idle, serving a call, or being started.
    alive: AtomicUsize,
    pub(crate) served: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// The next ticket to draw ([`Pool::ticket`]).
    tickets: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Longest idle first.
    idle: VecDeque<Zygote>,
    /// Zygotes the keeper must start.
    missing: usize,
    /// Why the last start failed, while no start has worked since.
    last_failure: Option<String>,
    /// The calls waiting for a zygote, by ticket, first come first
    /// served: only the first may take one.
    waiting: VecDeque<u64>,
}

/// A call's place in the line of calls waiting for a zygote. It leaves
/// the line when dropped (whichever way `take` ends, a panic too) and
/// wakes every waiting call, so that the next in line looks at the idle
/// zygotes: a call that leaves without one (cancelled, or out of time)
/// does not keep the zygote that woke it from the others.
struct Place<'a> {
    pool: &'a Pool,
    ticket: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.pool.lock().waiting.retain(|&t| t != self.ticket);
        self.pool.changed.notify_all();
    }
}

impl Pool {
    /// A pool of `size` zygotes, started here (a first start that fails is
    /// the pool's error), then kept by a thread of their own.
    pub(crate) fn start(
        jail: Arc<Jail>,
        recipe: Recipe,
        size: usize,
    ) -> Result<(Arc<Pool>, JoinHandle<()>), WarmError> {
        let pool = Arc::new(Pool {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            keeper_wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
        });
        for i in 0..size {
            let first = Recipe {
                max_calls: first_max_calls(recipe.max_calls, i, size),
                ..recipe.clone()
            };
            let zygote = Zygote::start(&jail, &first)?;
            pool.alive.fetch_add(1, Ordering::SeqCst);
            pool.lock().idle.push_back(zygote);
        }
        let keeper = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.keep(&jail, &recipe))
        };
        Ok((pool, keeper))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The zygote idle longest, waiting at most `timeout` for one; one
    /// found gone (it retired or was killed while idle) is replaced. When
    /// no zygote is alive and starting one fails, the answer is that
    /// failure, at once. Calls waiting are served in the order of their
    /// `ticket` ([`Pool::ticket`], drawn once per call): in the order they
    /// came, a call sent again (its zygote died before reading it) at the
    /// place its ticket gives it. (A call that looks at a cancel handle
    /// between waits would otherwise lose every wake to one that sleeps.)
    /// A call whose `cancel` is (or becomes) cancelled stops waiting:
    /// [`JailError::Cancelled`] within [`CANCEL_LOOK`].
    pub(crate) fn take(
        &self,
        timeout: Duration,
        cancel: Option<&Cancel>,
        ticket: u64,
    ) -> Result<Zygote, JailError> {
        let start = Instant::now();
        // Declared before `state`, so dropped after it (its drop locks).
        let place;
        let mut state = self.lock();
        let at = state.waiting.partition_point(|&t| t < ticket);
        state.waiting.insert(at, ticket);
        place = Place { pool: self, ticket };
        loop {
            if cancel.is_some_and(Cancel::is_cancelled) {
                return Err(JailError::Cancelled);
            }
            if state.waiting.front() == Some(&place.ticket) {
                while let Some(zygote) = state.idle.pop_front() {
                    if !zygote.is_gone() {
                        return Ok(zygote);
                    }
                    drop(state);
                    self.lose(zygote);
                    state = self.lock();
                }
            }
            if self.alive.load(Ordering::SeqCst) == 0 {
                if let Some(why) = &state.last_failure {
                    return Err(WarmError::Unavailable { why: why.clone() }.into());
                }
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(WarmError::Busy {
                    waited: start.elapsed(),
                }
                .into());
            }
            // The cancel handle is a pipe, which no condition variable
            // watches: a call that has one looks at it between waits.
            let wait = match cancel {
                Some(_) => left.min(CANCEL_LOOK),
                None => left,
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A call's place in the line of calls waiting for a zygote: tickets
    /// are served in order.
    pub(crate) fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed)
    }

    /// A zygote taken and not used (the call ended before it was sent),
    /// back at the head of the idle ones, where it was.
    pub(crate) fn put_back(&self, zygote: Zygote) {
        self.lock().idle.push_front(zygote);
        self.changed.notify_all();
    }

    /// A zygote back from a call, ready for the next.
    pub(crate) fn give_back(&self, zygote: Zygote) {
        self.lock().idle.push_back(zygote);
        // Every waiting call: only the first in line may take it.
        self.changed.notify_all();
    }

    /// A zygote that failed, retired or is gone: it is ended (its drop
    /// kills every process of it and removes its home) and replaced.
    pub(crate) fn lose(&self, zygote: Zygote) {
        drop(zygote);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.lock().missing += 1;
        self.keeper_wake.notify_one();
    }

    /// Idle zygotes now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().idle.len()
    }

    /// The pids of the idle zygotes.
    pub(crate) fn idle_pids(&self) -> Vec<i32> {
        self.lock().idle.iter().map(Zygote::pid).collect()
    }

    /// The keeper: starts the missing zygotes, waiting longer after each
    /// failed start, until the pool is dropped.
    fn keep(&self, jail: &Jail, recipe: &Recipe) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut state = self.lock();
            while state.missing == 0 && !self.shutdown.load(Ordering::SeqCst) {
                state = self
                    .keeper_wake
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return;
            }
            drop(state);
            self.alive.fetch_add(1, Ordering::SeqCst);
            match Zygote::start(jail, recipe) {
                Ok(zygote) => {
                    backoff = FIRST_BACKOFF;
                    let mut state = self.lock();
                    state.missing -= 1;
                    state.last_failure = None;
                    state.idle.push_back(zygote);
                    drop(state);
                    self.changed.notify_all();
                }
                Err(e) => {
                    self.alive.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(
                        "a warm interpreter did not start; trying again in {backoff:?}: {e}"
                    );
                    self.lock().last_failure = Some(e.to_string());
                    self.changed.notify_all();
                    let state = self.lock();
                    let _ = self.keeper_wake.wait_timeout_while(state, backoff, |_| {
                        !self.shutdown.load(Ordering::SeqCst)
                    });
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Stops the keeper and ends every idle zygote.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.keeper_wake.notify_all();
        let idle = std::mem::take(&mut self.lock().idle);
        drop(idle);
    }
}

/// The calls after which the `i`-th of a pool's `size` first zygotes
/// retires: `max_calls - i * max_calls / size` (at least one), so that
/// the first zygotes retire in turn (see the module's text). The product
/// is taken before the division, so that a `max_calls` that is not a
/// multiple of `size`, or is smaller, still spreads them.
fn first_max_calls(max_calls: u64, i: usize, size: usize) -> u64 {
    let size = size.max(1) as u128;
    let earlier = (i as u128).min(size - 1) * u128::from(max_calls) / size;
    // `earlier < max_calls` for `i < size`: the result is at least one
    // unless `max_calls` is zero, which retires after every call anyway.
    (u128::from(max_calls) - earlier).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::first_max_calls;

    #[test]
    fn the_first_zygotes_retire_in_turn() {
        let turns = |max_calls: u64, size: usize| {
            (0..size)
                .map(|i| first_max_calls(max_calls, i, size))
                .collect::<Vec<_>>()
        };
        assert_eq!(turns(1000, 4), [1000, 750, 500, 250]);
        assert_eq!(turns(1000, 1), [1000]);
        // Not a multiple of the size, and smaller than it: still in turn.
        assert_eq!(turns(5, 3), [5, 4, 2]);
        assert_eq!(turns(10, 4), [10, 8, 5, 3]);
        assert_eq!(turns(3, 8), [3, 3, 3, 2, 2, 2, 1, 1]);
        assert_eq!(turns(1, 2), [1, 1]);
        // No overflow at the top of the range.
        assert_eq!(turns(u64::MAX, 2), [u64::MAX, u64::MAX - u64::MAX / 2]);
        // Zero (retire after every call) stays one call.
        assert_eq!(turns(0, 2), [1, 1]);
    }
}
