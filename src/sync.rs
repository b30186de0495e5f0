//! Locking that recovers from poisoning instead of ignoring it.
//!
//! A panic while a `std` mutex is held poisons it. Treating that as "skip
//! this update" (`if let Ok(g) = m.lock()`) would silently stop the gate,
//! the connection cap or the checkpoint bookkeeping for the rest of the
//! process; a gate stuck at 503 would take every pod out of its Service.
//! [`lock`] instead goes on from the state as the panic left it, and says
//! so once (the panic itself was logged by the panic hook). The tracker has
//! its own, counted, recovery (`timeline::TrackerHandle`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

static RECOVERED: AtomicBool = AtomicBool::new(false);

/// Locks `m`, recovering from a poisoned lock (logged once per process).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| {
        if !RECOVERED.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "a panic interrupted an update of shared agent state (see the panic above); \
                 the agent goes on from the state as it was left — please report the panic"
            );
        }
        m.clear_poison();
        poisoned.into_inner()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_state() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            *g = 2;
            panic!("while holding the lock");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2, "the state as the panic left it");
        assert!(!m.is_poisoned(), "recovered once, clean afterwards");
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 3);
    }
}
