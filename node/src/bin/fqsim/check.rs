//! The invariants, checked after every step where they must always hold, and at quiescence
//! (every fault healed, every queue drained) where the federation must have settled.

use std::collections::{BTreeMap, BTreeSet};

use fengqiao_node::code::NodeCode;
use fengqiao_node::domain::alert::AlertKind;
use fengqiao_node::domain::{Case, CaseStatus, EventKind};

use crate::ops::{FORGED, Truth, subtree};
use crate::world::World;

/// What every node holds of every case: live records and tombstones, by case id.
struct Held {
    live: BTreeMap<String, Vec<(NodeCode, Case)>>,
    tombstones: BTreeMap<String, Vec<(NodeCode, Case)>>,
}

fn held(w: &World) -> Result<Held, String> {
    let mut live: BTreeMap<String, Vec<(NodeCode, Case)>> = BTreeMap::new();
    let mut tombstones: BTreeMap<String, Vec<(NodeCode, Case)>> = BTreeMap::new();
    for code in &w.order {
        let cases = w
            .node(code)
            .state()
            .store
            .cases_after("", None, usize::MAX)
            .map_err(|e| format!("{code}: reading its cases: {e}"))?;
        for c in cases {
            let slot = if c.status == CaseStatus::Transferred {
                &mut tombstones
            } else {
                &mut live
            };
            slot.entry(c.id.clone())
                .or_default()
                .push((code.clone(), c));
        }
    }
    Ok(Held { live, tombstones })
}

/// Whether `code` is in the compromised node's subtree (what it holds is its own affair).
fn forgers(t: &Truth, code: &NodeCode) -> bool {
    t.forger
        .as_ref()
        .is_some_and(|f| f == code || f.is_ancestor_of(code))
}

/// After every step: no case has two live owners; each node's own figures equal a recount.
pub fn always(w: &World, t: &Truth) -> Result<(), String> {
    let h = held(w)?;
    for (id, owners) in &h.live {
        let owners: Vec<&NodeCode> = owners
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !(t.forged.contains(id) && forgers(t, n)))
            .collect();
        if owners.len() > 1 && !t.set_back.contains(id) {
            return Err(format!(
                "case {id} is owned by {} nodes: {owners:?}",
                owners.len()
            ));
        }
    }
    // Messages do not multiply: no link holds more than ten for every action of the run
    // (and a hundred more).
    let bound = 10 * (t.issued.len() + t.acked.len()) as u64 + 100;
    for code in &w.order {
        let store = &w.node(code).state().store;
        for peer in store.outbox_peers().map_err(|e| e.to_string())? {
            let q = store.outbox_stats(&peer).map_err(|e| e.to_string())?;
            // The count of queued messages is the queue's.
            let acked = store.outbox_acked(&peer).map_err(|e| e.to_string())?;
            let queued = store
                .outbox_after(&peer, acked, usize::MAX, usize::MAX)
                .map_err(|e| e.to_string())?
                .len() as u64;
            if queued != q.len {
                return Err(format!(
                    "{code} counts {} messages queued for {peer}, its queue holds {queued}",
                    q.len
                ));
            }
            if q.len > bound {
                return Err(format!(
                    "{code} holds {} messages for {peer}, more than {bound}: messages multiply",
                    q.len
                ));
            }
        }
    }
    for code in &w.order {
        let store = &w.node(code).state().store;
        let open = store
            .count_open()
            .map_err(|e| format!("{code}: figures: {e}"))?;
        let recount = h
            .live
            .values()
            .flatten()
            .filter(|(n, c)| n == code && c.status.is_open())
            .count() as u64;
        if open != recount {
            return Err(format!(
                "{code}'s figures count {open} open cases, a recount {recount}"
            ));
        }
    }
    Ok(())
}

/// At quiescence: everything above, and what must have settled.
pub fn settled(w: &World, t: &Truth) -> Result<(), String> {
    always(w, t)?;
    let h = held(w)?;
    // Each case issued is owned by exactly one node.
    // (A case a forged message was about may also be held in the forger's subtree, which
    // may keep what it likes: there, one owner outside it or one inside.)
    for (id, at) in &t.issued {
        let all = h.live.get(id).map_or(0, Vec::len);
        let outside = h
            .live
            .get(id)
            .map_or(0, |o| o.iter().filter(|(n, _)| !forgers(t, n)).count());
        let owners = if t.forged.contains(id) && all > 0 && outside <= 1 {
            1
        } else {
            all
        };
        if owners != 1 && !t.set_back.contains(id) {
            return Err(format!(
                "case {id} (registered at {at}) is owned by {owners} nodes once traffic settled"
            ));
        }
    }
    // Every tombstone leads to the owner.
    for (id, stones) in &h.tombstones {
        if t.set_back.contains(id) || t.forged.contains(id) {
            continue;
        }
        let Some(owner) = h
            .live
            .get(id)
            .and_then(|o| o.first())
            .map(|(n, _)| n.clone())
        else {
            continue;
        };
        for (at, stone) in stones {
            let mut here = at.clone();
            let mut next = stone.moved_to.clone();
            let mut hops = 0;
            while here != owner {
                hops += 1;
                let Some(to) = next.as_deref().and_then(|m| NodeCode::parse(m).ok()) else {
                    return Err(format!(
                        "case {id}: the tombstone at {here} leads nowhere (owner {owner})"
                    ));
                };
                if hops > 64 {
                    return Err(format!(
                        "case {id}: tombstones from {at} go round in circles"
                    ));
                }
                here = to.clone();
                next = h
                    .tombstones
                    .get(id)
                    .and_then(|s| s.iter().find(|(n, _)| *n == to))
                    .and_then(|(_, c)| c.moved_to.clone());
                let live_here = h
                    .live
                    .get(id)
                    .is_some_and(|o| o.iter().any(|(n, _)| *n == to));
                if !live_here && next.is_none() {
                    return Err(format!(
                        "case {id}: the tombstone at {at} leads to {to}, which holds nothing of it (owner {owner})"
                    ));
                }
            }
        }
    }
    // Supervisors are strict ancestors of the owner and hold its latest copy.
    for (id, owners) in &h.live {
        if t.set_back.contains(id) || t.forged.contains(id) {
            continue;
        }
        for (owner, case) in owners {
            for s in &case.supervising_nodes {
                let Ok(sup) = NodeCode::parse(s) else {
                    return Err(format!(
                        "case {id}: supervisor {s:?} is not a division code"
                    ));
                };
                if !sup.is_ancestor_of(owner) {
                    return Err(format!(
                        "case {id} at {owner}: supervisor {sup} is not its ancestor"
                    ));
                }
                if !w.nodes.contains_key(&sup) {
                    // A tier above the top of this federation: no copy goes there.
                    continue;
                }
                let copy = w
                    .node(&sup)
                    .state()
                    .store
                    .supervised_copy(id)
                    .map_err(|e| format!("{sup}: copy of {id}: {e}"))?;
                match copy {
                    None => {
                        return Err(format!(
                            "case {id} at {owner}: supervisor {sup} holds no copy"
                        ));
                    }
                    Some(c)
                        if c.case.history_len != case.history_len
                            || c.case.updated_at != case.updated_at =>
                    {
                        return Err(format!(
                            "case {id} at {owner}: supervisor {sup} holds a copy of {} events, the owner {}",
                            c.case.history_len, case.history_len
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    // Every acknowledged action is in its case's history exactly once (an order: at most once).
    let mut histories: BTreeMap<String, Vec<fengqiao_node::domain::Event>> = BTreeMap::new();
    for (id, owners) in &h.live {
        if let Some((owner, _)) = owners.first() {
            let history = w
                .node(owner)
                .state()
                .store
                .history(id)
                .map_err(|e| format!("{owner}: history of {id}: {e}"))?;
            histories.insert(id.clone(), history);
        }
    }
    for a in &t.acked {
        if t.set_back.contains(&a.case_id) || t.forged.contains(&a.case_id) {
            continue;
        }
        let Some(history) = histories.get(&a.case_id) else {
            return Err(format!(
                "case {} of an acknowledged action is owned by no one",
                a.case_id
            ));
        };
        let found = history
            .iter()
            .filter(|e| e.detail.contains(&a.token))
            .filter(|e| {
                if a.order {
                    matches!(
                        e.kind,
                        EventKind::TransferredOut
                            | EventKind::Escalated
                            | EventKind::SupervisionOrdered
                    )
                } else {
                    e.kind == a.kind
                }
            })
            .count();
        let ok = if a.order { found <= 1 } else { found == 1 };
        if !ok {
            return Err(format!(
                "case {}: the action {} acknowledged at {} is in its history {found} times",
                a.case_id, a.token, a.node
            ));
        }
    }
    // No alert is raised twice: the same condition, raised at the same moment, is stored
    // once (the store keeps one alert per key; a repeat under another key would show here).
    for code in &w.order {
        let alerts = w
            .node(code)
            .state()
            .store
            .alerts_newest(usize::MAX)
            .map_err(|e| format!("{code}: alerts: {e}"))?;
        let mut seen = BTreeSet::new();
        for a in &alerts {
            let mut ids = a.case_ids.clone();
            ids.sort();
            if !seen.insert((a.kind, ids, a.node.clone(), a.message.clone(), a.raised_at)) {
                return Err(format!(
                    "{code}: alert raised twice: {:?} {}",
                    a.kind, a.message
                ));
            }
        }
    }
    forged_nowhere(w, t)?;
    nothing_lost(w)?;
    // No link is blocked: every queue drained.
    for code in &w.order {
        let store = &w.node(code).state().store;
        for peer in store.outbox_peers().map_err(|e| e.to_string())? {
            let q = store.outbox_stats(&peer).map_err(|e| e.to_string())?;
            if q.len > 0 {
                return Err(format!(
                    "{code}: {} messages for {peer} never delivered",
                    q.len
                ));
            }
        }
    }
    Ok(())
}

/// No link lost a message: a `link_resync` alert says one did, which only a node restored
/// from an older copy excuses (stops and restarts lose nothing). No record was found damaged.
pub fn nothing_lost(w: &World) -> Result<(), String> {
    let restored = w.counts.get("restore").copied().unwrap_or(0) > 0;
    for code in &w.order {
        let alerts = w
            .node(code)
            .state()
            .store
            .alerts_newest(usize::MAX)
            .map_err(|e| format!("{code}: alerts: {e}"))?;
        for a in &alerts {
            match a.kind {
                AlertKind::LinkResync if !restored => {
                    return Err(format!(
                        "{code}: a link lost messages though no node was restored: {}",
                        a.message
                    ));
                }
                AlertKind::Damaged => {
                    return Err(format!("{code}: a damaged record: {}", a.message));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Every step (every 25th: it reads every history): no acknowledged action is in any
/// node's history of its case more than once.
pub fn at_most_once(w: &World, t: &Truth) -> Result<(), String> {
    let mut tokens: BTreeMap<&str, &crate::ops::Acked> = BTreeMap::new();
    for a in &t.acked {
        if !t.set_back.contains(&a.case_id) && !t.forged.contains(&a.case_id) {
            tokens.insert(a.token.as_str(), a);
        }
    }
    for code in &w.order {
        let store = &w.node(code).state().store;
        for c in store
            .cases_after("", None, usize::MAX)
            .map_err(|e| e.to_string())?
        {
            let history = store.history(&c.id).map_err(|e| e.to_string())?;
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &history {
                // The token is the last word of an action's text.
                let Some(start) = e.detail.rfind('〔') else {
                    continue;
                };
                let token = &e.detail[start..];
                let Some(a) = tokens.get(token) else {
                    continue;
                };
                if a.order || e.kind != a.kind {
                    continue;
                }
                let n = seen.entry(token).or_default();
                *n += 1;
                if *n > 1 {
                    return Err(format!(
                        "case {} at {code}: the action {token} acknowledged at {} is in its history twice",
                        c.id, a.node
                    ));
                }
            }
        }
    }
    Ok(())
}

/// No forged message changed anything outside the forger's subtree.
pub fn forged_nowhere(w: &World, t: &Truth) -> Result<(), String> {
    let Some(forger) = &t.forger else {
        return Ok(());
    };
    let mine = subtree(w, forger);
    for code in &w.order {
        if mine.contains(code) {
            continue;
        }
        let store = &w.node(code).state().store;
        for c in store
            .cases_after("", None, usize::MAX)
            .map_err(|e| e.to_string())?
        {
            let history = store.history(&c.id).map_err(|e| e.to_string())?;
            if c.summary.contains(FORGED) || c.reason.contains(FORGED) {
                return Err(format!("{code} holds case {} as forged by {forger}", c.id));
            }
            if let Some(e) = history.iter().find(|e| e.detail.contains(FORGED)) {
                return Err(format!(
                    "case {} at {code}: event {} ({:?}) came from a message forged by {forger}",
                    c.id, e.seq, e.kind
                ));
            }
        }
        for id in &t.forged {
            if let Some(copy) = store.supervised_copy(id).map_err(|e| e.to_string())? {
                if copy.case.summary.contains(FORGED) {
                    return Err(format!("{code} keeps a forged copy of case {id}"));
                }
            }
        }
    }
    Ok(())
}

/// At quiescence: each node's figures, as its statistics push carries them up (the real
/// exchange: every child's entries pushed to its parent, children first), equal a recount
/// over every case record held in its subtree.
pub async fn subtree_figures(w: &World) -> Result<(), String> {
    use fengqiao_node::stats::figures::{self, Figures};
    use fengqiao_node::stats::node::Push;
    use fengqiao_node::stats::query::Period;
    use fengqiao_node::storage::{CaseQuery, Incoming};

    for code in &w.order {
        let state = w.node(code).state();
        state
            .store
            .refresh_overdue(state.clock.now())
            .await
            .map_err(|e| format!("{code}: overdue: {e}"))?;
    }
    for code in w.order.iter().rev() {
        let Some(parent) = code.parent().filter(|p| w.nodes.contains_key(p)) else {
            continue;
        };
        let child = &w.node(code).state().stats;
        let rows = w
            .node(code)
            .state()
            .store
            .stats_changed_since(0, usize::MAX)
            .map_err(|e| format!("{code}: figures: {e}"))?;
        let up = &w.node(&parent).state().stats;
        let push = Push {
            full: true,
            entries: rows
                .into_iter()
                .map(|r| Incoming {
                    kind: r.kind,
                    node: r.node,
                    bucket: r.bucket,
                    version: r.version,
                    cells: r.cells,
                })
                .collect(),
            liveness: child
                .report_for_parent(Some(up.config().retention_depth))
                .map_err(|e| format!("{code}: liveness: {e}"))?,
            sent_at: child.now(),
        };
        up.receive(code, push)
            .await
            .map_err(|e| format!("{parent}: taking {code}'s figures: {e}"))?;
    }
    for code in &w.order {
        let mut expected = Figures::default();
        for n in w
            .order
            .iter()
            .filter(|n| *n == code || code.is_ancestor_of(n))
        {
            let state = w.node(n).state();
            let mut q = CaseQuery {
                page_size: 500,
                ..Default::default()
            };
            let mut cases = Vec::new();
            loop {
                let page = state.store.list_cases(&q).map_err(|e| e.to_string())?;
                cases.extend(page.cases);
                match page.next_page_token {
                    Some(t) => q.page_token = Some(t),
                    None => break,
                }
            }
            for cells in figures::recount(n, &cases).values() {
                expected.add(&cells.total);
            }
            expected.add(&figures::overdue_snapshot(&cases, state.clock.now()).total);
        }
        let got = w
            .node(code)
            .state()
            .stats
            .answer(None, Period::default(), &[])
            .map_err(|e| format!("{code}: figures: {e}"))?
            .totals;
        if got != expected {
            return Err(format!(
                "{code}'s figures differ from a recount of its subtree: {got:?} against {expected:?}"
            ));
        }
    }
    Ok(())
}

/// Folds every node's final state into the trace.
pub fn fold_state(w: &mut World) -> Result<(), String> {
    let mut out = Vec::new();
    for code in w.order.clone() {
        if !w.node(&code).running() {
            continue;
        }
        let store = w.node(&code).state().store.clone();
        out.clear();
        out.extend_from_slice(code.as_str().as_bytes());
        for c in store
            .cases_after("", None, usize::MAX)
            .map_err(|e| e.to_string())?
        {
            out.extend_from_slice(format!("{c:?}").as_bytes());
            for e in store.history(&c.id).map_err(|e| e.to_string())? {
                out.extend_from_slice(format!("{e:?}").as_bytes());
            }
        }
        for a in store.alerts_newest(usize::MAX).map_err(|e| e.to_string())? {
            out.extend_from_slice(format!("{a:?}").as_bytes());
        }
        w.trace.state(&out);
    }
    Ok(())
}
