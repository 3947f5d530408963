//! The bodies of the write transactions: registration, update, and the [`Change`] they share.
//!
//! Everything here runs on the writer thread inside one transaction over every tree (see
//! [`Trees::transaction`]): it runs once, and what it wrote is dropped if it fails, so it must
//! not have side effects outside the transaction. A [`Change`] is the complete description of what one case write
//! does to the store; data derived from a case change that must commit with it (indexes, the
//! alerts the change raises, the federation outbox entries the change sends or owes its
//! supervisors, this node's statistics contribution) is written by [`Change::apply`], so a
//! new kind of derived data is one field and a few lines there. An alert whose key is stored
//! already is skipped: raising is idempotent.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;

use super::codec::{self, ValueKind};
use super::db::Bytes;
use super::keys::{self, TreeId};
use super::overlay::{Write, WriteSet};
use super::secret::Secret;
use super::trees::Trees;
use super::{Registered, StorageError, WriteError, stats};
use crate::code::NodeCode;
use crate::domain::CaseStatus;
use crate::domain::alert::Alert;
use crate::domain::rules::normalize_id_number;
use crate::domain::{Case, DomainError, Event, validate};
use crate::protocol::message::{Body, OutboxEntry, Outgoing, Sighting};
use crate::protocol::route;
use crate::protocol::supervision;
use crate::stats::figures::Buckets;

/// What a transaction body returns: an error ends the transaction, and nothing it wrote is
/// kept.
pub(crate) type TxResult<T> = Result<T, WriteError>;

/// Ends a transaction with `e`.
pub(crate) fn abort(e: impl Into<WriteError>) -> WriteError {
    e.into()
}

/// A transaction: reads see its own writes, then those of the batch it runs in, then sled;
/// its writes, and the statistics deltas of its case changes, are kept in its own
/// [`WriteSet`] until it succeeds (see `overlay`).
pub(crate) struct Tx<'a> {
    trees: &'a Trees,
    base: &'a WriteSet,
    writes: RefCell<WriteSet>,
    secret: &'a Secret,
    signals: &'a super::signals::Signals,
    /// The node the store belongs to.
    pub(super) node: &'a NodeCode,
    uplink: Option<&'a NodeCode>,
    /// The transaction settles the statistics deltas of `base` (see [`Trees::settle`]).
    settles_base: bool,
}

impl Tx<'_> {
    /// Adds the statistics delta of a case change, to be settled with the batch (`stats`).
    pub(crate) fn add_stats(&self, delta: &Buckets) {
        self.writes.borrow_mut().add_stats(delta);
    }

    /// Whether statistics deltas are held that a read of the statistics entries or seq would
    /// not see: this transaction's own, or (unless it settles them) those of its batch.
    pub(crate) fn stats_unsettled(&self) -> bool {
        !self.writes.borrow().stats.is_empty()
            || (!self.settles_base && !self.base.stats.is_empty())
    }

    pub(crate) fn get(&self, tree: TreeId, key: &[u8]) -> TxResult<Option<Bytes>> {
        if let Some(value) = self.writes.borrow().get(tree, key) {
            return Ok(value.cloned());
        }
        if let Some(value) = self.base.get(tree, key) {
            return Ok(value.cloned());
        }
        Ok(self.trees.space(tree).get(key)?)
    }

    pub(crate) fn get_decoded<T: DeserializeOwned>(
        &self,
        tree: TreeId,
        kind: ValueKind,
        key: &[u8],
    ) -> TxResult<Option<T>> {
        match self.get(tree, key)? {
            Some(bytes) => codec::decode(kind, tree, key, &bytes)
                .map(Some)
                .map_err(abort),
            None => Ok(None),
        }
    }

    pub(crate) fn insert(&self, tree: TreeId, key: &[u8], value: Vec<u8>) -> TxResult<()> {
        self.writes
            .borrow_mut()
            .put(tree, key, Write::Put(Bytes::from(value)));
        Ok(())
    }

    pub(crate) fn insert_encoded<T: Serialize + ?Sized>(
        &self,
        tree: TreeId,
        kind: ValueKind,
        key: &[u8],
        value: &T,
    ) -> TxResult<()> {
        self.insert(tree, key, codec::encode(kind, value).map_err(abort)?)
    }

    /// Removes a key. A key put earlier in the batch and absent from sled is forgotten
    /// instead, so that it costs sled nothing (statistics keys move on every case write).
    pub(crate) fn remove(&self, tree: TreeId, key: &[u8]) -> TxResult<()> {
        let mine = self.writes.borrow().write(tree, key).cloned();
        let below = match mine {
            Some(Write::Put(_)) => true,
            Some(Write::Remove) => false,
            Some(Write::Forget) => return Ok(()),
            None => matches!(self.base.write(tree, key), Some(Write::Put(_))),
        };
        let write = if below && self.trees.space(tree).get(key)?.is_none() {
            Write::Forget
        } else {
            Write::Remove
        };
        self.writes.borrow_mut().put(tree, key, write);
        Ok(())
    }

    /// Every key of `tree` starting with `prefix`, with the writes of the batch and of this
    /// transaction to that prefix, in key order.
    pub(crate) fn scan_prefix(
        &self,
        tree: TreeId,
        prefix: &[u8],
    ) -> TxResult<Vec<(Vec<u8>, Bytes)>> {
        let mut found = std::collections::BTreeMap::new();
        for item in self.trees.space(tree).scan_prefix(prefix) {
            let (k, v) = item?;
            found.insert(k.to_vec(), Some(v));
        }
        self.overlay_prefix(tree, prefix, &mut found);
        Ok(found
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    /// Lays the writes of the batch and of this transaction to keys of `tree` starting with
    /// `prefix` over `found` (a removal as `None`).
    fn overlay_prefix(
        &self,
        tree: TreeId,
        prefix: &[u8],
        found: &mut std::collections::BTreeMap<Vec<u8>, Option<Bytes>>,
    ) {
        for set in [self.base, &*self.writes.borrow()] {
            for (k, w) in set.with_prefix(tree, prefix) {
                let v = match w {
                    Write::Put(v) => Some(v.clone()),
                    Write::Remove | Write::Forget => None,
                };
                found.insert(k.clone(), v);
            }
        }
    }

    /// Up to `around` keys of `tree` starting with `prefix` on each side of `at` (below it, and
    /// from it on), with the writes of the batch and of this transaction to that prefix, in
    /// key order.
    pub(crate) fn around(
        &self,
        tree: TreeId,
        prefix: &[u8],
        at: &[u8],
        around: usize,
    ) -> TxResult<Vec<(Vec<u8>, Bytes)>> {
        let mut found = std::collections::BTreeMap::new();
        for (k, v) in self.trees.space(tree).around(prefix, at, around)? {
            found.insert(k.to_vec(), Some(v));
        }
        self.overlay_prefix(tree, prefix, &mut found);
        Ok(found
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    pub(crate) fn get_case(&self, id: &str) -> TxResult<Option<Case>> {
        match self.get(TreeId::Cases, id.as_bytes())? {
            Some(bytes) => codec::decode_case(TreeId::Cases, id.as_bytes(), &bytes)
                .map(Some)
                .map_err(abort),
            None => Ok(None),
        }
    }

    pub(crate) fn has_alert(&self, key: &str) -> TxResult<bool> {
        Ok(self.get(TreeId::Alerts, key.as_bytes())?.is_some())
    }

    /// Stores `alert` unless its key is stored already, and then queues it for each node of
    /// its `forward_to` that a link leads to; true if it was new.
    pub(crate) fn raise(&self, alert: &Alert) -> TxResult<bool> {
        if alert.key.is_empty() || self.has_alert(&alert.key)? {
            return Ok(false);
        }
        let key = alert.key.as_bytes();
        tx_insert_alert(self, key, alert)?;
        let forwarded = Alert {
            forward_to: Vec::new(),
            ..alert.clone()
        };
        let outgoing: Vec<Outgoing> = alert
            .forward_to
            .iter()
            .filter_map(|dest| NodeCode::parse(dest).ok())
            .filter_map(|dest| {
                let next_hop = route::next_hop(self.node, self.uplink, &dest)
                    .peer()?
                    .clone();
                Some(Outgoing::new(
                    self.node,
                    next_hop,
                    dest,
                    alert.raised_at,
                    Body::Alert(forwarded.clone()),
                ))
            })
            .collect();
        enqueue(self, &outgoing)?;
        Ok(true)
    }
}

fn tx_insert_alert(tx: &Tx<'_>, key: &[u8], alert: &Alert) -> TxResult<()> {
    tx.insert_encoded(TreeId::Alerts, ValueKind::Alert, key, alert)?;
    tx.insert(TreeId::AlertsByTime, &keys::alert_time(alert), Vec::new())
}

impl Trees {
    /// Runs `body` as one transaction that may read and write every tree. `body` runs once;
    /// if it fails, nothing it wrote is kept. On the writer thread its writes (and the
    /// statistics deltas of its case changes) join the batch in progress, which reaches sled
    /// as a whole, settled, before the batch is synced; elsewhere (when a store is opened) its
    /// deltas are settled at its end and its writes written at once, in one sled batch.
    ///
    /// A body that reads the statistics entries or seq must run on settled statistics: on the
    /// writer thread, call [`Trees::settle`] before (the reads refuse unsettled deltas).
    pub(crate) fn transaction<A>(
        &self,
        secret: &Secret,
        body: impl FnOnce(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A, WriteError> {
        match &self.pending {
            Some(pending) => {
                let mut batch = pending.lock();
                let (value, writes) = self.run(secret, &batch, false, body)?;
                batch.absorb(writes);
                Ok(value)
            }
            None => {
                let (value, writes) = self.run(secret, &WriteSet::default(), false, |tx| {
                    let value = body(tx)?;
                    let deltas = std::mem::take(&mut tx.writes.borrow_mut().stats);
                    stats::settle(tx, &deltas)?;
                    Ok(value)
                })?;
                writes.write_to(self.store_tree())?;
                Ok(value)
            }
        }
    }

    /// On the writer thread: settles the statistics deltas of the batch in progress into its
    /// pending writes, as a step of its own, so that what follows reads settled statistics.
    /// Elsewhere nothing is left unsettled between transactions, and this does nothing.
    pub(crate) fn settle(&self) -> Result<(), WriteError> {
        match &self.pending {
            Some(pending) => self.settle_into(&mut pending.lock(), pending.secret()),
            None => Ok(()),
        }
    }

    /// Turns the statistics deltas of `batch` into writes of this node's own entries, under
    /// one new seq (`stats::settle`), in a transaction over `batch`. The deltas are cleared
    /// only once their writes are in `batch`: a failed settle leaves it as it was.
    pub(crate) fn settle_into(
        &self,
        batch: &mut WriteSet,
        secret: &Secret,
    ) -> Result<(), WriteError> {
        if batch.stats.is_empty() {
            return Ok(());
        }
        let ((), writes) = self.run(secret, batch, true, |tx| stats::settle(tx, &tx.base.stats))?;
        batch.absorb(writes);
        batch.stats.clear();
        Ok(())
    }

    /// On the writer thread: settles the batch in progress and writes it to sled in one sled
    /// batch (`overlay::Pending::write_out`); returns the number of keys written.
    pub(crate) fn write_out(&self) -> Result<usize, StorageError> {
        match &self.pending {
            Some(pending) => {
                pending.write_out(self.store_tree(), &|batch| self.settle_for_write_out(batch))
            }
            None => Ok(0),
        }
    }

    /// [`Trees::settle_into`] as the `settle` step of a write-out of the batch in progress.
    pub(crate) fn settle_for_write_out(&self, batch: &mut WriteSet) -> Result<(), StorageError> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        self.settle_into(batch, pending.secret())
            .map_err(|e| match e {
                WriteError::Storage(e) => e,
                other => StorageError::InvalidRecord(format!("settling statistics: {other}")),
            })
    }

    /// Runs `body` over `base` and returns its value and writes.
    fn run<A>(
        &self,
        secret: &Secret,
        base: &WriteSet,
        settles_base: bool,
        body: impl FnOnce(&Tx<'_>) -> TxResult<A>,
    ) -> Result<(A, WriteSet), WriteError> {
        let tx = Tx {
            trees: self,
            base,
            writes: RefCell::new(WriteSet::default()),
            secret,
            signals: &self.signals,
            node: self.node(),
            uplink: self.uplink.as_ref(),
            settles_base,
        };
        let value = body(&tx)?;
        Ok((value, tx.writes.into_inner()))
    }
}

/// One case write: the stored case (if any), its next version, the events appended and the
/// messages the change sends. [`Change::apply`] adds the messages every change owes the
/// supervisors of the case (see `crate::protocol::supervision`), whoever made the change.
pub(crate) struct Change<'a> {
    pub before: Option<&'a Case>,
    pub after: &'a Case,
    pub events: &'a [Event],
    /// Alerts the change raises (skipped if their key is stored already).
    pub alerts: &'a [Alert],
    pub outgoing: &'a [Outgoing],
}

impl Change<'_> {
    /// Storage invariants the new version must keep (see the module doc of `storage`).
    pub(crate) fn check(&self) -> Result<(), StorageError> {
        let invalid = StorageError::InvalidRecord;
        keys::check_case_id(&self.after.id).map_err(invalid)?;
        if let Some(before) = self.before.filter(|b| b.id != self.after.id) {
            return Err(invalid(format!(
                "update of {} returned case {}",
                before.id, self.after.id
            )));
        }
        let first = self.before.map_or(0, |b| b.history_len) + 1;
        for (event, seq) in self.events.iter().zip(first..) {
            if event.seq != seq {
                return Err(invalid(format!(
                    "case {}: event seq {} where {seq} was due",
                    self.after.id, event.seq
                )));
            }
        }
        let last = first - 1 + self.events.len() as u64;
        if self.after.history_len != last {
            return Err(invalid(format!(
                "case {}: history_len {} but the last event is {last}",
                self.after.id, self.after.history_len
            )));
        }
        Ok(())
    }

    pub(crate) fn apply(&self, tx: &Tx<'_>) -> TxResult<()> {
        let case = self.after;
        let id = case.id.as_bytes();
        if self.before.is_none() && tx.get(TreeId::Cases, id)?.is_some() {
            return Err(abort(StorageError::InvalidRecord(format!(
                "case id {} already exists",
                case.id
            ))));
        }
        tx.insert_encoded(TreeId::Cases, ValueKind::Case, id, case)?;

        // The change's events are one run, under the key of the first (`check` made them
        // consecutive, following the stored history).
        if let Some(first) = self.events.first() {
            let key = keys::event(&case.id, first.seq);
            if tx.get(TreeId::Events, &key)?.is_some() {
                return Err(abort(StorageError::Corrupt {
                    tree: TreeId::Events.name(),
                    key: keys::display(&key),
                    reason: format!("event exists beyond history_len of case {}", case.id),
                }));
            }
            tx.insert_encoded(TreeId::Events, ValueKind::Events, &key, self.events)?;
        }
        // The activity index: the events this node wrote (a report's figures).
        for e in self.events.iter().filter(|e| e.node == tx.node.as_str()) {
            let amount = match e.kind {
                crate::domain::EventKind::Registered => case.amount_fen,
                _ => 0,
            };
            tx.insert_encoded(
                TreeId::ByActivity,
                ValueKind::Activity,
                &keys::activity(e.at, e.kind.code(), &case.id, e.seq),
                &amount,
            )?;
        }

        let old_code = self.before.map(|b| b.lookup_code.as_str());
        if old_code != Some(case.lookup_code.as_str()) {
            if let Some(old) = old_code.filter(|c| !c.is_empty()) {
                tx.remove(TreeId::LookupCodes, old.as_bytes())?;
            }
            if !case.lookup_code.is_empty() {
                let code = case.lookup_code.as_bytes();
                let holder: Option<String> =
                    tx.get_decoded(TreeId::LookupCodes, ValueKind::CaseId, code)?;
                if let Some(holder) = holder.filter(|h| *h != case.id) {
                    return Err(abort(StorageError::LookupCodeTaken {
                        code: case.lookup_code.clone(),
                        holder,
                    }));
                }
                tx.insert_encoded(TreeId::LookupCodes, ValueKind::CaseId, code, &case.id)?;
            }
        }

        let old = self
            .before
            .map(|b| keys::index_entries(b, tx.secret))
            .unwrap_or_default();
        let new = keys::index_entries(case, tx.secret);
        for entry in old.iter().filter(|e| !new.contains(e)) {
            tx.remove(entry.0, &entry.1)?;
        }
        for entry in new.iter().filter(|e| !old.contains(e)) {
            tx.insert(entry.0, &entry.1, Vec::new())?;
        }

        report_people(tx, self.before, case)?;
        for alert in self.alerts {
            tx.raise(alert)?;
        }
        enqueue(tx, self.outgoing)?;
        let plan = supervision::plan(self.before, case);
        if plan.owner.is_some() {
            let earlier = if plan.needs_history() {
                let stored = self.before.map_or(0, |b| b.history_len);
                read_history(tx, &case.id, stored)?
            } else {
                Vec::new()
            };
            // A supervisor above the top of this federation (no link leads up) is not sent
            // copies it could never receive (as alerts for it stay here, see `raise`).
            let messages: Vec<Outgoing> = supervision::messages(&plan, case, &earlier, self.events)
                .into_iter()
                .filter(|m| {
                    route::next_hop(tx.node, tx.uplink, &m.message.destination)
                        .peer()
                        .is_some()
                })
                .collect();
            enqueue(tx, &messages)?;
        }
        stats::on_case_change(tx, self.before, case)
    }
}

/// With the federation's person key: each ID number a live case brings into this node (a
/// registration, a case installed by a transfer, a party added) is a sighting, stored in the
/// subtree person index and queued to the parent (see `federation::subtree`).
fn report_people(tx: &Tx<'_>, before: Option<&Case>, after: &Case) -> TxResult<()> {
    if !tx.secret.has_person_key() || after.status == CaseStatus::Transferred {
        return Ok(());
    }
    let had = before
        .filter(|b| b.status != CaseStatus::Transferred)
        .map(id_numbers)
        .unwrap_or_default();
    for number in id_numbers(after).into_iter().filter(|n| !had.contains(n)) {
        let Some(sighting) = sighting_here(tx, after, &number) else {
            continue;
        };
        store_sighting(tx, &sighting)?;
        if let Some(up) = tx.uplink {
            let out = Outgoing::new(
                tx.node,
                up.clone(),
                up.clone(),
                after.updated_at,
                Body::Sighting(sighting),
            );
            enqueue(tx, &[out])?;
        }
    }
    Ok(())
}

/// The sighting of the person with ID `number` in `case`, held here; `None` without the
/// federation's person key.
pub(crate) fn sighting_here(tx: &Tx<'_>, case: &Case, number: &str) -> Option<Sighting> {
    sighting_at(tx.secret, tx.node, case, number)
}

/// The sighting of the person with ID `number` on `case`, held at `node`; `None` without the
/// federation's person key.
pub(crate) fn sighting_at(
    secret: &Secret,
    node: &NodeCode,
    case: &Case,
    number: &str,
) -> Option<Sighting> {
    Some(Sighting {
        person: secret.subtree_person(number)?,
        case_id: case.id.clone(),
        registered_at: case.created_at,
        node: node.clone(),
    })
}

/// The distinct ID numbers of a case's parties, normalised.
pub(crate) fn id_numbers(c: &Case) -> Vec<String> {
    let mut v: Vec<String> = c
        .parties
        .iter()
        .map(|p| normalize_id_number(&p.id_number))
        .filter(|n| !n.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Stores a sighting in the subtree person index (its holder replacing the one stored).
pub(crate) fn store_sighting(tx: &Tx<'_>, s: &Sighting) -> TxResult<()> {
    let key = keys::person(&s.person, s.registered_at, &s.case_id);
    tx.insert_encoded(
        TreeId::SubtreePerson,
        ValueKind::NodeCode,
        &key,
        s.node.as_str(),
    )
}

/// The first `len` events of a case's stored history, read inside the transaction.
pub(crate) fn read_history(tx: &Tx<'_>, case_id: &str, len: u64) -> TxResult<Vec<Event>> {
    let prefix = keys::events_prefix(case_id);
    let runs = tx.scan_prefix(TreeId::Events, &prefix)?;
    let mut events = history_from_runs(&prefix, runs.into_iter().map(Ok)).map_err(abort)?;
    if (events.len() as u64) < len {
        let key = keys::event(case_id, events.len() as u64 + 1);
        return Err(abort(StorageError::Corrupt {
            tree: TreeId::Events.name(),
            key: keys::display(&key),
            reason: format!("missing event {} of case {case_id}", events.len() + 1),
        }));
    }
    events.truncate(len as usize);
    Ok(events)
}

/// A case's history from the values of the events tree under its `prefix`, in key order: runs
/// of consecutive events, each under the key of its first, together numbered 1, 2, 3, ...
/// A key that does not match its run, an empty run or a gap is corrupt.
pub(crate) fn history_from_runs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    prefix: &[u8],
    runs: impl IntoIterator<Item = Result<(K, V), StorageError>>,
) -> Result<Vec<Event>, StorageError> {
    let mut events: Vec<Event> = Vec::new();
    for item in runs {
        let (key, bytes) = item?;
        let key = key.as_ref();
        let run = codec::decode_events(TreeId::Events, key, bytes.as_ref())?;
        let corrupt = |reason: String| StorageError::Corrupt {
            tree: TreeId::Events.name(),
            key: keys::display(key),
            reason,
        };
        let Some(first) = run.first() else {
            return Err(corrupt("an empty run of events".into()));
        };
        if keys::event_seq(key, prefix) != Some(first.seq) {
            return Err(corrupt(format!(
                "key does not match event seq {}",
                first.seq
            )));
        }
        let next = events.len() as u64 + 1;
        for (event, seq) in run.iter().zip(next..) {
            if event.seq != seq {
                return Err(corrupt(format!(
                    "event seq {} where {seq} was due",
                    event.seq
                )));
            }
        }
        events.extend(run);
    }
    Ok(events)
}

/// Queues messages: each gets the next link seq of its neighbour, and a message created here
/// (`origin_seq == 0`) the next id of this node.
pub(crate) fn enqueue(tx: &Tx<'_>, outgoing: &[Outgoing]) -> TxResult<()> {
    if outgoing.is_empty() {
        return Ok(());
    }
    // This run's floor (`Store::open`): a node started on an empty folder or an older copy
    // numbers nothing as it did before.
    let floor: u64 = tx
        .get_decoded(TreeId::Meta, ValueKind::Sequence, keys::META_SEQ_FLOOR)?
        .unwrap_or(0);
    for out in outgoing {
        let peer = out.next_hop.as_str();
        let seq_key = keys::out_seq(peer);
        let last: u64 = tx
            .get_decoded(TreeId::Meta, ValueKind::Sequence, &seq_key)?
            .unwrap_or(0);
        let seq = last.max(floor) + 1;
        tx.insert_encoded(TreeId::Meta, ValueKind::Sequence, &seq_key, &seq)?;
        let len_key = keys::out_len(peer);
        let len: u64 = tx
            .get_decoded(TreeId::Meta, ValueKind::Sequence, &len_key)?
            .unwrap_or(0);
        tx.insert_encoded(TreeId::Meta, ValueKind::Sequence, &len_key, &(len + 1))?;
        let mut message = out.message.clone();
        if message.origin_seq == 0 {
            let last: u64 = tx
                .get_decoded(TreeId::Meta, ValueKind::Sequence, keys::META_MESSAGE_SEQ)?
                .unwrap_or(0);
            message.origin_seq = last.max(floor) + 1;
            tx.insert_encoded(
                TreeId::Meta,
                ValueKind::Sequence,
                keys::META_MESSAGE_SEQ,
                &message.origin_seq,
            )?;
        }
        super::knowledge::note_outgoing(tx, &mut message)?;
        let entry = OutboxEntry {
            queued_at: out.queued_at,
            message,
            prev_seq: Some(last),
        };
        tx.insert_encoded(
            TreeId::Outbox,
            ValueKind::OutboxEntry,
            &keys::outbox(peer, seq),
            &entry,
        )?;
        tx.signals.outbox_touched();
    }
    Ok(())
}

/// The transaction of [`super::Store::register`].
pub(crate) fn register<F>(
    trees: &Trees,
    secret: &Secret,
    idempotency_key: &str,
    day: &str,
    build: &F,
) -> Result<Registered, WriteError>
where
    F: Fn(u32) -> Result<(Case, Event), DomainError>,
{
    if idempotency_key.is_empty() {
        return Err(DomainError::invalid("idempotency_key", "must not be empty").into());
    }
    let seq_key = keys::day_seq(day).map_err(StorageError::InvalidRecord)?;
    let idem_key = idempotency_key.as_bytes();
    trees.transaction(secret, |tx| {
        if let Some(id) =
            tx.get_decoded::<String>(TreeId::Idempotency, ValueKind::CaseId, idem_key)?
        {
            let Some(case) = tx.get_case(&id)? else {
                return Err(abort(StorageError::Corrupt {
                    tree: TreeId::Idempotency.name(),
                    key: keys::display(idem_key),
                    reason: format!("points to missing case {id}"),
                }));
            };
            return Ok(Registered {
                case,
                created: false,
            });
        }

        let last: u32 = tx
            .get_decoded(TreeId::Meta, ValueKind::Counter, &seq_key)?
            .unwrap_or(0);
        let Some(seq) = last.checked_add(1) else {
            return Err(abort(StorageError::InvalidRecord(format!(
                "sequence numbers of day {day} are exhausted"
            ))));
        };
        let (case, event) = build(seq).map_err(abort)?;
        let events = [event];
        let change = Change {
            before: None,
            after: &case,
            events: &events,
            alerts: &[],
            outgoing: &[],
        };
        change.check().map_err(abort)?;

        tx.insert_encoded(TreeId::Meta, ValueKind::Counter, &seq_key, &seq)?;
        tx.insert_encoded(TreeId::Idempotency, ValueKind::CaseId, idem_key, &case.id)?;
        change.apply(tx)?;
        Ok(Registered {
            case,
            created: true,
        })
    })
}

/// What a write closure of [`update`] returns: the next case, the events to append and the
/// alerts the change raises.
pub(crate) type Outcome = (Case, Vec<Event>, Vec<Alert>);

/// The transaction of [`super::Store::update`] and its kin. With `gate`, nothing is written
/// (and `None` returned) if an alert of that key is stored already: a rule applied once.
pub(crate) fn update<F>(
    trees: &Trees,
    secret: &Secret,
    case_id: &str,
    gate: Option<&str>,
    f: &F,
) -> Result<Option<Case>, WriteError>
where
    F: Fn(&Case) -> Result<Outcome, DomainError>,
{
    trees.transaction(secret, |tx| {
        if let Some(key) = gate {
            if tx.has_alert(key)? {
                return Ok(None);
            }
        }
        let Some(before) = tx.get_case(case_id)? else {
            return Err(abort(WriteError::NotFound(case_id.to_owned())));
        };
        let (after, events, alerts) = f(&before).map_err(abort)?;
        // A change that changes nothing (a command given the current values, supervision
        // asked for again) writes nothing: in particular it owes the case's supervisors no
        // copy, which writing the same case again would queue.
        if events.is_empty() && alerts.is_empty() && after == before {
            return Ok(Some(after));
        }
        check_size(tx, &before, &after, &events)?;
        let change = Change {
            before: Some(&before),
            after: &after,
            events: &events,
            alerts: &alerts,
            outgoing: &[],
        };
        change.check().map_err(abort)?;
        change.apply(tx)?;
        Ok(Some(after))
    })
}

/// Histories shorter than this cannot reach [`validate::CASE_MAX_BYTES`] whatever their
/// events (each at most a few KiB: its text is capped), so their size is not worked out.
const SIZE_CHECKED_FROM: u64 = 50;

/// Refuses a change that would make the case larger than [`validate::CASE_MAX_BYTES`] (its
/// record and whole history, encoded as they travel between nodes).
fn check_size(tx: &Tx<'_>, before: &Case, after: &Case, events: &[Event]) -> TxResult<()> {
    if events.is_empty() || after.history_len < SIZE_CHECKED_FROM {
        return Ok(());
    }
    let size = crate::protocol::case_bytes(
        after,
        &read_history(tx, &before.id, before.history_len)?,
        events,
    );
    if size <= validate::CASE_MAX_BYTES {
        return Ok(());
    }
    Err(abort(WriteError::Domain(DomainError::Refused {
        action: "change the case",
        reason: format!(
            "the case would hold {} KiB, above the limit of {} KiB per case (案件记录已达上限):              record further work in a follow-up case",
            size / 1024,
            validate::CASE_MAX_BYTES / 1024
        ),
    })))
}

/// The transaction of [`super::Store::raise_alerts`]: the number of alerts that were new.
pub(crate) fn raise(trees: &Trees, secret: &Secret, alerts: &[Alert]) -> Result<usize, WriteError> {
    trees.transaction(secret, |tx| {
        let mut new = 0;
        for alert in alerts {
            new += usize::from(tx.raise(alert)?);
        }
        Ok(new)
    })
}

/// The transaction of [`super::Store::set_cursor`].
pub(crate) fn set_cursor(
    trees: &Trees,
    secret: &Secret,
    name: &str,
    value: &[u8],
) -> Result<(), WriteError> {
    let key = keys::cursor(name);
    trees.transaction(secret, |tx| {
        tx.insert_encoded(TreeId::Meta, ValueKind::Bytes, &key, value)
    })
}
