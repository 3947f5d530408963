//! What the federation's network side of one node shares: identity, configuration, store,
//! link table, and the one way messages are applied.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::code::NodeCode;
use crate::config::FederationConfig;
use crate::domain::{Deadlines, Timestamp, alert};
use crate::storage::{Applied, Resync, Store, WriteError};

use super::links::LinkTable;
use crate::protocol::apply::{self, Node};
use crate::protocol::message::{Received, Refusal, RefusalKind};

/// The federation state of a node, shared by the FederationService, the link workers and the
/// CaseService handlers that start moves.
pub struct Federation {
    pub me: NodeCode,
    /// The parent, when a parent link is configured.
    pub parent: Option<NodeCode>,
    pub config: FederationConfig,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// `[early_warning]`, for the subtree repeat-person count.
    pub policy: crate::domain::Policy,
    pub links: LinkTable,
    /// Budget of one batch on the wire (`limits.max_message_bytes`; peers accept 4 times it).
    pub batch_bytes: usize,
    /// Set by the pull loop when the parent holds less of this node's messages than it
    /// acknowledged: the push loop sends again from there.
    parent_rewind: std::sync::Mutex<Option<u64>>,
    /// The node's TLS material, when it serves (not in tests in process): the CRL in force
    /// goes down to children that hold an older one, and one from the parent is taken here.
    pub tls: std::sync::OnceLock<Arc<crate::live_tls::LiveTls>>,
    /// Batches answered as applied but not applied yet: only with the planted fault
    /// [`crate::faults::Fault::AckBeforeDurable`] (`fqsim --self-test`), never otherwise.
    deferred: std::sync::Mutex<Vec<(NodeCode, Batch)>>,
    /// The highest `PullRequest.poll_seq` taken from each child (since this start).
    polls: Polls,
}

/// The highest poll number (`PullRequest.poll_seq`) taken from each child since this start.
#[derive(Default)]
pub struct Polls(std::sync::Mutex<std::collections::BTreeMap<NodeCode, u64>>);

impl Polls {
    /// Takes poll number `seq` of `child`: false when a later poll was taken already (this
    /// one is stale: delayed, or sent again), true otherwise — and always for 0, an older
    /// child's.
    pub fn take(&self, child: &NodeCode, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let mut polls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let last = polls.entry(child.clone()).or_default();
        if seq < *last {
            return false;
        }
        *last = seq;
        true
    }
}

/// A batch of a link as it came off the wire: link seq, the seq before it, the message.
pub type Batch = Vec<(u64, Option<u64>, Received)>;

pub type SharedFederation = Arc<Federation>;

struct OwnedNode {
    me: NodeCode,
    uplink: Option<NodeCode>,
    deadlines: Deadlines,
    refuse_transfers: Option<String>,
    policy: crate::domain::Policy,
    children: BTreeSet<NodeCode>,
}

impl OwnedNode {
    fn node(&self, now: crate::domain::Timestamp) -> Node<'_> {
        Node {
            me: &self.me,
            uplink: self.uplink.as_ref(),
            now,
            deadlines: &self.deadlines,
            refuse_transfers: self.refuse_transfers.as_deref(),
            policy: &self.policy,
            children: Some(&self.children),
        }
    }
}

impl Federation {
    pub fn new(
        me: NodeCode,
        parent: Option<NodeCode>,
        config: FederationConfig,
        store: Store,
        clock: SharedClock,
        deadlines: Deadlines,
        max_message_bytes: usize,
    ) -> Federation {
        // Link health is advisory: a damaged record must not stop the node, only be reported.
        let records = store.link_records().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the stored link records; links count from now");
            Vec::new()
        });
        let links = LinkTable::new(
            &me,
            clock.now(),
            config.link_silence_alert,
            parent.clone(),
            records,
        );
        Federation {
            me,
            parent,
            config,
            store,
            clock,
            deadlines,
            policy: crate::domain::Policy::default(),
            links,
            batch_bytes: max_message_bytes.max(4096),
            parent_rewind: std::sync::Mutex::new(None),
            tls: std::sync::OnceLock::new(),
            deferred: std::sync::Mutex::new(Vec::new()),
            polls: Polls::default(),
        }
    }

    /// This federation state with the node's `[early_warning]` policy.
    pub fn with_policy(mut self, policy: crate::domain::Policy) -> Federation {
        self.policy = policy;
        self
    }

    /// The node as the pure layer sees it, at the current time, knowing `children` (from
    /// [`Federation::known_children`]).
    pub fn node<'a>(
        &'a self,
        now: crate::domain::Timestamp,
        children: &'a BTreeSet<NodeCode>,
    ) -> Node<'a> {
        Node {
            me: &self.me,
            uplink: self.parent.as_ref(),
            now,
            deadlines: &self.deadlines,
            refuse_transfers: self.config.refuse_transfers.as_deref(),
            policy: &self.policy,
            children: Some(children),
        }
    }

    /// Asks the push loop to send again what follows link seq `to` (the parent's watermark).
    pub fn rewind_parent(&self, to: u64) {
        let mut slot = match self.parent_rewind.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *slot = Some(slot.map_or(to, |held| held.min(to)));
    }

    /// The rewind asked for, if any (taken).
    pub fn take_parent_rewind(&self) -> Option<u64> {
        match self.parent_rewind.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    /// The children this node knows: those with a link record (heard from, now or before a
    /// restart) and those whose figures it holds. A child that has never linked and never
    /// reported is not known, and nothing is sent down to it.
    pub fn known_children(&self) -> BTreeSet<NodeCode> {
        let mut known = self.links.children();
        match self
            .store
            .stats_children(crate::stats::Kind::Subtree, &self.me)
        {
            Ok(reported) => known.extend(reported),
            Err(e) => tracing::warn!(error = %e, "cannot read which children reported figures"),
        }
        known
    }

    /// What [`Federation::node`] borrows, owned, for closures run by the store's writer.
    fn owned(&self) -> OwnedNode {
        OwnedNode {
            me: self.me.clone(),
            uplink: self.parent.clone(),
            deadlines: self.deadlines.clone(),
            refuse_transfers: self.config.refuse_transfers.clone(),
            policy: self.policy.clone(),
            children: self.known_children(),
        }
    }

    /// Something was heard from neighbour `peer`, which reports `peer_queue` messages for this
    /// node. Now and then (see [`super::links`]) this first stores the link's last word.
    pub async fn heard(&self, peer: &NodeCode, peer_queue: u64) {
        let now = self.clock.now();
        if let Some(record) = self.links.to_store(peer, now) {
            if let Err(e) = self.store.record_links(vec![(peer.clone(), record)]).await {
                tracing::warn!(peer = %peer, error = %e, "cannot store the link's last word");
                self.links.store_failed(peer);
            }
        }
        self.links.heard(peer, now, peer_queue);
    }

    /// Stores every link record that changed since it was last stored (at start: the parent
    /// link's first record; at a clean shutdown: the last words).
    pub async fn save_links(&self) {
        let records = self.links.unsaved();
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_links(records.clone()).await {
            tracing::warn!(error = %e, "cannot store the link records");
            for (peer, _) in &records {
                self.links.store_failed(peer);
            }
        }
    }

    /// Applies a batch from neighbour `peer` (see [`Store::apply_incoming`]) and logs what
    /// applying it noted. Returns the link's new watermark and whether anything was passed on.
    pub async fn apply(
        &self,
        peer: &NodeCode,
        batch: Vec<(u64, Option<u64>, Received)>,
    ) -> Result<Applied, WriteError> {
        let owned = self.owned();
        let now = self.clock.now();
        let from = peer.clone();
        // What arrived, for the log once it is applied: each message under its
        // federation-wide id (`origin:origin_seq`), the trace id that follows it across tiers.
        let arrived: Vec<(u64, String, String, &'static str, NodeCode)> = batch
            .iter()
            .filter_map(|(seq, _, r)| match r {
                Received::Message(m) => Some((
                    *seq,
                    m.id(),
                    m.case_id().to_owned(),
                    m.kind(),
                    m.destination.clone(),
                )),
                _ => None,
            })
            .collect();
        let applied = self
            .store
            .apply_incoming(peer.clone(), batch, move |msg, local| {
                apply::incoming(&owned.node(now), &from, msg, local)
            })
            .await?;
        for (seq, trace_id, case_id, kind, destination) in &arrived {
            if *seq > applied.through {
                break;
            }
            let what = if applied.refused.iter().any(|(s, _)| s == seq) {
                "message refused"
            } else if *destination == self.me {
                "message applied"
            } else {
                "message passed on"
            };
            tracing::info!(
                trace_id = %trace_id,
                case_id = %case_id,
                kind,
                from = %peer,
                link_seq = *seq,
                "{what}"
            );
        }
        log_notes(peer, &applied.notes);
        if !applied.refused.is_empty() {
            self.links.refused_in(peer, applied.refused.len() as u64);
        }
        self.alert_not_received(peer, &applied, now).await;
        self.alert_resyncs(peer, &applied.resyncs, now).await;
        Ok(applied)
    }

    /// Logs "message sent" for an entry this node made, queued at link seq `seq` for `to`:
    /// the message's federation-wide id follows it across tiers in every node's log ("sent"
    /// where it was made, "passed on" at each node between, "applied" where it was for).
    pub fn log_sent(&self, seq: u64, e: &crate::protocol::message::OutboxEntry, to: &NodeCode) {
        if e.message.origin == self.me {
            tracing::info!(
                trace_id = %e.message.id(),
                case_id = e.message.case_id(),
                kind = e.message.kind(),
                link_seq = seq,
                to = %to,
                "message sent"
            );
        }
    }

    /// Takes poll number `seq` of `child` (see [`Polls::take`]).
    pub fn take_poll(&self, child: &NodeCode, seq: u64) -> bool {
        self.polls.take(child, seq)
    }

    /// Keeps `batch` to apply later (see `deferred`): the planted fault of acknowledging
    /// before the apply is durable.
    pub fn defer(&self, peer: &NodeCode, batch: Batch) {
        let mut held = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        held.push((peer.clone(), batch));
    }

    /// Applies what [`Federation::defer`] kept (nothing unless that fault is planted).
    pub async fn apply_deferred(&self) {
        let held = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for (peer, batch) in held {
            if let Err(e) = self.apply(&peer, batch).await {
                tracing::error!(error = %e, "cannot apply a deferred batch");
            }
        }
    }

    /// Deals with `peer`'s refusals of messages this node queued for it
    /// ([`apply::refused_by_peer`]); call before they are acknowledged.
    pub async fn refused_by_peer(
        &self,
        peer: &NodeCode,
        refused: Vec<(u64, Refusal)>,
    ) -> Result<(), WriteError> {
        if refused.is_empty() {
            return Ok(());
        }
        let count = refused.len() as u64;
        let owned = self.owned();
        let now = self.clock.now();
        let to = peer.clone();
        let notes = self
            .store
            .refused_by_peer(peer.clone(), refused, move |msg, refusal, local| {
                apply::refused_by_peer(&owned.node(now), &to, msg, refusal, local)
            })
            .await?;
        self.links.refused_out(peer, count);
        log_notes(peer, &notes);
        Ok(())
    }

    /// Raises a `link_resync` alert for each place where `peer`'s messages did not continue
    /// the link (see [`Resync`]).
    async fn alert_resyncs(&self, peer: &NodeCode, resyncs: &[Resync], now: Timestamp) {
        let alerts: Vec<_> = resyncs
            .iter()
            .map(|r| {
                let (seq, text) = match *r {
                    Resync::Renumbered { seq, prev, through } => (
                        seq,
                        format!(
                            "{peer}的消息重新编号（第{seq}条接在第{prev}条之后，本节点已收到第{through}条）：对方可能换机或从旧备份恢复，其后的消息照常接收"
                        ),
                    ),
                    Resync::Gap { seq, prev, through } => (
                        seq,
                        format!(
                            "来自{peer}的第{through}条之后、第{prev}条及之前的消息未能收到（本节点可能从旧备份恢复，对方已不再保留）：从第{seq}条继续"
                        ),
                    ),
                };
                tracing::warn!(alert = "link_resync", peer = %peer, "ALERT: {text}");
                self.links.resynced(peer, now);
                alert::link_resync(self.me.as_str(), peer.as_str(), seq, text, now)
            })
            .collect();
        self.raise(alerts).await;
    }

    /// The link to `peer` moved back: it applied only through `through` what this node had
    /// seen it apply through `before` (it was replaced, or restored from an older copy). The
    /// messages kept since are sent again; a `link_resync` alert says so.
    pub async fn peer_rewound(&self, peer: &NodeCode, before: u64, through: u64) {
        let text = format!(
            "{peer}只收到第{through}条消息，此前已确认第{before}条（对方可能换机或从旧备份恢复）：已从保留的消息重新发送"
        );
        tracing::warn!(alert = "link_resync", peer = %peer, "ALERT: {text}");
        self.links.resynced(peer, self.clock.now());
        let alert = alert::link_resync(
            self.me.as_str(),
            peer.as_str(),
            through,
            text,
            self.clock.now(),
        );
        self.raise(vec![alert]).await;
    }

    /// The neighbour said the link resynchronised (`what`, its words): a `link_resync` alert
    /// here too, so both ends show it.
    pub async fn told_resync(&self, parent: &NodeCode, at_seq: u64, what: &str) {
        let what: String = what.chars().take(500).collect();
        tracing::warn!(alert = "link_resync", peer = %parent, "ALERT: {what}");
        self.links.resynced(parent, self.clock.now());
        let alert = alert::link_resync(
            self.me.as_str(),
            parent.as_str(),
            at_seq,
            what,
            self.clock.now(),
        );
        self.raise(vec![alert]).await;
    }

    async fn raise(&self, alerts: Vec<crate::domain::alert::Alert>) {
        if alerts.is_empty() {
            return;
        }
        if let Err(e) = self.store.raise_alerts(alerts).await {
            tracing::error!(error = %e, "cannot store link alerts");
        }
    }

    /// Raises an alert here for each message of `peer` this node could not take: unreadable
    /// ones and those the sender withheld (a refusal by the trust checks raised its `security`
    /// alert as it was applied). The sender raises its own when it learns of the refusal, so
    /// both ends of the link see it.
    async fn alert_not_received(&self, peer: &NodeCode, applied: &Applied, now: Timestamp) {
        let unreadable = applied
            .refused
            .iter()
            .filter(|(_, r)| r.kind != RefusalKind::Forbidden)
            .map(|(seq, r)| (*seq, r.kind.label_zh(), r.reason.as_str()));
        let withheld = applied
            .withheld
            .iter()
            .map(|(seq, reason)| (*seq, "发送方未发出", reason.as_str()));
        let alerts: Vec<_> = unreadable
            .chain(withheld)
            .map(|(seq, what, reason)| {
                tracing::warn!(peer = %peer, link_seq = seq, "message not received ({what}): {reason}");
                alert::not_received(self.me.as_str(), peer.as_str(), seq, what, reason, now)
            })
            .collect();
        if alerts.is_empty() {
            return;
        }
        if let Err(e) = self.store.raise_alerts(alerts).await {
            tracing::error!(error = %e, "cannot store the alerts of messages not received");
        }
    }
}

fn log_notes(peer: &NodeCode, notes: &[(String, apply::Note)]) {
    for (id, note) in notes {
        if note.warn {
            tracing::warn!(message = %id, peer = %peer, "{}", note.text);
        } else {
            tracing::info!(message = %id, peer = %peer, "{}", note.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_older_than_one_taken_is_stale_and_each_child_counts_alone() {
        let polls = Polls::default();
        let (a, b) = (
            NodeCode::parse("610116001001").unwrap(),
            NodeCode::parse("610116001002").unwrap(),
        );
        assert!(polls.take(&a, 10));
        assert!(polls.take(&a, 10), "the same poll again is not older");
        assert!(polls.take(&a, 12));
        assert!(!polls.take(&a, 11), "delayed behind a later one");
        assert!(polls.take(&b, 1), "another child's numbers are its own");
        assert!(polls.take(&a, 0), "an older child's polls carry no number");
    }
}
