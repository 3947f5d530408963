//! Moves of cases across the tiers: escalation, transfer (at the owner, or ordered from
//! above), supervision orders, the links, and what this node holds of cases owned elsewhere.
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

use super::{App, Shown};
use crate::code::NodeCode;
use crate::domain::moves::{self, MoveKind};
use crate::domain::{Case, CaseStatus, Ctx, DomainError, Event, Timestamp};
use crate::error::Error;
use crate::federation::failpoint;
use crate::federation::links::LinkView;
use crate::identity::{Action, Identity, Role};
use crate::protocol::apply::{self, MoveError};
use crate::protocol::message::{Order, OrderKind};
use crate::protocol::route::{self, Hop};

/// What this node holds about a case.
pub(crate) enum View {
    Owned(Case),
    Copy(Case, Vec<Event>),
    Tombstone(Case),
    Nothing,
}

/// How a case goes up (EscalateCase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// 提级办理: the parent takes the case over.
    TakeOver,
    /// 提请督办: the parent follows it; it stays here.
    Supervise,
}

/// What this node knows of a case after it queued an order about it: its copy or tombstone,
/// or — holding nothing yet — only the id and where it was registered.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    Held(Box<Shown>),
    Nothing {
        id: String,
        origin: Option<NodeCode>,
    },
}

impl App {
    pub(crate) fn view(&self, id: &str) -> Result<View, Error> {
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
    fn known(&self, reveal: bool, id: &str, view: View) -> Known {
        match view {
            View::Owned(c) | View::Tombstone(c) => Known::Held(Box::new(Shown { case: c, reveal })),
            View::Copy(c, _) => Known::Held(Box::new(Shown {
                case: c,
                reveal: false,
            })),
            View::Nothing => Known::Nothing {
                id: id.to_owned(),
                origin: route::origin_of_case(id),
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
    ) -> Result<Shown, Error> {
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
        Ok(self.shown(caller, tomb))
    }

    /// Queues an order toward the owner of a case held elsewhere.
    async fn order(
        &self,
        caller: &Identity,
        id: &str,
        view: &View,
        kind: OrderKind,
    ) -> Result<(), Error> {
        // The owner refuses an order about an id no case can have: refused here, before it
        // is queued and the caller told it is on its way.
        crate::storage::check_message_case_id(id)?;
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

    /// Escalates a case owned here to the parent (提级办理 or 提请督办).
    pub async fn escalate(
        &self,
        caller: &Identity,
        case_id: String,
        mode: Escalation,
        reason: String,
    ) -> Result<Shown, Error> {
        self.authorize(caller, Action::EscalateCase)?;
        let Some(parent) = self.state.federation.parent.clone() else {
            return Err(DomainError::Precondition(format!(
                "node {} has no parent link to escalate to",
                self.state.code
            ))
            .into());
        };
        self.require_owned(&case_id)?;
        match mode {
            Escalation::TakeOver => {
                self.move_owned(caller, case_id, parent, MoveKind::TakeOver, reason)
                    .await
            }
            Escalation::Supervise => {
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
                Ok(self.shown(caller, case))
            }
        }
    }

    /// Refuses a request that only the owner may make, saying where the case is.
    fn require_owned(&self, id: &str) -> Result<(), Error> {
        match self.view(id)? {
            View::Owned(_) => Ok(()),
            View::Copy(c, _) | View::Tombstone(c) => Err(DomainError::Precondition(format!(
                "case {id} is owned by node {}, not by {}",
                c.owner_node, self.state.code
            ))
            .into()),
            View::Nothing => Err(Error::NotFound(id.to_owned())),
        }
    }

    /// Moves a case to `to_node` (a division code): at the owner up or down, from above by an
    /// order (see [`moves::check_transfer`]). Answers with the tombstone, or with what this
    /// node knows of a case owned elsewhere.
    pub async fn transfer(
        &self,
        caller: &Identity,
        case_id: String,
        to_node: &str,
        reason: String,
    ) -> Result<Known, Error> {
        self.authorize(caller, Action::TransferCase)?;
        let to =
            NodeCode::parse(to_node).map_err(|e| DomainError::invalid("to_node", e.to_string()))?;
        let me = self.state.code.clone();
        let view = self.view(&case_id)?;
        let owned_here = matches!(view, View::Owned(_));
        let director = caller.role() == Some(Role::Director);
        moves::check_transfer(&me, &to, &case_id, owned_here, director)?;
        if owned_here {
            return self
                .move_owned(caller, case_id, to, MoveKind::Transfer, reason)
                .await
                .map(|s| Known::Held(Box::new(s)));
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
        Ok(self.known(Self::reveals_personal(caller), &case_id, view))
    }

    /// 督办: orders the owner of a case below this node to follow `instruction` (by `due_at`);
    /// this node then supervises it.
    pub async fn supervise(
        &self,
        caller: &Identity,
        case_id: String,
        instruction: String,
        due_at: Option<Timestamp>,
    ) -> Result<Known, Error> {
        self.authorize(caller, Action::SuperviseCase)?;
        moves::validate_instruction("instruction", &instruction)?;
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
        Ok(self.known(false, &case_id, view))
    }

    /// The links of this node, as GetLinks and `fqctl links` show them.
    pub fn links(&self, who: &Identity) -> Result<Vec<LinkView>, Error> {
        self.authorize(who, Action::ReadLinks)?;
        Ok(self
            .state
            .federation
            .links
            .report(&self.state.store, self.now())?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::Policy;
    use crate::service::NodeState;

    const TOWNSHIP: &str = "610116001";
    const VILLAGE: &str = "610116001001";

    /// Found by fuzzing the operator API: an order about a case id the owner refuses on
    /// arrival (over 128 bytes, or with a NUL) was queued, and the caller told it was on its
    /// way.
    #[tokio::test]
    async fn an_order_about_a_case_id_no_node_accepts_is_invalid_and_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp(1_714_521_600_000)));
        let state = NodeState::for_tests(dir.path(), TOWNSHIP, clock, Policy::default(), None);
        let village = NodeCode::parse(VILLAGE).unwrap();
        state
            .federation
            .links
            .heard(&village, Timestamp(1_714_521_600_000), 0);
        let app = App::new(Arc::new(state));
        let director =
            Identity::operator(NodeCode::parse(TOWNSHIP).unwrap(), Role::Director, "wang").unwrap();
        for id in [
            format!("{VILLAGE}-{}", "x".repeat(200)),
            format!("{VILLAGE}-a\0b"),
        ] {
            let e = app
                .supervise(&director, id.clone(), "请尽快办理".into(), None)
                .await
                .unwrap_err();
            assert!(
                matches!(e, Error::Domain(DomainError::InvalidArgument { .. })),
                "{e}"
            );
            let e = app
                .transfer(&director, id, VILLAGE, "交村办理".into())
                .await
                .unwrap_err();
            assert!(
                matches!(e, Error::Domain(DomainError::InvalidArgument { .. })),
                "{e}"
            );
        }
        assert_eq!(app.state.store.outbox_stats(&village).unwrap().len, 0);
        // A well-formed id of a case below is ordered as before.
        let ok = format!("{VILLAGE}-20240501-000001");
        app.supervise(&director, ok, "请尽快办理".into(), None)
            .await
            .unwrap();
        assert_eq!(app.state.store.outbox_stats(&village).unwrap().len, 1);
    }
}
