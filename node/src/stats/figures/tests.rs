use rand::Rng;

use super::*;
use crate::domain::{Category, Command, Confirmation, MediationType, machine};
use crate::stats::workload::{self, START};

fn code(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

const VILLAGE: &str = "610116001001";
const TOWNSHIP: &str = "610116001";
const COUNTY: &str = "610116";

fn step(case: &Case, node: &str, now: Timestamp, cmd: &Command) -> Case {
    match machine::apply(case, &workload::ctx(node, now), cmd) {
        Ok((next, _)) => next,
        Err(e) => panic!("{} refused: {e}", cmd.action()),
    }
}

fn resolve(ok: bool) -> Command {
    Command::Resolve {
        resolved: ok,
        agreement: "协议".into(),
        settled_amount_fen: if ok { 120_000 } else { 0 },
        confirmation: Confirmation::Judicial,
    }
}

fn accept() -> Command {
    Command::Review {
        accept: true,
        reason: String::new(),
        guidance: String::new(),
    }
}

fn follow_up(score: u8) -> Command {
    Command::FollowUp {
        satisfaction: score,
        notes: String::new(),
    }
}

/// What a node holding a record of the case would hand over, as the federation does: the
/// sender keeps a tombstone, the receiver the live case.
fn moved(case: &Case, to: &str) -> (Case, Case) {
    let mut tombstone = case.clone();
    tombstone.status = CaseStatus::Transferred;
    tombstone.moved_to = Some(to.into());
    tombstone.epoch += 1;
    let mut live = case.clone();
    live.owner_node = to.into();
    live.epoch += 1;
    (tombstone, live)
}

fn total(b: &Buckets, period_only: bool) -> Figures {
    let mut f = Figures::default();
    for (bucket, cells) in b {
        if !(period_only && *bucket == CURRENT) {
            f.add(&cells.total);
        }
    }
    f
}

#[test]
fn a_registration_counts_where_it_is_registered() {
    let mut rng = workload::rng(1);
    let mut new = workload::new_case(&mut rng, "k");
    new.amount_fen = 440_000;
    new.category = Category::Labor;
    let case = workload::register(VILLAGE, &new, 1, START);
    let b = recount(&code(VILLAGE), [&case]);
    let month = &b[&202501];
    assert_eq!(month.total.received, 1);
    assert_eq!(month.total.amount_received_fen, 440_000);
    assert_eq!(month.total.accepted, 0);
    let labor = Cell {
        dim: Dim::Category,
        value: Category::Labor.code(),
    };
    assert_eq!(month.by[&labor].received, 1);
    let none = Cell {
        dim: Dim::MediationType,
        value: 0,
    };
    assert_eq!(month.by[&none].received, 1, "no mediation type yet");
    assert_eq!(month.by.len(), 4, "one cell per dimension");
    let now = &b[&CURRENT].total;
    assert_eq!((now.open, now.unreviewed, now.overdue_review), (1, 1, 0));
}

#[test]
fn outcomes_fall_in_the_month_they_happen() {
    let mut rng = workload::rng(2);
    let case = workload::register(VILLAGE, &workload::new_case(&mut rng, "k"), 1, START);
    let feb = Timestamp(START.0 + 20 * 86_400_000); // 2025-02-04
    let mar = Timestamp(START.0 + 50 * 86_400_000); // 2025-03-06
    let case = step(&case, VILLAGE, START, &accept());
    let case = step(&case, VILLAGE, feb, &resolve(true));
    let resolved = recount(&code(VILLAGE), [&case]);
    assert_eq!(resolved[&202501].total.accepted, 1);
    assert_eq!(resolved[&202502].total.resolved, 1);
    assert_eq!(resolved[&202502].total.settled_fen, 120_000);
    assert_eq!(resolved[&202502].total.resolved_village, 1);
    assert_eq!(resolved[&202502].total.resolution_ms_total, 20 * 86_400_000);
    assert_eq!(resolved[&CURRENT].total.awaiting_follow_up, 1);

    // A dissatisfied follow-up reopens: the resolution is undone, the reopen counted.
    let reopened = step(&case, VILLAGE, mar, &follow_up(1));
    let b = recount(&code(VILLAGE), [&reopened]);
    assert!(!b.contains_key(&202502), "{b:?}");
    assert_eq!(b[&202501].total.reopened, 1);
    assert_eq!(b[&202501].total.satisfaction_count, 1);
    assert_eq!(b[&CURRENT].total.open, 1);

    // Unresolved, then closed by a satisfied follow-up: unresolved and closed in March.
    let failed = step(&reopened, VILLAGE, mar, &resolve(false));
    let closed = step(&failed, VILLAGE, mar, &follow_up(4));
    let b = recount(&code(VILLAGE), [&closed]);
    let m = &b[&202503].total;
    assert_eq!((m.resolved, m.unresolved, m.closed), (0, 1, 1));
    assert_eq!(b[&202501].total.satisfaction_total, 4);
    assert!(
        !b.contains_key(&CURRENT),
        "nothing current about a closed case"
    );
}

#[test]
fn a_moved_case_is_counted_once() {
    let mut rng = workload::rng(3);
    let case = workload::register(VILLAGE, &workload::new_case(&mut rng, "k"), 1, START);
    let case = step(&case, VILLAGE, START, &accept());
    // 提级办理: the village escalates to the township, which resolves it.
    let (at_village, at_township) = moved(&case, TOWNSHIP);
    let at_township = step(&at_township, TOWNSHIP, START, &resolve(true));
    let v = recount(&code(VILLAGE), [&at_village]);
    let t = recount(&code(TOWNSHIP), [&at_township]);
    let (v, t) = (total(&v, false), total(&t, false));
    assert_eq!(
        (v.received, v.escalated_out, v.accepted, v.resolved),
        (1, 1, 0, 0)
    );
    assert_eq!(
        (t.received, t.escalated_in, t.accepted, t.resolved),
        (0, 1, 1, 1)
    );
    assert_eq!((t.resolved_township, t.resolved_village), (1, 0));
    assert_eq!(v.open + t.open, 0);

    // 交办: the county sends one of its own cases down to the village.
    let case = workload::register(COUNTY, &workload::new_case(&mut rng, "k2"), 1, START);
    let (at_county, at_village) = moved(&case, VILLAGE);
    let c = total(&recount(&code(COUNTY), [&at_county]), false);
    let v = total(&recount(&code(VILLAGE), [&at_village]), false);
    assert_eq!((c.received, c.transferred_out, c.open), (1, 1, 0));
    assert_eq!((v.received, v.transferred_in, v.open), (0, 1, 1));
}

#[test]
fn delta_keeps_an_incremental_contribution_equal_to_the_recount() {
    let holder = code(TOWNSHIP);
    let mut rng = workload::rng(4);
    let mut cases: Vec<Case> = Vec::new();
    let mut kept = Buckets::new();
    let mut now = START;
    for i in 0..400u32 {
        now = Timestamp(now.0 + rng.random_range(0..6 * 3_600_000));
        let before = if cases.is_empty() || rng.random_bool(0.25) {
            let new = workload::new_case(&mut rng, &format!("k{i}"));
            cases.push(workload::register(TOWNSHIP, &new, i + 1, now));
            None
        } else {
            let idx = rng.random_range(0..cases.len());
            let before = cases[idx].clone();
            match machine::apply(
                &before,
                &workload::ctx(TOWNSHIP, now),
                &workload::command(&mut rng),
            ) {
                Ok((after, _)) => cases[idx] = after,
                Err(_) => continue,
            }
            Some(before)
        };
        let after = if before.is_some() {
            cases
                .iter()
                .find(|c| Some(&c.id) == before.as_ref().map(|b| &b.id))
        } else {
            cases.last()
        };
        for (bucket, d) in delta(&holder, before.as_ref(), after) {
            let cells = kept.entry(bucket).or_default();
            cells.merge(&d, true);
            if cells.is_zero() {
                kept.remove(&bucket);
            }
        }
        assert_eq!(kept, recount(&holder, &cases), "after step {i}");
    }
    let t = total(&kept, false);
    assert!(
        t.received > 50 && t.accepted > 10 && t.resolved + t.unresolved > 5,
        "{t:?}"
    );
    // Every dimension partitions the total.
    for cells in kept.values() {
        for dim in Dim::ALL {
            let mut sum = Figures::default();
            for (_, f) in cells.by.iter().filter(|(c, _)| c.dim == dim) {
                sum.add(f);
            }
            assert_eq!(sum, cells.total, "{dim:?}");
        }
    }
}

#[test]
fn overdue_is_a_snapshot_that_replaces_the_previous_one() {
    let mut rng = workload::rng(5);
    let a = workload::register(VILLAGE, &workload::new_case(&mut rng, "a"), 1, START);
    let b = step(
        &workload::register(VILLAGE, &workload::new_case(&mut rng, "b"), 2, START),
        VILLAGE,
        START,
        &accept(),
    );
    let soon = Timestamp(START.0 + 3 * 86_400_000); // review (2 days) overdue, resolve not
    let late = Timestamp(START.0 + 30 * 86_400_000); // both overdue
    let s1 = overdue_snapshot([&a, &b], soon);
    assert_eq!((s1.total.overdue_review, s1.total.overdue_resolve), (1, 0));
    let s2 = overdue_snapshot([&a, &b], late);
    assert_eq!((s2.total.overdue_review, s2.total.overdue_resolve), (1, 1));

    // A resolved case runs its follow-up deadline (7 days): overdue as a follow-up, not as a
    // resolution.
    let c = step(&b, VILLAGE, START, &resolve(true));
    let s3 = overdue_snapshot([&c], late);
    assert_eq!(
        (s3.total.overdue_resolve, s3.total.overdue_follow_up),
        (0, 1)
    );
    assert_eq!(overdue_snapshot([&c], soon).total.overdue_follow_up, 0);

    let mut current = recount(&code(VILLAGE), [&a, &b]).remove(&CURRENT).unwrap();
    let plain = current.clone();
    current.replace_overdue(&s1);
    current.replace_overdue(&s2);
    assert_eq!(current.total.overdue_resolve, 1);
    assert_eq!(current.total.open, 2, "other figures untouched");
    current.replace_overdue(&Cells::default());
    assert_eq!(
        current, plain,
        "clearing the overdue figures restores the rest"
    );
}

#[test]
fn mediation_type_moves_a_case_between_cells() {
    let mut rng = workload::rng(6);
    let case = step(
        &workload::register(VILLAGE, &workload::new_case(&mut rng, "a"), 1, START),
        VILLAGE,
        START,
        &accept(),
    );
    let mediated = step(
        &case,
        VILLAGE,
        START,
        &Command::RecordMediation {
            method: crate::domain::MediationMethod::Phone,
            mediation_type: MediationType::Judicial,
            mediator: "王".into(),
            notes: String::new(),
            result: crate::domain::MediationResult::Continuing,
        },
    );
    let d = delta(&code(VILLAGE), Some(&case), Some(&mediated));
    let month = &d[&202501];
    assert!(month.total.is_zero(), "the total does not change");
    let cell = |value| Cell {
        dim: Dim::MediationType,
        value,
    };
    assert_eq!(month.by[&cell(0)].accepted, 1u64.wrapping_neg());
    assert_eq!(month.by[&cell(MediationType::Judicial.code())].accepted, 1);
}
