//! Compaction: drop every revision that no read at or above the compaction revision can see.
//!
//! Two phases, as etcd does it:
//! 1. *Apply* (inside the raft batch, fast): the revision index is compacted (it yields the revisions to
//!    keep), the store's compact revision moves so reads below it fail, and `scheduledCompactRev` is written
//!    in the batch. Nothing is deleted from the backend yet.
//! 2. *Purge* (a background thread, after the batch commits): the backend rows at or below the revision that
//!    are not kept are deleted in transactions of [`BATCH_LIMIT`] rows with a pause between them, so a large
//!    compaction never holds the single LMDB writer for long and requests keep flowing. Then
//!    `finishedCompactRev` is written and `physical` compactions waiting for it are released.
//!
//! A crash between the phases leaves `scheduled > finished`; opening the store compacts the rebuilt index
//! again and resumes the purge. Rows being purged are unreachable (the index no longer points at them) and
//! below the compact revision, so no reader can ask for them.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::backend::{Backend, FINISHED_COMPACT_KEY, SCHEDULED_COMPACT_KEY};
use super::revision::Revision;
use super::{MvccError, TxnWrite};

/// Rows deleted per backend transaction (etcd's compaction-batch-limit).
pub const BATCH_LIMIT: usize = 1000;
/// Pause between purge transactions (etcd's compaction batch interval).
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// A compaction's purge: the rows at or below `rev` not in `keep` go.
pub(crate) struct Job {
    rev: i64,
    keep: HashSet<Revision>,
}

/// The purge side: jobs scheduled by applied compactions, released when the backend commit holding them
/// (and every row they purge) is done.
pub struct Compactor {
    /// Scheduled in the open batch; the batch hands it to the store's write buffer.
    pending: Mutex<Option<Job>>,
    queue: Arc<Mutex<Vec<Job>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    finished: tokio::sync::watch::Sender<i64>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    /// Set by [`Compactor::stop`] for good (the store closes or failed): a restore's [`Compactor::forget`]
    /// does not start purging again.
    closed: std::sync::atomic::AtomicBool,
}

impl Compactor {
    pub fn new(finished: i64) -> Compactor {
        Compactor {
            pending: Mutex::new(None),
            queue: Arc::new(Mutex::new(Vec::new())),
            worker: Mutex::new(None),
            finished: tokio::sync::watch::channel(finished).0,
            stopped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn schedule(&self, rev: i64, keep: HashSet<Revision>) {
        *self.pending.lock() = Some(Job { rev, keep });
    }

    /// The compaction scheduled in the batch that is ending, if any.
    pub(crate) fn take_scheduled(&self) -> Option<Job> {
        self.pending.lock().take()
    }

    /// The backend commit holding `job`'s compaction is done: start purging.
    pub(crate) fn release(&self, job: Job, backend: &Arc<Backend>) {
        self.queue.lock().push(job);
        let mut worker = self.worker.lock();
        if worker.as_ref().is_some_and(|h| !h.is_finished()) {
            return; // the running worker takes the queued job next
        }
        let (queue, backend, finished, stopped) =
            (self.queue.clone(), backend.clone(), self.finished.clone(), self.stopped.clone());
        *worker = Some(std::thread::spawn(move || loop {
            let Some(job) = queue.lock().pop() else { return };
            match purge(&backend, &job, &stopped) {
                Ok(true) => {
                    finished.send_modify(|r| *r = (*r).max(job.rev));
                }
                Ok(false) => return, // stopping: the purge resumes at the next start
                // A failed backend commit is fatal, as etcd's is (fail-stop ends the process; the restart resumes
                // the purge from the scheduled revision).
                Err(e) => panic!("compaction purge at {}: {e}", job.rev),
            }
        }));
    }

    /// Restarts a purge found unfinished when the store opened.
    pub(crate) fn resume(&self, rev: i64, keep: HashSet<Revision>, backend: &Arc<Backend>) {
        self.release(Job { rev, keep }, backend);
    }

    /// The store is being replaced (a snapshot restore): the running purge stops between two transactions and
    /// the queued and scheduled ones are dropped (their keep sets belong to the old index and would delete rows
    /// of the new one). Then [`Compactor::restored`].
    pub(crate) fn forget(&self) {
        use std::sync::atomic::Ordering;
        let mut worker = self.worker.lock(); // a concurrent stop() waits, then stops whatever is resumed
        self.halt(&mut worker);
        self.queue.lock().clear();
        self.pending.lock().take();
        if !self.closed.load(Ordering::Acquire) {
            self.stopped.store(false, Ordering::Release);
        }
    }

    /// The new store's last finished purge is `finished`; the caller resumes its unfinished one, if any.
    pub(crate) fn restored(&self, finished: i64) {
        self.finished.send_replace(finished);
    }

    /// Waits until the backend rows of compaction `rev` are purged (a `physical` compaction).
    pub async fn wait_finished(&self, rev: i64) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|r| *r >= rev).await;
    }

    /// The last compaction whose purge finished.
    pub fn finished_rev(&self) -> i64 {
        *self.finished.borrow()
    }

    /// Stops the purge between two transactions, for good, and waits for the worker.
    pub fn stop(&self) {
        use std::sync::atomic::Ordering;
        self.closed.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        let mut worker = self.worker.lock();
        self.halt(&mut worker); // again: a forget() that held the lock may have cleared `stopped`
    }

    /// Stops the running purge between two transactions and waits for it (`worker` is the held worker lock).
    fn halt(&self, worker: &mut Option<std::thread::JoinHandle<()>>) {
        self.stopped.store(true, std::sync::atomic::Ordering::Release);
        if let Some(h) = worker.take() {
            let _ = h.join();
        }
    }
}

/// Deletes the rows of `job` in batches; Ok(false) when stopped before the end.
fn purge(backend: &Backend, job: &Job, stopped: &std::sync::atomic::AtomicBool) -> Result<bool, MvccError> {
    let end = Revision::new(job.rev + 1, 0).to_bytes().to_vec();
    let mut from = Revision::new(0, 0).to_bytes().to_vec();
    loop {
        if stopped.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        let mut txn = backend.write_txn()?;
        let keys = backend.keys_between(&txn, &from, &end, BATCH_LIMIT)?;
        for k in &keys {
            if !job.keep.contains(&Revision::from_bytes(k)) {
                backend.delete_kv(&mut txn, k)?;
            }
        }
        let done = keys.len() < BATCH_LIMIT;
        if done {
            backend.put_meta_u64(&mut txn, FINISHED_COMPACT_KEY, job.rev as u64)?;
        }
        crate::failpoint::failpoint("compaction-before-commit");
        txn.commit().map_err(|e| MvccError::Backend(e.to_string()))?;
        crate::failpoint::failpoint("compaction-after-commit");
        if done {
            return Ok(true);
        }
        from = keys.last().expect("a full batch").clone();
        from.push(0); // the next key after the last one seen
        std::thread::sleep(BATCH_PAUSE);
    }
}

impl TxnWrite<'_, '_> {
    /// Compacts history at `rev`; etcd's checks first (already compacted, future revision).
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.state.compact_main_rev {
            return Err(MvccError::Compacted);
        }
        if rev > self.state.current_rev {
            return Err(MvccError::FutureRev);
        }
        let keep = self.state.index.compact(rev);
        self.state.compact_main_rev = rev;
        let store = self.store();
        self.ops.put_meta_u64(SCHEDULED_COMPACT_KEY, rev as u64);
        store.compactor.schedule(rev, keep);
        Ok(())
    }
}
