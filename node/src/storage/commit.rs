//! Group commit: the writer thread that runs every write and makes it durable before replying.
//!
//! Async callers put a request on a bounded tokio channel (backpressure, no blocking of the
//! runtime) and await a oneshot reply. The dedicated std thread takes whatever is queued (up to
//! [`MAX_BATCH`]) and runs each request as its own transaction against the batch's pending
//! writes (`overlay`): a request that fails leaves nothing behind, one that succeeds is seen by
//! the next. Then it settles the batch's statistics (the summed deltas of its case changes
//! become one write per entry, see `stats`), writes the batch to sled as one atomic sled
//! batch, makes it durable with one [`Syncer::sync`], and only then replies to every request
//! of the batch.
//!
//! # Which failures make the store refuse writes
//!
//! Only a failure after which nobody can know what is on disk latches the store into the
//! failed state ([`StorageError::Failed`]: no later write runs, health turns NOT_SERVING,
//! reopening is the only way out). Everything else fails the attempt and nothing more
//! ([`classify`] decides; its unit tests list the cases):
//!
//! * **latch: an fsync failed.** `fdatasync`/`fsync` of sled's log, of a blob or of a
//!   directory returned an error: the kernel may already have dropped the dirty pages it could
//!   not write, so a later successful fsync proves nothing about them.
//! * **latch: sled's `flush()` failed.** sled 0.34 writes its log with `pwrite` and
//!   `sync_file_range` on the log file it opened at start (no new file descriptor is needed),
//!   and records any failure there, or in allocating a segment, as its own global error, after
//!   which every sled operation fails. It is sled's own sync failing.
//! * **latch: the write-out of the batch failed** (settling statistics, or sled's
//!   `apply_batch`, including the batch's earlier partial write-outs before range scans). Part
//!   of the batch may be in sled already. Worse, sled 0.34 creates the file of a large value
//!   (`blobs/<lsn>`, values over about a quarter of a 512 KiB segment) *after* claiming its
//!   place in the log buffer, and does not release that place when the creation fails (for
//!   example with EMFILE): the buffer is then never written and the next `flush()` would wait
//!   forever. The store must stop rather than hang; the connection caps of
//!   `crate::listener` and the deploy unit's open-files limit are what keep EMFILE away
//!   from this path.
//! * **fail the batch, keep going: opening, listing or inspecting before an fsync failed**
//!   (EMFILE, ENFILE, ENOMEM, EAGAIN, or anything else returned by `open`, `read_dir` or
//!   `stat` of the files to sync). Nothing was fsynced and failed: the data sled wrote sits in
//!   the page cache, still dirty, and a later successful fsync persists it. The requests of
//!   the batch get [`StorageError::Unavailable`] (gRPC UNAVAILABLE: not acknowledged; the
//!   write is visible to readers and becomes durable with the next successful sync, or is
//!   lost in a crash before it). The next batch's sync covers it; while no batch comes, the
//!   thread retries the sync itself every [`RETRY_SYNC_EVERY`] so that whoever waits for
//!   durability (the federation's senders) is not kept waiting.
//! * **fail the request only: a transaction's own error.** A transaction runs against the
//!   pending writes and writes nothing to sled itself, so a read error inside it (a blob that
//!   cannot be opened under EMFILE, say) fails that request alone.
//!
//! Shutdown closes the channel, drains what was already queued (committing and syncing it),
//! drops the thread's handles on the database, then signals every waiting caller. Dropping the
//! [`Writer`] does the same and joins the thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use super::db::{BEFORE_SYNC_OPS, Db, Syncer};
use super::trees::Trees;
use super::{StorageError, WriteError};

/// Most requests committed under one sync.
pub(crate) const MAX_BATCH: usize = 256;
/// Requests that may wait in the queue before callers wait for room.
const QUEUE_LEN: usize = 1024;
/// While a failed sync is outstanding and nothing is queued, how often the thread retries it.
pub(crate) const RETRY_SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// What a failed step of a batch means for the store (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing can be known about what is on disk: refuse every later write.
    Latch,
    /// This attempt failed, nothing was acknowledged; the next one may succeed.
    Retry,
}

/// Which failures of [`Syncer::sync`] latch the store (write-out failures always do).
pub(crate) fn classify(err: &StorageError) -> Verdict {
    match err {
        StorageError::Io { op, .. } if BEFORE_SYNC_OPS.contains(op) => Verdict::Retry,
        _ => Verdict::Latch,
    }
}

/// How a batch ended when it did not become durable.
#[derive(Debug, Clone)]
enum BatchFailure {
    Latched(String),
    Transient(String),
}

impl BatchFailure {
    fn to_error(&self) -> StorageError {
        match self {
            BatchFailure::Latched(r) => StorageError::Failed(r.clone()),
            BatchFailure::Transient(r) => StorageError::Unavailable(r.clone()),
        }
    }
}

/// A queued write, type-erased so that one queue carries every kind of write.
trait Job: Send {
    /// Runs the transaction; the outcome is held back until the batch is synced.
    fn run(self: Box<Self>, trees: &Trees) -> Box<dyn Pending>;
    /// Answers without running (the store has failed).
    fn reject(self: Box<Self>, err: StorageError);
}

/// A write that ran and waits for its batch's sync.
trait Pending: Send {
    /// A successful outcome may be reported only if the sync succeeded.
    fn finish(self: Box<Self>, synced: Result<(), &BatchFailure>);
}

struct Request<W, T> {
    work: W,
    reply: oneshot::Sender<Result<T, WriteError>>,
}

struct Outcome<T> {
    result: Result<T, WriteError>,
    reply: oneshot::Sender<Result<T, WriteError>>,
}

impl<W, T> Job for Request<W, T>
where
    W: FnOnce(&Trees) -> Result<T, WriteError> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, trees: &Trees) -> Box<dyn Pending> {
        let Request { work, reply } = *self;
        let result = catch_unwind(AssertUnwindSafe(|| work(trees)))
            .unwrap_or(Err(WriteError::Storage(StorageError::WritePanicked)));
        Box::new(Outcome { result, reply })
    }

    fn reject(self: Box<Self>, err: StorageError) {
        let _ = self.reply.send(Err(err.into()));
    }
}

impl<T: Send> Pending for Outcome<T> {
    fn finish(self: Box<Self>, synced: Result<(), &BatchFailure>) {
        let result = match (self.result, synced) {
            (Ok(_), Err(e)) => Err(e.to_error().into()),
            (result, _) => result,
        };
        // The caller may have stopped waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Shutdown,
}

/// The async side of the writer thread.
pub(crate) struct Writer {
    /// `None` once dropped, so that the thread sees the channel close.
    tx: Option<mpsc::Sender<Msg>>,
    failed: Arc<OnceLock<String>>,
    /// Told of every batch made durable (its size and how long it took): the metrics.
    pub(crate) observer: Arc<OnceLock<CommitObserver>>,
    /// Closed by the thread once it has stopped and released the database.
    stopped: watch::Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Makes the next sync fail (tests of the failure path).
    #[cfg(test)]
    pub(crate) fail_next_sync: Arc<std::sync::atomic::AtomicBool>,
    /// Makes this many next syncs fail before their fsync, as EMFILE does.
    #[cfg(test)]
    pub(crate) fail_syncs_transiently: Arc<std::sync::atomic::AtomicUsize>,
}

/// What is told of each batch made durable: how many transactions it carried and how long
/// it took from running the first to the end of its sync.
pub type CommitObserver = Box<dyn Fn(usize, std::time::Duration) + Send + Sync>;

impl Writer {
    pub(crate) fn spawn(db: Db, trees: Trees, syncer: Syncer) -> Result<Writer, StorageError> {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let failed = Arc::new(OnceLock::new());
        let observer: Arc<OnceLock<CommitObserver>> = Arc::new(OnceLock::new());
        let (stopping, stopped) = watch::channel(());
        #[cfg(test)]
        let fail_next_sync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        #[cfg(test)]
        let fail_syncs_transiently = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = WriterThread {
            rx,
            db,
            trees,
            syncer,
            failed: failed.clone(),
            observer: observer.clone(),
            stopping,
            unsynced: None,
            #[cfg(test)]
            fail_next_sync: fail_next_sync.clone(),
            #[cfg(test)]
            fail_syncs_transiently: fail_syncs_transiently.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || thread.run())
            .map_err(|source| StorageError::Io {
                op: "spawning the writer thread for",
                path: PathBuf::new(),
                source,
            })?;
        Ok(Writer {
            tx: Some(tx),
            failed,
            observer,
            stopped,
            thread: Mutex::new(Some(handle)),
            #[cfg(test)]
            fail_next_sync,
            #[cfg(test)]
            fail_syncs_transiently,
        })
    }

    /// Queues `work` and waits until it ran and its batch is durable.
    pub(crate) async fn submit<W, T>(&self, work: W) -> Result<T, WriteError>
    where
        W: FnOnce(&Trees) -> Result<T, WriteError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(reason) = self.failed.get() {
            return Err(StorageError::Failed(reason.clone()).into());
        }
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        let (reply, answer) = oneshot::channel();
        tx.send(Msg::Job(Box::new(Request { work, reply })))
            .await
            .map_err(|_| StorageError::Closed)?;
        // The reply is dropped unanswered only if the writer thread died.
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Returns once the thread has drained the queue, synced and released the database.
    pub(crate) async fn shutdown(&self) {
        if let Some(tx) = &self.tx {
            // Fails if the thread is already stopping; then just wait for it.
            let _ = tx.send(Msg::Shutdown).await;
        }
        let mut stopped = self.stopped.clone();
        // Err means the sender is gone: the thread has finished.
        while stopped.changed().await.is_ok() {}
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        let handle = self.thread.get_mut().ok().and_then(Option::take);
        // Bounded by one batch and its sync. (Never join from the thread itself: a write
        // closure could hold the last clone of the store.)
        if let Some(handle) = handle.filter(|h| h.thread().id() != std::thread::current().id()) {
            let _ = handle.join();
        }
    }
}

struct WriterThread {
    rx: mpsc::Receiver<Msg>,
    db: Db,
    trees: Trees,
    syncer: Syncer,
    failed: Arc<OnceLock<String>>,
    observer: Arc<OnceLock<CommitObserver>>,
    stopping: watch::Sender<()>,
    /// The generation of a batch written to sled whose sync failed transiently: the next
    /// successful sync makes it durable.
    unsynced: Option<u64>,
    #[cfg(test)]
    fail_next_sync: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(test)]
    fail_syncs_transiently: Arc<std::sync::atomic::AtomicUsize>,
}

impl WriterThread {
    fn run(mut self) {
        self.serve();
        if self.unsynced.is_some() {
            // The last chance to make what sled holds durable before the handles go.
            self.sync_outstanding();
        }
        let WriterThread {
            rx,
            db,
            trees,
            syncer,
            failed,
            stopping,
            ..
        } = self;
        // Release the database before signalling, so the directory can be reopened.
        drop((rx, db, trees, syncer, failed));
        drop(stopping);
    }

    /// The next message; while a sync is outstanding and nothing is queued, retries the sync
    /// every [`RETRY_SYNC_EVERY`] instead of blocking.
    fn next(&mut self) -> Option<Msg> {
        loop {
            if self.unsynced.is_none() {
                return self.rx.blocking_recv();
            }
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(RETRY_SYNC_EVERY);
                    self.sync_outstanding();
                }
            }
        }
    }

    fn serve(&mut self) {
        while let Some(first) = self.next() {
            let mut jobs = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Job(job) => jobs.push(job),
                    // Refuse new requests; those already queued are still received.
                    Msg::Shutdown => self.rx.close(),
                }
                next = if jobs.len() < MAX_BATCH {
                    self.rx.try_recv().ok()
                } else {
                    None
                };
            }
            self.commit(jobs);
        }
    }

    /// Refuses every later write, says so loudly once and tells whoever watches (health).
    fn latch(&self, reason: String) {
        if self.failed.set(reason.clone()).is_ok() {
            tracing::error!(
                error = %reason,
                "store sync failed: refusing every write until the node is restarted (存储同步失败，重启前拒绝一切写入)"
            );
        }
        self.trees.signals.batch_failed(reason);
    }

    /// Retries the sync a transient failure left outstanding.
    fn sync_outstanding(&mut self) {
        let Some(generation) = self.unsynced else {
            return;
        };
        if self.failed.get().is_some() {
            self.unsynced = None;
            return;
        }
        match self.sync() {
            Ok(()) => {
                tracing::info!("store sync succeeded again; the earlier batch is durable");
                self.unsynced = None;
                self.trees.signals.batch_synced(generation);
            }
            Err(e) => match classify(&e) {
                // Already said when the batch failed; no log line per retry.
                Verdict::Retry => {}
                Verdict::Latch => {
                    self.unsynced = None;
                    self.latch(format!("sync failed: {e}"));
                }
            },
        }
    }

    fn commit(&mut self, jobs: Vec<Box<dyn Job>>) {
        let started = std::time::Instant::now();
        let generation = self.trees.signals.begin_batch();
        let mut pending = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(reason) = self.failed.get() {
                job.reject(StorageError::Failed(reason.clone()));
                continue;
            }
            pending.push(job.run(&self.trees));
        }
        if pending.is_empty() {
            // Nothing ran: the generation changed nothing, so it is as durable as before
            // (unless an earlier batch is still unsynced: then it waits for that one's sync).
            if self.unsynced.is_none() {
                self.trees.signals.batch_synced(generation);
            } else {
                self.unsynced = Some(generation);
            }
            return;
        }
        let synced = match self.write_out() {
            // See the module doc: sled's state is unknown, and its next flush could hang.
            Err(e) => Err(BatchFailure::Latched(format!("write-out failed: {e}"))),
            Ok(()) => match self.sync() {
                Ok(()) => Ok(()),
                Err(e) => match classify(&e) {
                    Verdict::Latch => Err(BatchFailure::Latched(format!("sync failed: {e}"))),
                    Verdict::Retry => Err(BatchFailure::Transient(format!(
                        "sync could not start: {e}"
                    ))),
                },
            },
        };
        match &synced {
            Ok(()) => {
                if let Some(observe) = self.observer.get() {
                    observe(pending.len(), started.elapsed());
                }
                if self.unsynced.take().is_some() {
                    tracing::info!("store sync succeeded again; earlier batches are durable");
                }
                self.trees.signals.batch_synced(generation);
            }
            Err(BatchFailure::Latched(reason)) => {
                self.unsynced = None;
                self.latch(reason.clone());
            }
            Err(BatchFailure::Transient(reason)) => {
                if self.unsynced.replace(generation).is_none() {
                    tracing::warn!(
                        error = %reason,
                        batch = pending.len(),
                        "store sync could not run (resources short?); the batch is refused, the store keeps taking writes and retries the sync"
                    );
                }
            }
        }
        tracing::trace!(batch = pending.len(), "group commit");
        for done in pending {
            done.finish(synced.as_ref().map(|_| ()));
        }
    }

    /// Settles the batch's statistics and writes its transactions to sled, as one sled batch.
    fn write_out(&self) -> Result<(), StorageError> {
        self.trees.write_out().map(|_| ())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        #[cfg(test)]
        if self
            .fail_next_sync
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let source = std::io::Error::other("injected failure");
            return Err(StorageError::Io {
                op: "syncing",
                path: PathBuf::from("db"),
                source,
            });
        }
        #[cfg(test)]
        if self
            .fail_syncs_transiently
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            // EMFILE: what a flood of connections does to every open().
            let source = std::io::Error::from_raw_os_error(24);
            return Err(StorageError::Io {
                op: "opening to sync",
                path: PathBuf::from("blobs"),
                source,
            });
        }
        self.syncer.sync(&self.db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::Error;

    fn io_err(op: &'static str, errno: i32) -> StorageError {
        StorageError::Io {
            op,
            path: PathBuf::from("x"),
            source: std::io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn only_a_failed_fsync_or_sled_failure_latches() {
        // EMFILE, ENFILE, ENOMEM, EAGAIN, EACCES before any fsync: the batch fails, nothing more.
        for errno in [24, 23, 12, 11, 13] {
            for op in BEFORE_SYNC_OPS {
                assert_eq!(classify(&io_err(op, errno)), Verdict::Retry, "{op} {errno}");
            }
        }
        // The fsync itself failed (EIO, ENOSPC, even EAGAIN): the pages may be gone.
        for errno in [5, 28, 11] {
            assert_eq!(classify(&io_err("syncing", errno)), Verdict::Latch);
            assert_eq!(
                classify(&io_err("syncing directory", errno)),
                Verdict::Latch
            );
        }
        // sled's flush failed: its own sync_file_range or pwrite, recorded as a global error.
        let sled_io = StorageError::Engine(Error::from_io(std::io::Error::from_raw_os_error(24)));
        assert_eq!(classify(&sled_io), Verdict::Latch);
        let other = StorageError::Corrupt {
            tree: "cases",
            key: "k".into(),
            reason: "r".into(),
        };
        assert_eq!(classify(&other), Verdict::Latch);
    }

    #[test]
    fn resource_shortages_are_transient_for_callers() {
        for errno in [24, 23, 12, 11] {
            assert!(io_err("syncing", errno).is_transient(), "{errno}");
            let sled_io =
                StorageError::Engine(Error::from_io(std::io::Error::from_raw_os_error(errno)));
            assert!(sled_io.is_transient(), "{errno}");
        }
        assert!(StorageError::Unavailable("x".into()).is_transient());
        assert!(!io_err("syncing", 5).is_transient());
        assert!(!StorageError::Failed("x".into()).is_transient());
        assert!(!StorageError::Closed.is_transient());
    }
}
