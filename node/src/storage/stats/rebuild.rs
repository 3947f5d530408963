//! Opening the statistics of a store: the node check, and the rebuild of a store that has no
//! statistics yet (or an older format of them).

use super::super::codec::{self, ValueKind};
use super::super::db::Bytes;
use super::super::keys::{self, TreeId};
use super::super::secret::Secret;
use super::super::trees::Trees;
use super::super::{StorageError, WriteError};
use super::{STATS_FORMAT, StoredEntry, entry_key, last_seq, write_entry};
use crate::domain::{Case, Timestamp};
use crate::stats::Kind;
use crate::stats::figures::{self, Buckets};

/// On open: checks that the store belongs to `node` (recording it in a new store), and
/// rebuilds the statistics when they are missing (a store from before they existed) or of
/// another format: recounts the own contribution from every case record, drops descendants'
/// entries (children resend them), and restarts seqs above `opened_at × 2^20`.
pub(crate) fn open(
    trees: &Trees,
    secret: &Secret,
    opened_at: Timestamp,
) -> Result<(), StorageError> {
    let meta = trees.get(TreeId::Meta);
    let node = trees.node();
    match meta.get(keys::META_NODE)? {
        Some(bytes) => {
            let found: String =
                codec::decode(ValueKind::NodeCode, TreeId::Meta, keys::META_NODE, &bytes)?;
            if found != node.as_str() {
                return Err(StorageError::WrongNode {
                    found,
                    expected: node.to_string(),
                });
            }
        }
        None => {
            meta.insert(
                keys::META_NODE,
                codec::encode(ValueKind::NodeCode, node.as_str())?,
            )?;
        }
    }
    let format: Option<u32> = meta
        .get(keys::META_STATS_FORMAT)?
        .map(|b| codec::decode_format(keys::META_STATS_FORMAT, &b))
        .transpose()?;
    if format == Some(STATS_FORMAT) {
        return Ok(());
    }
    rebuild(trees, secret, opened_at)
}

fn rebuild(trees: &Trees, secret: &Secret, opened_at: Timestamp) -> Result<(), StorageError> {
    let node = trees.node().clone();
    let mut own = Buckets::new();
    for item in trees.get(TreeId::Cases).iter() {
        let (key, bytes) = item?;
        let case: Case = codec::decode_case(TreeId::Cases, &key, &bytes)?;
        figures::apply_case(&mut own, &node, &case, true);
    }
    let stale_keys = |tree: TreeId| -> Result<Vec<Bytes>, StorageError> {
        trees
            .get(tree)
            .iter()
            .map(|item| item.map(|(key, _)| key))
            .collect::<Result<_, _>>()
            .map_err(StorageError::from)
    };
    let old_entries = stale_keys(TreeId::StatsEntries)?;
    let old_changes = stale_keys(TreeId::StatsChanges)?;
    let floor = u64::try_from(opened_at.millis()).unwrap_or(0) << 20;
    let base = last_seq(trees)?.max(floor);
    let written = trees.transaction(secret, |tx| {
        for key in &old_entries {
            tx.remove(TreeId::StatsEntries, key)?;
        }
        for key in &old_changes {
            tx.remove(TreeId::StatsChanges, key)?;
        }
        let seq = base.saturating_add(1);
        tx.insert_encoded(TreeId::Meta, ValueKind::Seq, keys::META_STATS_SEQ, &seq)?;
        for (bucket, cells) in &own {
            for kind in [Kind::Own, Kind::Subtree] {
                let key = entry_key(kind, node.as_str(), *bucket);
                let new = StoredEntry {
                    version: seq,
                    seq,
                    cells: cells.clone(),
                };
                write_entry(tx, &key, None, &new)?;
            }
        }
        tx.insert_encoded(
            TreeId::Meta,
            ValueKind::FormatVersion,
            keys::META_STATS_FORMAT,
            &STATS_FORMAT,
        )?;
        Ok(())
    });
    match written {
        Ok(()) => Ok(()),
        Err(WriteError::Storage(e)) => Err(e),
        Err(other) => Err(StorageError::InvalidRecord(other.to_string())),
    }
}
