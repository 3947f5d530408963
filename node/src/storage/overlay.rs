//! Write sets: writes held in memory until they go to sled together in one atomic batch.
//!
//! sled 0.34 rolls its log buffer twice for every transaction and every batch (its `pin_log`)
//! and hands each buffer to its I/O threads, so a transaction costs several times the writes
//! it carries. The writer thread therefore runs each write of a group-commit batch against
//! a [`WriteSet`] of its own, layered over the writes of the batch's earlier requests
//! ([`Pending`]) and over sled; a request that succeeds adds its set to the batch's, one that
//! fails drops it, and the whole batch then goes to sled as one batch
//! (`db::Tree::apply_batch` on the store's one sled tree, see `space`) just before the sync
//! ([`Pending::write_out`]). A request therefore reads every write of the requests before
//! it, and sled (and with it every reader on another thread) sees a batch whole or not at all.
//!
//! A write set also carries the statistics deltas of the case changes it made
//! ([`WriteSet::stats`], see `stats`): they are added up like the writes (a request's into the
//! batch's when it succeeds, dropped with it when it fails) and turned into writes of the
//! statistics entries only when the batch is *settled*, once per bucket. Every write-out
//! settles first (the `settle` argument of [`Pending::write_out`] and
//! [`Pending::write_out_quietly`]), and [`WriteSet::write_to`] refuses a set that still holds
//! deltas, so sled never receives a case change without its statistics.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::StorageError;
use super::db::{self, Batch, Bytes};
use super::keys::TreeId;
use super::secret::Secret;
use super::space::full_key;
use crate::stats::figures::Buckets;

/// One write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    Put(Bytes),
    Remove,
    /// Undo the put of a set below this one: the key is not in sled, so there is nothing to
    /// remove there (a key written and deleted within one batch never reaches sled).
    Forget,
}

/// Writes by tree and key; the last write of a key wins. Also the statistics deltas not yet
/// settled into writes.
#[derive(Debug)]
pub(crate) struct WriteSet {
    /// Ordered, so that the writes under a prefix are a range (`with_prefix`).
    trees: Vec<BTreeMap<Vec<u8>, Write>>,
    /// Per bucket, the sum of the statistics deltas of the case changes in this set that are
    /// not yet written to this node's own entries (`stats::on_case_change`). Buckets whose sum
    /// is zero are dropped.
    pub(crate) stats: Buckets,
}

impl Default for WriteSet {
    fn default() -> Self {
        WriteSet {
            trees: TreeId::ALL.iter().map(|_| BTreeMap::new()).collect(),
            stats: Buckets::new(),
        }
    }
}

impl WriteSet {
    /// `None`: the set does not touch the key. `Some(None)`: it removes it.
    pub(crate) fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<&Bytes>> {
        self.write(tree, key).map(|w| match w {
            Write::Put(value) => Some(value),
            Write::Remove | Write::Forget => None,
        })
    }

    pub(crate) fn write(&self, tree: TreeId, key: &[u8]) -> Option<&Write> {
        self.trees[tree as usize].get(key)
    }

    /// The writes of one tree to keys starting with `prefix`.
    pub(crate) fn with_prefix<'a>(
        &'a self,
        tree: TreeId,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Write)> + 'a {
        self.trees[tree as usize]
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    pub(crate) fn put(&mut self, tree: TreeId, key: &[u8], write: Write) {
        self.trees[tree as usize].insert(key.to_vec(), write);
    }

    /// Adds statistics deltas to those of the set, bucket by bucket.
    pub(crate) fn add_stats(&mut self, delta: &Buckets) {
        for (bucket, cells) in delta {
            let sum = self.stats.entry(*bucket).or_default();
            sum.merge(cells, true);
            if sum.is_zero() {
                self.stats.remove(bucket);
            }
        }
    }

    /// Adds `later`'s writes, which win over this set's, and its statistics deltas.
    pub(crate) fn absorb(&mut self, later: WriteSet) {
        if self.stats.is_empty() {
            self.stats = later.stats;
        } else {
            self.add_stats(&later.stats);
        }
        for (mine, theirs) in self.trees.iter_mut().zip(later.trees) {
            for (key, write) in theirs {
                match write {
                    Write::Forget => {
                        mine.remove(&key);
                    }
                    write => {
                        mine.insert(key, write);
                    }
                }
            }
        }
    }

    /// Neither writes nor statistics deltas.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0 && self.stats.is_empty()
    }

    /// Number of keys to write or remove in sled.
    pub(crate) fn len(&self) -> usize {
        self.trees
            .iter()
            .flat_map(BTreeMap::values)
            .filter(|w| **w != Write::Forget)
            .count()
    }

    /// Writes the set to the store's sled tree atomically, as one sled batch (see `space`).
    /// A set whose statistics deltas are not settled is refused: its case changes would reach
    /// sled without their statistics.
    pub(crate) fn write_to(&self, tree: &db::Tree) -> Result<(), StorageError> {
        if !self.stats.is_empty() {
            return Err(StorageError::InvalidRecord(
                "a write-out with statistics deltas not settled".into(),
            ));
        }
        let mut batch = Batch::default();
        let mut any = false;
        for (&id, writes) in TreeId::ALL.iter().zip(&self.trees) {
            for (key, write) in writes {
                match write {
                    Write::Put(v) => batch.insert(full_key(id, key), v.clone()),
                    Write::Remove => batch.remove(full_key(id, key)),
                    Write::Forget => continue,
                }
                any = true;
            }
        }
        if any {
            tree.apply_batch(batch)?;
        }
        Ok(())
    }
}

/// The writes of the batch in progress on the writer thread that are not in sled yet.
#[derive(Debug)]
pub(crate) struct Pending {
    writes: Mutex<WriteSet>,
    /// Why an early write-out ([`Pending::write_out_quietly`]) failed: the batch must fail.
    failure: Mutex<Option<String>>,
    /// The store's secret, for the transaction that settles the batch's statistics (it hashes
    /// nothing, but every transaction carries the secret).
    secret: Secret,
}

/// Turns the statistics deltas of a write set into writes (see `Trees::settle`).
pub(crate) type Settle<'a> = &'a dyn Fn(&mut WriteSet) -> Result<(), StorageError>;

impl Pending {
    pub(crate) fn new(secret: Secret) -> Pending {
        Pending {
            writes: Mutex::default(),
            failure: Mutex::default(),
            secret,
        }
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The pending writes. A request that panicked while holding them had not added its own
    /// (that happens after it returns), so they are intact and the poison is ignored; so is a
    /// settle, which clears the deltas only once their writes are added.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriteSet> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles what is pending (`settle`), writes it to sled and clears it; returns the number
    /// of keys written. Fails if this or an earlier write-out of the batch failed.
    pub(crate) fn write_out(
        &self,
        tree: &db::Tree,
        settle: Settle<'_>,
    ) -> Result<usize, StorageError> {
        if let Some(reason) = self.take_failure() {
            return Err(StorageError::Failed(reason));
        }
        let mut writes = self.lock();
        settle(&mut writes)?;
        let len = writes.len();
        if len > 0 {
            writes.write_to(tree)?;
            *writes = WriteSet::default();
        }
        Ok(len)
    }

    /// [`Pending::write_out`] for a request about to read sled directly (a range scan), which
    /// must see the writes of the requests before it. A failure (of the settle or of the
    /// write) is kept for the batch's own write-out to report, and nothing is written.
    pub(crate) fn write_out_quietly(&self, tree: &db::Tree, settle: Settle<'_>) {
        let mut writes = self.lock();
        if writes.is_empty() {
            return;
        }
        match settle(&mut writes).and_then(|()| writes.write_to(tree)) {
            Ok(()) => *writes = WriteSet::default(),
            Err(e) => {
                let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
                failure.get_or_insert_with(|| e.to_string());
            }
        }
    }

    fn take_failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_tree() -> (tempfile::TempDir, db::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = db::Db::open_default(dir.path()).unwrap();
        let tree = db.open_tree(crate::storage::space::STORE_TREE).unwrap();
        (dir, tree)
    }

    #[test]
    fn later_writes_win_and_removals_are_kept() {
        let put = |v: &[u8]| Write::Put(Bytes::from(v));
        let mut first = WriteSet::default();
        first.put(TreeId::Cases, b"a", put(b"1"));
        first.put(TreeId::Cases, b"b", put(b"1"));
        first.put(TreeId::Cases, b"f", put(b"1"));
        let mut second = WriteSet::default();
        second.put(TreeId::Cases, b"a", Write::Remove);
        second.put(TreeId::Cases, b"f", Write::Forget);
        second.put(TreeId::Events, b"e", put(b"2"));
        assert_eq!(second.get(TreeId::Cases, b"f"), Some(None));
        first.absorb(second);
        assert_eq!(first.get(TreeId::Cases, b"a"), Some(None));
        assert_eq!(
            first.get(TreeId::Cases, b"b"),
            Some(Some(&Bytes::from(b"1")))
        );
        assert_eq!(first.get(TreeId::Cases, b"c"), None);
        // A forgotten put leaves no trace.
        assert_eq!(first.get(TreeId::Cases, b"f"), None);
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn write_out_reaches_every_tree_and_clears() {
        let (_dir, tree) = temp_tree();
        let space = |id| crate::storage::space::Space::new(&tree, id);
        space(TreeId::Cases)
            .insert(b"gone", b"x".as_slice())
            .unwrap();
        let pending = Pending::new(Secret::for_tests());
        let settled: Settle<'_> = &|_| Ok(());
        {
            let mut w = pending.lock();
            w.put(TreeId::Cases, b"gone", Write::Remove);
            w.put(TreeId::Cases, b"new", Write::Put(Bytes::from(b"c")));
            w.put(TreeId::ByStatus, b"idx", Write::Put(Bytes::from(b"")));
            w.put(TreeId::ByRisk, b"never", Write::Forget);
        }
        assert_eq!(pending.write_out(&tree, settled).unwrap(), 3);
        assert!(pending.lock().is_empty());
        let cases = space(TreeId::Cases);
        assert!(cases.get(b"gone").unwrap().is_none());
        assert_eq!(cases.get(b"new").unwrap().unwrap(), b"c");
        assert!(space(TreeId::ByStatus).get(b"idx").unwrap().is_some());
        assert!(space(TreeId::ByRisk).is_empty());
        // Every key is under its tree's prefix, and nothing else was written.
        assert_eq!(tree.len(), 2);
        assert_eq!(pending.write_out(&tree, settled).unwrap(), 0);
    }

    #[test]
    fn statistics_deltas_add_up_and_block_a_write_out_until_settled() {
        use crate::stats::figures::{Cells, Figures};
        let delta = |bucket, received| {
            let mut cells = Cells::default();
            cells.apply(
                &[],
                &Figures {
                    received,
                    ..Figures::default()
                },
                true,
            );
            Buckets::from([(bucket, cells)])
        };
        let mut batch = WriteSet::default();
        batch.add_stats(&delta(202501, 1));
        let mut later = WriteSet::default();
        later.add_stats(&delta(202501, 2));
        later.add_stats(&delta(202502, 1));
        batch.absorb(later);
        assert_eq!(batch.stats[&202501].total.received, 3);
        assert_eq!(batch.stats[&202502].total.received, 1);
        // A sum of zero leaves no bucket behind.
        batch.add_stats(&delta(202502, 1u64.wrapping_neg()));
        assert_eq!(batch.stats.keys().copied().collect::<Vec<_>>(), [202501]);
        assert!(!batch.is_empty(), "deltas alone make a set non-empty");

        let (_dir, tree) = temp_tree();
        batch.put(TreeId::Cases, b"c", Write::Put(Bytes::from(b"v")));
        assert!(batch.write_to(&tree).is_err(), "unsettled deltas");
        assert!(tree.is_empty());

        // A write-out settles first; a failed settle writes nothing and fails the batch.
        let pending = Pending::new(Secret::for_tests());
        *pending.lock() = batch;
        pending.write_out_quietly(&tree, &|_| Err(StorageError::InvalidRecord("no".into())));
        assert!(tree.is_empty());
        let settled: Settle<'_> = &|set| {
            set.stats.clear();
            Ok(())
        };
        assert!(
            pending.write_out(&tree, settled).is_err(),
            "the earlier failure"
        );
        assert_eq!(pending.write_out(&tree, settled).unwrap(), 1);
        let cases = crate::storage::space::Space::new(&tree, TreeId::Cases);
        assert!(cases.get(b"c").unwrap().is_some());
    }
}
