//! Checkpoints written on a thread of their own: serialising and fsyncing
//! thousands of file states takes milliseconds (more on a slow disk), and
//! the tail loop must not stop reading for that. The tail loop takes the
//! snapshot (an instant's offsets and counters, so they still agree) and
//! hands it over; a snapshot not written yet is replaced by a newer one,
//! which holds everything the older one did.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{Checkpointer, Saved, Snapshot, StateError};
use crate::sync::lock;

/// What the writer thread is told to do.
#[derive(Default)]
struct Queue {
    /// The snapshot to write, and whether the state is known to have
    /// changed since the last one written (see [`Checkpointer::save`]).
    next: Option<(Snapshot, bool)>,
    stop: bool,
}

impl Queue {
    /// Queues `snap`, replacing one not written yet: a change the replaced
    /// one carried is still unwritten.
    fn put(&mut self, snap: Snapshot, changed: bool) {
        let changed = changed || self.next.as_ref().is_some_and(|(_, c)| *c);
        self.next = Some((snap, changed));
    }
}

/// The handle of the checkpoint thread.
pub(crate) struct CheckpointWriter {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts the thread writing `path`; `done` hears the outcome of each
    /// write (metrics, `/readyz`, the log).
    pub(crate) fn spawn(
        path: PathBuf,
        mut done: impl FnMut(Result<Saved, StateError>) + Send + 'static,
    ) -> std::io::Result<CheckpointWriter> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let theirs = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut checkpointer = Checkpointer::new(path);
                while let Some((snap, changed)) = next(&theirs) {
                    done(checkpointer.save(&snap, changed));
                }
            })?;
        Ok(CheckpointWriter {
            queue,
            thread: Some(thread),
        })
    }

    /// Queues `snap`, replacing one not written yet. `changed`: the state
    /// moved since the last snapshot submitted (it is then written without
    /// first being compared with the file).
    pub(crate) fn submit(&self, snap: Snapshot, changed: bool) {
        let (q, ready) = &*self.queue;
        lock(q).put(snap, changed);
        ready.notify_one();
    }

    /// Writes `last` (after anything queued is superseded by it) and waits
    /// until it is on disk and the thread has ended.
    pub(crate) fn finish(mut self, last: Snapshot, changed: bool) {
        let (q, ready) = &*self.queue;
        {
            let mut q = lock(q);
            q.put(last, changed);
            q.stop = true;
        }
        ready.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(
                    "the checkpoint thread panicked; the last checkpoint may be missing"
                );
            }
        }
    }
}

/// Waits for the next snapshot; None once stopped with nothing left.
fn next(queue: &(Mutex<Queue>, Condvar)) -> Option<(Snapshot, bool)> {
    let (q, ready) = queue;
    let mut q = lock(q);
    loop {
        if let Some(s) = q.next.take() {
            return Some(s);
        }
        if q.stop {
            return None;
        }
        q = ready
            .wait(q)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

impl Drop for CheckpointWriter {
    /// Dropped without [`CheckpointWriter::finish`] (the tail loop unwinding):
    /// the thread writes what is queued and ends.
    fn drop(&mut self) {
        let (q, ready) = &*self.queue;
        lock(q).stop = true;
        ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn writes_off_thread_and_finish_waits_for_the_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (tx, rx) = mpsc::channel();
        let w =
            CheckpointWriter::spawn(path.clone(), move |r| tx.send(r.is_ok()).unwrap()).unwrap();
        w.submit(Snapshot::default(), true);
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true));
        assert!(path.exists());
        let mut last = Snapshot::default();
        last.tracker.pods_dropped = 7;
        w.finish(last, true);
        let loaded = crate::state::load(&path).unwrap().unwrap();
        assert_eq!(loaded.tracker.pods_dropped, 7);
    }

    #[test]
    fn a_replaced_snapshot_passes_on_that_the_state_changed() {
        let mut q = Queue::default();
        q.put(Snapshot::default(), true);
        q.put(Snapshot::default(), false);
        assert!(q.next.take().is_some_and(|(_, changed)| changed));
        q.put(Snapshot::default(), false);
        assert!(q.next.take().is_some_and(|(_, changed)| !changed));
    }

    #[test]
    fn a_failed_write_is_reported_not_lost_in_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        // The state path is a directory: the rename fails.
        let path = dir.path().join("state.json");
        std::fs::create_dir(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        let w = CheckpointWriter::spawn(path, move |r| tx.send(r.is_ok()).unwrap()).unwrap();
        w.submit(Snapshot::default(), false);
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(false));
        w.finish(Snapshot::default(), false);
    }
}
