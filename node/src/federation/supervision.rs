//! Keeping supervising ancestors in sync (提级督办). Pure.
//!
//! A case's `supervising_nodes` lists the ancestors that follow it. Whoever changes a case —
//! an operator command, a federation message, a risk rule — the storage layer calls [`plan`]
//! with the stored and the new version inside the write transaction, and queues what it says:
//!
//! * every node listed on the new version, while the case is owned here, gets a fresh
//!   [`copy_for_supervisor`] (the whole case and history, personal data masked: the owner
//!   holds the full record, a supervisor needs only to follow it);
//! * every node listed before but not any more — dropped from the list, or because the case
//!   moved away — gets a close.
//!
//! The copy's `(epoch, history_len)` orders versions: a supervisor keeps the highest it has
//! seen, so a late or repeated copy never replaces a newer one, and a close only removes a copy
//! of the same or an older epoch. Supervisors are strict ancestors of the owner, so these
//! messages always leave through the owner's parent link.
//!
//! A move keeps that true: the node that installs a moved case (a receiver, or an old owner
//! taking back a refused transfer) brings its supervision in line with the new owner in the
//! same write (`rules::reconcile_owner`: the colour rule re-applied, supervisors that are not
//! ancestors of the new owner dropped, each with an event). So the installing write syncs
//! exactly the supervisors the new owner should have — for a red case moved down from the
//! county, the county itself, which then holds a copy beside its tombstone — while the old
//! owner's tombstone has already sent a close to each of its former supervisors. A supervisor
//! kept across the move gets both; the close carries the old epoch and removes nothing newer.
//! The ancestor filter in [`plan`] stays as a guard against a record that breaks the rule.

use crate::code::NodeCode;
use crate::domain::{Case, CaseStatus, Event, mask};

use super::message::{Body, CaseCopy, Outgoing};

/// What one case write owes the supervisors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The owner (the node writing), when anything is owed.
    pub owner: Option<NodeCode>,
    /// Supervisors to send a fresh copy.
    pub sync: Vec<NodeCode>,
    /// Former supervisors to send a close.
    pub close: Vec<NodeCode>,
}

fn live(case: Option<&Case>) -> Option<&Case> {
    case.filter(|c| c.status != CaseStatus::Transferred)
}

fn codes(case: Option<&Case>) -> Vec<NodeCode> {
    live(case)
        .map(|c| {
            c.supervising_nodes
                .iter()
                .filter_map(|s| NodeCode::parse(s).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Who must hear about the change from `before` to `after`.
pub fn plan(before: Option<&Case>, after: &Case) -> Plan {
    let old = codes(before);
    let new = codes(Some(after));
    if old.is_empty() && new.is_empty() {
        return Plan::default();
    }
    let owner = live(Some(after))
        .or(live(before))
        .and_then(|c| NodeCode::parse(&c.owner_node).ok());
    let Some(owner) = owner else {
        return Plan::default();
    };
    // Only strict ancestors of the owner can follow it (the link goes up).
    let valid = |s: &NodeCode| s.is_ancestor_of(&owner);
    Plan {
        sync: new.iter().filter(|s| valid(s)).cloned().collect(),
        close: old
            .iter()
            .filter(|s| valid(s) && !new.contains(s))
            .cloned()
            .collect(),
        owner: Some(owner),
    }
}

/// The read-only copy a supervisor keeps: parties masked, free text redacted.
pub fn copy_for_supervisor(case: &Case, history: &[Event]) -> CaseCopy {
    let mut copy = mask::mask_case(case);
    for text in [
        &mut copy.description,
        &mut copy.reason,
        &mut copy.guidance,
        &mut copy.agreement,
    ] {
        *text = mask::redact(text, &case.parties);
    }
    CaseCopy {
        case: copy,
        history: history.to_vec(),
    }
}

/// The messages of a [`Plan`], given the new version and its whole history.
pub fn messages(plan: &Plan, after: &Case, history: &[Event]) -> Vec<Outgoing> {
    let Some(owner) = &plan.owner else {
        return Vec::new();
    };
    let Some(parent) = owner.parent() else {
        return Vec::new();
    };
    let epoch = after.epoch;
    let at = after.updated_at;
    let message = |destination: &NodeCode, body: Body| {
        Outgoing::new(owner, parent.clone(), destination.clone(), at, body)
    };
    let mut out = Vec::new();
    if !plan.sync.is_empty() {
        let copy = copy_for_supervisor(after, history);
        for s in &plan.sync {
            out.push(message(s, Body::Sync(copy.clone())));
        }
    }
    for s in &plan.close {
        out.push(message(
            s,
            Body::Close {
                case_id: after.id.clone(),
                epoch,
            },
        ));
    }
    out
}

/// Whether `incoming` is newer than the copy held (`None`: nothing held).
pub fn newer(incoming: &Case, held: Option<&Case>) -> bool {
    held.is_none_or(|h| (incoming.epoch, incoming.history_len) > (h.epoch, h.history_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::machine::tests::{parties, sample_case};

    fn case(owner: &str, sup: &[&str]) -> Case {
        let mut c = sample_case(parties());
        c.owner_node = owner.into();
        c.supervising_nodes = sup.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn nothing_is_owed_without_supervisors() {
        let c = case("610116001001", &[]);
        assert_eq!(plan(None, &c), Plan::default());
        assert_eq!(plan(Some(&c), &c), Plan::default());
    }

    #[test]
    fn listed_supervisors_get_copies_and_dropped_ones_a_close() {
        let before = case("610116001001", &["610116001", "610116"]);
        let after = case("610116001001", &["610116001"]);
        let p = plan(Some(&before), &after);
        assert_eq!(p.sync, vec![NodeCode::parse("610116001").unwrap()]);
        assert_eq!(p.close, vec![NodeCode::parse("610116").unwrap()]);
        let msgs = messages(&p, &after, &[]);
        assert_eq!(msgs.len(), 2);
        assert!(msgs.iter().all(|m| m.next_hop.as_str() == "610116001"));
        match &msgs[0].message.body {
            Body::Sync(copy) => {
                assert_eq!(copy.case.parties[0].name, "张*");
                assert!(!copy.case.description.contains("张三"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_move_closes_every_supervisor_at_the_old_owner() {
        let before = case("610116001001", &["610116001"]);
        let mut tomb = before.clone();
        tomb.status = CaseStatus::Transferred;
        tomb.owner_node = "610116001".into();
        let p = plan(Some(&before), &tomb);
        assert!(p.sync.is_empty());
        assert_eq!(p.close, vec![NodeCode::parse("610116001").unwrap()]);
        assert_eq!(p.owner, Some(NodeCode::parse("610116001001").unwrap()));
    }

    #[test]
    fn versions_order_by_epoch_then_history() {
        let mut a = case("6101", &[]);
        let mut b = a.clone();
        assert!(newer(&a, None));
        assert!(!newer(&a, Some(&b)));
        b.history_len += 1;
        assert!(newer(&b, Some(&a)));
        a.epoch += 1;
        assert!(newer(&a, Some(&b)));
    }
}
