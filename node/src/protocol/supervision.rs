//! Keeping supervising ancestors in sync (提级督办). Pure.
//!
//! A case's `supervising_nodes` lists the ancestors that follow it. Whoever changes a case —
//! an operator command, a federation message, a risk rule — the storage layer calls [`plan`]
//! with the stored and the new version inside the write transaction, and queues what it says:
//!
//! * every node listed on the new version, while the case is owned here, gets the copy's new
//!   part ([`CaseCopy`]: the case record, personal data masked and free text redacted, and
//!   events of its history; the owner holds the full record, a supervisor needs only to
//!   follow it). A node that was listed on the stored live version of the same epoch already
//!   holds everything up to it — each earlier write sent it its part, and a link delivers
//!   exactly once, in order — so it gets only the events this write appends (a *delta*,
//!   `history_from` = the stored `history_len`). A node that starts following here (newly
//!   listed, or the case was just installed or restored here) gets a *full* copy, from 0;
//! * every node listed before but not any more — dropped from the list, or because the case
//!   moved away — gets a close.
//!
//! No part exceeds [`MESSAGE_BUDGET`]: a copy or delta that would is split ([`split`]) into
//! parts that each carry the case record and a run of events, in order; the supervisor
//! appends each to its copy and the last completes it. A supervisor appends a part only if it
//! continues its copy (`history_from` equal to what it holds, same or newer epoch); a full
//! copy replaces it. A part that does not continue (the copy was lost, or a part missed)
//! makes the supervisor order the owner to send the copy again from where it ends
//! (`OrderKind::ResendCopy`, see `super::apply`): the owner queues [`resend`], changing
//! nothing in the case. A copy from a version before deltas starts at 0: a full copy.
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

use prost::Message as _;

use crate::code::NodeCode;
use crate::convert::{case_to_proto, event_to_proto};
use crate::domain::{Case, CaseStatus, Event, mask};

use super::message::{Body, CaseCopy, MESSAGE_BUDGET, Outgoing};

/// What one case write owes the supervisors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The owner (the node writing), when anything is owed.
    pub owner: Option<NodeCode>,
    /// Supervisors that follow the stored version: they get the events the write appends.
    pub delta: Vec<NodeCode>,
    /// Supervisors that start following here: they get a full copy.
    pub fresh: Vec<NodeCode>,
    /// Former supervisors to send a close.
    pub close: Vec<NodeCode>,
}

impl Plan {
    /// Whether the write owes anyone a copy that needs the stored history.
    pub fn needs_history(&self) -> bool {
        !self.fresh.is_empty()
    }
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
    // The stored version was owned here in the same epoch: its supervisors hold it.
    let continues =
        live(before).is_some_and(|b| b.epoch == after.epoch && b.owner_node == after.owner_node);
    let (delta, fresh) = new
        .iter()
        .filter(|s| valid(s))
        .cloned()
        .partition(|s| continues && old.contains(s));
    Plan {
        delta,
        fresh,
        close: old
            .iter()
            .filter(|s| valid(s) && !new.contains(s))
            .cloned()
            .collect(),
        owner: Some(owner),
    }
}

/// The case record a supervisor keeps: parties masked, free text redacted.
pub fn masked(case: &Case) -> Case {
    // Free text first, against the parties in full; then the parties themselves.
    mask::masked(case)
}

/// The whole read-only copy a supervisor keeps (one part, whatever its size).
pub fn copy_for_supervisor(case: &Case, history: &[Event]) -> CaseCopy {
    let mut case = masked(case);
    case.history_len = history.len() as u64;
    CaseCopy {
        case,
        history: history.to_vec(),
    }
}

/// Room taken by the envelope, the rule list and field tags around a part's case and events.
const ENVELOPE_SLACK: usize = 4096;

/// Encoded size of one event in a part (the event and its field tag and length).
fn event_size(e: &Event) -> usize {
    event_to_proto(e).encoded_len() + 6
}

/// The parts of a copy of `case` (masked already) carrying `events`, the events after
/// `from`: each part carries the case record and a run of events, and is at most `budget`
/// bytes on the wire (a part always carries at least one event, so an event too large for
/// the budget alone — the case data caps rule that out — still goes, in a part of its own).
/// No events: one part with the record alone. A part's `case.history_len` is where its
/// events end, so the supervisor's copy is consistent after each part.
pub fn split(case: &Case, from: u64, events: &[Event], budget: usize) -> Vec<CaseCopy> {
    let record = case_to_proto(case, true, case.updated_at).encoded_len() + ENVELOPE_SLACK;
    let room = budget.saturating_sub(record);
    let mut parts = Vec::new();
    let mut start = 0;
    loop {
        let mut end = start;
        let mut size = 0;
        while let Some(e) = events.get(end) {
            let s = event_size(e);
            if end > start && size + s > room {
                break;
            }
            size += s;
            end += 1;
        }
        let mut part = case.clone();
        part.history_len = from + end as u64;
        parts.push(CaseCopy {
            case: part,
            history: events[start..end].to_vec(),
        });
        if end >= events.len() {
            return parts;
        }
        start = end;
    }
}

/// The messages of a [`Plan`], given the new version, the stored history before the write
/// (`earlier`: needed only when [`Plan::needs_history`]) and the events the write appends.
pub fn messages(plan: &Plan, after: &Case, earlier: &[Event], appended: &[Event]) -> Vec<Outgoing> {
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
    if !plan.delta.is_empty() || !plan.fresh.is_empty() {
        let record = masked(after);
        if !plan.delta.is_empty() {
            let from = after.history_len.saturating_sub(appended.len() as u64);
            let parts = split(&record, from, appended, MESSAGE_BUDGET);
            for s in &plan.delta {
                out.extend(parts.iter().map(|p| message(s, Body::Sync(p.clone()))));
            }
        }
        if !plan.fresh.is_empty() {
            let mut all = earlier.to_vec();
            all.extend_from_slice(appended);
            let parts = split(&record, 0, &all, MESSAGE_BUDGET);
            for s in &plan.fresh {
                out.extend(parts.iter().map(|p| message(s, Body::Sync(p.clone()))));
            }
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

/// The owner's answer to a supervisor's `ResendCopy { from }`: the copy of `case` (owned here,
/// with its whole stored `history`) again from `from`, split as usual; from 0 if `from` lies
/// beyond the history. Nothing if `supervisor` does not follow the case or no link leads up.
pub fn resend(
    owner: &NodeCode,
    supervisor: &NodeCode,
    case: &Case,
    history: &[Event],
    from: u64,
    at: crate::domain::Timestamp,
) -> Vec<Outgoing> {
    let Some(parent) = owner.parent() else {
        return Vec::new();
    };
    if !supervisor.is_ancestor_of(owner)
        || !case
            .supervising_nodes
            .iter()
            .any(|s| s == supervisor.as_str())
    {
        return Vec::new();
    }
    let from = if from > history.len() as u64 { 0 } else { from };
    split(
        &masked(case),
        from,
        &history[from as usize..],
        MESSAGE_BUDGET,
    )
    .into_iter()
    .map(|p| Outgoing::new(owner, parent.clone(), supervisor.clone(), at, Body::Sync(p)))
    .collect()
}

/// What a supervisor does with a part of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Nothing new (an older epoch, or events already held).
    Keep,
    /// The copy to store from now on.
    Put(Box<CaseCopy>),
    /// The part does not continue the copy held, which ends after `have` events.
    Gap { have: u64 },
}

/// A supervisor's answer to `part` given the copy it holds (always a whole copy, from 0).
///
/// * From 0 (a full copy or its first part; all copies of older versions): replaces the copy
///   when newer by `(epoch, history_len)` ([`newer`]), so a repeated or late copy changes
///   nothing. A first part no longer than the copy held is kept out, and loses nothing: its
///   events are the copy's own (history only grows), and the next parts, which end beyond the
///   copy (every write appends events), are appended with the newer record.
/// * Otherwise, of an epoch not older than the copy: appended when it starts where the copy
///   ends (its events beyond the copy, where it overlaps — a resend asked twice); a
///   [`Received::Gap`] when it starts beyond (or nothing is held). History only grows, across
///   moves too, so events already held never change.
pub fn receive(part: &CaseCopy, held: Option<&CaseCopy>) -> Received {
    let from = part.history_from();
    // A copy is consistent when its history is its record's; anything else is rebuilt.
    let held = held.filter(|h| h.history.len() as u64 == h.case.history_len);
    if from == 0 {
        return if newer(&part.case, held.map(|h| &h.case)) {
            Received::Put(Box::new(part.clone()))
        } else {
            Received::Keep
        };
    }
    let Some(held) = held else {
        return Received::Gap { have: 0 };
    };
    if part.case.epoch < held.case.epoch {
        return Received::Keep;
    }
    let have = held.case.history_len;
    if from > have {
        return Received::Gap { have };
    }
    if part.case.history_len <= have {
        return Received::Keep;
    }
    let mut history = held.history.clone();
    history.extend(part.history.iter().filter(|e| e.seq > have).cloned());
    Received::Put(Box::new(CaseCopy {
        case: part.case.clone(),
        history,
    }))
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
        // The township followed the stored version of the same epoch: it gets what the write
        // appends (here nothing but the record).
        assert_eq!(p.delta, vec![NodeCode::parse("610116001").unwrap()]);
        assert!(p.fresh.is_empty());
        assert_eq!(p.close, vec![NodeCode::parse("610116").unwrap()]);
        let msgs = messages(&p, &after, &[], &[]);
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
        assert!(p.delta.is_empty() && p.fresh.is_empty());
        assert_eq!(p.close, vec![NodeCode::parse("610116001").unwrap()]);
        assert_eq!(p.owner, Some(NodeCode::parse("610116001001").unwrap()));
    }

    /// `n` events numbered from `from + 1`, each with `detail_chars` of detail.
    fn events(from: u64, n: u64, detail_chars: usize) -> Vec<Event> {
        let base = sample_case(parties());
        (from + 1..=from + n)
            .map(|seq| Event {
                seq,
                at: base.updated_at,
                node: base.owner_node.clone(),
                actor: "spiffe://fengqiao/op/610116001001/mediator/li".into(),
                kind: crate::domain::EventKind::Mediation,
                from_status: None,
                to_status: base.status,
                detail: "调".repeat(detail_chars),
            })
            .collect()
    }

    /// A case record (history_len as given) and its whole copy.
    fn whole(len: u64) -> CaseCopy {
        let mut c = masked(&case("610116001001", &["610116"]));
        c.history_len = len;
        CaseCopy {
            case: c,
            history: events(0, len, 10),
        }
    }

    fn wire_size(part: &CaseCopy) -> usize {
        let m = super::super::message::Message {
            origin: NodeCode::parse("610116001001").unwrap(),
            destination: NodeCode::parse("610116").unwrap(),
            origin_seq: u64::MAX,
            sent_at: part.case.updated_at,
            body: Body::Sync(part.clone()),
        };
        crate::federation::wire::envelope_to_proto(u64::MAX, &m).encoded_len()
    }

    #[test]
    fn a_write_sends_followers_a_delta_and_newcomers_the_whole_copy() {
        let before = case("610116001001", &["610116001"]);
        let mut after = before.clone();
        after.supervising_nodes = vec!["610116001".into(), "610116".into()];
        after.history_len = before.history_len + 1;
        let p = plan(Some(&before), &after);
        assert_eq!(p.delta, [NodeCode::parse("610116001").unwrap()]);
        assert_eq!(p.fresh, [NodeCode::parse("610116").unwrap()]);
        assert!(p.needs_history());
        let earlier = events(0, before.history_len, 10);
        let appended = events(before.history_len, 1, 10);
        let msgs = messages(&p, &after, &earlier, &appended);
        let copies: Vec<_> = msgs
            .iter()
            .map(|m| match &m.message.body {
                Body::Sync(c) => (
                    m.message.destination.to_string(),
                    c.history_from(),
                    c.history.len(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            copies,
            [
                ("610116001".to_owned(), before.history_len, 1),
                ("610116".to_owned(), 0, after.history_len as usize)
            ]
        );
        // A case just installed here (the stored version a tombstone): everyone starts afresh.
        let mut tomb = before.clone();
        tomb.status = CaseStatus::Transferred;
        let mut back = before.clone();
        back.epoch += 1;
        assert!(plan(Some(&tomb), &back).delta.is_empty());
    }

    #[test]
    fn long_histories_are_split_into_parts_within_the_budget() {
        // 400 entries of 2,000 characters: about 2.4 MB of history.
        let all = events(0, 400, 2_000);
        let record = masked(&case("610116001001", &["610116"]));
        let parts = split(&record, 0, &all, MESSAGE_BUDGET);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let mut next = 0;
        for p in &parts {
            assert!(wire_size(p) <= MESSAGE_BUDGET, "{} bytes", wire_size(p));
            assert_eq!(p.history_from(), next, "parts follow each other");
            next = p.case.history_len;
        }
        assert_eq!(next, 400);
        // Nothing appended: one part with the record alone.
        let lone = split(&record, 7, &[], MESSAGE_BUDGET);
        assert_eq!(lone.len(), 1);
        assert_eq!((lone[0].history_from(), lone[0].case.history_len), (7, 7));
    }

    #[test]
    fn a_supervisor_appends_parts_that_continue_and_asks_again_after_a_gap() {
        let held = whole(3);
        // A delta that continues.
        let mut next = held.case.clone();
        next.history_len = 5;
        let delta = CaseCopy {
            case: next.clone(),
            history: events(3, 2, 10),
        };
        let Received::Put(grown) = receive(&delta, Some(&held)) else {
            panic!("appended")
        };
        assert_eq!((grown.case.history_len, grown.history.len()), (5, 5));
        // The same delta again (a resend asked twice): nothing new.
        assert_eq!(receive(&delta, Some(&grown)), Received::Keep);
        // A part that starts beyond the copy: ask from where the copy ends.
        let mut later = next.clone();
        later.history_len = 9;
        let gap = CaseCopy {
            case: later,
            history: events(7, 2, 10),
        };
        assert_eq!(receive(&gap, Some(&held)), Received::Gap { have: 3 });
        // Nothing held (the copy was lost): only a full copy will do.
        assert_eq!(receive(&delta, None), Received::Gap { have: 0 });
        // A full copy replaces what is held when newer, and only then.
        let full = whole(4);
        assert_eq!(
            receive(&full, Some(&held)),
            Received::Put(Box::new(full.clone()))
        );
        assert_eq!(receive(&whole(2), Some(&held)), Received::Keep);
        let mut newer_epoch = held.clone();
        newer_epoch.case.epoch += 1;
        assert_eq!(receive(&full, Some(&newer_epoch)), Received::Keep);
        // A delta of an older epoch is ignored.
        assert_eq!(receive(&delta, Some(&newer_epoch)), Received::Keep);
    }

    #[test]
    fn the_owner_resends_only_to_a_listed_supervisor() {
        let owner = NodeCode::parse("610116001001").unwrap();
        let county = NodeCode::parse("610116").unwrap();
        let c = case("610116001001", &["610116"]);
        let history = events(0, 4, 10);
        let out = resend(&owner, &county, &c, &history, 2, c.updated_at);
        assert_eq!(out.len(), 1);
        match &out[0].message.body {
            Body::Sync(copy) => assert_eq!((copy.history_from(), copy.history.len()), (2, 2)),
            other => panic!("{other:?}"),
        }
        // Beyond the history: the whole copy.
        let out = resend(&owner, &county, &c, &history, 99, c.updated_at);
        match &out[0].message.body {
            Body::Sync(copy) => assert_eq!(copy.history_from(), 0),
            other => panic!("{other:?}"),
        }
        // Not a supervisor of the case, or not an ancestor: nothing.
        let city = NodeCode::parse("6101").unwrap();
        assert!(resend(&owner, &city, &c, &history, 0, c.updated_at).is_empty());
        let sibling = NodeCode::parse("610116001002").unwrap();
        assert!(resend(&owner, &sibling, &c, &history, 0, c.updated_at).is_empty());
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
