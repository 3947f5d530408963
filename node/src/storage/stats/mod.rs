//! Statistics entries in storage: this node's own contribution, kept in the transaction of
//! every case change, and the latest contributions received from descendants.
//!
//! # What it owns
//!
//! * `kind_node_bucket_entry`: per (kind, node, bucket) one [`StoredEntry`]: the figures, the
//!   version given by the node that computed them, and the local seq of the write. This node's
//!   own entries are (OWN, self) and (SUBTREE, self); entries of descendants are those pushed
//!   by children and kept within the retention depth (the caller decides which to keep).
//! * `seq_statskey`: one key `local seq ‖ entry key` per entry, for the entry's latest write,
//!   so "what changed since seq n" is a range scan.
//! * meta `stats_seq`: the last local seq handed out; `stats_format`; `node_code`.
//!
//! # How the own contribution is kept
//!
//! A case change does not write the entries itself: [`on_case_change`] adds its delta to the
//! deltas of its transaction (`overlay::WriteSet::stats`). On the writer thread a transaction
//! that succeeds adds them to those of the group-commit batch, one that fails drops them; the
//! batch is *settled* ([`settle`], through `Trees::settle_into`) before any of it is written to
//! sled: each (OWN, self) and (SUBTREE, self) entry a bucket of the batch touched is read,
//! changed and written once, all under one new seq (a bucket whose deltas add up to zero is
//! left as it is). That happens before the batch's write-out,
//! before an early write-out (`Trees::get`, a request about to read sled directly), and, as a
//! step of its own, before a transaction that reads the entries or the seq ([`merge`],
//! [`set_overdue`], through `Trees::settle`); [`read_entry`] and [`next_seq`] refuse to run
//! while deltas are unsettled. A transaction run outside the writer thread (at open) settles
//! its own deltas at its end. So a batch of 256 registrations decodes and encodes each entry
//! once, not 256 times, and hands out one seq, not 256.
//!
//! # Invariants
//!
//! These hold in sled, and so for every reader and every transaction that reads statistics,
//! at all times; inside a batch in progress, only once it is settled.
//!
//! * (OWN, self) equals `figures::recount(self, every record in the cases tree)` plus the
//!   overdue figures of the last refresh: every case write goes through `Change::apply`, which
//!   calls [`on_case_change`] in the same transaction, and its delta is settled into the
//!   entries before the case reaches sled.
//! * (SUBTREE, self) equals (OWN, self) plus the stored (SUBTREE, c) of every child c, bucket
//!   by bucket: [`merge`] applies a child's change to it in the same transaction.
//! * A stored descendant entry only ever moves to a strictly higher version.
//! * Local seqs grow strictly. A new or rebuilt store starts them at `opened_at × 2^20` (in ms),
//!   so the versions of a node whose store was lost and rebuilt outrank what its parent kept.
//!   One settle hands out one seq for all the case changes it carries.
//!
//! Records must reach this module only through `Change::apply`: a record in the cases tree is
//! counted (live records and tombstones alike). A supervised read-only copy of another node's
//! case must therefore not be written through `Change` (keep it in its own tree), or it would
//! be counted at two nodes.

mod entry;
mod rebuild;

use super::change::{Tx, TxResult, abort};
use super::codec::{self, ValueKind};
use super::keys::{self, TreeId};
use super::secret::Secret;
use super::trees::Trees;
use super::{StorageError, WriteError};
use crate::code::NodeCode;
use crate::domain::{Case, Timestamp};
use crate::stats::figures::{self, Bucket, Buckets, CURRENT, Cells};
use crate::stats::{Dim, Kind};

pub use entry::StoredEntry;
pub(crate) use rebuild::open;

/// Format of the statistics trees; a store holding another format is rebuilt on open.
const STATS_FORMAT: u32 = 1;

/// An entry as received from a child, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub kind: Kind,
    pub node: NodeCode,
    pub bucket: Bucket,
    pub version: u64,
    pub cells: Cells,
}

/// An entry as read for a push or a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    /// Local seq of the change index key it was found under.
    pub seq: u64,
    pub kind: Kind,
    pub node: NodeCode,
    pub bucket: Bucket,
    pub version: u64,
    pub cells: Cells,
}

/// What a [`merge`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Entries stored (newer than what was kept).
    pub applied: usize,
    /// Entries ignored: duplicates, late or reordered deliveries.
    pub ignored: usize,
}

fn entry_key(kind: Kind, node: &str, bucket: Bucket) -> Vec<u8> {
    keys::stats_entry(kind.code(), node, bucket)
}

/// Refuses to read the statistics while deltas are held that the read would miss (a caller
/// that forgot to settle first, see `Trees::settle`).
fn check_settled(tx: &Tx<'_>) -> TxResult<()> {
    if tx.stats_unsettled() {
        return Err(abort(StorageError::InvalidRecord(
            "statistics read before the batch's deltas were settled".into(),
        )));
    }
    Ok(())
}

fn read_entry(tx: &Tx<'_>, key: &[u8]) -> TxResult<Option<StoredEntry>> {
    check_settled(tx)?;
    match tx.get(TreeId::StatsEntries, key)? {
        Some(bytes) => entry::decode(key, &bytes, &Dim::ALL)
            .map(Some)
            .map_err(abort),
        None => Ok(None),
    }
}

/// Hands out the next local seq.
fn next_seq(tx: &Tx<'_>) -> TxResult<u64> {
    check_settled(tx)?;
    let last: u64 = tx
        .get_decoded(TreeId::Meta, ValueKind::Seq, keys::META_STATS_SEQ)?
        .unwrap_or(0);
    let seq = last.checked_add(1).ok_or_else(|| {
        abort(StorageError::InvalidRecord(
            "statistics seqs are exhausted".into(),
        ))
    })?;
    tx.insert_encoded(TreeId::Meta, ValueKind::Seq, keys::META_STATS_SEQ, &seq)?;
    Ok(seq)
}

/// Writes `new` under `key`, moving its change-index key from the old seq to the new one.
fn write_entry(
    tx: &Tx<'_>,
    key: &[u8],
    old: Option<&StoredEntry>,
    new: &StoredEntry,
) -> TxResult<()> {
    if let Some(old) = old {
        tx.remove(TreeId::StatsChanges, &keys::stats_change(old.seq, key))?;
    }
    tx.insert(
        TreeId::StatsEntries,
        key,
        entry::encode(new).map_err(abort)?,
    )?;
    tx.insert(
        TreeId::StatsChanges,
        &keys::stats_change(new.seq, key),
        Vec::new(),
    )
}

/// Adds `delta` to this node's own entry `(kind, self, bucket)`, stamping it with `seq`.
fn add_to_own(tx: &Tx<'_>, kind: Kind, bucket: Bucket, delta: &Cells, seq: u64) -> TxResult<()> {
    let key = entry_key(kind, tx.node.as_str(), bucket);
    let old = read_entry(tx, &key)?;
    let mut cells = old.as_ref().map(|o| o.cells.clone()).unwrap_or_default();
    cells.merge(delta, true);
    let new = StoredEntry {
        version: seq,
        seq,
        cells,
    };
    write_entry(tx, &key, old.as_ref(), &new)
}

/// The part of `Change::apply` that keeps this node's contribution: adds
/// `figures::delta(before, after)` to the transaction's deltas, which [`settle`] applies to
/// (OWN, self) and (SUBTREE, self) before anything of the transaction reaches sled.
pub(super) fn on_case_change(tx: &Tx<'_>, before: Option<&Case>, after: &Case) -> TxResult<()> {
    let delta = figures::delta(tx.node, before, Some(after));
    if !delta.is_empty() {
        tx.add_stats(&delta);
    }
    Ok(())
}

/// Applies summed case-change deltas (per bucket) to (OWN, self) and (SUBTREE, self): each
/// entry is read, changed and written once, all under one new seq. Nothing when there are none.
pub(super) fn settle(tx: &Tx<'_>, deltas: &Buckets) -> TxResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let seq = next_seq(tx)?;
    for (bucket, cells) in deltas {
        add_to_own(tx, Kind::Own, *bucket, cells, seq)?;
        add_to_own(tx, Kind::Subtree, *bucket, cells, seq)?;
    }
    Ok(())
}

/// Stores the entries pushed by `child` that are newer than what is kept, and applies the
/// change of the child's SUBTREE entries to this node's own SUBTREE. The caller has checked
/// that every entry describes `child` or one of its descendants and lies within retention.
pub(crate) fn merge(
    trees: &Trees,
    secret: &Secret,
    child: &NodeCode,
    incoming: &[Incoming],
) -> Result<MergeOutcome, WriteError> {
    trees.settle()?;
    trees.transaction(secret, |tx| {
        let mut outcome = MergeOutcome::default();
        let mut seq = None;
        for e in incoming {
            let key = entry_key(e.kind, e.node.as_str(), e.bucket);
            let old = read_entry(tx, &key)?;
            if old.as_ref().is_some_and(|o| o.version >= e.version) {
                outcome.ignored += 1;
                continue;
            }
            let s = match seq {
                Some(s) => s,
                None => *seq.insert(next_seq(tx)?),
            };
            let new = StoredEntry {
                version: e.version,
                seq: s,
                cells: e.cells.clone(),
            };
            write_entry(tx, &key, old.as_ref(), &new)?;
            outcome.applied += 1;
            if e.kind == Kind::Subtree && e.node == *child {
                let mut diff = e.cells.clone();
                if let Some(old) = &old {
                    diff.merge(&old.cells, false);
                }
                if !diff.is_zero() {
                    add_to_own(tx, Kind::Subtree, e.bucket, &diff, s)?;
                }
            }
        }
        Ok(outcome)
    })
}

/// The overdue figures at `now` of the cases in the deadline index.
pub(crate) fn overdue_snapshot(trees: &Trees, now: Timestamp) -> Result<Cells, StorageError> {
    let mut cases = Vec::new();
    let index = trees.get(TreeId::ByDeadline);
    for item in index.range(..keys::deadline_bound(now).to_vec()) {
        let (key, _) = item?;
        let id = key.get(8..).unwrap_or_default();
        match super::read_case(trees, id)? {
            Some(case) => cases.push(case),
            None => {
                return Err(StorageError::Corrupt {
                    tree: TreeId::ByDeadline.name(),
                    key: keys::display(&key),
                    reason: "index entry points to a missing case".into(),
                });
            }
        }
    }
    Ok(figures::overdue_snapshot(&cases, now))
}

/// Replaces the overdue figures of (OWN, self, CURRENT) by `snapshot`, and (SUBTREE, self,
/// CURRENT) by the same difference. Returns whether anything changed.
pub(crate) fn set_overdue(
    trees: &Trees,
    secret: &Secret,
    snapshot: &Cells,
) -> Result<bool, WriteError> {
    trees.settle()?;
    trees.transaction(secret, |tx| {
        let key = entry_key(Kind::Own, tx.node.as_str(), CURRENT);
        let before = read_entry(tx, &key)?.map(|e| e.cells).unwrap_or_default();
        let mut after = before.clone();
        after.replace_overdue(snapshot);
        if after == before {
            return Ok(false);
        }
        let mut diff = after;
        diff.merge(&before, false);
        let seq = next_seq(tx)?;
        add_to_own(tx, Kind::Own, CURRENT, &diff, seq)?;
        add_to_own(tx, Kind::Subtree, CURRENT, &diff, seq)?;
        Ok(true)
    })
}

fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<StoredEntry, StorageError> {
    entry::decode(key, bytes, &Dim::ALL)
}

fn bad_key(tree: TreeId, key: &[u8]) -> StorageError {
    StorageError::Corrupt {
        tree: tree.name(),
        key: keys::display(key),
        reason: "malformed statistics key".into(),
    }
}

/// The entry (kind, node, bucket), if stored, with the cells of `dims` only.
pub(crate) fn entry(
    trees: &Trees,
    kind: Kind,
    node: &NodeCode,
    bucket: Bucket,
    dims: &[Dim],
) -> Result<Option<StoredEntry>, StorageError> {
    let key = entry_key(kind, node.as_str(), bucket);
    trees
        .get(TreeId::StatsEntries)
        .get(&key)?
        .map(|b| entry::decode(&key, &b, dims))
        .transpose()
}

/// The month entries of (kind, node) with `first <= bucket <= last` (months only: the
/// current bucket is read with [`entry`]), with the cells of `dims` only.
pub(crate) fn months(
    trees: &Trees,
    kind: Kind,
    node: &NodeCode,
    first: Bucket,
    last: Bucket,
    dims: &[Dim],
) -> Result<Vec<(Bucket, Cells)>, StorageError> {
    let lo = entry_key(kind, node.as_str(), first.max(CURRENT + 1));
    let hi = entry_key(kind, node.as_str(), last);
    let mut out = Vec::new();
    if lo > hi {
        return Ok(out);
    }
    for item in trees.get(TreeId::StatsEntries).range(lo..=hi) {
        let (key, bytes) = item?;
        let (_, _, bucket) =
            keys::parse_stats_entry(&key).ok_or_else(|| bad_key(TreeId::StatsEntries, &key))?;
        out.push((bucket, entry::decode(&key, &bytes, dims)?.cells));
    }
    Ok(out)
}

/// Whether any entry of (kind, node) is stored.
pub(crate) fn has_entries(
    trees: &Trees,
    kind: Kind,
    node: &NodeCode,
) -> Result<bool, StorageError> {
    let mut prefix = keys::stats_prefix(kind.code(), node.as_str());
    prefix.push(0);
    Ok(trees
        .get(TreeId::StatsEntries)
        .scan_prefix(prefix)
        .next()
        .transpose()?
        .is_some())
}

/// The children of `node` that have entries of `kind` here, in code order. Skips over each
/// child's subtree with one seek, so the cost is one seek per child.
pub(crate) fn children(
    trees: &Trees,
    kind: Kind,
    node: &NodeCode,
) -> Result<Vec<NodeCode>, StorageError> {
    let Some(child_len) = crate::stats::child_digits(node) else {
        return Ok(Vec::new());
    };
    let tree = trees.get(TreeId::StatsEntries);
    let prefix = keys::stats_prefix(kind.code(), node.as_str());
    let end = keys::prefix_end(&prefix);
    // Past the node's own entries: every key of a descendant continues with a digit.
    let mut from = [prefix.as_slice(), b"0"].concat();
    let mut out = Vec::new();
    loop {
        let range = match &end {
            Some(end) => tree.range(from.clone()..end.clone()),
            None => tree.range(from.clone()..),
        };
        let Some(item) = range.take(1).next() else {
            return Ok(out);
        };
        let (key, _) = item?;
        let (_, code, _) =
            keys::parse_stats_entry(&key).ok_or_else(|| bad_key(TreeId::StatsEntries, &key))?;
        let child = code
            .get(..child_len)
            .and_then(|c| NodeCode::parse(c).ok())
            .ok_or_else(|| bad_key(TreeId::StatsEntries, &key))?;
        let Some(next) = keys::prefix_end(&keys::stats_prefix(kind.code(), child.as_str())) else {
            out.push(child);
            return Ok(out);
        };
        out.push(child);
        from = next;
    }
}

/// Up to `limit` entries whose latest write has a local seq above `after`, in seq order.
pub(crate) fn changed_since(
    trees: &Trees,
    after: u64,
    limit: usize,
) -> Result<Vec<EntryRow>, StorageError> {
    let start = after.saturating_add(1).to_be_bytes().to_vec();
    let mut out = Vec::new();
    for item in trees.get(TreeId::StatsChanges).range(start..).take(limit) {
        let (key, _) = item?;
        let (seq, entry_key) =
            keys::parse_stats_change(&key).ok_or_else(|| bad_key(TreeId::StatsChanges, &key))?;
        let (kind, node, bucket) = keys::parse_stats_entry(entry_key)
            .and_then(|(k, n, b)| Some((Kind::from_code(k)?, NodeCode::parse(n).ok()?, b)))
            .ok_or_else(|| bad_key(TreeId::StatsChanges, &key))?;
        // Entries are never removed (but by a rebuild on open), only rewritten: a missing
        // entry is damage.
        let stored = trees
            .get(TreeId::StatsEntries)
            .get(entry_key)?
            .ok_or_else(|| StorageError::Corrupt {
                tree: TreeId::StatsChanges.name(),
                key: keys::display(&key),
                reason: "change index points to a missing entry".into(),
            })?;
        let stored = decode_entry(entry_key, &stored)?;
        out.push(EntryRow {
            seq,
            kind,
            node,
            bucket,
            version: stored.version,
            cells: stored.cells,
        });
    }
    Ok(out)
}

/// The last local seq handed out (0 before any).
pub(crate) fn last_seq(trees: &Trees) -> Result<u64, StorageError> {
    let meta = trees.get(TreeId::Meta);
    meta.get(keys::META_STATS_SEQ)?
        .map(|b| codec::decode(ValueKind::Seq, TreeId::Meta, keys::META_STATS_SEQ, &b))
        .transpose()
        .map(Option::unwrap_or_default)
}
