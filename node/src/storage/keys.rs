//! Every tree of the store, declared once, and the byte encoding of every key.
//!
//! A tree is a key space of the store's one sled tree, under a prefix byte of its own (see
//! `space`). Tree names follow the `<key>_<value>` convention so that a name says what a tree
//! maps. Adding a tree is one line in the `trees!` invocation below, with a new prefix byte: a
//! write transaction may touch any tree, so a new tree can be written in the same transaction
//! as a case change without touching the transaction plumbing. The keys described below are
//! those within a tree, without the prefix.
//!
//! Key encodings are order-preserving where order matters:
//! * case ids are stored as their UTF-8 bytes, so the cases tree iterates in id order;
//! * event keys are `case id ‖ 0x00 ‖ seq (u64 BE)`: a case's history is one contiguous,
//!   seq-ordered range. Case ids therefore must not contain NUL ([`check_case_id`]);
//! * the status, risk and category indexes are `code (1 byte) ‖ case id`, with the stable
//!   `code()` of the domain enums;
//! * the deadline index is `deadline ‖ case id`, the deadline being the i64 milliseconds with
//!   the sign bit flipped, big-endian (order-preserving for every i64, negatives included), so
//!   byte order is time order and "overdue at `now`" is the key range below `deadline(now)`;
//! * the person index is `hash(ID number) (16 bytes) ‖ registered at (8 bytes, as above) ‖ case
//!   id`: one person's cases are a contiguous, time-ordered range, and "within the window" is a
//!   sub-range. The respondent index is `hash(respondent name) (16 bytes) ‖ case id`, for open
//!   cases only. Both hashes are keyed with the store's secret (see `secret`), so neither ID
//!   numbers nor names appear in clear in an index;
//! * the subtree person index has the person index's layout, with the federation-wide hash
//!   (see `secret::PersonKey`): `hash (16 bytes) ‖ registered at ‖ case id`, the value being
//!   the node that holds the case. It lists the sightings of this node's whole subtree (its
//!   own cases included), so a case reported twice (after a move) is one entry;
//! * the phone index is `hash(phone digits) (16 bytes) ‖ case id`, keyed like the others;
//! * the handler index is `handler ‖ 0x00 ‖ case id` for cases accepted or in mediation;
//! * the supervised index is the case id of every case held here (not a tombstone) that an
//!   ancestor supervises;
//! * alerts are stored under their key (UTF-8), and indexed by `raised at (8 bytes) ‖ key`.
//!
//! * a statistics entry key is `kind (1 byte) ‖ node code (ASCII digits) ‖ 0x00 ‖ bucket (u32
//!   BE)`: one node's entries of one kind are a contiguous, bucket-ordered range, and since a
//!   code is a prefix of its descendants' codes (and digits sort above 0x00), the entries of a
//!   whole subtree of one kind are the range of `kind ‖ code`;
//! * the statistics change index is `local seq (u64 BE) ‖ entry key`: a range from a seq is
//!   exactly what changed since.
//!
//! Index trees store empty values: the key is the whole entry.

use super::secret::{HASH_LEN, Secret};
use crate::domain::alert::Alert;
use crate::domain::{Case, PartyRole, Timestamp};

macro_rules! trees {
    ($($(#[$doc:meta])* $variant:ident => $name:literal = $prefix:literal,)+) => {
        /// One key space of the store (a "tree": in the one sled tree of the store, the keys
        /// that start with its prefix byte).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum TreeId { $($(#[$doc])* $variant,)+ }

        impl TreeId {
            /// Every tree, in declaration order.
            pub(crate) const ALL: &'static [TreeId] = &[$(TreeId::$variant,)+];

            /// The tree's name: in errors, and the name of the sled tree that held it before
            /// format 3 (persistent: never rename).
            pub(crate) const fn name(self) -> &'static str {
                match self { $(TreeId::$variant => $name,)+ }
            }

            /// The first byte of every key of the tree in the store's sled tree (persistent:
            /// never change or reuse one).
            pub(crate) const fn prefix(self) -> u8 {
                match self { $(TreeId::$variant => $prefix,)+ }
            }
        }
    };
}

trees! {
    /// Store metadata: the store format version and the per-day registration counters.
    Meta => "meta" = 0x01,
    /// case id → [`Case`].
    Cases => "caseid_case" = 0x02,
    /// case id ‖ 0x00 ‖ seq (u64 BE) → the events one case write appended, from that seq on
    /// (a run, `codec::ValueKind::Events`; a single event in stores of format 3 and older).
    Events => "caseid_seq_event" = 0x03,
    /// idempotency key of a registration → case id.
    Idempotency => "idempotencykey_caseid" = 0x04,
    /// lookup code given to the citizen → case id.
    LookupCodes => "lookupcode_caseid" = 0x05,
    /// status code ‖ case id → empty: the status index of formats 1 to 4, emptied at open
    /// since format 5 (see [`TreeId::ByFacets`]).
    ByStatus => "status_caseid" = 0x06,
    /// risk code ‖ case id → empty: as [`TreeId::ByStatus`], up to format 4.
    ByRisk => "risk_caseid" = 0x07,
    /// category code ‖ case id → empty: as [`TreeId::ByStatus`], up to format 4.
    ByCategory => "category_caseid" = 0x08,
    /// open deadline ‖ case id → empty (only cases with a running deadline).
    ByDeadline => "deadline_caseid" = 0x09,
    /// hash(ID number) ‖ registered at ‖ case id → empty (every party with an ID number).
    ByPerson => "personhash_registeredat_caseid" = 0x0a,
    /// hash(respondent name) ‖ case id → empty (respondents of open cases only).
    ByRespondent => "respondenthash_caseid" = 0x0b,
    /// alert key → [`crate::domain::alert::Alert`].
    Alerts => "alertkey_alert" = 0x0c,
    /// raised at ‖ alert key → empty.
    AlertsByTime => "raisedat_alertkey" = 0x0d,
    /// neighbour code ‖ 0x00 ‖ link seq (u64 BE) → [`crate::protocol::message::OutboxEntry`]:
    /// messages queued for a neighbour, deleted once it acknowledges them.
    Outbox => "peer_seq_outboxentry" = 0x0e,
    /// neighbour code → highest link seq applied from it (u64): the inbox watermark.
    Inbox => "peer_appliedthrough" = 0x0f,
    /// case id → [`crate::protocol::message::CaseCopy`]: read-only copies of cases owned
    /// elsewhere that this node supervises. Kept out of the cases tree and its indexes so that
    /// listings and aggregates never count a case twice.
    Copies => "caseid_supervisedcopy" = 0x10,
    /// kind ‖ node ‖ 0x00 ‖ bucket → statistics entry (`stats::StoredEntry`).
    StatsEntries => "kind_node_bucket_entry" = 0x11,
    /// local seq ‖ statistics entry key → empty: which entries changed when.
    StatsChanges => "seq_statskey" = 0x12,
    /// neighbour code → [`super::LinkRecord`]: when the neighbour was last
    /// heard and since when the link is expected, so link silence survives a restart.
    Links => "peer_linkrecord" = 0x13,
    /// federation hash(ID number) ‖ registered at ‖ case id → the node holding the case: the
    /// person sightings of this node's subtree (see `subtree`).
    SubtreePerson => "subtreepersonhash_registeredat_caseid_node" = 0x14,
    /// status code ‖ risk code ‖ category code ‖ case id → empty: one entry per case serves
    /// the listings by status, by risk and by category (see `query`).
    ByFacets => "status_risk_category_caseid" = 0x15,
    /// case id → [`crate::protocol::trust::Located`]: where this node last sent the case (a
    /// transfer or refusal it sent or passed on), and at which epoch: what it believes of the
    /// case's whereabouts when a child speaks about it (`federation::trust`).
    Located => "caseid_located" = 0x16,
    /// order id (u64 BE) → [`crate::protocol::message::Order`]: every order this node issued,
    /// as issued, so that a redirect is honoured only for a real order of this node.
    IssuedOrders => "orderid_order" = 0x17,
    /// username → [`crate::domain::users::User`]: the node's console accounts.
    Users => "username_user" = 0x18,
    /// time (ms, BE) ‖ random (u64) → [`crate::domain::audit::Access`]: views of personal
    /// data, for the auditor.
    Access => "at_random_access" = 0x19,
    /// username → [`crate::domain::users::LoginState`]: failures, lock and second factor.
    Logins => "username_login" = 0x1A,
    /// SHA-256 of a session id → [`crate::domain::users::Session`]: console sessions.
    Sessions => "sessionhash_session" = 0x1B,
    /// hash(phone) (16 bytes) ‖ case id → (): the cases each phone number appears in, for
    /// the console's exact search (keyed with the store's secret: no phone in clear).
    ByPhone => "phonehash_caseid" = 0x1C,
    /// case id → (): the cases owned here that an ancestor supervises (督办), for the
    /// console's queue of cases followed from above.
    BySupervised => "supervised_caseid" = 0x1D,
    /// handler ‖ 0x00 ‖ case id → (): the cases in work (accepted or in mediation)
    /// dispatched to each department or mediator (派单), for the console's 派给我的.
    ByHandler => "handler_caseid" = 0x1E,
    /// key name → [`crate::domain::apikeys::ApiKey`]: the keys of the systems that submit
    /// cases through the Open311 API.
    ApiKeys => "keyname_apikey" = 0x1F,
    /// at ‖ event kind ‖ case id ‖ 0x00 ‖ seq (u64 BE) → amount (`ValueKind::Activity`): every
    /// event this node wrote, by time, for the figures of a report without reading the cases
    /// (store format 8; built at open of older stores).
    ByActivity => "at_kind_caseid_seq_amount" = 0x20,
}

/// Meta key of the store format version.
pub(crate) const META_FORMAT: &[u8] = b"format_version";

/// Meta key of the secret that keys the person and respondent hashes.
pub(crate) const META_SECRET: &[u8] = b"index_secret";

/// Meta key of a named cursor (`cursor/NAME`), e.g. of the early-warning catch-up.
pub(crate) fn cursor(name: &str) -> Vec<u8> {
    [b"cursor/".as_slice(), name.as_bytes()].concat()
}

/// Meta key of the node code the store belongs to.
pub(crate) const META_NODE: &[u8] = b"node_code";
/// Meta key of the format version of the statistics trees (rebuilt when it differs).
pub(crate) const META_STATS_FORMAT: &[u8] = b"stats_format";
/// Meta key of the last local statistics seq handed out.
pub(crate) const META_STATS_SEQ: &[u8] = b"stats_seq";

/// Key of a statistics entry.
pub(crate) fn stats_entry(kind: u8, node: &str, bucket: u32) -> Vec<u8> {
    let mut key = stats_prefix(kind, node);
    key.push(0);
    key.extend_from_slice(&bucket.to_be_bytes());
    key
}

/// `kind ‖ node`: the prefix of the entries of `node` and of all its descendants.
pub(crate) fn stats_prefix(kind: u8, node: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + node.len() + 4);
    key.push(kind);
    key.extend_from_slice(node.as_bytes());
    key
}

/// (kind, node, bucket) of a statistics entry key.
pub(crate) fn parse_stats_entry(key: &[u8]) -> Option<(u8, &str, u32)> {
    let (&kind, rest) = key.split_first()?;
    let (node, bucket) = rest.split_at_checked(rest.len().checked_sub(5)?)?;
    let (&sep, bucket) = bucket.split_first()?;
    if sep != 0 || node.is_empty() || !node.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let node = std::str::from_utf8(node).ok()?;
    Some((kind, node, u32::from_be_bytes(bucket.try_into().ok()?)))
}

/// Key of the change index: `seq ‖ entry key`.
pub(crate) fn stats_change(seq: u64, entry: &[u8]) -> Vec<u8> {
    [seq.to_be_bytes().as_slice(), entry].concat()
}

/// (seq, entry key) of a change index key.
pub(crate) fn parse_stats_change(key: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, entry) = key.split_at_checked(8)?;
    Some((u64::from_be_bytes(seq.try_into().ok()?), entry))
}

/// The smallest key above every key starting with `prefix` (`None`: no such key).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Meta key of the last sequence number handed out on `day` ("YYYYMMDD").
pub(crate) fn day_seq(day: &str) -> Result<Vec<u8>, String> {
    if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("day must be YYYYMMDD, got {day:?}"));
    }
    Ok([b"seq/".as_slice(), day.as_bytes()].concat())
}

/// Meta key of this node's counter of messages it created (u64).
pub(crate) const META_MESSAGE_SEQ: &[u8] = b"msgseq";

/// Meta key of the floor of this run's counters (u64): link seqs and message ids are at
/// least this (see `super::Store::open`).
pub(crate) const META_SEQ_FLOOR: &[u8] = b"seqfloor";

/// Meta key of the number of times this store was restored from a backup (see
/// `backup::restore`): each restore lifts today's case numbers by [`RESTORE_CASE_GAP`].
pub(crate) const META_RESTORES: &[u8] = b"restores";

/// How far each restore lifts the case numbers of the day it starts on: above what the lost
/// node issued that day, as long as it registered fewer than this since its last start.
pub(crate) const RESTORE_CASE_GAP: u32 = 1_000_000;

/// Meta key of the highest link seq neighbour `peer` reported applied (u64): messages up to
/// it are delivered, kept for `federation.keep_delivered`, and not counted as queued.
pub(crate) fn out_acked(peer: &str) -> Vec<u8> {
    [b"outack/".as_slice(), peer.as_bytes()].concat()
}

/// Meta key of the number of messages queued for neighbour `peer` and not yet delivered
/// (u64): link seqs are not contiguous, so the queue is counted as it changes.
pub(crate) fn out_len(peer: &str) -> Vec<u8> {
    [b"outlen/".as_slice(), peer.as_bytes()].concat()
}

/// Meta key of the last link seq queued for neighbour `peer` (u64). Kept when the queue
/// empties, so that sequence numbers on a link never repeat.
pub(crate) fn out_seq(peer: &str) -> Vec<u8> {
    [b"outseq/".as_slice(), peer.as_bytes()].concat()
}

/// Prefix of every outbox entry for `peer`.
pub(crate) fn outbox_prefix(peer: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(peer.len() + 9);
    key.extend_from_slice(peer.as_bytes());
    key.push(0);
    key
}

pub(crate) fn outbox(peer: &str, seq: u64) -> Vec<u8> {
    let mut key = outbox_prefix(peer);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The peer and seq of an outbox key.
pub(crate) fn outbox_parts(key: &[u8]) -> Option<(&str, u64)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let peer = std::str::from_utf8(&key[..nul]).ok()?;
    let seq = u64::from_be_bytes(key[nul + 1..].try_into().ok()?);
    Some((peer, seq))
}

/// Case ids are keys and key prefixes: they must be non-empty and free of NUL.
pub(crate) fn check_case_id(id: &str) -> Result<(), String> {
    const MAX_LEN: usize = 128;
    if id.is_empty() || id.len() > MAX_LEN || id.contains('\0') {
        return Err(format!(
            "case id {id:?} must be 1..={MAX_LEN} bytes without NUL"
        ));
    }
    Ok(())
}

/// Prefix shared by every event of one case.
pub(crate) fn events_prefix(case_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(case_id.len() + 9);
    key.extend_from_slice(case_id.as_bytes());
    key.push(0);
    key
}

pub(crate) fn event(case_id: &str, seq: u64) -> Vec<u8> {
    let mut key = events_prefix(case_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq of an event key that starts with `prefix` (from [`events_prefix`]).
pub(crate) fn event_seq(key: &[u8], prefix: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Key of the facets index: status, risk and category codes, then the case id.
pub(crate) fn facets(case: &Case) -> Vec<u8> {
    let mut key = Vec::with_capacity(FACETS_LEN + case.id.len());
    key.extend_from_slice(&[case.status.code(), case.risk.code(), case.category.code()]);
    key.extend_from_slice(case.id.as_bytes());
    key
}

/// Bytes of the codes before the case id in a key of the facets index.
pub(crate) const FACETS_LEN: usize = 3;

/// Order-preserving encoding of a timestamp; also the exclusive upper bound of the deadline
/// index range "deadline < at".
pub(crate) fn deadline_bound(at: Timestamp) -> [u8; 8] {
    ((at.millis() as u64) ^ (1 << 63)).to_be_bytes()
}

/// Key of the activity index: when, what, which case, which event.
pub(crate) fn activity(at: Timestamp, kind: u8, case_id: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + 1 + case_id.len() + 1 + 8);
    key.extend_from_slice(&deadline_bound(at));
    key.push(kind);
    key.extend_from_slice(case_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The event kind code of an activity key.
pub(crate) fn activity_kind(key: &[u8]) -> Option<u8> {
    key.get(8).copied()
}

pub(crate) fn deadline(at: Timestamp, case_id: &str) -> Vec<u8> {
    [deadline_bound(at).as_slice(), case_id.as_bytes()].concat()
}

/// Prefix of one person's entries in the person index.
pub(crate) fn person_prefix(hash: &[u8; HASH_LEN]) -> Vec<u8> {
    hash.to_vec()
}

/// Person index key.
pub(crate) fn person(hash: &[u8; HASH_LEN], registered_at: Timestamp, case_id: &str) -> Vec<u8> {
    [
        hash.as_slice(),
        &deadline_bound(registered_at),
        case_id.as_bytes(),
    ]
    .concat()
}

/// The case id of a person index key.
pub(crate) fn person_case_id(key: &[u8]) -> Option<&[u8]> {
    key.get(HASH_LEN + 8..).filter(|id| !id.is_empty())
}

/// (registered at, case id) of a person or subtree person index key.
pub(crate) fn person_parts(key: &[u8]) -> Option<(Timestamp, &str)> {
    let at = key.get(HASH_LEN..HASH_LEN + 8)?;
    let at = u64::from_be_bytes(at.try_into().ok()?) ^ (1 << 63);
    let id = std::str::from_utf8(person_case_id(key)?).ok()?;
    Some((Timestamp(at as i64), id))
}

/// Handler index key: `handler ‖ 0x00 ‖ case id` (a handler holds no control character).
pub(crate) fn handler_key(handler: &str, case_id: &str) -> Vec<u8> {
    [handler.as_bytes(), &[0], case_id.as_bytes()].concat()
}

/// Respondent index key; also the phone index's (hash ‖ case id).
pub(crate) fn respondent(hash: &[u8; HASH_LEN], case_id: &str) -> Vec<u8> {
    [hash.as_slice(), case_id.as_bytes()].concat()
}

/// Key of an alert's entry in the time index.
pub(crate) fn alert_time(alert: &Alert) -> Vec<u8> {
    [
        deadline_bound(alert.raised_at).as_slice(),
        alert.key.as_bytes(),
    ]
    .concat()
}

/// Every index entry a case has: what [`super::change::Change`] keeps in sync.
pub(crate) fn index_entries(case: &Case, secret: &Secret) -> Vec<(TreeId, Vec<u8>)> {
    let mut entries = vec![(TreeId::ByFacets, facets(case))];
    if let Some(at) = case.open_deadline() {
        entries.push((TreeId::ByDeadline, deadline(at, &case.id)));
    }
    for p in case
        .parties
        .iter()
        .filter(|p| !p.id_number.trim().is_empty())
    {
        let hash = secret.person(&p.id_number);
        entries.push((TreeId::ByPerson, person(&hash, case.created_at, &case.id)));
    }
    for p in case.parties.iter().filter(|p| {
        crate::domain::rules::normalize_phone(&p.phone).len()
            >= crate::domain::validate::PHONE_MIN_CHARS
    }) {
        let hash = secret.phone(&p.phone);
        entries.push((TreeId::ByPhone, respondent(&hash, &case.id)));
    }
    if let Some(handler) = case.handler.as_deref().filter(|h| !h.is_empty())
        && matches!(
            case.status,
            crate::domain::CaseStatus::Accepted | crate::domain::CaseStatus::InMediation
        )
    {
        entries.push((TreeId::ByHandler, handler_key(handler, &case.id)));
    }
    if !case.supervising_nodes.is_empty() && case.status != crate::domain::CaseStatus::Transferred {
        entries.push((TreeId::BySupervised, case.id.as_bytes().to_vec()));
    }
    if case.status.is_open() {
        let respondents = case
            .parties
            .iter()
            .filter(|p| p.role == PartyRole::Respondent);
        for p in respondents.filter(|p| !p.name.trim().is_empty()) {
            let hash = secret.respondent(&p.name);
            entries.push((TreeId::ByRespondent, respondent(&hash, &case.id)));
        }
    }
    entries.sort();
    entries.dedup();
    entries
}

/// Readable form of a key for error messages.
pub(crate) fn display(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => key.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_names_and_prefixes_are_unique() {
        let mut names: Vec<_> = TreeId::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TreeId::ALL.len());
        // Prefixes also stay clear of the first and last byte (see `space`).
        let mut prefixes: Vec<u8> = TreeId::ALL.iter().map(|t| t.prefix()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), TreeId::ALL.len());
        assert!(!prefixes.contains(&0) && !prefixes.contains(&u8::MAX));
        for (i, t) in TreeId::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
    }

    #[test]
    fn event_keys_sort_by_seq_within_a_case() {
        let a = event("610116-20250101-000001", 2);
        let b = event("610116-20250101-000001", 10);
        let other = event("610116-20250101-0000010", 1);
        assert!(a < b);
        let prefix = events_prefix("610116-20250101-000001");
        assert!(!other.starts_with(&prefix));
        assert_eq!(event_seq(&b, &prefix), Some(10));
        assert_eq!(event_seq(&other, &prefix), None);
    }

    #[test]
    fn deadline_encoding_preserves_order() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(deadline_bound(Timestamp(pair[0])) < deadline_bound(Timestamp(pair[1])));
        }
        // An entry at `now` is not below the bound for `now`.
        assert!(deadline(Timestamp(7), "x").as_slice() > deadline_bound(Timestamp(7)).as_slice());
        assert!(deadline(Timestamp(6), "x").as_slice() < deadline_bound(Timestamp(7)).as_slice());
    }

    #[test]
    fn day_and_id_checks() {
        assert_eq!(day_seq("20250131").unwrap(), b"seq/20250131".to_vec());
        assert!(day_seq("2025-01-3").is_err());
        assert!(day_seq("2025013a").is_err());
        assert!(check_case_id("610116-20250131-000001").is_ok());
        assert!(check_case_id("").is_err());
        assert!(check_case_id("a\0b").is_err());
    }

    #[test]
    fn stats_keys_group_a_subtree() {
        let county = stats_entry(2, "610116", 202405);
        assert_eq!(parse_stats_entry(&county), Some((2, "610116", 202405)));
        let village = stats_entry(2, "610116001001", 0);
        let other = stats_entry(2, "610117", 0);
        let prefix = stats_prefix(2, "610116");
        assert!(county.starts_with(&prefix) && village.starts_with(&prefix));
        assert!(!other.starts_with(&prefix));
        // The node's own entries sort before its descendants'.
        assert!(county < village);
        assert_eq!(prefix_end(&prefix).unwrap(), stats_prefix(2, "610117"));
        assert!(other.as_slice() >= prefix_end(&prefix).unwrap().as_slice());
        assert_eq!(parse_stats_entry(b"\x02ab\x00\x00\x00\x00\x01"), None);
        assert_eq!(parse_stats_entry(b"\x02"), None);
        let change = stats_change(7, &county);
        assert_eq!(parse_stats_change(&change), Some((7, county.as_slice())));
        assert!(stats_change(7, &village) < stats_change(8, &county));
    }

    #[test]
    fn outbox_keys_sort_by_peer_then_seq() {
        let a = outbox("610116001", 2);
        let b = outbox("610116001", 256);
        let other = outbox("610116001001", 1);
        assert!(a < b);
        assert!(!other.starts_with(&outbox_prefix("610116001")));
        assert_eq!(outbox_parts(&b), Some(("610116001", 256)));
        assert_eq!(outbox_parts(b"x"), None);
    }

    #[test]
    fn person_keys_parse_back() {
        let key = person(
            &[5; HASH_LEN],
            Timestamp(-3),
            "610116001001-20250101-000001",
        );
        assert_eq!(
            person_parts(&key),
            Some((Timestamp(-3), "610116001001-20250101-000001"))
        );
        assert_eq!(person_parts(&key[..HASH_LEN + 8]), None);
    }

    #[test]
    fn display_escapes_binary() {
        assert_eq!(display(b"abc"), "abc");
        assert_eq!(display(&[1, b'a', 0xff]), "\\x01a\\xff");
    }
}
