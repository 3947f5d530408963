//! How a statistics entry is stored, so that a query decodes only what it needs.
//!
//! The payload (inside the usual checksummed, versioned envelope) is the version, the local
//! seq, the bucket's total figures, and then one opaque blob per dimension holding that
//! dimension's cells (postcard of `Vec<(value, Figures)>`). Decoding the total alone costs
//! about a fortieth of decoding every cell, and most answers (totals, by month, by child)
//! need nothing more; a breakdown by category decodes the category blob only.

use serde::{Deserialize, Serialize};

use super::super::StorageError;
use super::super::codec::{self, ValueKind};
use super::super::keys::{self, TreeId};
use crate::stats::{Cell, Cells, Dim, Figures};

/// One entry, decoded (with the cells of the dimensions asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Version given by the node the entry describes (for this node's own entries: the seq).
    pub version: u64,
    /// Local seq of the latest write of this entry here.
    pub seq: u64,
    pub cells: Cells,
}

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    version: u64,
    seq: u64,
    total: Figures,
    /// Per dimension, in [`Dim::ALL`] order: postcard of `Vec<(u8, Figures)>`. Borrowed from
    /// the stored bytes when decoding, so unused dimensions cost nothing.
    #[serde(borrow)]
    dims: [&'a [u8]; 4],
}

fn dim_index(d: Dim) -> usize {
    match d {
        Dim::Category => 0,
        Dim::Channel => 1,
        Dim::Risk => 2,
        Dim::MediationType => 3,
    }
}

pub(crate) fn encode(e: &StoredEntry) -> Result<Vec<u8>, StorageError> {
    let mut dims: [Vec<(u8, Figures)>; 4] = Default::default();
    for (cell, f) in &e.cells.by {
        dims[dim_index(cell.dim)].push((cell.value, *f));
    }
    let mut blobs: [Vec<u8>; 4] = Default::default();
    for (blob, cells) in blobs.iter_mut().zip(&dims) {
        *blob = postcard::to_stdvec(cells)
            .map_err(|err| StorageError::InvalidRecord(format!("cannot encode cells: {err}")))?;
    }
    let payload = Payload {
        version: e.version,
        seq: e.seq,
        total: e.cells.total,
        dims: [&blobs[0], &blobs[1], &blobs[2], &blobs[3]],
    };
    codec::encode(ValueKind::StatsEntry, &payload)
}

/// Decodes an entry with the cells of `dims` only (all of [`Dim::ALL`] for a full entry).
pub(crate) fn decode(key: &[u8], bytes: &[u8], dims: &[Dim]) -> Result<StoredEntry, StorageError> {
    let kind = ValueKind::StatsEntry;
    let payload = codec::checked_payload(kind, TreeId::StatsEntries, key, bytes)?;
    let p: Payload<'_> = codec::decode_payload(kind, TreeId::StatsEntries, key, payload)?;
    let mut cells = Cells {
        total: p.total,
        by: Default::default(),
    };
    for dim in dims {
        let blob = p.dims[dim_index(*dim)];
        let values: Vec<(u8, Figures)> =
            postcard::from_bytes(blob).map_err(|err| StorageError::Corrupt {
                tree: TreeId::StatsEntries.name(),
                key: keys::display(key),
                reason: format!("undecodable {dim:?} cells: {err}"),
            })?;
        cells.by.extend(
            values
                .into_iter()
                .map(|(value, f)| (Cell { dim: *dim, value }, f)),
        );
    }
    Ok(StoredEntry {
        version: p.version,
        seq: p.seq,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_whole_or_in_part() {
        let mut cells = Cells::default();
        let f = Figures {
            received: 2,
            amount_received_fen: 440_000,
            ..Figures::default()
        };
        let dims = [
            Cell {
                dim: Dim::Category,
                value: 1,
            },
            Cell {
                dim: Dim::Channel,
                value: 3,
            },
            Cell {
                dim: Dim::Risk,
                value: 4,
            },
            Cell {
                dim: Dim::MediationType,
                value: 0,
            },
        ];
        cells.apply(&dims, &f, true);
        let e = StoredEntry {
            version: 9,
            seq: 12,
            cells,
        };
        let bytes = encode(&e).unwrap();
        assert_eq!(decode(b"k", &bytes, &Dim::ALL).unwrap(), e);
        let part = decode(b"k", &bytes, &[Dim::Risk]).unwrap();
        assert_eq!(part.cells.total, e.cells.total);
        assert_eq!(part.cells.by.len(), 1);
        assert!(decode(b"k", &bytes, &[]).unwrap().cells.by.is_empty());
    }
}
