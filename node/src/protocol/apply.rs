//! What a message does to the node that receives it, and how a node starts a move. Pure.
//!
//! [`incoming`] maps one message and what this node holds about its case ([`Local`]) to the
//! [`Effects`] the storage layer writes in one transaction with the link's watermark: a new
//! version of the local case record, a change to the supervised copy, and messages to queue.
//! It never fails: a message that cannot be carried out becomes a refusal sent back, an event
//! in the case history, or a [`Note`] for the log — never an error that would stall the link.
//!
//! Rules, by message:
//! * **not for this node** — stored and forwarded toward the destination ([`route`]); a
//!   carried case gets a "relayed" event. Upward, only messages from this node's own subtree
//!   are passed on. An order passing a node that owns the case, or holds its tombstone, is
//!   handled there (orders are addressed to a case, their destination is only a guess).
//!   A transfer nobody can route is refused back to the old owner.
//! * **transfer** — installed with the carried epoch, unless this node holds a live record of
//!   the case (refused back), a tombstone of the same or a later epoch (stale: dropped), or
//!   is closed to incoming cases (`federation.refuse_transfers`, a center being merged or
//!   dissolved: refused back with the configured reason). Installing re-applies the
//!   supervision rules for the new owner (`rules::reconcile_owner`: the colour rule, and
//!   only ancestors keep supervising), with their events and a `supervision` alert for each
//!   node that starts supervising; the storage layer then sends the supervisors their copies.
//! * **transfer refused** — the old owner restores the case at an epoch above the refused one,
//!   provided its tombstone is the one the transfer left, re-applying the rules the same way.
//! * **supervision copy / close** — a full copy (from 0) kept when newer than the copy held,
//!   a part appended when it continues it; a part that does not continue makes this node
//!   order the owner to send the copy again (`ResendCopy`), once per part received
//!   ([`super::supervision`]). A close removes a copy of the same or an older epoch.
//! * **alert** — stored for this node's staff under its key (a repeat changes nothing); it
//!   goes no further.
//! * **person sighting** — stored in the subtree person index, passed on to this node's
//!   parent, and counted ([`super::subtree`]): a repeat changes nothing.
//! * **order** — carried out by the owner if the issuer is its ancestor (a supervision order
//!   lands in the history and makes the issuer a supervisor; a transfer order moves the case
//!   if the issuer is also an ancestor of, or is, the target). A tombstone passes it on
//!   toward where the case went, directly when that is below, else back to the issuer
//!   ([`Body::Redirect`]), at most [`MAX_REDIRECTS`] times. A `ResendCopy` order makes the
//!   owner queue the copy again for the issuer if it supervises the case (a tombstone drops
//!   it: the new owner sent a full copy when it took the case).
//!
//! Of the three refusals, two happen in normal operation: a receiver closed to incoming cases,
//! and a transfer to an ancestor above the top of the running federation (a county's case sent
//! to its province when the city runs the top node), refused where it stops. A live record at
//! the receiver cannot arise while epochs fence every move (the sender's tombstone is written
//! with the transfer); that check guards against a store restored from an old backup, or a bug.

use std::collections::BTreeSet;

use crate::code::NodeCode;
use crate::domain::alert::{self, Alert};
use crate::domain::moves::{self, MoveKind};
use crate::domain::{
    Case, CaseStatus, Command, Ctx, Deadlines, DomainError, Event, Policy, Timestamp, machine,
};

use super::message::{
    Body, CaseCopy, Message, Order, OrderKind, Outgoing, Refusal, RefusalKind, Refused, Sighting,
    Transfer,
};
use super::route::{self, Hop};
use super::supervision;
use super::trust::{self, Knowledge};

/// How many times an order may follow a moved case back through its issuer.
pub const MAX_REDIRECTS: u32 = 8;

/// The node applying messages.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub me: &'a NodeCode,
    /// The parent this node links to, if it has a parent link.
    pub uplink: Option<&'a NodeCode>,
    pub now: Timestamp,
    pub deadlines: &'a Deadlines,
    /// `federation.refuse_transfers`: set, this node takes in no case, and this is why.
    pub refuse_transfers: Option<&'a str>,
    /// `[early_warning]`: the subtree repeat-person count uses its threshold and window.
    pub policy: &'a Policy,
    /// The children this node knows — from their links (a link record) and their figures (a
    /// stored contribution) — when it checks them: a message goes down only to one of these.
    /// A transfer toward a node below an unknown child is refused when it is ordered, or sent
    /// back by the relay that does not know the next hop, instead of being queued for a child
    /// that never comes. `None` (unit tests of other rules): every child is taken as known.
    pub children: Option<&'a BTreeSet<NodeCode>>,
}

impl Node<'_> {
    fn ctx<'b>(&'b self, node: &'b str, actor: &'b str) -> Ctx<'b> {
        Ctx {
            now: self.now,
            node,
            actor,
            deadlines: self.deadlines,
        }
    }

    fn route(&self, dest: &NodeCode) -> Hop {
        match route::next_hop(self.me, self.uplink, dest) {
            Hop::Child(c) if self.children.is_some_and(|known| !known.contains(&c)) => {
                Hop::Unroutable
            }
            hop => hop,
        }
    }

    /// A message created here, queued toward its destination; `None` if unroutable.
    pub(super) fn originate(&self, destination: NodeCode, body: Body) -> Option<Outgoing> {
        let next_hop = self.route(&destination).peer()?.clone();
        Some(Outgoing::new(
            self.me,
            next_hop,
            destination,
            self.now,
            body,
        ))
    }
}

/// What this node holds about the message's case.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// The case record: live (owned here) or a tombstone.
    pub case: Option<Case>,
    /// Its stored history (empty without a record).
    pub history: Vec<Event>,
    /// The supervised copy held here, if any.
    pub copy: Option<CaseCopy>,
    /// For a person sighting: this node's stored sightings of that person near its time
    /// (see [`super::subtree::READ_AROUND`]).
    pub sightings: Vec<super::subtree::Seen>,
    /// For a risk-raise order: the case's repeat-person alert is held here already (its own
    /// rule, or an earlier order, raised the risk).
    pub repeat_person_held: bool,
    /// Where this node believes each case the message names is ([`trust::holder`]), in the
    /// order of [`Message::case_ids`].
    pub holders: Vec<Option<NodeCode>>,
    /// For a redirect addressed here: the order this node issued under the redirect's order
    /// id, if it holds one.
    pub issued: Option<Order>,
}

/// A change to the supervised copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CopyChange {
    #[default]
    Keep,
    Put(Box<CaseCopy>),
    Remove,
}

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// A warning (someone should look) rather than information.
    pub warn: bool,
    pub text: String,
}

/// What applying a message writes.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// The new version of the local case record and the events appended to its history.
    pub case: Option<(Case, Vec<Event>)>,
    /// Alerts to store here (each once, by key): one forwarded to this node, or those the
    /// case change raises (supervision opened when a moved case is installed).
    pub alerts: Vec<Alert>,
    pub copy: CopyChange,
    /// A person sighting to store in the subtree person index.
    pub sighting: Option<Sighting>,
    pub send: Vec<Outgoing>,
    pub note: Option<Note>,
    /// The message was passed on toward another node (a store-and-forward hop).
    pub forwarded: bool,
    /// The message is refused: nothing else is written but the alerts, and the refusal goes
    /// back to the sender.
    pub refused: Option<Refusal>,
}

impl Effects {
    fn note(warn: bool, text: impl Into<String>) -> Effects {
        Effects {
            note: Some(Note {
                warn,
                text: text.into(),
            }),
            ..Effects::default()
        }
    }

    fn send(out: Outgoing) -> Effects {
        Effects {
            send: vec![out],
            ..Effects::default()
        }
    }
}

fn live(local: &Local) -> Option<&Case> {
    local
        .case
        .as_ref()
        .filter(|c| c.status != CaseStatus::Transferred)
}

fn tombstone(local: &Local) -> Option<&Case> {
    local
        .case
        .as_ref()
        .filter(|c| c.status == CaseStatus::Transferred)
}

/// Refuses a message from neighbour `from`: a `security` alert here, the refusal back.
fn refuse_message(node: &Node, from: &NodeCode, msg: &Message, refusal: Refusal) -> Effects {
    let alert = alert::security(
        node.me.as_str(),
        from.as_str(),
        msg.kind(),
        &msg.id(),
        msg.case_id(),
        &refusal.reason,
        node.now,
    );
    Effects {
        alerts: vec![alert],
        note: Some(Note {
            warn: true,
            text: format!(
                "SECURITY: refused {} {} from {from}: {}",
                msg.kind(),
                msg.id(),
                refusal.reason
            ),
        }),
        refused: Some(refusal),
        ..Effects::default()
    }
}

/// Applies one message that neighbour `from` sent (see the module documentation): a message
/// from a child is first checked against what this node knows ([`trust`]).
pub fn incoming(node: &Node, from: &NodeCode, msg: &Message, local: &Local) -> Effects {
    if from.parent().as_ref() == Some(node.me) {
        let known = Knowledge {
            holders: &local.holders,
            copy_owner: local.copy.as_ref().map(|c| c.case.owner_node.as_str()),
        };
        if let Err(refusal) = trust::check_from_child(from, msg, &known) {
            return refuse_message(node, from, msg, refusal);
        }
    }
    if &msg.destination != node.me {
        if let Body::Order(order) = &msg.body {
            if live(local).is_some() || tombstone(local).is_some() {
                return deliver_order(node, msg, order, local);
            }
        }
        return forward(node, msg);
    }
    match &msg.body {
        Body::Transfer(t) => receive_transfer(node, msg, t, local),
        Body::Refused(r) => receive_refusal(node, r, local),
        Body::Sync(copy) => receive_sync(node, msg, copy, local),
        Body::Close { case_id, epoch } => match &local.copy {
            Some(held) if held.case.epoch <= *epoch => Effects {
                copy: CopyChange::Remove,
                note: Some(Note {
                    warn: false,
                    text: format!("supervision of {case_id} ended"),
                }),
                ..Effects::default()
            },
            _ => Effects::default(),
        },
        Body::Order(order) => deliver_order(node, msg, order, local),
        Body::Redirect { order, moved_to } => {
            match local.issued.as_ref().filter(|kept| {
                order.id != 0 && kept.id == order.id && kept.case_id == order.case_id
            }) {
                Some(kept) => redirect_again(node, kept, order.redirects, moved_to),
                None => refuse_message(
                    node,
                    from,
                    msg,
                    Refusal::new(
                        RefusalKind::Forbidden,
                        format!(
                            "{}未发出过编号{}、关于案件{}的指令",
                            node.me, order.id, order.case_id
                        ),
                    ),
                ),
            }
        }
        Body::Alert(alert) => Effects {
            alerts: vec![Alert {
                forward_to: Vec::new(),
                ..alert.clone()
            }],
            ..Effects::default()
        },
        Body::Sighting(s) => super::subtree::receive(node, s, local),
    }
}

/// Passes a message on, with a relay event on a carried case.
fn forward(node: &Node, msg: &Message) -> Effects {
    let hop = node.route(&msg.destination);
    if let Hop::Parent(_) = hop {
        if !route::in_subtree(node.me, &msg.origin) {
            return Effects::note(
                true,
                format!(
                    "dropped {} {}: from {} outside this subtree, cannot go up",
                    msg.kind(),
                    msg.id(),
                    msg.origin
                ),
            );
        }
    }
    let Some(next_hop) = hop.peer().cloned() else {
        return unroutable(node, msg);
    };
    let mut fwd = msg.clone();
    let actor = moves::node_actor(node.me.as_str());
    let ctx = node.ctx(node.me.as_str(), &actor);
    let dest = msg.destination.as_str();
    match &mut fwd.body {
        Body::Transfer(Transfer { history, .. }) | Body::Refused(Refused { history, .. }) => {
            history.push(moves::relay_event(history.len() as u64, &ctx, dest));
        }
        Body::Sync(_)
        | Body::Close { .. }
        | Body::Order(_)
        | Body::Redirect { .. }
        | Body::Alert(_)
        | Body::Sighting(_) => {}
    }
    Effects {
        forwarded: true,
        ..Effects::send(Outgoing {
            next_hop,
            queued_at: node.now,
            message: fwd,
        })
    }
}

/// Nothing here routes `msg`: a transfer goes back to its old owner, anything else is dropped.
fn unroutable(node: &Node, msg: &Message) -> Effects {
    let Body::Transfer(t) = &msg.body else {
        return Effects::note(
            true,
            format!(
                "dropped {} {}: no route to {}",
                msg.kind(),
                msg.id(),
                msg.destination
            ),
        );
    };
    let reason = format!(
        "{}无法送达{}（无通往该中心的链路，或该中心不存在）",
        node.me, msg.destination
    );
    refuse(node, msg, t, reason)
}

/// Sends a transfer back to its old owner (the message's origin).
fn refuse(node: &Node, msg: &Message, t: &Transfer, reason: String) -> Effects {
    let body = Body::Refused(Refused {
        case: t.case.clone(),
        history: t.history.clone(),
        epoch: t.epoch,
        reason: reason.clone(),
        intended_owner: msg.destination.clone(),
    });
    match node.originate(msg.origin.clone(), body) {
        Some(out) => Effects {
            send: vec![out],
            note: Some(Note {
                warn: true,
                text: format!("refused transfer of {}: {reason}", t.case.id),
            }),
            ..Effects::default()
        },
        None => Effects::note(
            true,
            format!(
                "transfer of {} refused ({reason}) and its old owner {} is unreachable",
                t.case.id, msg.origin
            ),
        ),
    }
}

/// A carried history is well formed: seqs 1, 2, 3, ...
fn well_formed(case: &Case, history: &[Event]) -> bool {
    !history.is_empty()
        && history.iter().zip(1u64..).all(|(e, seq)| e.seq == seq)
        && case.status != CaseStatus::Transferred
}

/// The events of `carried` beyond what `held` (a tombstone here) already has.
fn continuation(held: Option<&Case>, carried: &[Event]) -> Option<Vec<Event>> {
    let have = held.map_or(0, |c| c.history_len) as usize;
    (carried.len() >= have).then(|| carried[have..].to_vec())
}

fn receive_transfer(node: &Node, msg: &Message, t: &Transfer, local: &Local) -> Effects {
    if !well_formed(&t.case, &t.history) {
        return Effects::note(true, format!("dropped malformed transfer {}", msg.id()));
    }
    if let Some(held) = live(local) {
        let reason = format!("{}已有该案件的在办记录（轮次{}）", node.me, held.epoch);
        return refuse(node, msg, t, reason);
    }
    let tomb = tombstone(local);
    if tomb.is_some_and(|c| c.epoch >= t.epoch) {
        return Effects::note(
            true,
            format!(
                "dropped stale transfer of {} (epoch {}, held {})",
                t.case.id,
                t.epoch,
                tomb.map_or(0, |c| c.epoch)
            ),
        );
    }
    if let Some(why) = node.refuse_transfers {
        let reason = format!("{}不接收移交案件：{why}", node.me);
        return refuse(node, msg, t, reason);
    }
    let Some(mut events) = continuation(tomb, &t.history) else {
        return Effects::note(
            true,
            format!(
                "dropped transfer of {}: history shorter than held",
                t.case.id
            ),
        );
    };
    let actor = moves::node_actor(node.me.as_str());
    let ctx = node.ctx(node.me.as_str(), &actor);
    let (case, mine) = moves::receive(
        &t.case,
        t.history.len() as u64,
        &ctx,
        t.epoch,
        msg.origin.as_str(),
        t.kind,
    );
    let alerts = alert::of_change(Some(&t.case), &case, &mine, node.now);
    events.extend(mine);
    Effects {
        case: Some((case, events)),
        alerts,
        copy: if local.copy.is_some() {
            CopyChange::Remove
        } else {
            CopyChange::Keep
        },
        sighting: None,
        send: Vec::new(),
        note: Some(Note {
            warn: false,
            text: format!(
                "received {} from {} (epoch {})",
                t.case.id, msg.origin, t.epoch
            ),
        }),
        forwarded: false,
        refused: None,
    }
}

fn receive_refusal(node: &Node, r: &Refused, local: &Local) -> Effects {
    let Some(tomb) = tombstone(local).filter(|c| c.epoch.saturating_add(1) == r.epoch) else {
        return Effects::note(
            true,
            format!("dropped stale refusal of {} (epoch {})", r.case.id, r.epoch),
        );
    };
    let Some(mut events) = continuation(Some(tomb), &r.history) else {
        return Effects::note(
            true,
            format!(
                "dropped refusal of {}: history shorter than held",
                r.case.id
            ),
        );
    };
    let actor = moves::node_actor(node.me.as_str());
    let ctx = node.ctx(node.me.as_str(), &actor);
    let (case, mine) = moves::restore(
        &r.case,
        r.history.len() as u64,
        &ctx,
        r.epoch,
        r.intended_owner.as_str(),
        &r.reason,
    );
    let alerts = alert::of_change(Some(&r.case), &case, &mine, node.now);
    events.extend(mine);
    Effects {
        case: Some((case, events)),
        alerts,
        note: Some(Note {
            warn: true,
            text: format!(
                "transfer of {} was refused and came back: {}",
                r.case.id, r.reason
            ),
        }),
        ..Effects::default()
    }
}

fn receive_sync(node: &Node, msg: &Message, copy: &CaseCopy, local: &Local) -> Effects {
    if live(local).is_some() {
        return Effects::default();
    }
    if copy.case.owner_node != msg.origin.as_str()
        || !copy
            .case
            .supervising_nodes
            .iter()
            .any(|s| s == node.me.as_str())
    {
        return Effects::note(
            true,
            format!(
                "dropped supervision copy {} not meant for this node",
                msg.id()
            ),
        );
    }
    match supervision::receive(copy, local.copy.as_ref()) {
        supervision::Received::Keep => Effects::default(),
        supervision::Received::Put(next) => Effects {
            copy: CopyChange::Put(next),
            ..Effects::default()
        },
        supervision::Received::Gap { have } => {
            let order = Order {
                id: 0,
                case_id: copy.case.id.clone(),
                actor: moves::node_actor(node.me.as_str()),
                redirects: 0,
                kind: OrderKind::ResendCopy { from: have },
            };
            let text = format!(
                "supervision copy {} of {} starts after event {} but {have} are held: asked {} to send it again",
                msg.id(),
                copy.case.id,
                copy.history_from(),
                msg.origin
            );
            match node.originate(msg.origin.clone(), Body::Order(order)) {
                Some(out) => Effects {
                    send: vec![out],
                    note: Some(Note { warn: true, text }),
                    ..Effects::default()
                },
                None => Effects::note(
                    true,
                    format!(
                        "supervision copy {} of {} does not continue the copy held, and {} is unreachable",
                        msg.id(),
                        copy.case.id,
                        msg.origin
                    ),
                ),
            }
        }
    }
}

/// An order at a node holding the case: carried out by the owner, passed on by a tombstone.
fn deliver_order(node: &Node, msg: &Message, order: &Order, local: &Local) -> Effects {
    if let Some(tomb) = tombstone(local) {
        // Where the case went from here last: the tombstone's destination, unless this node
        // passed the case on again since (it relayed a later move: `holders` has the newer
        // epoch). Following the older pointer sent orders round in a loop until they were
        // dropped (found by `fqsim`).
        let newer = local
            .holders
            .first()
            .cloned()
            .flatten()
            .filter(|h| h != node.me);
        let Some(moved_to) = newer.or_else(|| {
            tomb.moved_to
                .as_deref()
                .and_then(|m| NodeCode::parse(m).ok())
        }) else {
            return Effects::note(
                true,
                format!("dropped order {}: tombstone without destination", msg.id()),
            );
        };
        if let OrderKind::ResendCopy { .. } = order.kind {
            // The new owner sent the supervisors a full copy when it installed the case.
            return Effects::note(
                false,
                format!("dropped order {}: the case moved to {moved_to}", msg.id()),
            );
        }
        return follow(node, msg, order, moved_to);
    }
    let Some(case) = live(local) else {
        return Effects::note(
            true,
            format!(
                "dropped order {} for {}: no record here",
                msg.id(),
                order.case_id
            ),
        );
    };
    let issuer = &msg.origin;
    if !issuer.is_ancestor_of(node.me) {
        return Effects::note(
            true,
            format!(
                "ignored order {} from {issuer}: not an ancestor of this node",
                msg.id()
            ),
        );
    }
    let ctx = node.ctx(issuer.as_str(), &order.actor);
    match &order.kind {
        OrderKind::Supervise {
            instruction,
            due_at,
        } => {
            let (next, e) = moves::supervision_order(case, &ctx, instruction, *due_at);
            Effects {
                case: Some((next, vec![e])),
                ..Effects::default()
            }
        }
        OrderKind::Transfer { to_node, reason } => {
            let not_done = |why: String| {
                let (next, e) = moves::order_not_executed(case, &ctx, &order.kind.label_zh(), &why);
                Effects {
                    case: Some((next, vec![e])),
                    note: Some(Note {
                        warn: true,
                        text: format!("order {} not executed: {why}", msg.id()),
                    }),
                    ..Effects::default()
                }
            };
            if !route::in_subtree(issuer, to_node) {
                return not_done(format!("{to_node}不在{issuer}辖区内"));
            }
            if to_node == node.me {
                return not_done(format!("案件已在{to_node}"));
            }
            match move_out(
                node,
                case,
                &local.history,
                &order.actor,
                to_node,
                MoveKind::Ordered,
                reason,
            ) {
                Ok((tomb, events, out)) => Effects {
                    case: Some((tomb, events)),
                    send: vec![out],
                    ..Effects::default()
                },
                Err(MoveError::Domain(e)) => not_done(e.to_string()),
                Err(MoveError::Unroutable) => not_done(format!("无法送达{to_node}")),
            }
        }
        OrderKind::ResendCopy { from } => {
            let send = supervision::resend(node.me, issuer, case, &local.history, *from, node.now);
            let text = if send.is_empty() {
                format!(
                    "order {}: {issuer} does not supervise {}",
                    msg.id(),
                    case.id
                )
            } else {
                format!(
                    "order {}: supervision copy of {} sent to {issuer} again from event {from}",
                    msg.id(),
                    case.id
                )
            };
            Effects {
                send,
                note: Some(Note { warn: false, text }),
                ..Effects::default()
            }
        }
        OrderKind::RaiseRisk { reason } => {
            if local.repeat_person_held {
                return Effects::note(
                    false,
                    format!(
                        "order {}: the risk of {} was raised for this person already",
                        msg.id(),
                        case.id
                    ),
                );
            }
            let cmd = Command::RaiseRisk {
                reason: reason.clone(),
            };
            match machine::apply(case, &ctx, &cmd) {
                Ok((next, events)) => {
                    let mut alerts = vec![alert::repeat_person_ordered(
                        case,
                        issuer.as_str(),
                        reason,
                        next.risk,
                        node.now,
                    )];
                    alerts.extend(alert::of_change(Some(case), &next, &events, node.now));
                    Effects {
                        case: Some((next, events)),
                        alerts,
                        ..Effects::default()
                    }
                }
                Err(e) => Effects::note(
                    true,
                    format!("order {} not executed on {}: {e}", msg.id(), case.id),
                ),
            }
        }
    }
}

/// A tombstone passes an order on toward `moved_to`: down directly, otherwise back to the
/// issuer, which knows its own subtree.
fn follow(node: &Node, msg: &Message, order: &Order, moved_to: NodeCode) -> Effects {
    if node.me.is_ancestor_of(&moved_to) {
        let mut fwd = msg.clone();
        fwd.destination = moved_to;
        return forward(node, &fwd);
    }
    if order.redirects >= MAX_REDIRECTS {
        return Effects::note(
            true,
            format!("dropped order {}: redirected too often", msg.id()),
        );
    }
    let mut order = order.clone();
    order.redirects += 1;
    match node.originate(msg.origin.clone(), Body::Redirect { order, moved_to }) {
        Some(out) => Effects::send(out),
        None => Effects::note(
            true,
            format!("dropped order {}: issuer unreachable", msg.id()),
        ),
    }
}

/// The issuer routes the order it kept (`kept`: its own kind, target and actor, whatever the
/// redirect carried) again, if the case is still in its subtree.
fn redirect_again(node: &Node, kept: &Order, redirects: u32, moved_to: &NodeCode) -> Effects {
    let mut order = kept.clone();
    order.redirects = redirects.max(kept.redirects);
    let order = &order;
    if !node.me.is_ancestor_of(moved_to) {
        return Effects::note(
            true,
            format!(
                "order on {} lapsed: the case moved to {moved_to}, outside this subtree",
                order.case_id
            ),
        );
    }
    match node.originate(moved_to.clone(), Body::Order(order.clone())) {
        Some(out) => Effects::send(out),
        None => Effects::note(
            true,
            format!("order on {}: no route to {moved_to}", order.case_id),
        ),
    }
}

/// Neighbour `peer` refused `msg`, which this node had queued for it: the outcome the sender
/// owes, so that nothing is lost silently. A transfer goes back to its old owner — restored
/// here when this node is the old owner, otherwise refused back toward it — and every refusal
/// raises an `undelivered` alert here. The link has already moved on.
pub fn refused_by_peer(
    node: &Node,
    peer: &NodeCode,
    msg: &Message,
    refusal: &Refusal,
    local: &Local,
) -> Effects {
    let reason = format!(
        "{peer}拒收（{}）：{}",
        refusal.kind.label_zh(),
        refusal.reason
    );
    let mut effects = match &msg.body {
        Body::Transfer(t) if &msg.origin == node.me => {
            let back = Refused {
                case: t.case.clone(),
                history: t.history.clone(),
                epoch: t.epoch,
                reason: reason.clone(),
                intended_owner: msg.destination.clone(),
            };
            receive_refusal(node, &back, local)
        }
        Body::Transfer(t) => refuse(node, msg, t, reason.clone()),
        _ => Effects::note(
            true,
            format!(
                "{} {} was refused by {peer}: {}",
                msg.kind(),
                msg.id(),
                refusal.reason
            ),
        ),
    };
    effects.alerts.push(alert::undelivered(
        node.me.as_str(),
        peer.as_str(),
        msg.kind(),
        &msg.id(),
        msg.case_id(),
        &reason,
        node.now,
    ));
    effects
}

/// Why a move could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveError {
    Domain(DomainError),
    /// No link leads toward the destination.
    Unroutable,
}

impl From<DomainError> for MoveError {
    fn from(e: DomainError) -> Self {
        MoveError::Domain(e)
    }
}

/// The owner's half of a move of `case` (with its stored `history`) to `to`, ordered by
/// `actor`: the tombstone, the events to append, and the transfer to queue.
pub fn move_out(
    node: &Node,
    case: &Case,
    history: &[Event],
    actor: &str,
    to: &NodeCode,
    kind: MoveKind,
    reason: &str,
) -> Result<(Case, Vec<Event>, Outgoing), MoveError> {
    let ctx = node.ctx(node.me.as_str(), actor);
    let (tomb, out_event) = moves::hand_over(case, &ctx, to.as_str(), kind, reason)?;
    let mut carried = history.to_vec();
    carried.push(out_event.clone());
    let body = Body::Transfer(Transfer {
        case: case.clone(),
        history: carried,
        epoch: case.epoch.saturating_add(1),
        kind,
        reason: reason.to_owned(),
    });
    let out = node
        .originate(to.clone(), body)
        .ok_or(MoveError::Unroutable)?;
    Ok((tomb, vec![out_event], out))
}

/// An order issued here about a case owned elsewhere, queued toward `target` (the owner as
/// best known).
pub fn issue_order(node: &Node, target: &NodeCode, order: Order) -> Option<Outgoing> {
    node.originate(target.clone(), Body::Order(order))
}

#[cfg(test)]
mod tests;
