//! The child's side of the link to its parent: two workers over one channel.
//!
//! * **push** sends the outbox for the parent, oldest first, in batches of at most
//!   `federation.batch_max` messages (and about `limits.max_message_bytes`), each only after
//!   it is durable here; while the parent applies one batch it reads and encodes the next;
//!   on the parent's answer it deletes what the parent reports applied (in the background,
//!   while the next batch goes out). It wakes as soon as a durable write queues something,
//!   and otherwise sleeps.
//! * **pull** long-polls the parent for messages queued for this node, applies each batch
//!   durably, and acknowledges it with the next poll's `applied_through`. The first poll (and
//!   the first after a failure) does not wait, so the link's state is known at once; the
//!   long polls double as the link's heartbeat in both directions.
//!
//! A failed call is retried after a capped exponential backoff with jitter
//! (`federation.backoff_min` doubling up to `backoff_max`, each delay drawn between half and
//! all of it); success resets it. After a restart nothing special happens: the outbox still
//! holds every unacknowledged message and is simply sent again, and the parent's watermark
//! skips what it already applied. Every call is bounded by a timeout.

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::federation_service_client::FederationServiceClient;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::code::NodeCode;

use super::failpoint;
use super::links;
use super::node::SharedFederation;
use super::wire;
use crate::protocol::message::{Refusal, RefusalKind};

/// Extra time a pull may take beyond the wait it asks for.
const PULL_MARGIN: Duration = Duration::from_secs(10);

/// Capped exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The next delay: between half and all of the current step, which then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Starts the push and pull workers; they stop when `shutdown` turns true.
pub fn spawn(
    fed: SharedFederation,
    channel: Channel,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let Some(parent) = fed.parent.clone() else {
        return Vec::new();
    };
    let client = FederationServiceClient::new(channel)
        .max_decoding_message_size(fed.batch_bytes.saturating_mul(8))
        .max_encoding_message_size(fed.batch_bytes.saturating_mul(8));
    vec![
        tokio::spawn(push_loop(
            fed.clone(),
            client.clone(),
            parent.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(pull_loop(fed, client, parent, shutdown)),
    ]
}

/// Sleeps for `d` unless shutdown comes first; returns whether to go on.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.wait_for(|s| *s) => false,
    }
}

fn describe(s: &tonic::Status) -> String {
    format!("{}: {}", crate::text::code_name(s.code()), s.message())
}

/// A batch read from the outbox and encoded for the wire.
pub struct Prepared {
    /// The link seq it was read after, and that of its last message.
    after: u64,
    last: u64,
    messages: Vec<pb::Envelope>,
    /// Messages too large for any batch, sent withheld: once the parent has moved past them
    /// they are dealt with as refused.
    withheld: Vec<(u64, Refusal)>,
}

/// The messages queued for `parent` after link seq `after` (at most `batch_max`, about
/// `batch_bytes`), encoded; `None` when there are none.
fn prepare(
    fed: &SharedFederation,
    parent: &NodeCode,
    after: u64,
) -> Result<Option<Prepared>, crate::storage::StorageError> {
    let queued = fed
        .store
        .outbox_after(parent, after, fed.config.batch_max, fed.batch_bytes)?;
    let Some(&(last, _)) = queued.last() else {
        return Ok(None);
    };
    let mut withheld = Vec::new();
    let messages = queued
        .iter()
        .map(|(seq, e)| {
            fed.log_sent(*seq, e, parent);
            let envelope = wire::queued_envelope(*seq, e);
            let size = prost::Message::encoded_len(&envelope);
            if size <= fed.batch_bytes {
                return envelope;
            }
            let reason = format!(
                "消息{size}字节，超过链路上限{}字节，未发送",
                fed.batch_bytes
            );
            withheld.push((*seq, Refusal::new(RefusalKind::TooLarge, reason.clone())));
            pb::Envelope {
                prev_seq: Some(e.prev(*seq)),
                ..wire::withheld_envelope(*seq, &e.message, &reason)
            }
        })
        .collect();
    Ok(Some(Prepared {
        after,
        last,
        messages,
        withheld,
    }))
}

/// A call to the parent failed: shown in GetLinks, and alerted once when the parent refuses
/// the calls for good ([`links::permanent`]).
async fn failed(fed: &SharedFederation, parent: &NodeCode, status: &tonic::Status) {
    let error = describe(status);
    let blocked = links::permanent(status.code());
    if fed
        .links
        .failed(parent, fed.clock.now(), error.clone(), blocked)
    {
        tracing::warn!(alert = "link_blocked", peer = %parent, "ALERT: the parent refuses this node's calls: {error}");
        let alert = crate::domain::alert::undelivered(
            fed.me.as_str(),
            parent.as_str(),
            "link",
            "",
            "",
            &error,
            fed.clock.now(),
        );
        if let Err(e) = fed.store.raise_alerts(vec![alert]).await {
            tracing::error!(error = %e, "cannot store the alert of a blocked link");
        }
    }
}

/// The parent applied this node's messages only through `pushed` (as it says in a pull):
/// below what it had acknowledged when the poll was sent (`acked_before`), it was restored
/// from an older copy, and the push loop sends again what is kept after `pushed`. (Only what
/// was acknowledged before the poll counts: a push answered while the poll was out may have
/// been applied after the parent wrote its answer, which then says less without anything
/// lost — `fqsim` found the false alarm.)
pub async fn rewind_if_behind(
    fed: &SharedFederation,
    parent: &NodeCode,
    pushed: u64,
    acked_before: u64,
) {
    let acked = match fed.store.outbox_acked(parent) {
        Ok(a) => a.min(acked_before),
        Err(e) => {
            tracing::error!(error = %e, "cannot read what the parent acknowledged");
            return;
        }
    };
    if pushed >= acked {
        return;
    }
    fed.peer_rewound(parent, acked, pushed).await;
    // Asked before the acknowledgement moves back, whose commit wakes the push loop.
    fed.rewind_parent(pushed);
    if let Err(e) = fed.store.ack(parent, pushed).await {
        tracing::error!(error = %e, "cannot record the parent's watermark");
    }
}

/// The child's side of pushing: what the parent acknowledged, and what to tell it with the
/// next push. The push loop (and the simulation, `fqsim`) drive it: [`ChildPush::batch`]
/// reads the next batch, [`ChildPush::request`] makes it a request, [`ChildPush::answered`]
/// takes the parent's answer.
pub struct ChildPush {
    /// What the parent reported applied: the next batch starts after it (after a restart:
    /// what the store says was acknowledged).
    pub acked: u64,
    /// What to tell the parent with the next push (see `PushRequest.resync`).
    resync: String,
}

/// What a push sent, for its answer.
pub struct PushSent {
    from: u64,
    last: u64,
    withheld: Vec<(u64, Refusal)>,
}

/// What the parent's answer to a push means for the push loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The parent holds less than it acknowledged: sending again from `acked` (any batch read
    /// ahead is stale).
    Rewound,
    /// Taken: what the parent applied may be deleted here (`delete_through`); `partial` when it
    /// applied less than was sent (the rest goes again after a pause).
    Taken { delete_through: u64, partial: bool },
    /// The refusals could not be dealt with: the batch goes again after a pause.
    Retry,
}

impl ChildPush {
    pub fn new(fed: &SharedFederation, parent: &NodeCode) -> ChildPush {
        let acked = match fed.store.outbox_acked(parent) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read what the parent acknowledged; starting over");
                0
            }
        };
        ChildPush {
            acked,
            resync: String::new(),
        }
    }

    /// Takes a rewind the pull side asked for ([`rewind_if_behind`]); true when the push goes
    /// back (a batch read ahead is then stale).
    pub fn take_rewind(&mut self, fed: &SharedFederation, parent: &NodeCode) -> bool {
        let Some(to) = fed.take_parent_rewind().filter(|to| *to < self.acked) else {
            return false;
        };
        self.resync = format!(
            "{parent}此前已确认收到{}的第{}条消息，现只有第{to}条（可能从旧备份恢复或换机）：已重新发送保留的消息",
            fed.me, self.acked
        );
        self.acked = to;
        true
    }

    /// The next batch to push (after what the parent acknowledged), if any.
    pub fn batch(
        &self,
        fed: &SharedFederation,
        parent: &NodeCode,
    ) -> Result<Option<Prepared>, crate::storage::StorageError> {
        prepare(fed, parent, self.acked)
    }

    /// The request carrying `batch` (call once it is durable).
    pub fn request(
        &self,
        fed: &SharedFederation,
        parent: &NodeCode,
        batch: Prepared,
    ) -> (pb::PushRequest, PushSent) {
        let depth = fed.store.outbox_stats(parent).map_or(0, |s| s.len);
        let req = pb::PushRequest {
            messages: batch.messages,
            queue_depth: depth,
            from_seq: Some(batch.after),
            resync: self.resync.clone(),
        };
        let sent = PushSent {
            from: batch.after,
            last: batch.last,
            withheld: batch.withheld,
        };
        (req, sent)
    }

    /// Takes the parent's answer to the push `sent`.
    pub async fn answered(
        &mut self,
        fed: &SharedFederation,
        parent: &NodeCode,
        sent: PushSent,
        resp: pb::PushResponse,
    ) -> PushOutcome {
        let PushSent {
            from,
            last,
            withheld,
        } = sent;
        fed.heard(parent, resp.queue_depth).await;
        failpoint::hit("push-acked");
        self.resync.clear();
        if !resp.resync.is_empty() {
            fed.told_resync(parent, from, &resp.resync).await;
        }
        if resp.applied_through < from {
            // The parent holds less than it acknowledged (restored from an older copy, or
            // replaced): send again what is kept since.
            fed.peer_rewound(parent, from, resp.applied_through).await;
            if let Err(e) = fed.store.ack(parent, resp.applied_through).await {
                tracing::error!(error = %e, "cannot record the parent's watermark");
            }
            self.acked = resp.applied_through;
            return PushOutcome::Rewound;
        }
        if resp.applied_through < last {
            tracing::warn!(
                applied_through = resp.applied_through,
                sent_through = last,
                "the parent applied less than was sent; resending the rest"
            );
        }
        // What the parent refused, and what was withheld, gets its outcome before the
        // acknowledgement deletes it.
        let acked = self.acked;
        let mut refused: Vec<_> = resp
            .refused
            .into_iter()
            .take(fed.config.batch_max)
            .map(wire::refusal_from_proto)
            .filter(|(seq, _)| *seq > acked && *seq <= resp.applied_through)
            .collect();
        refused.extend(
            withheld
                .into_iter()
                .filter(|(seq, _)| *seq <= resp.applied_through),
        );
        if let Err(e) = fed.refused_by_peer(parent, refused).await {
            tracing::error!(error = %e, "cannot deal with refused messages; resending");
            return PushOutcome::Retry;
        }
        self.acked = self.acked.max(resp.applied_through);
        PushOutcome::Taken {
            delete_through: self.acked,
            partial: resp.applied_through < last,
        }
    }
}

async fn push_loop(
    fed: SharedFederation,
    mut client: FederationServiceClient<Channel>,
    parent: NodeCode,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(fed.config.backoff_min, fed.config.backoff_max);
    let mut changes = fed.store.outbox_changes();
    let mut state = ChildPush::new(&fed, &parent);
    // The batch after the one in flight, read and encoded while the parent applies that one
    // (a queue drains at the pace of the parent's writes, not of both ends' in turn). Used
    // only if the parent applied everything before it.
    let mut next: Option<Prepared> = None;
    while !*shutdown.borrow() {
        changes.borrow_and_update();
        // The pull loop found the parent holding less than it acknowledged: send again from
        // there.
        if state.take_rewind(&fed, &parent) {
            next = None;
        }
        let ready = next.take().filter(|p| p.after == state.acked);
        let batch = match ready {
            Some(p) => p,
            None => match state.batch(&fed, &parent) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { break },
                        _ = shutdown.wait_for(|s| *s) => break,
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox for the parent");
                    if !pause(backoff.next_delay(), &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            },
        };
        if let Err(e) = fed.store.wait_durable().await {
            tracing::error!(error = %e, "store failed; the link to the parent stops sending");
            break;
        }
        let last = batch.last;
        let (req, sent) = state.request(&fed, &parent, batch);
        let mut req = tonic::Request::new(req);
        req.set_timeout(fed.config.pull_wait + PULL_MARGIN);
        let push = client.push(req);
        let read_ahead = async {
            // Let the request go out first.
            tokio::task::yield_now().await;
            prepare(&fed, &parent, last)
        };
        let (result, ahead) = tokio::select! {
            r = async { tokio::join!(push, read_ahead) } => r,
            // Dropping a push in flight is safe: whatever the parent applied it skips next time.
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match result {
            Ok(resp) => match state.answered(&fed, &parent, sent, resp.into_inner()).await {
                PushOutcome::Rewound => next = None,
                PushOutcome::Retry => {
                    if !pause(backoff.next_delay(), &mut shutdown).await {
                        break;
                    }
                }
                PushOutcome::Taken {
                    delete_through,
                    partial,
                } => {
                    // A failed read-ahead is simply read again.
                    next = ahead.ok().flatten();
                    let (store, peer) = (fed.store.clone(), parent.clone());
                    tokio::spawn(async move {
                        if let Err(e) = store.ack(&peer, delete_through).await {
                            tracing::error!(error = %e, "cannot delete acknowledged messages");
                        }
                    });
                    backoff.reset();
                    if partial && !pause(backoff.next_delay(), &mut shutdown).await {
                        break;
                    }
                }
            },
            Err(status) => {
                tracing::debug!(error = %describe(&status), "push to the parent failed");
                failed(&fed, &parent, &status).await;
                if !pause(backoff.next_delay(), &mut shutdown).await {
                    break;
                }
            }
        }
    }
}

/// The child's side of pulling: what it refused of the last batch, told with the next poll.
/// The pull loop (and `fqsim`) drive it: [`ChildPull::request`], then
/// [`ChildPull::answered`].
#[derive(Default)]
pub struct ChildPull {
    refused: Vec<pb::Refusal>,
    /// What the parent had acknowledged of this node's messages when the poll went out.
    acked_at_request: u64,
    /// The last poll's number (`PullRequest.poll_seq`).
    poll_seq: u64,
}

impl ChildPull {
    /// The next poll (waiting up to `wait_ms` for messages), and the watermark it carries.
    pub fn request(
        &mut self,
        fed: &SharedFederation,
        parent: &NodeCode,
        wait_ms: u32,
    ) -> Result<(pb::PullRequest, u64), crate::storage::StorageError> {
        let through = fed.store.applied_through(parent)?;
        self.acked_at_request = fed.store.outbox_acked(parent)?;
        let floor = u64::try_from(fed.clock.now().millis())
            .unwrap_or(0)
            .saturating_mul(1000);
        self.poll_seq = (self.poll_seq + 1).max(floor);
        let req = pb::PullRequest {
            applied_through: through,
            max_messages: u32::try_from(fed.config.batch_max).unwrap_or(u32::MAX),
            wait_ms,
            queue_depth: fed.store.outbox_stats(parent).map_or(0, |s| s.len),
            refused: self.refused.clone(),
            crl_number: fed.tls.get().map_or(0, |t| t.crl_number()),
            poll_seq: self.poll_seq,
        };
        Ok((req, through))
    }

    /// Takes the parent's answer to a poll that carried watermark `through`: applies its
    /// messages durably. `Err` says what failed (the poll goes again after a pause).
    pub async fn answered(
        &mut self,
        fed: &SharedFederation,
        parent: &NodeCode,
        through: u64,
        resp: pb::PullResponse,
    ) -> Result<(), String> {
        fed.heard(parent, resp.queue_depth).await;
        if let (false, Some(tls)) = (resp.crl.is_empty(), fed.tls.get()) {
            let (tls, der) = (tls.clone(), resp.crl.clone());
            match tokio::task::spawn_blocking(move || tls.offer_crl(&der)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "refused the CRL the parent sent")
                }
                Err(e) => tracing::warn!(error = %e, "taking the parent's CRL failed"),
            }
        }
        if !resp.resync.is_empty() {
            fed.told_resync(parent, through, &resp.resync).await;
        }
        if let Some(pushed) = resp.pushed_through {
            rewind_if_behind(fed, parent, pushed, self.acked_at_request).await;
        }
        // Told with this poll's success.
        self.refused.clear();
        let batch: Result<Vec<_>, _> = resp
            .messages
            .into_iter()
            .map(|e| wire::received_from_proto(e, fed.batch_bytes.saturating_mul(4)))
            .collect();
        match batch {
            Ok(batch) if batch.is_empty() => Ok(()),
            Ok(batch) => {
                let last = batch.last().map_or(0, |(s, _, _)| *s);
                match fed.apply(parent, batch).await {
                    Ok(applied) if applied.through < last && applied.through == through => Err(
                        format!("gap in the parent's messages after {through}: nothing applied"),
                    ),
                    Ok(applied) => {
                        self.refused = applied
                            .refused
                            .iter()
                            .map(|(seq, r)| wire::refusal_to_proto(*seq, r))
                            .collect();
                        failpoint::hit("pull-applied");
                        if applied.forwarded {
                            failpoint::hit("forward-queued");
                        }
                        Ok(())
                    }
                    Err(e) => Err(format!("applying the parent's messages: {e}")),
                }
            }
            Err(e) => Err(format!("malformed message from the parent: {e}")),
        }
    }
}

async fn pull_loop(
    fed: SharedFederation,
    mut client: FederationServiceClient<Channel>,
    parent: NodeCode,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(fed.config.backoff_min, fed.config.backoff_max);
    let long_wait = u32::try_from(fed.config.pull_wait.as_millis()).unwrap_or(u32::MAX);
    // The first poll, and the first after a failure, returns at once: the link is known to be
    // up (or down) within a round trip instead of a whole wait.
    let mut wait_ms = 0;
    let mut state = ChildPull::default();
    while !*shutdown.borrow() {
        let (req, through) = match state.request(&fed, &parent, wait_ms) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the inbox watermark of the parent link");
                if !pause(backoff.next_delay(), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        let mut req = tonic::Request::new(req);
        req.set_timeout(fed.config.pull_wait + PULL_MARGIN);
        let result = tokio::select! {
            r = client.pull(req) => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let failure = match result {
            Ok(resp) => state
                .answered(&fed, &parent, through, resp.into_inner())
                .await
                .err(),
            Err(status) => {
                failed(&fed, &parent, &status).await;
                Some(String::new())
            }
        };
        match failure {
            None => {
                backoff.reset();
                wait_ms = long_wait;
            }
            Some(error) => {
                wait_ms = 0;
                // A failed call was recorded as it came back (empty here).
                if !error.is_empty() {
                    tracing::debug!(%error, "pull from the parent failed");
                    fed.links.failed(&parent, fed.clock.now(), error, false);
                }
                if !pause(backoff.next_delay(), &mut shutdown).await {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps = [100u64, 200, 400, 800, 800];
        for step in steps {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(step / 2) && d <= Duration::from_millis(step),
                "{d:?} for step {step}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
