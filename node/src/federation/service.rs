//! `fengqiao.v1.FederationService`: the parent's side of the links its children open.
//!
//! Who may call: a node certificate (`spiffe://fengqiao/node/CODE`) whose code's parent is this
//! node. An operator certificate, or any other node — a grandchild, a sibling, a county
//! certificate at a city's sibling — is PERMISSION_DENIED before anything is read. A batch
//! whose link seqs do not ascend is INVALID_ARGUMENT as a whole, changes nothing and raises a
//! `security` alert here. Otherwise each message is taken on its own: one that cannot be read
//! (malformed, too large, of a kind this version does not know) or that fails the checks of
//! what a child may say ([`crate::protocol::trust`]) is refused — the watermark moves past it, nothing
//! else changes — and listed in the answer's `refused`, so the link never stalls on it. The
//! child's refusals of what it pulled come back in its next Pull and are dealt with
//! ([`crate::protocol::apply::refused_by_peer`]) before those messages are deleted.

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::federation_service_server::FederationService;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::code::NodeCode;
use crate::identity::Identity;
use crate::tls::peer_identity;

use super::failpoint;
use super::node::SharedFederation;
use super::wire;
use crate::protocol::message::Received;

pub struct FederationApi {
    fed: SharedFederation,
    shutdown: watch::Receiver<bool>,
}

impl FederationApi {
    pub fn new(fed: SharedFederation, shutdown: watch::Receiver<bool>) -> Self {
        FederationApi { fed, shutdown }
    }

    /// The calling child, if it is one.
    fn child<T>(&self, req: &Request<T>) -> Result<NodeCode, Status> {
        let id = peer_identity(req)?;
        match id {
            Identity::Node { code } if code.parent().as_ref() == Some(&self.fed.me) => Ok(code),
            other => {
                tracing::warn!(caller = %other.uri(), "refused a federation call: not a child of this node");
                Err(crate::error::Error::PermissionDenied(format!(
                    "{} may not link to node {}: only its children's node certificates may",
                    other.uri(),
                    self.fed.me
                ))
                .into())
            }
        }
    }
}

/// A child's whole batch was refused (`why`): logged every time, alerted here once per child.
async fn refused_batch(fed: &SharedFederation, child: &NodeCode, why: &Status) {
    tracing::warn!(child = %child, "refused a batch: {}", why.message());
    let alert = crate::domain::alert::security(
        fed.me.as_str(),
        child.as_str(),
        "batch",
        "",
        "",
        why.message(),
        fed.clock.now(),
    );
    if let Err(e) = fed.store.raise_alerts(vec![alert]).await {
        tracing::error!(error = %e, "cannot store the alert of a refused batch");
    }
}

/// Checks the shape of a child's batch before anything is applied: link seqs ascend. Each
/// message is then checked on its own as it is applied (`trust`).
fn check_batch(batch: &[(u64, Option<u64>, Received)]) -> Result<(), Status> {
    let mut last = 0;
    for (seq, _, _) in batch {
        if *seq <= last {
            return Err(crate::domain::DomainError::invalid(
                "link_seq",
                "must ascend within a batch",
            )
            .into());
        }
        last = *seq;
    }
    Ok(())
}

/// Decodes a batch; a message that cannot be read is refused on its own (`wire`).
fn decode(
    envelopes: Vec<pb::Envelope>,
    max_bytes: usize,
) -> Result<Vec<(u64, Option<u64>, Received)>, Status> {
    envelopes
        .into_iter()
        .map(|e| wire::received_from_proto(e, max_bytes).map_err(Status::from))
        .collect()
}

/// The parent's side of a push from `child` (identified by the caller): the batch is
/// decoded, checked and applied, and the answer says what this node applied. Also what the
/// simulation (`fqsim`) calls for a delivered push.
pub async fn push_received(
    fed: &SharedFederation,
    child: &NodeCode,
    req: pb::PushRequest,
) -> Result<pb::PushResponse, Status> {
    let pb::PushRequest {
        messages,
        queue_depth,
        from_seq,
        resync: told,
    } = req;
    let batch = match decode(messages, fed.batch_bytes).and_then(|b| {
        check_batch(&b)?;
        Ok(b)
    }) {
        Ok(b) => b,
        Err(e) => {
            refused_batch(fed, child, &e).await;
            return Err(e);
        }
    };
    // What the child still holds beyond this batch.
    let remaining = queue_depth.saturating_sub(batch.len() as u64);
    fed.heard(child, remaining).await;
    if !told.is_empty() {
        let at = batch.first().map_or(0, |(seq, _, _)| *seq);
        fed.told_resync(child, at, &told).await;
    }
    // The child sends after what it believes this node applied; this node holding less
    // (restored from an older copy, or replaced) asks for what the child kept since.
    let through = fed.store.applied_through(child)?;
    if let Some(from) = from_seq.filter(|f| *f > through && !batch.is_empty()) {
        let text = format!(
            "本节点只收到{child}的第{through}条消息，对方从第{from}条之后发送（本节点可能从旧备份恢复或换机）：已请其重新发送保留的消息"
        );
        tracing::warn!(alert = "link_resync", child = %child, "ALERT: {text}");
        fed.links.resynced(child, fed.clock.now());
        let alert = crate::domain::alert::link_resync(
            fed.me.as_str(),
            child.as_str(),
            through,
            text,
            fed.clock.now(),
        );
        if let Err(e) = fed.store.raise_alerts(vec![alert]).await {
            tracing::error!(error = %e, "cannot store the alert of a rewound link");
        }
        return Ok(pb::PushResponse {
            applied_through: through,
            queue_depth: fed.store.outbox_stats(child)?.len,
            refused: Vec::new(),
            resync: String::new(),
        });
    }
    let (applied, refused, resync) = if batch.is_empty() {
        (through, Vec::new(), String::new())
    } else if crate::faults::planted(crate::faults::Fault::AckBeforeDurable) {
        let last = batch.last().map_or(through, |(seq, _, _)| *seq);
        fed.defer(child, batch);
        (last.max(through), Vec::new(), String::new())
    } else {
        let applied = fed.apply(child, batch).await?;
        failpoint::hit("push-applied");
        if applied.forwarded {
            failpoint::hit("forward-queued");
        }
        let resync = if applied.resyncs.is_empty() {
            String::new()
        } else {
            format!(
                "上级{}收到的消息与此前不相接（本节点可能换机或从旧备份恢复）：已按新编号接收，此前已收到第{through}条",
                fed.me
            )
        };
        (applied.through, applied.refused, resync)
    };
    Ok(pb::PushResponse {
        applied_through: applied,
        queue_depth: fed.store.outbox_stats(child)?.len,
        refused: refused
            .iter()
            .map(|(seq, r)| wire::refusal_to_proto(*seq, r))
            .collect(),
        resync,
    })
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    #[tracing::instrument(name = "Push", skip_all, fields(child))]
    async fn push(
        &self,
        req: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let child = self.child(&req)?;
        tracing::Span::current().record("child", child.as_str());
        push_received(&self.fed, &child, req.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(name = "Pull", skip_all, fields(child))]
    async fn pull(
        &self,
        req: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        let child = self.child(&req)?;
        tracing::Span::current().record("child", child.as_str());
        let prep = pull_received(&self.fed, &child, req.into_inner()).await?;
        // Recording the acknowledgement need not hold up the next batch.
        if prep.acknowledge {
            let (store, peer, through) =
                (self.fed.store.clone(), child.clone(), prep.applied_through);
            tokio::spawn(async move {
                if let Err(e) = store.ack(&peer, through).await {
                    tracing::error!(error = %e, "cannot record acknowledged messages");
                }
            });
        }
        let fed = &self.fed;
        let deadline = tokio::time::Instant::now() + prep.wait;
        let mut changes = fed.store.outbox_changes();
        let mut shutdown = self.shutdown.clone();
        loop {
            changes.borrow_and_update();
            if let Some(answer) = pull_batch(fed, &child, &prep).await? {
                return Ok(Response::new(answer));
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                r = changes.changed() => if r.is_err() { break },
                _ = shutdown.changed() => {}
            }
        }
        Ok(Response::new(pull_empty(fed, &child, prep)?))
    }
}

/// A child's poll, once taken ([`pull_received`]): what it applied, and what goes back.
pub struct PullPrep {
    /// The child's watermark: what it applied of this node's messages (acknowledge them, then
    /// send what follows).
    pub applied_through: u64,
    /// Whether to acknowledge through `applied_through` (not for a stale poll).
    pub acknowledge: bool,
    max: usize,
    /// How long the poll may wait for messages.
    pub wait: Duration,
    resync: String,
    crl: Vec<u8>,
}

/// The parent's side of a poll from `child`: its refusals are dealt with, a rewound child is
/// noticed. Then the caller acknowledges through [`PullPrep::applied_through`] and answers
/// with [`pull_batch`] (or, when nothing came within the wait, [`pull_empty`]). Also what
/// `fqsim` calls for a delivered poll.
pub async fn pull_received(
    fed: &SharedFederation,
    child: &NodeCode,
    req: pb::PullRequest,
) -> Result<PullPrep, Status> {
    let pb::PullRequest {
        applied_through,
        max_messages,
        wait_ms,
        queue_depth,
        refused,
        crl_number,
        poll_seq,
    } = req;
    // A newer CRL goes down with the answer, whatever it carries.
    let crl = fed
        .tls
        .get()
        .and_then(|t| t.crl_for_children(crl_number))
        .unwrap_or_default();
    fed.heard(child, queue_depth).await;
    let max = match max_messages {
        0 => fed.config.batch_max,
        n => (n as usize).min(fed.config.batch_max),
    };
    let wait = Duration::from_millis(u64::from(wait_ms)).min(fed.config.pull_wait);
    if !fed.take_poll(child, poll_seq) {
        // A stale poll (a later one was taken): what it says the child applied is old news.
        // It is answered from the watermark it carries (the child skips what it has) and
        // acknowledges nothing: the acknowledgement stays where the later poll put it.
        tracing::debug!(child = %child, poll_seq, "stale poll");
        return Ok(PullPrep {
            applied_through,
            acknowledge: false,
            max,
            wait: Duration::ZERO,
            resync: String::new(),
            crl,
        });
    }
    // The child refused some of what it applied: deal with each before it is deleted.
    let refused: Vec<_> = refused
        .into_iter()
        .take(fed.config.batch_max)
        .map(wire::refusal_from_proto)
        .filter(|(seq, _)| *seq <= applied_through)
        .collect();
    fed.refused_by_peer(child, refused).await?;
    // A child that applied less than it acknowledged before was replaced or restored from
    // an older copy: what is kept since goes again (read below from its watermark).
    let acked = fed.store.outbox_acked(child)?;
    let resync = if applied_through < acked {
        fed.peer_rewound(child, acked, applied_through).await;
        format!(
            "上级{}重新发送了第{applied_through}条之后保留的消息（本节点此前已确认到第{acked}条，可能换机或从旧备份恢复）",
            fed.me
        )
    } else {
        String::new()
    };
    Ok(PullPrep {
        applied_through,
        acknowledge: true,
        max,
        wait,
        resync,
        crl,
    })
}

/// The answer to a poll with the messages queued for `child` after its watermark, once they
/// are durable; `None` when there are none.
pub async fn pull_batch(
    fed: &SharedFederation,
    child: &NodeCode,
    prep: &PullPrep,
) -> Result<Option<pb::PullResponse>, Status> {
    let queued = fed
        .store
        .outbox_after(child, prep.applied_through, prep.max, fed.batch_bytes)?;
    if queued.is_empty() {
        return Ok(None);
    }
    fed.store.wait_durable().await?;
    let messages = queued
        .iter()
        .map(|(seq, e)| {
            fed.log_sent(*seq, e, child);
            wire::queued_envelope(*seq, e)
        })
        .collect();
    Ok(Some(pb::PullResponse {
        messages,
        queue_depth: fed.store.outbox_stats(child)?.len,
        resync: prep.resync.clone(),
        pushed_through: Some(fed.store.applied_through(child)?),
        crl: prep.crl.clone(),
    }))
}

/// The answer to a poll when nothing is queued for `child`.
pub fn pull_empty(
    fed: &SharedFederation,
    child: &NodeCode,
    prep: PullPrep,
) -> Result<pb::PullResponse, Status> {
    Ok(pb::PullResponse {
        messages: Vec::new(),
        queue_depth: 0,
        resync: prep.resync,
        pushed_through: Some(fed.store.applied_through(child)?),
        crl: prep.crl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_must_ascend() {
        let w = || Received::Withheld("x".into());
        assert!(check_batch(&[(1, None, w()), (2, None, w())]).is_ok());
        let e = check_batch(&[(2, None, w()), (2, None, w())]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
