//! `fengqiao.v1.FederationService`: the parent's side of the links its children open.
//!
//! Who may call: a node certificate (`spiffe://fengqiao/node/CODE`) whose code's parent is this
//! node. An operator certificate, or any other node — a grandchild, a sibling, a county
//! certificate at a city's sibling — is PERMISSION_DENIED before anything is read. A batch is
//! then checked as a whole before any of it is applied: every message must come from the
//! caller's own subtree (a village cannot speak for another village), a transfer or copy must
//! be of a case its origin owns (per the message), and link seqs must ascend. A violation
//! refuses the whole call with PERMISSION_DENIED (or INVALID_ARGUMENT for malformed input)
//! and changes nothing.

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::federation_service_server::FederationService;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::code::NodeCode;
use crate::identity::Identity;
use crate::tls::peer_identity;

use super::failpoint;
use super::message::{Body, Message};
use super::node::SharedFederation;
use super::route;
use super::wire;

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
                Err(Status::permission_denied(format!(
                    "{} may not link to node {}: only its children's node certificates may",
                    other.uri(),
                    self.fed.me
                )))
            }
        }
    }
}

/// Checks a child's batch before anything is applied.
fn check_batch(child: &NodeCode, batch: &[(u64, Message)]) -> Result<(), Status> {
    let mut last = 0;
    for (seq, m) in batch {
        if *seq <= last {
            return Err(Status::invalid_argument(
                "link_seq must ascend within a batch",
            ));
        }
        last = *seq;
        if !route::in_subtree(child, &m.origin) {
            return Err(Status::permission_denied(format!(
                "message {} claims origin {}, outside the subtree of {child}",
                m.id(),
                m.origin
            )));
        }
        let owner = match &m.body {
            Body::Transfer(t) => Some(&t.case.owner_node),
            Body::Sync(c) => Some(&c.case.owner_node),
            Body::Refused(_)
            | Body::Close { .. }
            | Body::Order(_)
            | Body::Redirect { .. }
            | Body::Alert(_)
            | Body::Sighting(_) => None,
        };
        if let Body::Sighting(s) = &m.body {
            if !route::in_subtree(child, &s.node) || !route::in_subtree(&m.origin, &s.node) {
                return Err(Status::permission_denied(format!(
                    "message {} from {} reports a person in case {} held at {}, outside its subtree",
                    m.id(),
                    m.origin,
                    s.case_id,
                    s.node
                )));
            }
        }
        if let Body::Alert(a) = &m.body {
            if a.node != m.origin.as_str() {
                return Err(Status::permission_denied(format!(
                    "message {} from {} carries an alert raised by {}",
                    m.id(),
                    m.origin,
                    a.node
                )));
            }
        }
        if let Some(owner) = owner.filter(|o| o.as_str() != m.origin.as_str()) {
            return Err(Status::permission_denied(format!(
                "message {} from {} is about case {} owned by {owner}",
                m.id(),
                m.origin,
                m.case_id()
            )));
        }
    }
    Ok(())
}

fn decode(envelopes: Vec<pb::Envelope>) -> Result<Vec<(u64, Message)>, Status> {
    envelopes
        .into_iter()
        .map(|e| wire::envelope_from_proto(e).map_err(Status::from))
        .collect()
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
        let pb::PushRequest {
            messages,
            queue_depth,
        } = req.into_inner();
        let batch = decode(messages)?;
        check_batch(&child, &batch).inspect_err(|e| {
            tracing::warn!(child = %child, "refused a batch: {}", e.message());
        })?;
        // What the child still holds beyond this batch.
        let remaining = queue_depth.saturating_sub(batch.len() as u64);
        self.fed.heard(&child, remaining).await;
        let applied = if batch.is_empty() {
            self.fed.store.applied_through(&child)?
        } else {
            let applied = self.fed.apply(&child, batch).await?;
            failpoint::hit("push-applied");
            if applied.forwarded {
                failpoint::hit("forward-queued");
            }
            applied.through
        };
        Ok(Response::new(pb::PushResponse {
            applied_through: applied,
            queue_depth: self.fed.store.outbox_stats(&child)?.len,
        }))
    }

    #[tracing::instrument(name = "Pull", skip_all, fields(child))]
    async fn pull(
        &self,
        req: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        let child = self.child(&req)?;
        tracing::Span::current().record("child", child.as_str());
        let pb::PullRequest {
            applied_through,
            max_messages,
            wait_ms,
            queue_depth,
        } = req.into_inner();
        let fed = &self.fed;
        fed.heard(&child, queue_depth).await;
        // Deleting what the child applied need not hold up the next batch.
        let (store, peer) = (fed.store.clone(), child.clone());
        tokio::spawn(async move {
            if let Err(e) = store.ack(&peer, applied_through).await {
                tracing::error!(error = %e, "cannot delete acknowledged messages");
            }
        });
        let max = match max_messages {
            0 => fed.config.batch_max,
            n => (n as usize).min(fed.config.batch_max),
        };
        let wait = Duration::from_millis(u64::from(wait_ms)).min(fed.config.pull_wait);
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = fed.store.outbox_changes();
        let mut shutdown = self.shutdown.clone();
        loop {
            changes.borrow_and_update();
            let queued = fed
                .store
                .outbox_after(&child, applied_through, max, fed.batch_bytes)?;
            if !queued.is_empty() {
                fed.store.wait_durable().await?;
                let messages = queued
                    .iter()
                    .map(|(seq, e)| wire::envelope_to_proto(*seq, &e.message))
                    .collect();
                return Ok(Response::new(pb::PullResponse {
                    messages,
                    queue_depth: fed.store.outbox_stats(&child)?.len,
                }));
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
        Ok(Response::new(pb::PullResponse {
            messages: Vec::new(),
            queue_depth: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::domain::machine::tests::{parties, sample_case};
    use crate::federation::message::CaseCopy;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn msg(origin: &str, owner: &str) -> Message {
        let mut case = sample_case(parties());
        case.owner_node = owner.into();
        Message {
            origin: c(origin),
            origin_seq: 1,
            destination: c("610116001"),
            sent_at: Timestamp(0),
            body: Body::Sync(CaseCopy {
                case,
                history: Vec::new(),
            }),
        }
    }

    #[test]
    fn a_child_speaks_only_for_its_subtree_and_its_own_cases() {
        let child = c("610116001001");
        let own = msg("610116001001", "610116001001");
        assert!(check_batch(&child, &[(1, own.clone()), (2, own.clone())]).is_ok());
        let sibling = msg("610116001002", "610116001002");
        let e = check_batch(&child, &[(1, sibling)]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let not_owned = msg("610116001001", "610116001002");
        let e = check_batch(&child, &[(1, not_owned)]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = check_batch(&child, &[(2, own.clone()), (2, own)]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_child_forwards_only_alerts_raised_in_its_subtree_by_their_origin() {
        let child = c("610116001001");
        let alert = |raised_by: &str| {
            let mut m = msg("610116001001", "610116001001");
            m.body = Body::Alert(crate::domain::alert::Alert {
                key: "reopened/x/1".into(),
                kind: crate::domain::alert::AlertKind::Reopened,
                case_ids: vec!["610116001001-20250101-000001".into()],
                node: raised_by.into(),
                raised_at: Timestamp(0),
                message: "m".into(),
                forward_to: Vec::new(),
            });
            m
        };
        assert!(check_batch(&child, &[(1, alert("610116001001"))]).is_ok());
        let forged = check_batch(&child, &[(1, alert("610116001002"))]).unwrap_err();
        assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn a_child_reports_only_people_in_cases_of_its_subtree() {
        let child = c("610116001001");
        let sighting = |origin: &str, held_at: &str| {
            let mut m = msg(origin, origin);
            m.body = Body::Sighting(crate::federation::message::Sighting {
                person: [1; 16],
                case_id: "610116001001-20250101-000001".into(),
                registered_at: Timestamp(0),
                node: c(held_at),
            });
            m
        };
        assert!(check_batch(&child, &[(1, sighting("610116001001", "610116001001"))]).is_ok());
        let e = check_batch(&child, &[(1, sighting("610116001001", "610116001002"))]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        // A township relays its villages' sightings, never another township's.
        let town = c("610116001");
        assert!(check_batch(&town, &[(1, sighting("610116001", "610116001002"))]).is_ok());
        let e = check_batch(&town, &[(1, sighting("610116001", "610116002001"))]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    }
}
