//! Random but plausible case workloads for tests of the figures, driven through the real state
//! machine: registrations with random dimensions, and commands that mostly fit the case's
//! status (some do not, and the machine refuses them, as it would a careless operator).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::{
    Case, Category, Channel, Command, Confirmation, Ctx, Deadlines, MediationMethod,
    MediationResult, MediationType, NewCase, Party, PartyRole, RiskLevel, Timestamp, machine,
};

/// Personal data used by every generated case; it must never show in figures or pushes.
pub(crate) const NAME: &str = "张三丰";
pub(crate) const PHONE: &str = "13912345678";
pub(crate) const ID_NUMBER: &str = "610102199001011234";

/// 2025-01-15 00:00 UTC.
pub(crate) const START: Timestamp = Timestamp(1_736_899_200_000);

/// Short deadlines, so that some cases run overdue within a workload.
pub(crate) static DEADLINES: Deadlines = Deadlines {
    review: Duration::from_secs(2 * 86_400),
    resolve: Duration::from_secs(20 * 86_400),
    follow_up: Duration::from_secs(7 * 86_400),
    escalate_overdue_after: None,
};

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn pick<T: Copy>(rng: &mut StdRng, all: &[T]) -> T {
    all[rng.random_range(0..all.len())]
}

/// A valid registration with random category, channel, risk and amount.
pub(crate) fn new_case(rng: &mut StdRng, key: &str) -> NewCase {
    NewCase {
        idempotency_key: key.to_owned(),
        category: pick(rng, Category::ALL),
        channel: pick(rng, Channel::ALL),
        summary: "拖欠工资".into(),
        description: String::new(),
        parties: vec![Party {
            role: PartyRole::Applicant,
            name: NAME.into(),
            phone: PHONE.into(),
            id_number: ID_NUMBER.into(),
        }],
        amount_fen: rng.random_range(0..5_000_000),
        risk: pick(rng, RiskLevel::ALL),
        grid_id: String::new(),
    }
}

/// Registers `new` through the machine as node `node` would.
pub(crate) fn register(node: &str, new: &NewCase, seq: u32, now: Timestamp) -> Case {
    let ctx = ctx(node, now);
    let id = machine::case_id(node, &machine::china_day(now), seq);
    match machine::register(&ctx, new, id, format!("L{node}{seq}")) {
        Ok((case, _)) => case,
        Err(e) => panic!("generated registration refused: {e}"),
    }
}

pub(crate) fn ctx(node: &str, now: Timestamp) -> Ctx<'_> {
    Ctx {
        now,
        node,
        actor: "spiffe://fengqiao/op/61/director/test",
        deadlines: &DEADLINES,
    }
}

/// A command for a case: usually one its status admits, now and then one it does not.
pub(crate) fn command(rng: &mut StdRng) -> Command {
    match rng.random_range(0..10) {
        0 => Command::Review {
            accept: false,
            reason: "不属本辖区".into(),
            guidance: "请到工地所在街道申请".into(),
        },
        1 | 2 => Command::Review {
            accept: true,
            reason: String::new(),
            guidance: String::new(),
        },
        3 => Command::Assign {
            handler: "人社所".into(),
            due_at: None,
        },
        4 | 5 => Command::RecordMediation {
            method: pick(rng, MediationMethod::ALL),
            mediation_type: pick(rng, MediationType::ALL),
            mediator: "王调解员".into(),
            notes: String::new(),
            result: pick(rng, MediationResult::ALL),
        },
        6 | 7 => {
            let resolved = rng.random_bool(0.7);
            Command::Resolve {
                resolved,
                agreement: if resolved {
                    "分期支付".into()
                } else {
                    "建议申请劳动仲裁".into()
                },
                settled_amount_fen: if resolved {
                    rng.random_range(0..1_000_000)
                } else {
                    0
                },
                confirmation: if resolved {
                    pick(rng, Confirmation::ALL)
                } else {
                    Confirmation::None
                },
            }
        }
        _ => Command::FollowUp {
            satisfaction: rng.random_range(1..=5),
            notes: String::new(),
        },
    }
}
