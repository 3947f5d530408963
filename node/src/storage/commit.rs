//! Group commit: the writer thread that runs every write and makes it durable before replying.
//!
//! Async callers put a request on a bounded tokio channel (backpressure, no blocking of the
//! runtime) and await a oneshot reply. The dedicated std thread takes whatever is queued (up to
//! [`MAX_BATCH`]) and runs each request as its own transaction against the batch's pending
//! writes (`overlay`): a request that fails leaves nothing behind, one that succeeds is seen by
//! the next. Then it settles the batch's statistics (the summed deltas of its case changes
//! become one write per entry, see `stats`), writes the batch to sled as one atomic sled
//! batch, makes it durable with one [`Syncer::sync`], and only then replies to every request
//! of the batch. A failed settle, write-out or sync fails the whole batch and latches the
//! store into the failed state: no later write runs.
//!
//! Shutdown closes the channel, drains what was already queued (committing and syncing it),
//! drops the thread's handles on the database, then signals every waiting caller. Dropping the
//! [`Writer`] does the same and joins the thread.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use super::keys::Trees;
use super::{StorageError, WriteError};

/// Most requests committed under one sync.
pub(crate) const MAX_BATCH: usize = 256;
/// Requests that may wait in the queue before callers wait for room.
const QUEUE_LEN: usize = 1024;

/// A queued write, type-erased so that one queue carries every kind of write.
trait Job: Send {
    /// Runs the transaction; the outcome is held back until the batch is synced.
    fn run(self: Box<Self>, trees: &Trees) -> Box<dyn Pending>;
    /// Answers without running (the store has failed).
    fn reject(self: Box<Self>, err: StorageError);
}

/// A write that ran and waits for its batch's sync.
trait Pending: Send {
    /// A storage failure the transaction hit: the store must refuse further writes.
    fn fatal(&self) -> Option<String>;
    /// A successful outcome may be reported only if the sync succeeded.
    fn finish(self: Box<Self>, synced: Result<(), &StorageError>);
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
    fn fatal(&self) -> Option<String> {
        match &self.result {
            Err(WriteError::Storage(e @ (StorageError::Sled(_) | StorageError::Io { .. }))) => {
                Some(e.to_string())
            }
            _ => None,
        }
    }

    fn finish(self: Box<Self>, synced: Result<(), &StorageError>) {
        let result = match (self.result, synced) {
            (Ok(_), Err(e)) => Err(StorageError::Failed(e.to_string()).into()),
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
    /// Closed by the thread once it has stopped and released the database.
    stopped: watch::Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Makes the next sync fail (tests of the failure path).
    #[cfg(test)]
    pub(crate) fail_next_sync: Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    pub(crate) fn spawn(
        db: sled::Db,
        trees: Trees,
        syncer: Syncer,
    ) -> Result<Writer, StorageError> {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let failed = Arc::new(OnceLock::new());
        let (stopping, stopped) = watch::channel(());
        #[cfg(test)]
        let fail_next_sync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = WriterThread {
            rx,
            db,
            trees,
            syncer,
            failed: failed.clone(),
            stopping,
            #[cfg(test)]
            fail_next_sync: fail_next_sync.clone(),
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
            stopped,
            thread: Mutex::new(Some(handle)),
            #[cfg(test)]
            fail_next_sync,
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
    db: sled::Db,
    trees: Trees,
    syncer: Syncer,
    failed: Arc<OnceLock<String>>,
    stopping: watch::Sender<()>,
    #[cfg(test)]
    fail_next_sync: Arc<std::sync::atomic::AtomicBool>,
}

impl WriterThread {
    fn run(mut self) {
        self.serve();
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

    fn serve(&mut self) {
        while let Some(first) = self.rx.blocking_recv() {
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

    fn commit(&mut self, jobs: Vec<Box<dyn Job>>) {
        let generation = self.trees.signals.begin_batch();
        let mut pending = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(reason) = self.failed.get() {
                job.reject(StorageError::Failed(reason.clone()));
                continue;
            }
            let done = job.run(&self.trees);
            if let Some(reason) = done.fatal() {
                tracing::error!(error = %reason, "store write failed; refusing further writes");
                let _ = self.failed.set(reason);
            }
            pending.push(done);
        }
        if pending.is_empty() {
            // Nothing ran: the generation changed nothing, so it is as durable as before.
            self.trees.signals.batch_synced(generation);
            return;
        }
        let synced = self.write_out().and_then(|()| self.sync());
        match &synced {
            Ok(()) => self.trees.signals.batch_synced(generation),
            Err(e) => {
                tracing::error!(error = %e, "store write-out or sync failed; refusing further writes");
                let _ = self.failed.set(format!("write-out or sync failed: {e}"));
                self.trees.signals.batch_failed();
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
        self.syncer.sync(&self.db)
    }
}

/// Makes what sled wrote durable. sled 0.34 writes its log to `db` with `sync_file_range`
/// (no metadata, no disk cache flush), writes large values to `blobs/<lsn>` without fsync,
/// writes `conf` once without fsync, and never fsyncs the directory. Snapshots (`snap.*`) it
/// fsyncs itself but renames without a directory fsync.
pub(crate) struct Syncer {
    dir: PathBuf,
    db_file: File,
    /// Blob name → length already synced (blobs are write-once; a grown one was mid-write).
    blobs: HashMap<OsString, u64>,
    /// Names in the store directory at the last directory sync.
    entries: HashSet<OsString>,
}

impl Syncer {
    /// Opens the handles kept for the store's lifetime and syncs what sled wrote on open.
    /// `created`: the directory itself is new, so its parent is synced too.
    pub(crate) fn open(dir: &Path, created: bool) -> Result<Syncer, StorageError> {
        let db_path = dir.join("db");
        let db_file = OpenOptions::new()
            .write(true)
            .open(&db_path)
            .map_err(io("opening", &db_path))?;
        let conf = dir.join("conf");
        File::open(&conf)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing", &conf))?;
        if let Some(parent) = dir.parent().filter(|_| created) {
            sync_dir(parent)?;
        }
        Ok(Syncer {
            dir: dir.to_owned(),
            db_file,
            blobs: HashMap::new(),
            entries: HashSet::new(),
        })
    }

    /// Flushes sled's buffers and fsyncs every file and directory they reached.
    pub(crate) fn sync(&mut self, db: &sled::Db) -> Result<(), StorageError> {
        db.flush()?;
        // fdatasync also persists the file size, which sync_file_range does not.
        self.db_file
            .sync_data()
            .map_err(|source| StorageError::Io {
                op: "syncing",
                path: self.dir.join("db"),
                source,
            })?;
        self.sync_blobs()?;
        let entries = list(&self.dir)?;
        if entries != self.entries {
            sync_dir(&self.dir)?;
            self.entries = entries;
        }
        Ok(())
    }

    fn sync_blobs(&mut self) -> Result<(), StorageError> {
        let blobs_dir = self.dir.join("blobs");
        let mut seen = HashMap::with_capacity(self.blobs.len());
        let mut new_entry = false;
        for entry in std::fs::read_dir(&blobs_dir).map_err(io("listing", &blobs_dir))? {
            let entry = entry.map_err(io("listing", &blobs_dir))?;
            let path = entry.path();
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // Removed by sled's cleanup since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("inspecting", &path)(e)),
            };
            let name = entry.file_name();
            match self.blobs.get(&name) {
                Some(&synced) if synced == len => {}
                previous => {
                    new_entry |= previous.is_none();
                    match OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.sync_data())
                    {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io("syncing", &path)(e)),
                    }
                }
            }
            seen.insert(name, len);
        }
        self.blobs = seen;
        if new_entry {
            sync_dir(&blobs_dir)?;
        }
        Ok(())
    }
}

/// Wraps an I/O error with what was done to which path.
fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { op, path, source }
}

fn list(dir: &Path) -> Result<HashSet<OsString>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(io("listing", dir))?;
    entries
        .map(|e| e.map(|e| e.file_name()).map_err(io("listing", dir)))
        .collect()
}

/// fsyncs a directory so that the entries created or renamed in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
