//! What the writer thread tells the rest of the node after a batch is durable.
//!
//! * **durability generations**: before running a batch the writer takes the next generation
//!   number; once the batch is synced it publishes that number. A reader that saw some entry
//!   and then waits until the published number reaches the generation current *after* its
//!   read ([`Signals::wait_durable`]) knows the entry is durable: it was written by a batch
//!   that started no later than that generation. The federation sends a queued message only
//!   after this wait, so a message never leaves a node whose state change could still be lost.
//! * **outbox changes**: a counter bumped after every durable batch that queued a message, so
//!   link workers wake up instead of polling.
//! * **refusing writes**: why the store latched into the failed state (see `commit`), once it
//!   has; the server turns gRPC health to NOT_SERVING on it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

use super::StorageError;

#[derive(Debug)]
pub(crate) struct Signals {
    /// Generation of the last batch started.
    started: AtomicU64,
    /// Generation of the last batch synced.
    synced: watch::Sender<u64>,
    /// Set when a transaction queued a message; cleared when announced.
    outbox_dirty: AtomicBool,
    outbox: watch::Sender<u64>,
    failed: AtomicBool,
    refusing: watch::Sender<Option<String>>,
    /// Records a read found damaged and skipped (record → why), since the store was opened.
    damaged: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl Signals {
    /// Notes a record a read found damaged and skipped; true the first time.
    pub(crate) fn note_damaged(&self, record: String, why: String) -> bool {
        let mut d = self.damaged.lock().unwrap_or_else(|p| p.into_inner());
        if d.contains_key(&record) {
            return false;
        }
        tracing::error!(record = %record, error = %why, "DAMAGED RECORD skipped (记录损坏，已跳过): restore it from a backup or remove it");
        d.insert(record, why);
        true
    }

    /// The damaged records met so far (record, why).
    pub(crate) fn damaged(&self) -> Vec<(String, String)> {
        let d = self.damaged.lock().unwrap_or_else(|p| p.into_inner());
        d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            started: AtomicU64::new(0),
            synced: watch::Sender::new(0),
            outbox_dirty: AtomicBool::new(false),
            outbox: watch::Sender::new(0),
            failed: AtomicBool::new(false),
            refusing: watch::Sender::new(None),
            damaged: Default::default(),
        }
    }
}

impl Signals {
    /// Called by the writer before it runs a batch.
    pub(crate) fn begin_batch(&self) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Called by the writer once batch `generation` is durable.
    pub(crate) fn batch_synced(&self, generation: u64) {
        self.synced.send_replace(generation);
        if self.outbox_dirty.swap(false, Ordering::SeqCst) {
            self.outbox.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// Called by the writer when the store latched (a failed fsync): nothing later will be
    /// durable.
    pub(crate) fn batch_failed(&self, reason: String) {
        self.failed.store(true, Ordering::SeqCst);
        self.synced.send_modify(|_| {});
        self.refusing.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason);
            }
            first
        });
    }

    /// `Some(reason)` once the store refuses writes; it never goes back.
    pub(crate) fn refusing_writes(&self) -> watch::Receiver<Option<String>> {
        self.refusing.subscribe()
    }

    /// Called inside a transaction that queues a message (harmless if it then aborts).
    pub(crate) fn outbox_touched(&self) {
        self.outbox_dirty.store(true, Ordering::SeqCst);
    }

    /// Returns once everything committed before the call is durable.
    pub(crate) async fn wait_durable(&self) -> Result<(), StorageError> {
        let target = self.started.load(Ordering::SeqCst);
        let mut rx = self.synced.subscribe();
        loop {
            if self.failed.load(Ordering::SeqCst) {
                return Err(StorageError::Failed("an earlier sync failed".into()));
            }
            if *rx.borrow_and_update() >= target {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(StorageError::Closed);
            }
        }
    }

    /// Sees a new value whenever a batch is durable: for readers that follow everything the
    /// store writes (the statistics sender).
    pub(crate) fn durable_changes(&self) -> watch::Receiver<u64> {
        self.synced.subscribe()
    }

    pub(crate) fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.outbox.subscribe()
    }
}
