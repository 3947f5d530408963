//! The federation: identical nodes at village, township, county and city, each owning its
//! cases, linked into one tree over mutual TLS. Escalations travel up (提级办理, 提级督办),
//! assignments down (交办/下派, a court's 反向导入), moves between units through their common
//! ancestor (流转), and supervision orders (督办) from any ancestor to the owner.
//!
//! # Links
//!
//! Every node opens one link, to its `parent`; nothing in a parent's configuration names its
//! children (village offices sit behind NAT), so everything for a child travels over the
//! connection the child opened. On that connection ([`link`]) the child calls
//! `FederationService.Push` with batches of its outbox for the parent, and long-polls
//! `FederationService.Pull` for the parent's outbox for it. The parent ([`service`]) accepts
//! only node certificates of its own children, and only messages from the caller's subtree
//! about cases their origin owns; the child ([`connect`]) accepts only a server whose
//! certificate names its parent. Operators never reach this API, nodes never reach CaseService.
//!
//! # Exactly once
//!
//! A state change and every message it causes are written in one storage transaction: the
//! message lands in the outbox of the neighbour it goes to next, numbered by that link's own
//! sequence (`storage::federation`). The sender sends only durable entries, retries with
//! capped exponential backoff and jitter until acknowledged, and counts an entry delivered
//! only when the receiver reports it applied (then keeps it for `federation.keep_delivered`).
//! The receiver applies a link's messages strictly in order, each in one transaction with its
//! effects and the link's watermark (`applied_through`), and acknowledges only once that is
//! durable: a repeat is skipped by the watermark. A message for another node is
//! stored in the receiver's own outbox in that same transaction and forwarded from there,
//! hop by hop. So a crash anywhere — before or after a commit, an answer, an acknowledgement —
//! at worst makes a sender send again what the receiver then skips, and queues drain once the
//! link is repaired, however long it was down.
//!
//! # Replaced and restored nodes
//!
//! A node may come back on an empty folder (a replaced PC, same certificate) or on an older
//! copy of its folder. Nothing it issued before is issued again: every open raises its link
//! seqs and message ids to a floor from the clock, and today's case number likewise
//! (`storage::federation::raise_floors`), so seqs ascend but are not contiguous. Each message
//! says which seq was queued before it on its link (`prev_seq`), and the receiver goes by it
//! (`storage::federation::Resync`): equal to its watermark, the link continues; lower, the
//! sender was renumbered (it came back) and the message is new, so it is applied, not
//! skipped; higher, the receiver lost what it had applied (it came back) and the sender no
//! longer keeps it, so the link goes on instead of stalling. Messages a neighbour
//! acknowledged are kept for `federation.keep_delivered`: a child that pulls from below what
//! it acknowledged before gets them again (the cases transferred down to it since its copy),
//! and a parent that holds less than a child's push assumes (`PushRequest.from_seq`) answers
//! its own watermark, from which the child sends again; a child with nothing new to push
//! learns it from its pulls (`PullResponse.pushed_through`). Either way both ends raise a
//! `link_resync` alert (requests and answers carry `resync` for the other end).
//!
//! # Ownership
//!
//! A case has one owner and an epoch (a fencing token) that grows with every move. The old
//! owner keeps a tombstone (status TRANSFERRED, `moved_to`) written with the transfer message;
//! the receiver installs the case with the new epoch unless it holds a live record or is closed
//! to incoming cases (`federation.refuse_transfers`) — then it refuses, and the refusal travels
//! back so the old owner restores the case at a still higher epoch, with the reason in the
//! history — or a tombstone of that epoch or later (a stale message, dropped). A transfer no
//! node can route is refused the same way by the node where it stops. The case travels with
//! its whole history; each hop appends a "relayed" event and the receiver a "received" one. Between the two writes the case is in flight:
//! owned by the message, never by two nodes, and once traffic settles by exactly one.
//!
//! Rules of who may order which move are in `crate::service` (the CaseService handlers) and
//! the README.
//!
//! # Trust
//!
//! A node trusts its parent and believes a child only about the child's subtree as it knows
//! it: where it last sent each case (every move into or out of a child's subtree crosses this
//! node), its own records, the registering node named by a case id ([`crate::protocol::trust`] has the whole
//! model). Each message from a child is checked as it is applied; one that fails — or cannot
//! be read at all — is refused on its own: nothing changes, the watermark moves past it, a
//! `security` alert (an `undelivered` one for a message that cannot be read, or that its
//! sender withheld as too large) is raised here, and the refusal travels back to the sender
//! (`PushResponse.refused`, `PullRequest.refused`), which deals with it
//! ([`apply::refused_by_peer`]: a transfer comes back to its old owner, an `undelivered`
//! alert is raised). So no single message can stall a link, and no child can act on cases
//! outside its subtree. Orders carry an id their issuer keeps, so a redirect is honoured only
//! for an order its issuer really issued, as it issued it. Orders — a supervision order, or a move ordered by an ancestor (the only way a
//! case moves sideways) — are addressed to the case: routed toward its owner as best known,
//! carried out by the owner after checking the issuer is its ancestor, passed on by
//! tombstones, and sent back to the issuer when the case has left the redirecting node's
//! subtree ([`crate::protocol::apply`]).
//!
//! # Supervision
//!
//! The ancestors in a case's `supervising_nodes` follow it: every change of such a case —
//! whoever makes it, an operator, a federation message or a risk rule — queues a read-only copy
//! (parties masked, free text redacted) for each of them in the same transaction, and a close
//! for any removed ([`crate::protocol::supervision`]). Copies live outside the cases tree, so listings and
//! aggregates count each case once; GetCase and GetCaseHistory at a supervisor show the copy.
//!
//! # Alerts
//!
//! An alert raised here for nodes above (`Alert::forward_to`: the parent, or a supervising
//! ancestor) is queued to each of them in the transaction that first stores it, and stored
//! there under the same key ([`crate::protocol::apply`]): the parent's ListAlerts shows its children's early
//! warnings, reopens and supervision requests, each once.
//!
//! # Health
//!
//! [`links`] keeps each link's state for GetLinks — connected / backing off / never
//! connected, queue depths both ways, the age of the oldest undelivered message, last heard,
//! last error — and logs a link silent longer than `federation.link_silence_alert` as an alert.
//! When each peer was last heard is also kept in the store (renewed once per tenth of the
//! silence time, not per message), so a node restarted after a peer has been dead for hours
//! flags that link at once.
//!
//! # Layout
//!
//! Pure (no I/O, unit-tested): [`crate::protocol`] — messages, routes, applying, supervision,
//! trust, subtree counts — beside the domain's `moves`; storage and this module both depend
//! on it, not on each other. Network (here): [`service`] (parent side), [`link`] and [`connect`] (child side),
//! [`wire`] (protobuf), [`links`], [`node`] (shared state), [`failpoint`] (crash points for
//! tests).

pub mod connect;
pub mod failpoint;
pub mod link;
pub mod links;
pub mod node;
pub mod service;
pub mod wire;

pub use node::{Federation, SharedFederation};

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Checks the links for silence at once and then every so often (a quarter of the alert time,
/// at most 5 s).
pub fn spawn_silence_check(
    fed: SharedFederation,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let every = (fed.config.link_silence_alert / 4).min(Duration::from_secs(5));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => fed.links.check_silence(&fed.store, fed.clock.now()),
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    })
}
