//! The federation RPCs of CaseService: EscalateCase, TransferCase, SuperviseCase, GetLinks,
//! and what GetCase shows of cases owned elsewhere.
//!
//! Who may order which move (also in the README's permission table; the rule is
//! `domain::moves::check_transfer`, the roles are the permission table's):
//!
//! | request | where | who |
//! |---|---|---|
//! | EscalateCase TAKE_OVER / SUPERVISE | at the owner, toward its parent | director, admin |
//! | TransferCase up (to an ancestor) or down (to a descendant) | at the owner | director, admin |
//! | TransferCase sideways (neither above nor below the owner) | at the common ancestor of owner and target, or above | director |
//! | TransferCase of a case owned below (交办 from above, 提级 by the upper tier) | at an ancestor of the owner that is also an ancestor of, or is, the target | director |
//! | SuperviseCase (督办) | at a strict ancestor of the owner | director, admin |
//!
//! A move at the owner is one durable write (tombstone + queued transfer) and is answered with
//! the tombstone. A request at an ancestor is an order: queued durably toward the owner, which
//! checks it again when it arrives (the case may have moved meanwhile) and records it in the
//! history. It is answered with what this node knows of the case: its supervised copy, its
//! tombstone, or — holding nothing yet — only the case id and origin, status UNSPECIFIED.
//!
//! GetCase shows, in this order: the case if owned here; else the supervised copy (read-only,
//! parties masked, `owner_node` naming the owner); else the tombstone (status TRANSFERRED,
//! `moved_to`). ListCases lists only the cases tree (owned cases and tombstones), never copies.

use fengqiao_proto::v1 as pb;
use tonic::Status;

use super::case::CaseApi;
use crate::code::NodeCode;
use crate::convert;
use crate::domain::moves::{self, MoveKind};
use crate::domain::{Case, CaseStatus, Ctx, DomainError, Event};
use crate::error::Error;
use crate::federation::apply::{self, MoveError};
use crate::federation::failpoint;
use crate::federation::links::{LinkView, Role as LinkRole, State};
use crate::federation::message::{Order, OrderKind};
use crate::federation::route::{self, Hop};
use crate::identity::{Identity, Role};

/// What this node holds about a case.
pub(crate) enum View {
    Owned(Case),
    Copy(Case, Vec<Event>),
    Tombstone(Case),
    Nothing,
}

impl CaseApi {
    pub(crate) fn view(&self, id: &str) -> Result<View, Status> {
        let store = &self.state.store;
        let record = store.get_case(id)?;
        if let Some(case) = record
            .as_ref()
            .filter(|c| c.status != CaseStatus::Transferred)
        {
            return Ok(View::Owned(case.clone()));
        }
        if let Some(copy) = store.supervised_copy(id)? {
            return Ok(View::Copy(copy.case, copy.history));
        }
        Ok(record.map_or(View::Nothing, View::Tombstone))
    }

    /// The owner as best known here, for routing an order.
    fn known_owner(&self, id: &str, view: &View) -> Option<NodeCode> {
        match view {
            View::Owned(c) => NodeCode::parse(&c.owner_node).ok(),
            View::Copy(c, _) => NodeCode::parse(&c.owner_node).ok(),
            View::Tombstone(c) => c.moved_to.as_deref().and_then(|m| NodeCode::parse(m).ok()),
            View::Nothing => route::origin_of_case(id),
        }
    }

    /// The answer to an order: what this node knows of the case.
    fn answer(&self, id: &str, view: View, reveal: bool) -> pb::Case {
        let now = self.state.clock.now();
        match view {
            View::Owned(c) | View::Tombstone(c) => convert::case_to_proto(&c, reveal, now),
            View::Copy(c, _) => convert::case_to_proto(&c, false, now),
            View::Nothing => pb::Case {
                id: id.to_owned(),
                origin_node: route::origin_of_case(id)
                    .map(String::from)
                    .unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    /// Moves a case owned here to `to` in one durable write, and answers with the tombstone.
    async fn move_owned(
        &self,
        caller: &Identity,
        id: String,
        to: NodeCode,
        kind: MoveKind,
        reason: String,
    ) -> Result<pb::Case, Status> {
        let fed = self.state.federation.clone();
        if route::next_hop(&fed.me, fed.parent.as_ref(), &to) == Hop::Unroutable {
            return Err(DomainError::Precondition(format!(
                "no route from {} to {to}: this node has no parent link",
                fed.me
            ))
            .into());
        }
        let actor = caller.uri();
        let now = self.state.clock.now();
        let children = fed.known_children();
        let tomb = self
            .state
            .store
            .update_federated(id, move |case, history| {
                let (tomb, events, out) = apply::move_out(
                    &fed.node(now, &children),
                    case,
                    history,
                    &actor,
                    &to,
                    kind,
                    &reason,
                )
                .map_err(|e| match e {
                    MoveError::Domain(d) => d,
                    MoveError::Unroutable => DomainError::invalid(
                        "to_node",
                        format!(
                            "no route to {to}: no link leads there, or no such node \
                                     has ever linked or reported figures below this one"
                        ),
                    ),
                })?;
                Ok((tomb, events, vec![out]))
            })
            .await?;
        failpoint::hit("move-committed");
        tracing::info!(case_id = %tomb.id, to = %tomb.owner_node, epoch = tomb.epoch + 1, "case handed over");
        Ok(convert::case_to_proto(
            &tomb,
            Self::reveals_personal(caller),
            self.state.clock.now(),
        ))
    }

    /// Queues an order toward the owner of a case held elsewhere.
    async fn order(
        &self,
        caller: &Identity,
        id: &str,
        view: &View,
        kind: OrderKind,
    ) -> Result<(), Status> {
        let fed = &self.state.federation;
        let Some(target) = self
            .known_owner(id, view)
            .filter(|t| fed.me.is_ancestor_of(t))
        else {
            return Err(DomainError::Precondition(format!(
                "case {id} is not known to be in the area of node {}; orders go only to cases below it",
                fed.me
            ))
            .into());
        };
        let order = Order {
            id: 0,
            case_id: id.to_owned(),
            actor: caller.uri(),
            redirects: 0,
            kind,
        };
        let children = fed.known_children();
        let out = apply::issue_order(&fed.node(self.state.clock.now(), &children), &target, order)
            .ok_or_else(|| {
                DomainError::Precondition(format!(
                    "no route to {target}: no link leads there, or no such node has ever \
                     linked or reported figures below this one"
                ))
            })?;
        self.state.store.send(vec![out]).await?;
        tracing::info!(case_id = %id, toward = %target, "order queued");
        Ok(())
    }

    pub(crate) async fn escalate(
        &self,
        caller: &Identity,
        req: pb::EscalateCaseRequest,
    ) -> Result<pb::Case, Status> {
        let pb::EscalateCaseRequest {
            case_id,
            mode,
            reason,
        } = req;
        let mode = pb::EscalationMode::try_from(mode)
            .ok()
            .filter(|m| *m != pb::EscalationMode::Unspecified)
            .ok_or_else(|| {
                DomainError::invalid("mode", format!("{mode} is not TAKE_OVER or SUPERVISE"))
            })?;
        let Some(parent) = self.state.federation.parent.clone() else {
            return Err(DomainError::Precondition(format!(
                "node {} has no parent link to escalate to",
                self.state.code
            ))
            .into());
        };
        self.require_owned(&case_id)?;
        match mode {
            pb::EscalationMode::TakeOver | pb::EscalationMode::Unspecified => {
                self.move_owned(caller, case_id, parent, MoveKind::TakeOver, reason)
                    .await
            }
            pb::EscalationMode::Supervise => {
                let node = self.state.code.to_string();
                let actor = caller.uri();
                let deadlines = self.state.deadlines.clone();
                let now = self.state.clock.now();
                let case = self
                    .state
                    .store
                    .update(case_id, move |case| {
                        let ctx = Ctx {
                            now,
                            node: &node,
                            actor: &actor,
                            deadlines: &deadlines,
                        };
                        moves::request_supervision(case, &ctx, parent.as_str(), &reason)
                    })
                    .await?;
                Ok(convert::case_to_proto(
                    &case,
                    Self::reveals_personal(caller),
                    self.state.clock.now(),
                ))
            }
        }
    }

    /// Refuses a request that only the owner may make, saying where the case is.
    fn require_owned(&self, id: &str) -> Result<(), Status> {
        match self.view(id)? {
            View::Owned(_) => Ok(()),
            View::Copy(c, _) | View::Tombstone(c) => Err(DomainError::Precondition(format!(
                "case {id} is owned by node {}, not by {}",
                c.owner_node, self.state.code
            ))
            .into()),
            View::Nothing => Err(Error::NotFound(id.to_owned()).into()),
        }
    }

    pub(crate) async fn transfer(
        &self,
        caller: &Identity,
        req: pb::TransferCaseRequest,
    ) -> Result<pb::Case, Status> {
        let pb::TransferCaseRequest {
            case_id,
            to_node,
            reason,
        } = req;
        let to = NodeCode::parse(&to_node)
            .map_err(|e| DomainError::invalid("to_node", e.to_string()))?;
        let me = self.state.code.clone();
        let view = self.view(&case_id)?;
        let owned_here = matches!(view, View::Owned(_));
        let director = caller.role() == Some(Role::Director);
        moves::check_transfer(&me, &to, &case_id, owned_here, director)?;
        if owned_here {
            return self
                .move_owned(caller, case_id, to, MoveKind::Transfer, reason)
                .await;
        }
        moves::validate_instruction("reason", &reason)?;
        self.order(
            caller,
            &case_id,
            &view,
            OrderKind::Transfer {
                to_node: to,
                reason,
            },
        )
        .await?;
        Ok(self.answer(&case_id, view, Self::reveals_personal(caller)))
    }

    pub(crate) async fn supervise(
        &self,
        caller: &Identity,
        req: pb::SuperviseCaseRequest,
    ) -> Result<pb::Case, Status> {
        let pb::SuperviseCaseRequest {
            case_id,
            instruction,
            due_at,
        } = req;
        moves::validate_instruction("instruction", &instruction)?;
        let due_at = due_at
            .as_ref()
            .map(|t| convert::ts_from_proto("due_at", t))
            .transpose()?;
        if due_at.is_some_and(|d| d <= self.state.clock.now()) {
            return Err(DomainError::invalid("due_at", "must be in the future").into());
        }
        let view = self.view(&case_id)?;
        if let View::Owned(_) = view {
            return Err(DomainError::Precondition(format!(
                "case {case_id} is owned here: supervision orders come from an ancestor"
            ))
            .into());
        }
        self.order(
            caller,
            &case_id,
            &view,
            OrderKind::Supervise {
                instruction,
                due_at,
            },
        )
        .await?;
        Ok(self.answer(&case_id, view, false))
    }

    pub(crate) fn links(&self) -> Result<pb::Links, Status> {
        let fed = &self.state.federation;
        let views = fed
            .links
            .report(&self.state.store, self.state.clock.now())?;
        Ok(pb::Links {
            node: self.state.code.to_string(),
            links: views.iter().map(link_to_proto).collect(),
        })
    }
}

fn link_to_proto(v: &LinkView) -> pb::Link {
    let LinkView {
        peer,
        role,
        state,
        queue_out,
        queue_in,
        oldest_undelivered,
        last_heard,
        silent,
        last_error,
        failing_since,
        refused_in,
        refused_out,
    } = v;
    pb::Link {
        peer: peer.to_string(),
        role: match role {
            LinkRole::Parent => pb::LinkRole::Parent,
            LinkRole::Child => pb::LinkRole::Child,
        } as i32,
        state: match state {
            State::Connected => pb::LinkState::Connected,
            State::BackingOff => pb::LinkState::BackingOff,
            State::NeverConnected => pb::LinkState::NeverConnected,
            State::Blocked => pb::LinkState::Blocked,
        } as i32,
        queue_out: *queue_out,
        queue_in: *queue_in,
        oldest_undelivered_at: oldest_undelivered.map(convert::ts_to_proto),
        last_heard: last_heard.map(convert::ts_to_proto),
        silent: *silent,
        last_error: last_error.clone(),
        failing_since: failing_since.map(convert::ts_to_proto),
        refused_in: *refused_in,
        refused_out: *refused_out,
    }
}
