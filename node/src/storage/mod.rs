//! Durable storage of cases on sled: the only module that touches sled, and within it only
//! `db` (`storage/db/`), a thin layer over the engine: opening the database, its one tree,
//! batches, reads and iteration, flush and the fsyncs of sled's files (`db::sync`), its byte
//! and error types. The rest of storage is written against that layer alone, so the engine
//! can be replaced there.
//!
//! # What it owns
//!
//! One sled database per node, holding in one sled tree (`space`) the trees declared in `keys`
//! (the handle on them is `trees::Trees`): the cases, their append-only histories, the
//! idempotency and lookup-code maps, the secondary indexes (status, risk, category, open
//! deadline, and the early-warning indexes of people and respondents under keyed hashes, see
//! `secret`), the alerts with their time index, the statistics entries (`stats`: this node's
//! contribution and those received from descendants), the federation's outboxes, inbox
//! watermarks, supervised copies and link records (`federation`), and the store metadata
//! (format version, the node's code, per-day sequence counters, the index secret, cursors).
//! Every value is wrapped in the checksummed, versioned envelope of `codec`; old formats are
//! read through `migrate`. A store belongs to one node: opening it as another node is refused.
//!
//! # Invariants
//!
//! * Every write is one transaction over all trees (`change`): a case, its new events, its
//!   index entries, its lookup code and (for a registration) its idempotency entry and day
//!   counter change together or not at all, and so does the node's statistics contribution.
//!   The writer runs the transactions of a group-commit batch against an in-memory overlay and
//!   hands the batch to sled as one atomic sled batch on the store's single sled tree
//!   (`overlay`, `space`): sled, and every reader, sees a batch whole or not at all. The
//!   contribution is kept as per-bucket deltas while the batch runs and settled into the
//!   statistics entries, once per entry, before any write-out of the batch (`stats`), so sled
//!   never holds a case change without it. Indexes and the contribution therefore always
//!   equal what a recount over the cases tree would give, in sled and for any transaction
//!   that reads statistics.
//! * History is append-only: a write must continue the stored history (`seq` = previous
//!   `history_len` + 1, ...), must leave `Case::history_len` equal to the last seq, and never
//!   overwrites an event; a case id is never reused and a lookup code maps to one case.
//! * Writes are serialised on one writer thread (`commit`). The domain closures handed to
//!   [`Store::register`] and [`Store::update`] run on that thread inside the transaction, run
//!   once, must be pure, and must not call back into the store.
//! * A stored value that fails its magic, kind, version, checksum or decoding is reported as
//!   [`StorageError::Corrupt`] naming tree and key; no data path panics.
//!
//! # Durability: what is and is not guaranteed
//!
//! sled 0.34's `flush()` writes its log with `sync_file_range`, which neither persists file
//! metadata nor flushes the disk cache, and its background fsync runs only every
//! `flush_every_ms`. So the writer thread group-commits: it takes every queued request (at
//! most 256), runs each as its own transaction, writes the batch to sled in one atomic sled
//! batch, then calls `flush()` and `fdatasync`s sled's files itself (`db::Syncer`: the `db`
//! log, new or grown files in `blobs/`, and the directories when their entries change; `conf`
//! and the directories once at open), and only then answers the requests of the batch.
//!
//! * An acknowledged write (the async call returned `Ok`) survives `kill -9`, a crash of the
//!   machine or a power loss, to the extent the disk honours fsync.
//! * If the flush or an fsync fails (or the write-out of the batch, or the settling of its
//!   statistics before it), every request of the batch fails and the store refuses all
//!   further writes ([`StorageError::Failed`]) until it is reopened: after a failed fsync the
//!   kernel may have dropped the dirty pages, so nothing written since can be trusted.
//!   [`Store::refusing_writes`] says so (the server turns health NOT_SERVING).
//! * If the sync cannot even start (a file or directory to fsync cannot be opened, listed or
//!   inspected: EMFILE under a flood of connections, ENOMEM, ...), the requests of the batch
//!   fail with [`StorageError::Unavailable`] and the store keeps taking writes; the next
//!   successful sync makes the batch durable. `commit`'s module doc has the full decision.
//! * A write that returned an error wrote nothing, except when the error is `Failed`,
//!   `Unavailable` or `Closed` mid-flight: then it may or may not survive a crash. A call
//!   whose future is dropped after it was queued may still be committed.
//! * Reads ([`Store::get_case`], [`Store::history`], [`Store::list_cases`], ...) go straight to
//!   sled on the caller's thread (they are in-memory lookups in the common case, so they are
//!   not moved off the async runtime). A read may observe a write a few milliseconds before
//!   that write is durable, and so, after a crash, something that was read may be gone; it can
//!   never observe half a transaction. A listing or a history is not a snapshot: it may
//!   interleave with concurrent writes, but every case it returns is one committed version.
//!
//! sled itself keeps its periodic flusher (every [`FLUSH_EVERY_MS`]) because that thread also
//! cleans log segments; durability does not depend on it. The directory stays locked by sled
//! until [`Store::shutdown`] has returned and every clone of the [`Store`] is dropped.

mod audit;
pub mod backup;
mod change;
mod codec;
mod commit;
mod db;
mod federation;
#[cfg(any(test, feature = "fuzzing"))]
mod fingerprint;
mod keys;
mod knowledge;
mod migrate;
mod overlay;
mod query;
mod rules;
mod search;
mod secret;
mod signals;
mod space;
mod stats;
#[cfg(test)]
mod tests;
mod trees;
mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::code::NodeCode;
use crate::domain::alert::Alert;
use crate::domain::{Case, CaseStatus, Category, DomainError, Event, RiskLevel, Timestamp};
use crate::stats::{Bucket, Cells, Dim, Kind};

use codec::ValueKind;
pub use federation::{Applied, LinkRecord, QueueStats, Resync};
#[cfg(any(test, feature = "fuzzing"))]
pub use fingerprint::{Change, Fingerprint, Written};
use keys::TreeId;
use secret::Secret;
use trees::Trees;

pub use rules::{PersonMatch, RespondentMatch};
pub use secret::PersonKey;
pub use stats::{EntryRow, Incoming, MergeOutcome, StoredEntry};

/// Version of the layout of trees and keys; written at creation, checked on open. Version 2
/// added the person and respondent indexes and the alerts; a version-1 store is upgraded when
/// opened (see [`upgrade_from_1`]). Version 3 keeps every tree in one sled tree (see `space`);
/// the trees of a version 1 or 2 store are moved there when it is opened. Version 4 stores the
/// events of one case write as one run under one key (`ValueKind::Events`); the single events
/// of older stores are read as runs of one, so nothing is rewritten. Version 5 replaces the
/// status, risk and category indexes by the one facets index, rebuilt at open (see
/// [`upgrade`]). Version 6 keeps no personal data in tombstones
/// (`domain::moves::strip_personal_data`); those of older stores are stripped at open. Version
/// 7 adds the phone index, the index of cases supervised from above and the handler index,
/// built at open for older stores. Version 8 adds the activity index (the events this node
/// wrote, by time: a report's figures), built at open for older stores. The
/// statistics trees have their own format marker (`stats`), and are rebuilt on open when it is
/// missing.
const STORE_FORMAT: u32 = 8;

/// Period of sled's own background flush and segment cleaning, in milliseconds.
pub const FLUSH_EVERY_MS: u64 = 1000;

/// How to open a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The node the store belongs to. Recorded in a new store; a store recorded for another
    /// node is refused ([`StorageError::WrongNode`]). Statistics depend on it.
    pub node: NodeCode,
    /// Size of sled's page cache in bytes. 16 MiB ([`StoreOptions::new`]) suits a village PC;
    /// a county node holding hundreds of thousands of cases may want 256 MiB or more.
    pub cache_capacity_bytes: u64,
    /// Now, from the node's clock: seeds the statistics versions of a new or rebuilt store.
    pub opened_at: Timestamp,
    /// The parent this node links to, if any: alerts raised here for nodes above
    /// (`Alert::forward_to`) are queued to it in the transaction that stores them. Without
    /// one (the top of the federation, a node run alone) they stay here.
    pub uplink: Option<NodeCode>,
    /// The federation's person key (`early_warning.person_key_file`): with it, the ID numbers
    /// of the cases stored here are also hashed federation-wide and reported to the parent as
    /// sightings for the subtree repeat-person count (see `subtree`). Without it, none.
    pub person_key: Option<PersonKey>,
}

/// For tests that do not care which node a store belongs to: county 610116.
#[cfg(test)]
impl Default for StoreOptions {
    fn default() -> Self {
        let node = NodeCode::parse("610116").unwrap_or_else(|_| unreachable!("a valid code"));
        StoreOptions::new(node, Timestamp(0))
    }
}

impl StoreOptions {
    /// Options for `node` with a 16 MiB cache.
    pub fn new(node: NodeCode, opened_at: Timestamp) -> Self {
        StoreOptions {
            node,
            cache_capacity_bytes: 16 * 1024 * 1024,
            opened_at,
            uplink: None,
            person_key: None,
        }
    }
}

/// The result of [`Store::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub case: Case,
    /// False when the idempotency key had been seen: `case` is then the original case.
    pub created: bool,
}

/// A listing request. Filters combine with AND; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseQuery {
    pub status: Option<CaseStatus>,
    pub risk: Option<RiskLevel>,
    pub category: Option<Category>,
    /// `Some(now)`: only cases whose [`Case::open_deadline`] is before `now`.
    pub overdue_at: Option<Timestamp>,
    /// List the supervised read-only copies of cases owned elsewhere instead of this node's
    /// own cases (the other filters apply to the copies).
    pub supervised: bool,
    /// Cases per page: 0 means 50, larger than 500 means 500.
    pub page_size: usize,
    /// `next_page_token` of the previous page, for the same filters.
    pub page_token: Option<String>,
    /// Newest first: descending case id (at each node, the order of registration) over every
    /// range of the listing, merged. An overdue listing keeps its deadline order.
    pub newest_first: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CasePage {
    pub cases: Vec<Case>,
    /// Present when more entries may follow (the next page can turn out empty).
    pub next_page_token: Option<String>,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage engine failed (`db`); displayed as `sled: ...`.
    #[error(transparent)]
    Engine(#[from] db::Error),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stored value or index entry is damaged or inconsistent.
    #[error("corrupt entry in tree {tree} at key {key}: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
    /// The page token is malformed or belongs to another listing.
    #[error("bad page token: {0}")]
    BadPageToken(String),
    /// The directory holds the store of another node.
    #[error("the store belongs to node {found}, not {expected}")]
    WrongNode { found: String, expected: String },
    /// The directory holds a store of another format version.
    #[error("store format version {found} is not supported (this build reads version {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },
    /// A record handed to storage breaks a storage invariant (a bug in the caller).
    #[error("record rejected by storage: {0}")]
    InvalidRecord(String),
    /// The lookup code of a new case is already held by another case (a random collision:
    /// the caller retries with a fresh code).
    #[error("lookup code {code} is already used by case {holder}")]
    LookupCodeTaken { code: String, holder: String },
    /// A write closure panicked; the write was abandoned.
    #[error("a write panicked and was abandoned")]
    WritePanicked,
    /// The store has been shut down.
    #[error("the store is shut down")]
    Closed,
    /// An earlier flush or fsync failed; the store refuses writes until it is reopened.
    #[error("the store has failed and refuses writes: {0}")]
    Failed(String),
    /// The batch could not be made durable for a reason that may pass (files could not be
    /// opened before the fsync, e.g. EMFILE). Not acknowledged; the store keeps taking writes.
    #[error("the store could not sync this write now, try again: {0}")]
    Unavailable(String),
    /// A backup file is damaged, of another version, or cannot be restored where asked.
    #[error("backup: {0}")]
    Backup(String),
}

impl StorageError {
    /// A failure that may pass by itself: the caller may try again later (gRPC UNAVAILABLE).
    /// That is [`StorageError::Unavailable`], and an I/O error of a kind that only says
    /// resources were short (EMFILE, ENFILE, ENOMEM, EAGAIN, EINTR), wherever it was met.
    pub fn is_transient(&self) -> bool {
        let io = match self {
            StorageError::Unavailable(_) => return true,
            StorageError::Io { source, .. } => source,
            StorageError::Engine(e) => match e.io() {
                Some(source) => source,
                None => return false,
            },
            _ => return false,
        };
        // EAGAIN 11, ENOMEM 12, ENFILE 23, EMFILE 24 (the same on every Linux architecture).
        matches!(io.raw_os_error(), Some(11 | 12 | 23 | 24))
            || matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::OutOfMemory
            )
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("case {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<db::Error> for WriteError {
    fn from(e: db::Error) -> Self {
        WriteError::Storage(e.into())
    }
}

/// Checks that a case id received from elsewhere can serve as a key: 1–128 bytes, no NUL.
pub fn check_message_case_id(id: &str) -> Result<(), DomainError> {
    keys::check_case_id(id).map_err(|m| DomainError::invalid("case_id", m))
}

/// The node's case store. Cheap to clone; all clones share one database and writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    trees: Trees,
    secret: Secret,
    writer: commit::Writer,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. Fails if another process holds it.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StorageError> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let db = db::Db::open(dir, opts.cache_capacity_bytes, FLUSH_EVERY_MS)?;
        let mut syncer = db::Syncer::open(dir, created)?;
        space::adopt_older_layout(&db, &mut syncer)?;
        let mut trees = Trees::open(&db, opts.node.clone())?;
        trees.uplink = opts.uplink.clone();
        let found = check_format(&trees)?;
        let secret = Secret::load_or_create(&trees)?.with_person_key(opts.person_key.as_ref());
        if found < STORE_FORMAT {
            upgrade(&trees, &secret, found)?;
        }
        federation::raise_floors(&trees, opts.opened_at)?;
        stats::open(&trees, &secret, opts.opened_at)?;
        syncer.sync(&db)?;
        let writer = commit::Writer::spawn(db, trees.for_writer(&secret), syncer)?;
        Ok(Store {
            inner: Arc::new(Inner {
                trees,
                secret,
                writer,
            }),
        })
    }

    /// [`Store::open`] for a process that reopens a store it closed (tests, the simulation's
    /// restarted nodes): sled 0.34 frees some of its state (and with it the directory lock)
    /// through epoch-deferred destruction, a moment after the last handle is dropped, so the
    /// lock is retried for up to 5 seconds.
    pub fn open_again(dir: &Path, opts: &StoreOptions) -> Result<Store, StorageError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir, opts) {
                Err(StorageError::Engine(e))
                    if e.is_locked() && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// The case with this id, if stored.
    pub fn get_case(&self, id: &str) -> Result<Option<Case>, StorageError> {
        self.read_case(id.as_bytes())
    }

    /// The id of the case the registration with idempotency key `key` made, if any.
    pub fn case_id_by_idempotency_key(&self, key: &str) -> Result<Option<String>, StorageError> {
        self.tree(TreeId::Idempotency)
            .get(key)?
            .map(|v| codec::decode(ValueKind::CaseId, TreeId::Idempotency, key.as_bytes(), &v))
            .transpose()
    }

    /// The case a citizen's lookup code (查询码) refers to.
    pub fn case_by_lookup_code(&self, code: &str) -> Result<Option<Case>, StorageError> {
        let Some(bytes) = self.tree(TreeId::LookupCodes).get(code)? else {
            return Ok(None);
        };
        let id: String = codec::decode(
            ValueKind::CaseId,
            TreeId::LookupCodes,
            code.as_bytes(),
            &bytes,
        )?;
        match self.read_case(id.as_bytes())? {
            Some(case) => Ok(Some(case)),
            None => Err(StorageError::Corrupt {
                tree: TreeId::LookupCodes.name(),
                key: code.to_owned(),
                reason: format!("points to missing case {id}"),
            }),
        }
    }

    /// The history of a case, ordered by seq; empty for an unknown case.
    pub fn history(&self, id: &str) -> Result<Vec<Event>, StorageError> {
        let prefix = keys::events_prefix(id);
        let runs = self.tree(TreeId::Events).scan_prefix(&prefix);
        change::history_from_runs(&prefix, runs.map(|item| item.map_err(StorageError::from)))
    }

    /// One page of cases matching `q`; see the `query` module for how the index is chosen.
    pub fn list_cases(&self, q: &CaseQuery) -> Result<CasePage, StorageError> {
        query::list(&self.inner.trees, q)
    }

    /// Idempotent registration: if `idempotency_key` was seen, returns the original case with
    /// `created == false` and writes nothing. Otherwise allocates the next per-node sequence
    /// number for `day` ("YYYYMMDD", starting at 1), calls `build(seq)`, and writes the case,
    /// its first event, the idempotency entry, the lookup-code entry and all indexes in one
    /// transaction. `build` may be called more than once and must be pure.
    pub async fn register<F>(
        &self,
        idempotency_key: String,
        day: String,
        build: F,
    ) -> Result<Registered, WriteError>
    where
        F: Fn(u32) -> Result<(Case, Event), DomainError> + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| change::register(trees, &secret, &idempotency_key, &day, &build))
            .await
    }

    /// Reads the case, calls `f`, and writes the new case, the appended events and the index
    /// changes in one transaction. A missing case is [`WriteError::NotFound`]; an error from
    /// `f` is [`WriteError::Domain`] and nothing is written. `f` may be called more than once
    /// and must be pure.
    pub async fn update<F>(&self, case_id: String, f: F) -> Result<Case, WriteError>
    where
        F: Fn(&Case) -> Result<(Case, Vec<Event>), DomainError> + Send + 'static,
    {
        self.update_raising(case_id, move |case| {
            f(case).map(|(case, events)| (case, events, Vec::new()))
        })
        .await
    }

    /// [`Store::update`] whose closure also returns the alerts the change raises; they are
    /// written in the same transaction, except those whose key is stored already.
    pub async fn update_raising<F>(&self, case_id: String, f: F) -> Result<Case, WriteError>
    where
        F: Fn(&Case) -> Result<(Case, Vec<Event>, Vec<Alert>), DomainError> + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        let written = self
            .inner
            .writer
            .submit(move |trees| change::update(trees, &secret, &case_id, None, &f))
            .await?;
        // Without a gate the transaction always returns the case it wrote.
        written.ok_or_else(|| StorageError::InvalidRecord("update wrote nothing".into()).into())
    }

    /// Applies a rule at most once: if an alert of key `gate` is stored already, writes nothing
    /// and returns `None`; otherwise as [`Store::update_raising`] (whose alerts should include
    /// the `gate` alert, so that the next attempt finds it).
    pub async fn apply_once<F>(
        &self,
        case_id: String,
        gate: String,
        f: F,
    ) -> Result<Option<Case>, WriteError>
    where
        F: Fn(&Case) -> Result<(Case, Vec<Event>, Vec<Alert>), DomainError> + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| change::update(trees, &secret, &case_id, Some(&gate), &f))
            .await
    }

    /// The node this store belongs to.
    pub fn node(&self) -> &NodeCode {
        self.inner.trees.node()
    }

    /// A signal that changes whenever a batch of writes is durable.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.trees.signals.durable_changes()
    }

    /// `Some(reason)` once the store has latched into refusing writes (a failed fsync, see
    /// `commit`); it never goes back to `None` while the store is open.
    pub fn refusing_writes(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.inner.trees.signals.refusing_writes()
    }

    /// Writes a consistent backup of the whole store to `path` (see [`backup`]): one job on
    /// the writer thread, so every write acknowledged before it is in the file and every later
    /// one waits for the scan. `created_at` is the node's time.
    pub async fn backup(
        &self,
        path: PathBuf,
        created_at: Timestamp,
    ) -> Result<backup::BackupSummary, WriteError> {
        let header = backup::BackupHeader {
            node: self.inner.trees.node().to_string(),
            store_format: STORE_FORMAT,
            created_at_ms: created_at.millis(),
        };
        self.inner
            .writer
            .submit(move |trees| {
                // Writes out the batch in progress, so the scan sees every write before it.
                let _ = trees.get(TreeId::Meta);
                Ok(backup::write(trees.store_tree(), &path, &header)?)
            })
            .await
    }

    /// Records found damaged and skipped by reads since the store was opened (record, why).
    pub fn damaged_records(&self) -> Vec<(String, String)> {
        self.inner.trees.signals.damaged()
    }

    /// Tells `observe` of every batch of writes made durable from now on: how many
    /// transactions it carried and how long it took (the metrics). Only the first call counts.
    pub fn observe_commits(
        &self,
        observe: impl Fn(usize, std::time::Duration) + Send + Sync + 'static,
    ) {
        let _ = self.inner.writer.observer.set(Box::new(observe));
    }

    /// Stores the newer of `incoming` (pushed by `child`, already validated and filtered by
    /// retention) and updates this node's SUBTREE entries in the same transaction.
    pub async fn merge_contributions(
        &self,
        child: NodeCode,
        incoming: Vec<Incoming>,
    ) -> Result<MergeOutcome, WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| stats::merge(trees, &secret, &child, &incoming))
            .await
    }

    /// Recomputes this node's overdue figures at `now` from the deadline index and stores them
    /// if they changed (returns whether they did).
    pub async fn refresh_overdue(&self, now: Timestamp) -> Result<bool, WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                let snapshot = stats::overdue_snapshot(trees, now)?;
                stats::set_overdue(trees, &secret, &snapshot)
            })
            .await
    }

    /// This node's overdue figures at `now`, computed now from the deadline index.
    pub fn overdue_now(&self, now: Timestamp) -> Result<Cells, StorageError> {
        stats::overdue_snapshot(&self.inner.trees, now)
    }

    /// The stored statistics entry (kind, node, bucket), with the cells of `dims` only
    /// (`&Dim::ALL` for all; decoding fewer is much cheaper).
    pub fn stats_entry(
        &self,
        kind: Kind,
        node: &NodeCode,
        bucket: Bucket,
        dims: &[Dim],
    ) -> Result<Option<StoredEntry>, StorageError> {
        stats::entry(&self.inner.trees, kind, node, bucket, dims)
    }

    /// The stored month entries of (kind, node) from `first` to `last` inclusive, with the
    /// cells of `dims` only.
    pub fn stats_months(
        &self,
        kind: Kind,
        node: &NodeCode,
        first: Bucket,
        last: Bucket,
        dims: &[Dim],
    ) -> Result<Vec<(Bucket, Cells)>, StorageError> {
        stats::months(&self.inner.trees, kind, node, first, last, dims)
    }

    /// Whether any statistics entry of (kind, node) is stored.
    pub fn stats_has(&self, kind: Kind, node: &NodeCode) -> Result<bool, StorageError> {
        stats::has_entries(&self.inner.trees, kind, node)
    }

    /// Children of `node` with stored entries of `kind`.
    pub fn stats_children(
        &self,
        kind: Kind,
        node: &NodeCode,
    ) -> Result<Vec<NodeCode>, StorageError> {
        stats::children(&self.inner.trees, kind, node)
    }

    /// Up to `limit` statistics entries written after local seq `after`, in seq order.
    pub fn stats_changed_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EntryRow>, StorageError> {
        stats::changed_since(&self.inner.trees, after, limit)
    }

    /// The last local statistics seq handed out.
    pub fn stats_last_seq(&self) -> Result<u64, StorageError> {
        stats::last_seq(&self.inner.trees)
    }

    /// Stops the writer thread after draining the queued writes and syncing them. Later writes
    /// fail with [`StorageError::Closed`]; reads keep working until the store is dropped.
    pub async fn shutdown(&self) {
        self.inner.writer.shutdown().await;
    }

    fn tree(&self, id: TreeId) -> space::Space<'_> {
        self.inner.trees.get(id)
    }

    fn read_case(&self, key: &[u8]) -> Result<Option<Case>, StorageError> {
        read_case(&self.inner.trees, key)
    }

    /// Damages the stored record of case `id` (its checksum no longer matches), as a bad
    /// sector would: for tests of what reads do with it.
    #[cfg(test)]
    pub(crate) fn damage_case_for_tests(&self, id: &str) {
        let tree = self.tree(TreeId::Cases);
        let mut bytes = tree.get(id).expect("read").expect("the case").to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        tree.insert(id, bytes).expect("write");
    }

    /// Writes raw bytes under a key, bypassing every check (to simulate damage in tests).
    #[cfg(test)]
    fn raw_insert(&self, tree: TreeId, key: &[u8], value: &[u8]) {
        self.tree(tree).insert(key, value).expect("raw insert");
    }
}

fn read_case(trees: &Trees, key: &[u8]) -> Result<Option<Case>, StorageError> {
    trees
        .get(TreeId::Cases)
        .get(key)?
        .map(|bytes| codec::decode_case(TreeId::Cases, key, &bytes))
        .transpose()
}

/// Writes the format version into a new store, or checks the one found; returns it.
fn check_format(trees: &Trees) -> Result<u32, StorageError> {
    let meta = trees.get(TreeId::Meta);
    match meta.get(keys::META_FORMAT)? {
        Some(bytes) => {
            let found: u32 = codec::decode_format(keys::META_FORMAT, &bytes)?;
            if !(1..=STORE_FORMAT).contains(&found) {
                return Err(StorageError::UnsupportedFormat {
                    found,
                    supported: STORE_FORMAT,
                });
            }
            Ok(found)
        }
        None if trees.store_tree().is_empty() => {
            meta.insert(keys::META_FORMAT, codec::encode_format(STORE_FORMAT)?)?;
            Ok(STORE_FORMAT)
        }
        None => Err(StorageError::Corrupt {
            tree: TreeId::Meta.name(),
            key: keys::display(keys::META_FORMAT),
            reason: "missing in a store that holds data".into(),
        }),
    }
}

/// Upgrades a store of an older `format` at open, before any write, then records the current
/// format. Interrupted, it simply runs again at the next open (index entries are idempotent).
///
/// * format 1: every case is filed in the indexes version 2 added (and in the rest);
/// * formats 1 to 4: the status, risk and category indexes give way to the facets index;
/// * format 3 changed the layout only (`space::adopt_older_layout` moved the trees), and
///   format 4 reads the single events of older formats as they are;
/// * formats 1 to 6: every case's phone numbers are filed in the phone index, every case an
///   ancestor supervises in the supervised index, every case in work in the handler index;
/// * formats 1 to 5: tombstones (cases moved away) lose the parties' personal data, through
///   the ordinary write path, so their person-index entries go too.
fn upgrade(trees: &Trees, secret: &Secret, format: u32) -> Result<(), StorageError> {
    if format < 5 {
        reindex(trees, secret, format)?;
    }
    if format < 7 {
        index_format_7(trees, secret)?;
    }
    if format < 8 {
        index_activity(trees)?;
    }
    let mut stripped = 0;
    let tombstones: Vec<Case> = trees
        .get(TreeId::Cases)
        .iter()
        .map(|entry| {
            let (key, bytes) = entry?;
            codec::decode_case(TreeId::Cases, &key, &bytes)
        })
        .filter(|case| {
            case.as_ref().map_or(true, |c| {
                c.status == CaseStatus::Transferred && !c.parties.is_empty()
            })
        })
        .collect::<Result<_, _>>()?;
    for before in tombstones {
        let mut after = before.clone();
        crate::domain::moves::strip_personal_data(&mut after);
        trees
            .transaction(secret, |tx| {
                change::Change {
                    before: Some(&before),
                    after: &after,
                    events: &[],
                    alerts: &[],
                    outgoing: &[],
                }
                .apply(tx)
            })
            .map_err(|e| match e {
                WriteError::Storage(s) => s,
                other => StorageError::InvalidRecord(other.to_string()),
            })?;
        stripped += 1;
    }
    trees
        .get(TreeId::Meta)
        .insert(keys::META_FORMAT, codec::encode_format(STORE_FORMAT)?)?;
    tracing::info!(
        stripped,
        "store upgraded from format {format} to {STORE_FORMAT}: personal data removed from {stripped} tombstones"
    );
    Ok(())
}

/// Files every event this node wrote in the activity index (format 8), from every case's
/// history: one pass over the events, a case read only for the amount of a registration.
fn index_activity(trees: &Trees) -> Result<(), StorageError> {
    let me = trees.node().to_string();
    let mut filed = 0u64;
    let mut from: Vec<u8> = Vec::new();
    loop {
        let Some(item) = trees.get(TreeId::Cases).range(from.clone()..).next() else {
            break;
        };
        let (key, bytes) = item?;
        let case = codec::decode_case(TreeId::Cases, &key, &bytes)?;
        let prefix = keys::events_prefix(&case.id);
        let runs = trees.get(TreeId::Events).scan_prefix(&prefix);
        let history =
            change::history_from_runs(&prefix, runs.map(|r| r.map_err(StorageError::from)))?;
        for e in history.iter().filter(|e| e.node == me) {
            let amount = match e.kind {
                crate::domain::EventKind::Registered => case.amount_fen,
                _ => 0,
            };
            trees.get(TreeId::ByActivity).insert(
                keys::activity(e.at, e.kind.code(), &case.id, e.seq),
                codec::encode(ValueKind::Activity, &amount)?,
            )?;
            filed += 1;
        }
        from = key.to_vec();
        from.push(0);
    }
    tracing::info!(filed, "activity index built");
    Ok(())
}

/// Files every case in the indexes format 7 added: the parties' phone numbers, and whether
/// an ancestor supervises it.
fn index_format_7(trees: &Trees, secret: &Secret) -> Result<(), StorageError> {
    let mut filed = 0;
    for entry in trees.get(TreeId::Cases).iter() {
        let (key, bytes) = entry?;
        let case = codec::decode_case(TreeId::Cases, &key, &bytes)?;
        for (tree, key) in keys::index_entries(&case, secret) {
            if matches!(
                tree,
                TreeId::ByPhone | TreeId::BySupervised | TreeId::ByHandler
            ) {
                trees.get(tree).insert(key, Vec::new())?;
                filed += 1;
            }
        }
    }
    tracing::info!(filed, "phone, supervision and handler indexes built");
    Ok(())
}

/// Files every case of a store of `format` (below 5) in the facets index (and, from format 1,
/// in every index), and drops the indexes format 5 replaced.
fn reindex(trees: &Trees, secret: &Secret, format: u32) -> Result<(), StorageError> {
    // It reads every case: on a large store the node takes a while to start.
    tracing::info!(
        "upgrading the store from format {format} to {STORE_FORMAT}: re-indexing every case"
    );
    let mut cases = 0;
    for entry in trees.get(TreeId::Cases).iter() {
        let (key, bytes) = entry?;
        let case = codec::decode_case(TreeId::Cases, &key, &bytes)?;
        let entries = if format == 1 {
            keys::index_entries(&case, secret)
        } else {
            vec![(TreeId::ByFacets, keys::facets(&case))]
        };
        for (tree, key) in entries {
            trees.get(tree).insert(key, Vec::new())?;
        }
        cases += 1;
    }
    for older in [TreeId::ByStatus, TreeId::ByRisk, TreeId::ByCategory] {
        let space = trees.get(older);
        loop {
            let keys: Vec<db::Bytes> = space
                .iter()
                .take(10_000)
                .map(|entry| entry.map(|(key, _)| key))
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            space.remove_keys(keys)?;
        }
    }
    tracing::info!(cases, "re-indexed every case of a format {format} store");
    Ok(())
}
