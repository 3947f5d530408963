//! The envelope around every stored value (index trees store empty values and no envelope).
//!
//! ```text
//! offset 0  2 bytes  magic "FQ"
//!        2  1 byte   value kind (what the payload is: case, event, case id, ...)
//!        3  1 byte   format version of that kind
//!        4  4 bytes  CRC32 (IEEE) of the payload, big-endian
//!        8  ...      payload: postcard encoding of the serde struct
//! ```
//!
//! Decoding checks all four header fields and that postcard consumed the whole payload; any
//! mismatch is [`StorageError::Corrupt`] naming the tree and key, never a panic. postcard is
//! not self-describing, so a struct change must bump the kind's version; old versions are then
//! decoded with a frozen copy of the old struct and converted (`migrate`): a case of version 1
//! is read through [`decode_case`], which every reader of cases uses.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StorageError;
use super::keys::{self, TreeId};

const MAGIC: [u8; 2] = *b"FQ";
const HEADER_LEN: usize = 8;

/// What an envelope holds. Discriminants are persistent: never renumber, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ValueKind {
    /// A case ([`crate::domain::Case`]); read it with [`decode_case`].
    Case = 1,
    /// One event ([`crate::domain::Event`]): how format 3 and older stored history.
    Event = 2,
    /// A case id (values of the idempotency and lookup-code trees).
    CaseId = 3,
    /// A per-day sequence counter (u32).
    Counter = 4,
    /// The store format version (u32).
    FormatVersion = 5,
    /// An alert ([`crate::domain::alert::Alert`]).
    Alert = 6,
    /// Bytes: the index secret, a cursor.
    Bytes = 7,
    /// A run of consecutive events of one case (`Vec<Event>`), as one case write appends them;
    /// read it with [`decode_events`], which also reads a single [`ValueKind::Event`].
    Events = 8,
    /// A statistics entry (`stats::StoredEntry`).
    StatsEntry = 16,
    /// A 64-bit sequence counter (u64).
    Seq = 17,
    /// A node's division code (string).
    NodeCode = 18,
    // Federation values are numbered from 20.
    /// A message or link sequence number (u64).
    Sequence = 20,
    /// A queued message ([`crate::protocol::message::OutboxEntry`]).
    OutboxEntry = 21,
    /// A supervised copy ([`crate::protocol::message::CaseCopy`]).
    CaseCopy = 22,
    /// What is kept of a link ([`super::LinkRecord`]).
    LinkRecord = 23,
    /// Where a case was last sent ([`crate::protocol::trust::Located`]).
    Located = 24,
    /// An order this node issued ([`crate::protocol::message::Order`]).
    IssuedOrder = 25,
    /// A console account ([`crate::domain::users::User`]).
    User = 26,
    /// A view of personal data ([`crate::domain::audit::Access`]).
    Access = 27,
    /// How an account signs in ([`crate::domain::users::LoginState`]).
    LoginState = 28,
    /// A console session ([`crate::domain::users::Session`]).
    Session = 29,
    /// An Open311 API key ([`crate::domain::apikeys::ApiKey`]).
    ApiKey = 30,
    /// An entry of the activity index: the amount of a registration, fen (i64; 0 otherwise).
    Activity = 31,
}

impl ValueKind {
    /// Current format version of this kind's payload.
    const fn version(self) -> u8 {
        match self {
            // 2: deadlines (resolve start, follow-up, extension), rule supervision, the plan.
            ValueKind::Case => 2,
            ValueKind::Event
            | ValueKind::Events
            | ValueKind::CaseId
            | ValueKind::Counter
            | ValueKind::FormatVersion
            | ValueKind::Alert
            | ValueKind::Bytes
            | ValueKind::StatsEntry
            | ValueKind::Seq
            | ValueKind::NodeCode => 1,
            // 2: orders carry their issuer's id; each entry the link seq queued before it.
            ValueKind::OutboxEntry => 2,
            ValueKind::Sequence
            | ValueKind::CaseCopy
            | ValueKind::LinkRecord
            | ValueKind::Located
            | ValueKind::IssuedOrder
            | ValueKind::User
            | ValueKind::Access
            | ValueKind::LoginState
            | ValueKind::Session
            | ValueKind::ApiKey
            | ValueKind::Activity => 1,
        }
    }
}

/// Decodes a stored case of any supported version: the current one, or version 1 through its
/// frozen struct.
pub(crate) fn decode_case(
    tree: TreeId,
    key: &[u8],
    bytes: &[u8],
) -> Result<crate::domain::Case, StorageError> {
    match bytes.get(..4) {
        Some([m0, m1, kind, 1]) if [*m0, *m1] == MAGIC && *kind == ValueKind::Case as u8 => {
            decode_version::<super::migrate::CaseV1>(ValueKind::Case, 1, tree, key, bytes)
                .map(Into::into)
        }
        _ => decode(ValueKind::Case, tree, key, bytes),
    }
}

/// Decodes a queued message of any supported version: the current one, or version 1 (orders
/// without an id) through its frozen struct.
pub(crate) fn decode_outbox_entry(
    key: &[u8],
    bytes: &[u8],
) -> Result<crate::protocol::message::OutboxEntry, StorageError> {
    let kind = ValueKind::OutboxEntry;
    match bytes.get(..4) {
        Some([m0, m1, k, 1]) if [*m0, *m1] == MAGIC && *k == kind as u8 => {
            decode_version::<super::migrate::OutboxEntryV1>(kind, 1, TreeId::Outbox, key, bytes)
                .map(Into::into)
        }
        _ => decode(kind, TreeId::Outbox, key, bytes),
    }
}

/// Decodes a value of the events tree: a run of events ([`ValueKind::Events`]) or, as stores
/// of format 3 and older hold them, one event ([`ValueKind::Event`]).
pub(crate) fn decode_events(
    tree: TreeId,
    key: &[u8],
    bytes: &[u8],
) -> Result<Vec<crate::domain::Event>, StorageError> {
    match bytes.get(2) {
        Some(&kind) if kind == ValueKind::Event as u8 => {
            decode(ValueKind::Event, tree, key, bytes).map(|e| vec![e])
        }
        _ => decode(ValueKind::Events, tree, key, bytes),
    }
}

/// Decodes a format marker (the store's, the statistics') stored under `key` of the meta tree.
pub(crate) fn decode_format(key: &[u8], bytes: &[u8]) -> Result<u32, StorageError> {
    decode(ValueKind::FormatVersion, TreeId::Meta, key, bytes)
}

/// Encodes a format marker for the meta tree.
pub(crate) fn encode_format(format: u32) -> Result<Vec<u8>, StorageError> {
    encode(ValueKind::FormatVersion, &format)
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    kind: ValueKind,
    value: &T,
) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![0; HEADER_LEN];
    out = postcard::to_extend(value, out)
        .map_err(|e| StorageError::InvalidRecord(format!("cannot encode {kind:?}: {e}")))?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[..2].copy_from_slice(&MAGIC);
    out[2] = kind as u8;
    out[3] = kind.version();
    out[4..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(
    kind: ValueKind,
    tree: TreeId,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    decode_version(kind, kind.version(), tree, key, bytes)
}

/// Decodes a payload of `kind` written in format `version`.
fn decode_version<T: DeserializeOwned>(
    kind: ValueKind,
    version: u8,
    tree: TreeId,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    let payload = checked_payload_version(kind, version, tree, key, bytes)?;
    decode_payload(kind, tree, key, payload)
}

/// Checks the envelope of a value of `kind` in its current format (length, magic, kind,
/// version, checksum) and returns the payload, for callers that decode it with borrowed
/// fields through [`decode_payload`].
pub(crate) fn checked_payload<'a>(
    kind: ValueKind,
    tree: TreeId,
    key: &[u8],
    bytes: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    checked_payload_version(kind, kind.version(), tree, key, bytes)
}

fn checked_payload_version<'a>(
    kind: ValueKind,
    version: u8,
    tree: TreeId,
    key: &[u8],
    bytes: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    let corrupt = |reason: String| corrupt(tree, key, reason);
    let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err(corrupt(format!(
            "value of {} bytes is shorter than the envelope",
            bytes.len()
        )));
    };
    if header[..2] != MAGIC {
        return Err(corrupt(format!(
            "bad magic {:?}",
            header[..2].escape_ascii().to_string()
        )));
    }
    if header[2] != kind as u8 {
        return Err(corrupt(format!(
            "value kind {} where {kind:?} ({}) was expected",
            header[2], kind as u8
        )));
    }
    if header[3] != version {
        return Err(corrupt(format!(
            "unsupported {kind:?} format version {}",
            header[3]
        )));
    }
    let stored_crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let crc = crc32fast::hash(payload);
    if stored_crc != crc {
        return Err(corrupt(format!(
            "checksum mismatch: stored {stored_crc:08x}, computed {crc:08x}"
        )));
    }
    Ok(payload)
}

/// Decodes a payload returned by [`checked_payload`]; `T` may borrow from it.
pub(crate) fn decode_payload<'a, T: serde::Deserialize<'a>>(
    kind: ValueKind,
    tree: TreeId,
    key: &[u8],
    payload: &'a [u8],
) -> Result<T, StorageError> {
    match postcard::take_from_bytes(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corrupt(
            tree,
            key,
            format!("{} trailing bytes after the {kind:?} payload", rest.len()),
        )),
        Err(e) => Err(corrupt(
            tree,
            key,
            format!("undecodable {kind:?} payload: {e}"),
        )),
    }
}

fn corrupt(tree: TreeId, key: &[u8], reason: String) -> StorageError {
    StorageError::Corrupt {
        tree: tree.name(),
        key: keys::display(key),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_id(bytes: &[u8]) -> Result<String, StorageError> {
        decode(ValueKind::CaseId, TreeId::LookupCodes, b"K1", bytes)
    }

    fn reason(err: StorageError) -> String {
        match err {
            StorageError::Corrupt { tree, key, reason } => {
                assert_eq!((tree, key.as_str()), ("lookupcode_caseid", "K1"));
                reason
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(ValueKind::CaseId, "610116-20250131-000001").unwrap();
        assert_eq!(&bytes[..4], &[b'F', b'Q', 3, 1]);
        assert_eq!(decode_id(&bytes).unwrap(), "610116-20250131-000001");
    }

    #[test]
    fn every_kind_of_damage_is_corrupt() {
        let good = encode(ValueKind::CaseId, "610116-20250131-000001").unwrap();
        let damage = |i: usize| {
            let mut b = good.clone();
            b[i] ^= 0x20;
            b
        };
        assert!(reason(decode_id(&damage(0)).unwrap_err()).contains("magic"));
        assert!(reason(decode_id(&damage(2)).unwrap_err()).contains("kind"));
        assert!(reason(decode_id(&damage(3)).unwrap_err()).contains("version"));
        assert!(reason(decode_id(&damage(5)).unwrap_err()).contains("checksum"));
        assert!(reason(decode_id(&damage(12)).unwrap_err()).contains("checksum"));
        assert!(reason(decode_id(&good[..5]).unwrap_err()).contains("shorter"));
        assert!(reason(decode_id(&[]).unwrap_err()).contains("shorter"));
    }

    #[test]
    fn payload_errors_behind_a_valid_checksum_are_corrupt() {
        // A counter where a case id is expected: right kind byte forged, payload undecodable.
        let mut bytes = encode(ValueKind::Counter, &u32::MAX).unwrap();
        bytes[2] = ValueKind::CaseId as u8;
        assert!(reason(decode_id(&bytes).unwrap_err()).contains("undecodable"));

        // Trailing bytes after a valid payload.
        let mut bytes = encode(ValueKind::CaseId, "a").unwrap();
        bytes.push(0);
        let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
        bytes[4..8].copy_from_slice(&crc.to_be_bytes());
        assert!(reason(decode_id(&bytes).unwrap_err()).contains("trailing"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

            /// Arbitrary bytes under any key decode to a value or to an error: never a panic.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = decode_case(TreeId::Cases, b"k", &bytes);
                let _ = decode_events(TreeId::Events, b"k", &bytes);
                let _ = decode::<crate::domain::alert::Alert>(ValueKind::Alert, TreeId::Alerts, b"k", &bytes);
                let _ = decode::<u64>(ValueKind::Sequence, TreeId::Meta, b"k", &bytes);
                let _ = decode_outbox_entry(b"k", &bytes);
            }

            /// A valid envelope with one byte of its payload changed is refused.
            #[test]
            fn a_changed_byte_is_refused(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
                let good = encode(ValueKind::Sequence, &42u64).unwrap();
                let mut bad = good.clone();
                let i = at.index(bad.len());
                bad[i] ^= flip;
                prop_assert!(decode::<u64>(ValueKind::Sequence, TreeId::Meta, b"k", &bad).is_err());
            }
        }
    }
}
