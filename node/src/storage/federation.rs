//! The federation's durable state: outboxes, inbox watermarks and supervised copies.
//!
//! * **Outbox** (`peer ‖ seq → entry`): messages queued for one neighbour, numbered by that
//!   link's own counter (`outseq/<peer>` in meta) from 1 without gaps. An entry is written in
//!   the same transaction as the change that causes it and deleted only by [`Store::ack`],
//!   when the neighbour reports it applied.
//! * **Inbox watermark** (`peer → applied_through`): the highest link seq applied from a
//!   neighbour. [`Store::apply_incoming`] applies a link's messages strictly in order, in one
//!   transaction per batch that also moves the watermark, so a message is applied exactly once: a
//!   seq at or below the watermark is a repeat and skipped, one above the next expected is a
//!   gap and stops the batch (the sender resends from its lowest unacknowledged message).
//! * **Supervised copies** (`case id → copy`): read-only copies of cases owned elsewhere,
//!   kept out of the cases tree so listings and counts see every case once.
//! * **Link records** (`peer → record`): when each neighbour was last heard and since when the
//!   link is expected, written now and then by `federation::links` (not on every message) so
//!   that a restarted node still knows how long a link has been silent.
//!
//! Reads of queued messages may see entries a few milliseconds before they are durable;
//! senders call [`Store::wait_durable`] after reading and before sending.

use serde::{Deserialize, Serialize};

use crate::faults::{Fault, planted};
use tokio::sync::watch;

use super::change::{self, Change, Tx, TxResult, abort};
use super::codec::{self, ValueKind};
use super::keys::{self, TreeId};
use super::knowledge;
use super::trees::Trees;
use super::{StorageError, Store, WriteError};
use crate::code::NodeCode;
use crate::domain::alert::Alert;
use crate::domain::{Case, DomainError, Event, Timestamp};
use crate::protocol::apply::{CopyChange, Effects, Local, Note};
use crate::protocol::message::{
    Body, CaseCopy, Message, Order, OrderKind, OutboxEntry, Outgoing, Received, Refusal, Sighting,
};
use crate::protocol::subtree::{READ_AROUND, Seen};

/// What the store keeps of one link (see `crate::federation::links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// When the peer was last heard, to within a tenth of the silence time; `None` if never.
    pub last_heard: Option<Timestamp>,
    /// Since when the link is expected: silence counts from here while nothing was heard.
    pub expected_since: Timestamp,
}

/// The outcome of [`Store::apply_incoming`].
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The link's watermark after the batch.
    pub through: u64,
    /// Log lines from applying, with the id of the message each is about.
    pub notes: Vec<(String, Note)>,
    /// Some applied message was passed on toward another node.
    pub forwarded: bool,
    /// The messages of the batch refused, by link seq: each moved the watermark and changed
    /// nothing else (but a `security` alert).
    pub refused: Vec<(u64, Refusal)>,
    /// The messages of the batch the sender withheld (too large to send), by link seq, with
    /// the sender's reason: each moved the watermark.
    pub withheld: Vec<(u64, String)>,
    /// Where the batch did not continue what was applied before (see [`Resync`]).
    pub resyncs: Vec<Resync>,
}

/// A message that did not continue the link where this node left it, and was applied all the
/// same: the link resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The sender numbered it after `prev`, below `through`, the last this node applied: the
    /// sender's queue was renumbered (it started on an empty folder, or on an older copy of
    /// its folder). What it sends from now on is new, and applied.
    Renumbered { seq: u64, prev: u64, through: u64 },
    /// The sender numbered it after `prev`, above `through`: messages between were applied
    /// here once and lost (this node was restored from an older copy) and the sender no longer
    /// keeps them (`federation.keep_delivered`).
    Gap { seq: u64, prev: u64, through: u64 },
}

/// Size and age of one outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub len: u64,
    /// When the oldest queued message was queued.
    pub oldest: Option<Timestamp>,
}

impl Store {
    /// Like [`Store::update`], for changes that also send messages: `f` gets the case and its
    /// whole history and returns the new version, the events to append and the messages to
    /// queue, all written in one transaction.
    pub async fn update_federated<F>(&self, case_id: String, f: F) -> Result<Case, WriteError>
    where
        F: Fn(&Case, &[Event]) -> Result<(Case, Vec<Event>, Vec<Outgoing>), DomainError>
            + Send
            + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let Some(before) = tx.get_case(&case_id)? else {
                        return Err(abort(WriteError::NotFound(case_id.clone())));
                    };
                    let history = change::read_history(tx, &case_id, before.history_len)?;
                    let (after, events, outgoing) = f(&before, &history).map_err(abort)?;
                    let change = Change {
                        before: Some(&before),
                        after: &after,
                        events: &events,
                        alerts: &[],
                        outgoing: &outgoing,
                    };
                    change.check().map_err(abort)?;
                    change.apply(tx)?;
                    Ok(after)
                })
            })
            .await
    }

    /// Queues messages that change no case here (an order about a case owned elsewhere).
    pub async fn send(&self, outgoing: Vec<Outgoing>) -> Result<(), WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| trees.transaction(&secret, |tx| change::enqueue(tx, &outgoing)))
            .await
    }

    /// Applies a batch of messages from neighbour `peer` in link order (see the module doc),
    /// each with its [`Effects`] as computed by `f` from the message and what this node holds
    /// about its case. Returns once every applied message is durable.
    pub async fn apply_incoming<F>(
        &self,
        peer: NodeCode,
        batch: Vec<(u64, Option<u64>, Received)>,
        f: F,
    ) -> Result<Applied, WriteError>
    where
        F: Fn(&Message, &Local) -> Effects + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                // One transaction for the whole batch: its cost is paid once, and the batch
                // commits (and is acknowledged) as a whole or not at all.
                trees.transaction(&secret, |tx| {
                    let mut applied = Applied {
                        through: tx
                            .get_decoded(
                                TreeId::Inbox,
                                ValueKind::Sequence,
                                peer.as_str().as_bytes(),
                            )?
                            .unwrap_or(0),
                        ..Applied::default()
                    };
                    for (seq, prev, msg) in &batch {
                        if *seq <= applied.through && !planted(Fault::SkipIdempotency) {
                            continue;
                        }
                        let through = applied.through;
                        match *prev {
                            // An older sender numbers its link contiguously.
                            None if *seq != through + 1 => break,
                            None => {}
                            Some(prev) if prev == through => {}
                            Some(prev) if prev < through => {
                                applied.resyncs.push(Resync::Renumbered {
                                    seq: *seq,
                                    prev,
                                    through,
                                })
                            }
                            Some(prev) => applied.resyncs.push(Resync::Gap {
                                seq: *seq,
                                prev,
                                through,
                            }),
                        }
                        let msg = match msg {
                            Received::Message(msg) => msg,
                            Received::Refused(refusal) => {
                                applied.refused.push((*seq, refusal.clone()));
                                move_watermark(tx, &peer, *seq)?;
                                applied.through = *seq;
                                continue;
                            }
                            Received::Withheld(reason) => {
                                applied.withheld.push((*seq, reason.clone()));
                                move_watermark(tx, &peer, *seq)?;
                                applied.through = *seq;
                                continue;
                            }
                        };
                        let effects = apply_one(tx, &peer, *seq, msg, &f)?;
                        applied.through = *seq;
                        applied.forwarded |= effects.forwarded;
                        if let Some(note) = effects.note {
                            applied.notes.push((msg.id(), note));
                        }
                        if let Some(refusal) = effects.refused {
                            applied.refused.push((*seq, refusal));
                        }
                    }
                    Ok(applied)
                })
            })
            .await
    }

    /// Deals with the refusals of neighbour `peer` (link seq and why) of messages this node
    /// queued for it, before they are acknowledged: each with the [`Effects`] `f` computes
    /// from the queued message and what this node holds about its case (a transfer comes
    /// back, an alert is raised), in one transaction. A seq no longer queued is skipped.
    pub async fn refused_by_peer<F>(
        &self,
        peer: NodeCode,
        refused: Vec<(u64, Refusal)>,
        f: F,
    ) -> Result<Vec<(String, Note)>, WriteError>
    where
        F: Fn(&Message, &Refusal, &Local) -> Effects + Send + 'static,
    {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let mut notes = Vec::new();
                    for (seq, refusal) in &refused {
                        let key = keys::outbox(peer.as_str(), *seq);
                        let Some(value) = tx.get(TreeId::Outbox, &key)? else {
                            continue;
                        };
                        let entry = decode_entry(&key, &value).map_err(abort)?;
                        let msg = &entry.message;
                        let local = read_local(tx, msg)?;
                        let effects = f(msg, refusal, &local);
                        write_effects(tx, msg.case_id(), &local, &effects)?;
                        if let Some(note) = effects.note {
                            notes.push((msg.id(), note));
                        }
                    }
                    Ok(notes)
                })
            })
            .await
    }

    /// Records that `peer` has applied the messages queued for it up to link seq `through`:
    /// they are delivered, kept for `federation.keep_delivered` ([`Store::trim_delivered`])
    /// and no longer counted as queued. A `through` below what `peer` reported before (it was
    /// restored from an older copy, or replaced) makes the kept messages after it queued again.
    /// Returns the watermark held before.
    pub async fn ack(&self, peer: &NodeCode, through: u64) -> Result<u64, WriteError> {
        let before = self.outbox_acked(peer)?;
        if before == through {
            return Ok(before);
        }
        let peer = peer.as_str().to_owned();
        self.inner
            .writer
            .submit(move |trees| {
                let meta = trees.get(TreeId::Meta);
                let acked_key = keys::out_acked(&peer);
                let len_key = keys::out_len(&peer);
                let read = |key: &[u8]| -> Result<u64, StorageError> {
                    meta.get(key)?
                        .map(|v| codec::decode(ValueKind::Sequence, TreeId::Meta, key, &v))
                        .transpose()
                        .map(Option::unwrap_or_default)
                };
                let before = read(&acked_key)?;
                let (lo, hi) = (before.min(through), before.max(through));
                let between = trees
                    .get(TreeId::Outbox)
                    .range(
                        keys::outbox(&peer, lo.saturating_add(1))
                            ..keys::outbox(&peer, hi.saturating_add(1)),
                    )
                    .count() as u64;
                let len = read(&len_key)?;
                let len = if through > before {
                    len.saturating_sub(between)
                } else {
                    len + between
                };
                meta.insert(&len_key, codec::encode(ValueKind::Sequence, &len)?)
                    .map_err(StorageError::from)?;
                meta.insert(&acked_key, codec::encode(ValueKind::Sequence, &through)?)
                    .map_err(StorageError::from)?;
                if through < before {
                    // Kept messages are queued again: whoever sends them must look.
                    trees.signals.outbox_touched();
                }
                Ok(before)
            })
            .await
    }

    /// The highest link seq `peer` reported applied (0: none).
    pub fn outbox_acked(&self, peer: &NodeCode) -> Result<u64, StorageError> {
        let key = keys::out_acked(peer.as_str());
        self.tree(TreeId::Meta)
            .get(&key)?
            .map(|v| codec::decode(ValueKind::Sequence, TreeId::Meta, &key, &v))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Deletes the delivered messages (up to each peer's acknowledgement) queued before
    /// `before`; returns how many. Run now and then (the sweep), and at once when nothing is
    /// kept.
    pub async fn trim_delivered(&self, before: Timestamp) -> Result<usize, WriteError> {
        let mut doomed = Vec::new();
        for peer in self.outbox_peers()? {
            let acked = self.outbox_acked(&peer)?;
            let start = keys::outbox_prefix(peer.as_str());
            let end = keys::outbox(peer.as_str(), acked.saturating_add(1));
            for item in self.tree(TreeId::Outbox).range(start..end) {
                let (key, value) = item.map_err(StorageError::from)?;
                if decode_entry(&key, &value)?.queued_at >= before {
                    break;
                }
                doomed.push(key);
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let count = doomed.len();
        self.inner
            .writer
            .submit(move |trees| {
                trees
                    .get(TreeId::Outbox)
                    .remove_keys(doomed)
                    .map_err(StorageError::from)?;
                Ok(())
            })
            .await?;
        Ok(count)
    }

    /// Messages queued for `peer` after link seq `after`, in order: at most `max` of them and
    /// about `max_bytes` (at least one if any).
    pub fn outbox_after(
        &self,
        peer: &NodeCode,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>, StorageError> {
        let start = keys::outbox(peer.as_str(), after.saturating_add(1));
        let end = keys::outbox(peer.as_str(), u64::MAX);
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.tree(TreeId::Outbox).range(start..=end) {
            let (key, value) = item?;
            if out.len() >= max || (!out.is_empty() && bytes + value.len() > max_bytes) {
                break;
            }
            let entry = decode_entry(&key, &value)?;
            let seq = keys::outbox_parts(&key).map_or(0, |(_, s)| s);
            bytes += value.len();
            out.push((seq, entry));
        }
        Ok(out)
    }

    /// How many messages are queued for `peer` and not yet delivered, and since when: a
    /// counter kept as messages are queued and acknowledged, and the first entry after the
    /// acknowledgement.
    pub fn outbox_stats(&self, peer: &NodeCode) -> Result<QueueStats, StorageError> {
        let len_key = keys::out_len(peer.as_str());
        let len: u64 = self
            .tree(TreeId::Meta)
            .get(&len_key)?
            .map(|v| codec::decode(ValueKind::Sequence, TreeId::Meta, &len_key, &v))
            .transpose()?
            .unwrap_or(0);
        if len == 0 {
            return Ok(QueueStats::default());
        }
        let acked = self.outbox_acked(peer)?;
        let start = keys::outbox(peer.as_str(), acked.saturating_add(1));
        let end = keys::outbox(peer.as_str(), u64::MAX);
        let oldest = match self.tree(TreeId::Outbox).range(start..=end).next() {
            Some(item) => {
                let (key, value) = item?;
                Some(decode_entry(&key, &value)?.queued_at)
            }
            None => None,
        };
        Ok(QueueStats { len, oldest })
    }

    /// Every neighbour that has messages queued.
    pub fn outbox_peers(&self) -> Result<Vec<NodeCode>, StorageError> {
        let tree = self.tree(TreeId::Outbox);
        let mut peers = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = tree.range(from.clone()..).next() {
            let (key, _) = item?;
            let Some((peer, _)) = keys::outbox_parts(&key) else {
                return Err(corrupt_key(TreeId::Outbox, &key, "malformed outbox key"));
            };
            if let Ok(code) = NodeCode::parse(peer) {
                peers.push(code);
            }
            // Past every key of this peer: its prefix ends in 0x00, so bump that byte.
            from = keys::outbox_prefix(peer);
            if let Some(last) = from.last_mut() {
                *last = 1;
            }
        }
        Ok(peers)
    }

    /// The highest link seq applied from `peer` (0 if none).
    pub fn applied_through(&self, peer: &NodeCode) -> Result<u64, StorageError> {
        watermark(self.tree(TreeId::Inbox), peer)
    }

    /// Every neighbour something was ever applied from, with its watermark.
    pub fn inbox_peers(&self) -> Result<Vec<(NodeCode, u64)>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree(TreeId::Inbox).iter() {
            let (key, value) = item?;
            let through: u64 = codec::decode(ValueKind::Sequence, TreeId::Inbox, &key, &value)?;
            if let Some(code) = std::str::from_utf8(&key)
                .ok()
                .and_then(|s| NodeCode::parse(s).ok())
            {
                out.push((code, through));
            }
        }
        Ok(out)
    }

    /// The supervised copy of a case owned elsewhere, if this node holds one.
    pub fn supervised_copy(&self, case_id: &str) -> Result<Option<CaseCopy>, StorageError> {
        self.tree(TreeId::Copies)
            .get(case_id.as_bytes())?
            .map(|v| codec::decode(ValueKind::CaseCopy, TreeId::Copies, case_id.as_bytes(), &v))
            .transpose()
    }

    /// Stores what is known of links (durably, in one transaction): a record's last word
    /// replaces the stored one (a record without a last word keeps it), and the earlier of the
    /// two starts is kept.
    pub async fn record_links(
        &self,
        records: Vec<(NodeCode, LinkRecord)>,
    ) -> Result<(), WriteError> {
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    for (peer, record) in &records {
                        let key = peer.as_str().as_bytes();
                        let held: Option<LinkRecord> =
                            tx.get_decoded(TreeId::Links, ValueKind::LinkRecord, key)?;
                        let merged = match held {
                            None => *record,
                            Some(h) => LinkRecord {
                                last_heard: record.last_heard.or(h.last_heard),
                                expected_since: record.expected_since.min(h.expected_since),
                            },
                        };
                        tx.insert_encoded(TreeId::Links, ValueKind::LinkRecord, key, &merged)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Every stored link record, by neighbour. A key that is not a division code is reported
    /// as corrupt.
    pub fn link_records(&self) -> Result<Vec<(NodeCode, LinkRecord)>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree(TreeId::Links).iter() {
            let (key, value) = item?;
            let record: LinkRecord =
                codec::decode(ValueKind::LinkRecord, TreeId::Links, &key, &value)?;
            let Some(peer) = std::str::from_utf8(&key)
                .ok()
                .and_then(|s| NodeCode::parse(s).ok())
            else {
                return Err(corrupt_key(TreeId::Links, &key, "not a division code"));
            };
            out.push((peer, record));
        }
        Ok(out)
    }

    /// For a case registered here, with the federation's person key: hands each of its people's
    /// sighting and the stored sightings around it to `f` (`federation::subtree::check_own`),
    /// raises each alert `f` returns once, and queues its order only when the alert is new.
    /// Returns the new alerts with the newest case each counts.
    pub async fn check_own_sightings<F>(
        &self,
        case_id: String,
        f: F,
    ) -> Result<Vec<(Alert, Seen)>, WriteError>
    where
        F: Fn(&Sighting, &[Seen]) -> Vec<(Alert, Option<Outgoing>, Seen)> + Send + 'static,
    {
        if self.own_sightings_quiet(&case_id, &f)? {
            return Ok(Vec::new());
        }
        let secret = self.inner.secret.clone();
        self.inner
            .writer
            .submit(move |trees| {
                trees.transaction(&secret, |tx| {
                    let mut new = Vec::new();
                    let Some(case) = tx.get_case(&case_id)? else {
                        return Ok(new);
                    };
                    if case.status == crate::domain::CaseStatus::Transferred {
                        return Ok(new);
                    }
                    for number in change::id_numbers(&case) {
                        let Some(s) = change::sighting_here(tx, &case, &number) else {
                            continue;
                        };
                        let held = read_sightings(tx, &s)?;
                        for (alert, order, newest) in f(&s, &held) {
                            if tx.raise(&alert)? {
                                change::enqueue(tx, order.as_slice())?;
                                new.push((alert, newest));
                            }
                        }
                    }
                    Ok(new)
                })
            })
            .await
    }

    /// The read-only pre-check of [`Store::check_own_sightings`], on what sled holds: true
    /// when `f` finds nothing to raise (no person key, no ID number, too few sightings), so
    /// that the common registration costs the writer no second transaction. It is called after
    /// the case's registration is durable, so of two cases of one person registered at once,
    /// the later check sees both; the transaction re-reads everything when this finds work.
    fn own_sightings_quiet<F>(&self, case_id: &str, f: &F) -> Result<bool, StorageError>
    where
        F: Fn(&Sighting, &[Seen]) -> Vec<(Alert, Option<Outgoing>, Seen)>,
    {
        let secret = &self.inner.secret;
        if !secret.has_person_key() {
            return Ok(true);
        }
        let Some(case) = self.get_case(case_id)? else {
            return Ok(true);
        };
        if case.status == crate::domain::CaseStatus::Transferred {
            return Ok(true);
        }
        let tree = self.tree(TreeId::SubtreePerson);
        let node = self.inner.trees.node();
        for number in change::id_numbers(&case) {
            let Some(s) = change::sighting_at(secret, node, &case, &number) else {
                continue;
            };
            let prefix = keys::person_prefix(&s.person);
            let at = keys::person(&s.person, s.registered_at, "");
            let held = tree
                .around(&prefix, &at, READ_AROUND)?
                .iter()
                .map(|(key, value)| seen_row(key, value))
                .collect::<Result<Vec<_>, _>>()?;
            if !f(&s, &held).is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Returns once every write committed before the call is durable.
    pub async fn wait_durable(&self) -> Result<(), StorageError> {
        self.inner.trees.signals.wait_durable().await
    }

    /// A counter that moves whenever a durable write queued a message.
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.inner.trees.signals.outbox_changes()
    }
}

fn watermark(tree: super::space::Space<'_>, peer: &NodeCode) -> Result<u64, StorageError> {
    let key = peer.as_str().as_bytes();
    tree.get(key)?
        .map(|v| codec::decode(ValueKind::Sequence, TreeId::Inbox, key, &v))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn decode_entry(key: &[u8], value: &[u8]) -> Result<OutboxEntry, StorageError> {
    codec::decode_outbox_entry(key, value)
}

fn corrupt_key(tree: TreeId, key: &[u8], reason: &str) -> StorageError {
    StorageError::Corrupt {
        tree: tree.name(),
        key: keys::display(key),
        reason: reason.to_owned(),
    }
}

/// The stored sightings of `s`'s person near its time (see `federation::subtree`).
fn read_sightings(tx: &Tx<'_>, s: &Sighting) -> TxResult<Vec<Seen>> {
    let prefix = keys::person_prefix(&s.person);
    let at = keys::person(&s.person, s.registered_at, "");
    tx.around(TreeId::SubtreePerson, &prefix, &at, READ_AROUND)?
        .iter()
        .map(|(key, value)| seen_row(key, value).map_err(abort))
        .collect()
}

/// One entry of the subtree person index.
fn seen_row(key: &[u8], value: &[u8]) -> Result<Seen, StorageError> {
    let corrupt = |reason: &str| corrupt_key(TreeId::SubtreePerson, key, reason);
    let (registered_at, case_id) =
        keys::person_parts(key).ok_or_else(|| corrupt("malformed key"))?;
    let node: String = codec::decode(ValueKind::NodeCode, TreeId::SubtreePerson, key, value)?;
    let node = NodeCode::parse(&node).map_err(|_| corrupt("holder is not a division code"))?;
    Ok(Seen {
        registered_at,
        case_id: case_id.to_owned(),
        node,
    })
}

/// Moves the watermark of `peer` to `seq` (a message skipped or refused as it came).
fn move_watermark(tx: &Tx<'_>, peer: &NodeCode, seq: u64) -> TxResult<()> {
    if planted(Fault::DropWatermark) {
        return Ok(());
    }
    tx.insert_encoded(
        TreeId::Inbox,
        ValueKind::Sequence,
        peer.as_str().as_bytes(),
        &seq,
    )
}

/// What this node holds about `msg`'s case, for the pure layer (`apply::Local`).
fn read_local(tx: &Tx<'_>, msg: &Message) -> TxResult<Local> {
    let case_id = msg.case_id();
    keys::check_case_id(case_id).map_err(|e| abort(StorageError::InvalidRecord(e)))?;
    let case = tx.get_case(case_id)?;
    let history = match &case {
        Some(c) => change::read_history(tx, case_id, c.history_len)?,
        None => Vec::new(),
    };
    let copy: Option<CaseCopy> =
        tx.get_decoded(TreeId::Copies, ValueKind::CaseCopy, case_id.as_bytes())?;
    let sightings = match &msg.body {
        Body::Sighting(s) => read_sightings(tx, s)?,
        _ => Vec::new(),
    };
    let repeat_person_held = match &msg.body {
        Body::Order(Order {
            kind: OrderKind::RaiseRisk { .. },
            ..
        }) => tx.has_alert(&crate::domain::alert::repeat_person_key(case_id))?,
        _ => false,
    };
    let issued = match &msg.body {
        Body::Redirect { order, .. } if &msg.destination == tx.node => {
            knowledge::issued(tx, order.id)?
        }
        _ => None,
    };
    let holders = knowledge::holders(tx, msg, case.as_ref())?;
    Ok(Local {
        case,
        history,
        copy,
        sightings,
        repeat_person_held,
        holders,
        issued,
    })
}

/// Writes what applying a message (or dealing with its refusal) came to: nothing but its
/// alerts when it is refused.
fn write_effects(tx: &Tx<'_>, case_id: &str, local: &Local, effects: &Effects) -> TxResult<()> {
    for alert in &effects.alerts {
        tx.raise(alert)?;
    }
    if effects.refused.is_some() {
        return Ok(());
    }
    if let Some(s) = &effects.sighting {
        change::store_sighting(tx, s)?;
    }
    match &effects.case {
        Some((after, events)) => {
            let change = Change {
                before: local.case.as_ref(),
                after,
                events,
                alerts: &[],
                outgoing: &effects.send,
            };
            change.check().map_err(abort)?;
            change.apply(tx)?;
        }
        None => change::enqueue(tx, &effects.send)?,
    }
    match &effects.copy {
        CopyChange::Keep => {}
        CopyChange::Put(copy) => tx.insert_encoded(
            TreeId::Copies,
            ValueKind::CaseCopy,
            case_id.as_bytes(),
            copy,
        )?,
        CopyChange::Remove => tx.remove(TreeId::Copies, case_id.as_bytes())?,
    }
    Ok(())
}

/// One incoming message, in the batch's transaction: what this node holds, the effects, the
/// new watermark.
fn apply_one<F>(tx: &Tx<'_>, peer: &NodeCode, seq: u64, msg: &Message, f: &F) -> TxResult<Effects>
where
    F: Fn(&Message, &Local) -> Effects,
{
    let through: u64 = tx
        .get_decoded(TreeId::Inbox, ValueKind::Sequence, peer.as_str().as_bytes())?
        .unwrap_or(0);
    if seq <= through && !planted(Fault::SkipIdempotency) {
        return Err(abort(StorageError::InvalidRecord(format!(
            "message {seq} from {peer} applied out of order (watermark {through})"
        ))));
    }
    let local = read_local(tx, msg)?;
    let effects = f(msg, &local);
    write_effects(tx, msg.case_id(), &local, &effects)?;
    move_watermark(tx, peer, seq)?;
    Ok(effects)
}

/// Counters that must never repeat what this node issued before, raised at every open from
/// the clock (`opened_at`), so that a node started on an empty folder (a replaced PC) or on an
/// older copy of its folder issues nothing twice:
///
/// * link seqs and message ids (`enqueue`) continue from at least `opened_at` in milliseconds
///   times 1,000 ([`keys::META_SEQ_FLOOR`]): above anything issued before as long as the
///   clock moved on and fewer than 1,000 were issued per millisecond;
/// * today's case number (`CODE-YYYYMMDD-NNNNNN`) continues from at least the tenths of a
///   second since China's midnight at the open (at most 863,999): above any number issued
///   today before, as long as fewer than ten cases a second were registered since midnight;
///   a store restored from a backup (`backup::restore` counts them) adds
///   [`keys::RESTORE_CASE_GAP`] per restore, so the ids the lost node issued after the backup,
///   however fast, are not issued again.
///
/// A normal restart raises them too: numbers jump, never repeat. Also fills in the count of
/// queued messages of stores that did not keep it.
pub(super) fn raise_floors(trees: &Trees, opened_at: Timestamp) -> Result<(), StorageError> {
    let meta = trees.get(TreeId::Meta);
    let floor = u64::try_from(opened_at.millis())
        .unwrap_or(0)
        .saturating_mul(1_000);
    let held: u64 = meta
        .get(keys::META_SEQ_FLOOR)?
        .map(|v| codec::decode(ValueKind::Sequence, TreeId::Meta, keys::META_SEQ_FLOOR, &v))
        .transpose()?
        .unwrap_or(0);
    if floor > held {
        meta.insert(
            keys::META_SEQ_FLOOR,
            codec::encode(ValueKind::Sequence, &floor)?,
        )?;
    }
    let day_key = keys::day_seq(&crate::domain::machine::china_day(opened_at))
        .map_err(StorageError::InvalidRecord)?;
    let restores: u32 = meta
        .get(keys::META_RESTORES)?
        .map(|v| codec::decode(ValueKind::Counter, TreeId::Meta, keys::META_RESTORES, &v))
        .transpose()?
        .unwrap_or(0);
    let tenths = restores
        .saturating_mul(keys::RESTORE_CASE_GAP)
        .saturating_add(
            u32::try_from(crate::domain::calendar::china_millis_of_day(opened_at) / 100)
                .unwrap_or(0),
        );
    let today: u32 = meta
        .get(&day_key)?
        .map(|v| codec::decode(ValueKind::Counter, TreeId::Meta, &day_key, &v))
        .transpose()?
        .unwrap_or(0);
    if tenths > today {
        meta.insert(&day_key, codec::encode(ValueKind::Counter, &tenths)?)?;
    }
    let outbox = trees.get(TreeId::Outbox);
    let mut from: Vec<u8> = Vec::new();
    while let Some(item) = outbox.range(from.clone()..).next() {
        let (key, _) = item?;
        let Some((peer, _)) = keys::outbox_parts(&key) else {
            return Err(corrupt_key(TreeId::Outbox, &key, "malformed outbox key"));
        };
        let prefix = keys::outbox_prefix(peer);
        let len_key = keys::out_len(peer);
        if meta.get(&len_key)?.is_none() {
            // Kept by older versions only until acknowledged: every entry is queued.
            let len = outbox.scan_prefix(&prefix).count() as u64;
            meta.insert(&len_key, codec::encode(ValueKind::Sequence, &len)?)?;
        }
        from = prefix;
        if let Some(last) = from.last_mut() {
            *last = 1;
        }
    }
    Ok(())
}
