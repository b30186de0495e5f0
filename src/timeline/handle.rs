//! The tracker as shared between its writers (the tail thread, the probe
//! tasks) and its readers (`/metrics`, `/api/v1/pods`, `/gate`, OTLP, the
//! checkpoint).
//!
//! A panic while the lock is held poisons a `std` mutex. Ignoring that
//! (`if let Ok(t) = tracker.lock()`) would silently drop every later event
//! and freeze every count, which breaks exactly-once without a word. This
//! handle recovers explicitly instead (as tokio-console's `sync.rs` does):
//! the first recovery is logged, every one is counted in
//! `litellm_sentinel_pod_state_poisoned_total`, and counting goes on from
//! the state as the panic left it (off by at most the one event that was
//! being applied). Callers get a guard, never a `Result` to drop.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Tracker;

/// A cloneable handle to the one [`Tracker`] of the process.
#[derive(Clone, Debug)]
pub struct TrackerHandle {
    inner: Arc<Inner>,
}

/// The name the handle had when it was an `Arc<Mutex<Tracker>>`.
pub type SharedTracker = TrackerHandle;

#[derive(Debug)]
struct Inner {
    tracker: Mutex<Tracker>,
    /// The tracker's generation as of the last guard released.
    generation: AtomicU64,
    /// Poisoned locks recovered.
    poisoned: AtomicU64,
}

impl TrackerHandle {
    /// Shares `tracker`.
    pub fn new(tracker: Tracker) -> TrackerHandle {
        let generation = AtomicU64::new(tracker.generation());
        TrackerHandle {
            inner: Arc::new(Inner {
                tracker: Mutex::new(tracker),
                generation,
                poisoned: AtomicU64::new(0),
            }),
        }
    }

    /// Exclusive access to the tracker. Blocks while another thread holds
    /// it; recovers (logged once, counted) from a lock poisoned by a panic.
    pub fn lock(&self) -> TrackerGuard<'_> {
        let guard = match self.inner.tracker.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let before = self.inner.poisoned.fetch_add(1, Ordering::Relaxed);
                if before == 0 {
                    tracing::error!(
                        "a panic interrupted an update of the pod state (see the panic above); \
                         counting continues from the state as it was left, the event being \
                         applied may be counted partly or not at all \
                         (litellm_sentinel_pod_state_poisoned_total counts these)"
                    );
                }
                self.inner.tracker.clear_poison();
                let mut g = poisoned.into_inner();
                // Whatever the interrupted update changed, outputs must re-read it.
                g.bump();
                g
            }
        };
        TrackerGuard {
            guard,
            published: &self.inner.generation,
        }
    }

    /// The tracker's generation as of the last released guard, without
    /// taking the lock: it changes whenever pod state the outputs show may
    /// have changed ([`Tracker::generation`]), so `/metrics` can be cached by it.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// How often a poisoned lock was recovered (a self metric).
    pub(crate) fn poisoned(&self) -> u64 {
        self.inner.poisoned.load(Ordering::Relaxed)
    }

    /// The tracker itself, when this is the last handle (`report`, at the
    /// end of its input); the handle back otherwise.
    pub fn into_inner(self) -> Result<Tracker, TrackerHandle> {
        // A poisoned lock is recovered (logged, counted) as by any other lock.
        drop(self.lock());
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner
                .tracker
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner())),
            Err(inner) => Err(TrackerHandle { inner }),
        }
    }
}

/// Access to the tracker; releasing it publishes the tracker's generation.
pub struct TrackerGuard<'a> {
    guard: MutexGuard<'a, Tracker>,
    published: &'a AtomicU64,
}

impl Deref for TrackerGuard<'_> {
    type Target = Tracker;

    fn deref(&self) -> &Tracker {
        &self.guard
    }
}

impl DerefMut for TrackerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        &mut self.guard
    }
}

impl Drop for TrackerGuard<'_> {
    fn drop(&mut self) {
        self.published
            .store(self.guard.generation(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, EventKind, PodRef};
    use crate::time::Timestamp;
    use crate::timeline::TimelineConfig;

    fn ev(kind: EventKind) -> Event {
        Event {
            ts: Some(Timestamp(1_000_000_000)),
            kind,
            rule: None,
        }
    }

    #[test]
    fn generation_moves_with_pod_state_only() {
        let h = TrackerHandle::new(Tracker::new(TimelineConfig::default()));
        let p = PodRef::new("llm", "litellm-0");
        let now = Timestamp(2_000_000_000);
        let g0 = h.generation();
        h.lock()
            .apply_event(&p, &ev(EventKind::ProxyAccepting), now);
        let g1 = h.generation();
        assert_ne!(g1, g0, "an event changes the state");
        // Reading, an idle pass and a clock that does not move change nothing.
        let _ = h.lock().pods().count();
        h.lock().tick(now);
        h.lock().advance(&p, Timestamp(1_000_000_000));
        assert_eq!(h.generation(), g1);
        // Nor does a record clock that moves without closing anything (an
        // ordinary log chunk): nothing `/metrics` shows changed.
        h.lock().advance(&p, Timestamp(5_000_000_000));
        h.lock().apply_event(&p, &ev(EventKind::RequestServed), now);
        assert_eq!(
            h.generation(),
            g1,
            "a chunk and a request changed nothing shown"
        );
        // Past the quiet period the start closes (gap 0): that shows.
        h.lock().advance(&p, Timestamp(70_000_000_000));
        assert_ne!(h.generation(), g1, "the start closed");
        assert!(!h.lock().pod(&p).unwrap().starts[0].open);
    }

    #[test]
    fn a_poisoned_lock_is_recovered_counted_and_no_event_is_lost() {
        let h = TrackerHandle::new(Tracker::new(TimelineConfig::default()));
        let p = PodRef::new("llm", "litellm-0");
        let now = Timestamp(2_000_000_000);
        h.lock()
            .apply_event(&p, &ev(EventKind::SpendBatchDropped), now);
        let h2 = h.clone();
        let panicked = std::thread::spawn(move || {
            let _g = h2.lock();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(h.poisoned(), 0, "not yet seen");
        let before = h.generation();
        h.lock()
            .apply_event(&p, &ev(EventKind::SpendBatchDropped), now);
        assert_eq!(h.poisoned(), 1);
        assert_ne!(h.generation(), before);
        let dropped = h.lock().pod(&p).unwrap().counts[crate::model::Counter::SpendBatchesDropped];
        assert_eq!(dropped, 2, "the event after the panic was counted");
        // Recovered once: later locks are clean.
        h.lock()
            .apply_event(&p, &ev(EventKind::SpendBatchDropped), now);
        assert_eq!(h.poisoned(), 1);
        let t = h.into_inner().expect("last handle");
        assert_eq!(
            t.pod(&p).unwrap().counts[crate::model::Counter::SpendBatchesDropped],
            3
        );
    }
}
