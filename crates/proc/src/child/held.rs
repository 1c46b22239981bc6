//! Signals held back from the calling thread while their handlers are
//! installed: the one use of [`sys`](super::sys) outside the cloned
//! children, since changing a thread's signal mask needs `unsafe`.
//!
//! A handler library that installs its handler first and records what it
//! should do with the signal after (as `signal-hook-registry` does, to be
//! safe in a signal handler) drops a signal that comes in between: the
//! disposition it replaced was the default, which it cannot run for
//! itself. A `codejail` command stopped in that moment would run on. A
//! signal that comes while it is held is pending instead, and delivered
//! when the mask is put back, to the handler then in place.

use std::ffi::c_int;

use super::sys;

/// The calling thread's signal mask with some signals added, put back
/// when this is dropped. Threads started meanwhile keep the larger mask
/// (a thread that only waits for word of a signal needs none delivered).
pub struct HeldSignals {
    old: libc::sigset_t,
}

impl HeldSignals {
    /// Blocks `signals` for the calling thread: `pthread_sigmask(SIG_BLOCK)`.
    ///
    /// # Errors
    /// The errno of `pthread_sigmask` (`EINVAL` for a signal number it
    /// does not know).
    pub fn hold(signals: &[c_int]) -> std::io::Result<HeldSignals> {
        let set = sys::sigset(signals);
        sys::thread_sigmask(libc::SIG_BLOCK, &set)
            .map(|old| HeldSignals { old })
            .map_err(std::io::Error::from_raw_os_error)
    }
}

impl Drop for HeldSignals {
    /// Puts the mask back (`pthread_sigmask(SIG_SETMASK)`): a signal that
    /// came while held is delivered now. It cannot fail with a mask the
    /// kernel gave.
    fn drop(&mut self) {
        let _ = sys::thread_sigmask(libc::SIG_SETMASK, &self.old);
    }
}

impl std::fmt::Debug for HeldSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSignals").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal sent to this thread while held waits, and reaches the
    /// handler in place once the mask is put back; the mask is then as it
    /// was. Fails if `hold` blocks nothing (the signal's default action
    /// would end the test process) or if the drop does not unblock it.
    #[test]
    fn a_held_signal_waits_for_the_mask_to_be_put_back() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static SEEN: AtomicBool = AtomicBool::new(false);
        let before = sys::thread_sigmask(libc::SIG_BLOCK, &sys::sigset(&[])).unwrap();
        {
            let _held = HeldSignals::hold(&[libc::SIGUSR2]).unwrap();
            // Sent to this thread: its default action ends the process
            // unless it is blocked.
            // SAFETY: raises SIGUSR2 for this thread only.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
            let pending = {
                let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
                // SAFETY: sigpending writes the whole set.
                assert_eq!(unsafe { libc::sigpending(set.as_mut_ptr()) }, 0);
                // SAFETY: written above.
                let set = unsafe { set.assume_init() };
                // SAFETY: reads an initialised set.
                unsafe { libc::sigismember(&set, libc::SIGUSR2) }
            };
            assert_eq!(pending, 1, "SIGUSR2 was not held");
            extern "C" fn note(_: c_int) {
                SEEN.store(true, Ordering::SeqCst);
            }
            // SAFETY: an all-zero sigaction is valid; `note` only stores an
            // atomic, which is async-signal-safe.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = note as *const () as usize;
                assert_eq!(
                    libc::sigaction(libc::SIGUSR2, &act, std::ptr::null_mut()),
                    0
                );
            }
            assert!(!SEEN.load(Ordering::SeqCst));
        }
        assert!(
            SEEN.load(Ordering::SeqCst),
            "the held signal was not delivered"
        );
        let after = sys::thread_sigmask(libc::SIG_BLOCK, &sys::sigset(&[])).unwrap();
        // SAFETY: both sets are initialised.
        let same = (1..libc::SIGRTMAX())
            .all(|s| unsafe { libc::sigismember(&before, s) == libc::sigismember(&after, s) });
        assert!(same, "the mask was not put back");
    }
}
