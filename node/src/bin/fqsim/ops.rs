//! What the people at the centers do, at random, through each node's application layer (as
//! the console and the API do), and what a compromised node sends. Every action the
//! application layer acknowledged is written down ([`Truth`]) for the checker, with a token
//! of its own in its text so the checker can find it in the case's history.

use std::collections::{BTreeMap, BTreeSet};

use fengqiao_node::app::moves::Escalation;
use fengqiao_node::clock::Clock;
use fengqiao_node::code::NodeCode;
use fengqiao_node::domain::moves::MoveKind;
use fengqiao_node::domain::{
    Case, CaseStatus, Category, Channel, Command, Confirmation, EventKind, MediationMethod,
    MediationResult, MediationType, NewCase, Party, PartyRole, PlanUpdate, RiskLevel, Timestamp,
};
use fengqiao_node::identity::{Identity, Role};
use fengqiao_node::protocol::message::{Body, Order, OrderKind, Outgoing, Transfer};
use rand::Rng;

use crate::world::World;

/// The text a forged message carries: found anywhere outside the forger's subtree, the
/// forgery changed something it must not have.
pub const FORGED: &str = "伪造";

/// One action the application layer acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub case_id: String,
    /// Its token, in the text of the event it wrote.
    pub token: String,
    /// The event it must leave in the case's history.
    pub kind: EventKind,
    /// The node that acknowledged it, and when (its clock).
    pub node: NodeCode,
    pub at: Timestamp,
    /// An order: carried out at most once (the owner may no longer take it: closed, moved).
    pub order: bool,
}

/// What happened, as the simulation knows it.
#[derive(Debug, Default)]
pub struct Truth {
    /// Every case id a registration acknowledged, and where.
    pub issued: BTreeMap<String, NodeCode>,
    pub acked: Vec<Acked>,
    /// The compromised node, if any in this run.
    pub forger: Option<NodeCode>,
    /// Cases a forged message was about.
    pub forged: BTreeSet<String>,
    /// Cases an acknowledged move sent into the forger's subtree: the forger owns them
    /// rightfully once they arrive (and a forgery about one could race the move), so none is
    /// forged about, and no forged-about case is moved there.
    pub moved_to_forger: BTreeSet<String>,
    /// Cases a restore from an older copy may have set back (see the checker).
    pub set_back: BTreeSet<String>,
    next_token: u64,
}

impl Truth {
    fn token(&mut self) -> String {
        self.next_token += 1;
        format!("〔T{}〕", self.next_token)
    }
}

fn director(code: &NodeCode) -> Identity {
    Identity::operator(code.clone(), Role::Director, "sim").expect("a valid operator")
}

fn pick<T: Copy>(w: &mut World, all: &[T]) -> T {
    all[w.rng.random_range(0..all.len())]
}

/// The live cases `code` holds (owned here).
pub fn owned(w: &World, code: &NodeCode) -> Vec<Case> {
    w.node(code)
        .state()
        .store
        .cases_after("", None, usize::MAX)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status != CaseStatus::Transferred)
        .collect()
}

/// Nodes of `code`'s subtree (itself included).
pub fn subtree(w: &World, code: &NodeCode) -> Vec<NodeCode> {
    w.order
        .iter()
        .filter(|c| *c == code || code.is_ancestor_of(c))
        .cloned()
        .collect()
}

/// The kind of the event with `token` in case `id`'s history here: what the action wrote.
fn written(app: &fengqiao_node::app::App, id: &str, token: &str) -> Option<EventKind> {
    app.state().store.history(id).ok().and_then(|h| {
        h.iter()
            .rev()
            .find(|e| e.detail.contains(token))
            .map(|e| e.kind)
    })
}

/// Whether a move of `case_id` to `to` may go ahead: nothing forged about moves into the
/// forger's subtree; a move there is remembered.
fn may_move(t: &mut Truth, case_id: &str, to: &NodeCode) -> bool {
    let Some(f) = &t.forger else {
        return true;
    };
    if f == to || f.is_ancestor_of(to) {
        if t.forged.contains(case_id) {
            return false;
        }
        t.moved_to_forger.insert(case_id.to_owned());
    }
    true
}

/// One operator action at a random node. Returns a line for the trace.
pub async fn act(w: &mut World, t: &mut Truth) -> String {
    let codes = w.order.clone();
    let code = w.pick(&codes).cloned().expect("nodes");
    let roll = w.rng.random_range(0..100);
    let cases = owned(w, &code);
    if cases.is_empty() || roll < 12 {
        return register(w, t, &code).await;
    }
    let case = w.pick(&cases).cloned().expect("a case");
    match roll {
        12..=71 => command(w, t, &code, &case).await,
        72..=79 => escalate(w, t, &code, &case).await,
        80..=87 => transfer_down(w, t, &code, &case).await,
        _ => order_from_above(w, t, &case).await,
    }
}

async fn register(w: &mut World, t: &mut Truth, code: &NodeCode) -> String {
    let n = t.issued.len() + t.acked.len();
    let new = NewCase {
        idempotency_key: format!("sim-{}-{n}-{}", w.seed, w.step),
        category: pick(w, Category::ALL),
        channel: pick(w, Channel::ALL),
        summary: format!("纠纷{n}"),
        description: String::new(),
        parties: vec![Party {
            role: PartyRole::Applicant,
            name: "张三".into(),
            phone: "13912345678".into(),
            id_number: format!("6101021990010{:05}", n % 100_000),
        }],
        amount_fen: w.rng.random_range(0..5_000_000),
        risk: pick(
            w,
            &[
                RiskLevel::Blue,
                RiskLevel::Blue,
                RiskLevel::Yellow,
                RiskLevel::Orange,
                RiskLevel::Red,
            ],
        ),
        grid_id: String::new(),
    };
    let app = w.node(code).app().clone();
    match app.register(&director(code), new).await {
        Ok(shown) => {
            let id = shown.case.id.clone();
            if let Some(before) = t.issued.insert(id.clone(), code.clone()) {
                return format!(
                    "VIOLATION case id {id} issued twice (before at {before}, now at {code})"
                );
            }
            format!("register {code} {id}")
        }
        Err(e) => format!("register {code} refused: {e}"),
    }
}

async fn command(w: &mut World, t: &mut Truth, code: &NodeCode, case: &Case) -> String {
    let token = t.token();
    let now = w.node(code).clock.now();
    // Mostly what the case's status admits, so that cases go through their whole life; now
    // and then anything (refused, as a careless operator's would be).
    let fits: &[u32] = match case.status {
        CaseStatus::Registered => &[0, 0, 0, 5, 7, 8],
        CaseStatus::Accepted => &[1, 2, 2, 5, 6, 7, 8],
        CaseStatus::InMediation => &[2, 3, 3, 3, 5, 6, 8],
        CaseStatus::Resolved | CaseStatus::Unresolved => &[4, 4, 4, 8],
        _ => &[0, 1, 2, 3, 4, 5, 6, 7, 8],
    };
    let pick_kind = if w.rng.random_bool(0.85) {
        fits[w.rng.random_range(0..fits.len())]
    } else {
        w.rng.random_range(0..10)
    };
    let (cmd, kind) = match pick_kind {
        0 => (
            Command::Review {
                accept: w.rng.random_bool(0.85),
                reason: format!("审核{token}"),
                guidance: format!("请补充材料{token}"),
            },
            None,
        ),
        1 => (
            Command::Assign {
                handler: format!("人社所{token}"),
                due_at: None,
            },
            None,
        ),
        2 => (
            Command::RecordMediation {
                method: pick(w, MediationMethod::ALL),
                mediation_type: pick(w, MediationType::ALL),
                mediator: "王调解员".into(),
                notes: format!("调解记录{token}"),
                result: pick(w, MediationResult::ALL),
            },
            None,
        ),
        3 => {
            let resolved = w.rng.random_bool(0.7);
            (
                Command::Resolve {
                    resolved,
                    agreement: format!("协议{token}"),
                    settled_amount_fen: if resolved { 1000 } else { 0 },
                    confirmation: if resolved {
                        Confirmation::Judicial
                    } else {
                        Confirmation::None
                    },
                },
                None,
            )
        }
        4 => (
            Command::FollowUp {
                satisfaction: w.rng.random_range(1..=5),
                notes: format!("回访{token}"),
            },
            None,
        ),
        5 => (
            Command::ChangeRisk {
                risk: pick(w, RiskLevel::ALL),
                reason: format!("风险调整{token}"),
            },
            None,
        ),
        6 => (
            Command::ExtendDeadline {
                until: now.plus(std::time::Duration::from_secs(40 * 86_400)),
                reason: format!("延期{token}"),
            },
            None,
        ),
        7 => (
            Command::UpdatePlan(PlanUpdate {
                plan: Some(format!("化解方案{token}")),
                ..PlanUpdate::default()
            }),
            None,
        ),
        _ => (
            Command::AddProgress {
                text: format!("进展{token}"),
            },
            None,
        ),
    };
    let what = cmd.action();
    let app = w.node(code).app().clone();
    match app.command(&director(code), &case.id, cmd).await {
        Ok(shown) => {
            // The event the command wrote: the last in the history with the token (a review
            // or resolution writes one of two kinds).
            let _: Option<EventKind> = kind;
            if let Some(kind) = written(&app, &shown.case.id, &token) {
                t.acked.push(Acked {
                    case_id: case.id.clone(),
                    token,
                    kind,
                    node: code.clone(),
                    at: now,
                    order: false,
                });
            }
            format!("{what} {code} {}", case.id)
        }
        Err(e) => format!("{what} {code} {} refused: {e}", case.id),
    }
}

async fn escalate(w: &mut World, t: &mut Truth, code: &NodeCode, case: &Case) -> String {
    let token = t.token();
    let mode = if w.rng.random_bool(0.6) {
        Escalation::TakeOver
    } else {
        Escalation::Supervise
    };
    if let (Escalation::TakeOver, Some(parent)) = (mode, code.parent()) {
        if !may_move(t, &case.id, &parent) {
            return format!("escalate {code} {}: skipped (forged about)", case.id);
        }
    }
    let app = w.node(code).app().clone();
    let now = w.node(code).clock.now();
    match app
        .escalate(
            &director(code),
            case.id.clone(),
            mode,
            format!("提级{token}"),
        )
        .await
    {
        Ok(_) => {
            let Some(kind) = written(&app, &case.id, &token) else {
                return format!(
                    "escalate {mode:?} {code} {}: no event with its token",
                    case.id
                );
            };
            t.acked.push(Acked {
                case_id: case.id.clone(),
                token,
                kind,
                node: code.clone(),
                at: now,
                order: false,
            });
            format!("escalate {mode:?} {code} {}", case.id)
        }
        Err(e) => format!("escalate {mode:?} {code} {} refused: {e}", case.id),
    }
}

async fn transfer_down(w: &mut World, t: &mut Truth, code: &NodeCode, case: &Case) -> String {
    let children: Vec<NodeCode> = w
        .order
        .iter()
        .filter(|c| c.parent().as_ref() == Some(code))
        .cloned()
        .collect();
    let Some(to) = w.pick(&children).cloned() else {
        return escalate(w, t, code, case).await;
    };
    if !may_move(t, &case.id, &to) {
        return format!("transfer {code} {}: skipped (forged about)", case.id);
    }
    let token = t.token();
    let app = w.node(code).app().clone();
    let now = w.node(code).clock.now();
    match app
        .transfer(
            &director(code),
            case.id.clone(),
            to.as_str(),
            format!("交办{token}"),
        )
        .await
    {
        Ok(_) => {
            let Some(kind) = written(&app, &case.id, &token) else {
                return format!("transfer {code} {}: no event with its token", case.id);
            };
            t.acked.push(Acked {
                case_id: case.id.clone(),
                token,
                kind,
                node: code.clone(),
                at: now,
                order: false,
            });
            format!("transfer {code} {} to {to}", case.id)
        }
        Err(e) => format!("transfer {code} {} to {to} refused: {e}", case.id),
    }
}

/// An ancestor of the case's owner orders it moved (up, down or sideways within its
/// subtree) or supervises it.
async fn order_from_above(w: &mut World, t: &mut Truth, case: &Case) -> String {
    let Ok(owner) = NodeCode::parse(&case.owner_node) else {
        return "order skipped".into();
    };
    let ancestors: Vec<NodeCode> = w
        .order
        .iter()
        .filter(|c| c.is_ancestor_of(&owner))
        .cloned()
        .collect();
    let Some(issuer) = w.pick(&ancestors).cloned() else {
        return "order skipped: no ancestor".into();
    };
    let token = t.token();
    let app = w.node(&issuer).app().clone();
    let now = w.node(&issuer).clock.now();
    if w.rng.random_bool(0.5) {
        let within = subtree(w, &issuer);
        let Some(to) = w.pick(&within).cloned() else {
            return "order skipped".into();
        };
        if !may_move(t, &case.id, &to) {
            return format!("order {issuer} {}: skipped (forged about)", case.id);
        }
        match app
            .transfer(
                &director(&issuer),
                case.id.clone(),
                to.as_str(),
                format!("流转{token}"),
            )
            .await
        {
            Ok(_) => {
                t.acked.push(Acked {
                    case_id: case.id.clone(),
                    token,
                    kind: EventKind::TransferredOut,
                    node: issuer.clone(),
                    at: now,
                    order: true,
                });
                format!("order transfer {issuer} {} to {to}", case.id)
            }
            Err(e) => format!("order transfer {issuer} {} to {to} refused: {e}", case.id),
        }
    } else {
        match app
            .supervise(
                &director(&issuer),
                case.id.clone(),
                format!("督办{token}"),
                None,
            )
            .await
        {
            Ok(_) => {
                t.acked.push(Acked {
                    case_id: case.id.clone(),
                    token,
                    kind: EventKind::SupervisionOrdered,
                    node: issuer.clone(),
                    at: now,
                    order: true,
                });
                format!("order supervise {issuer} {}", case.id)
            }
            Err(e) => format!("order supervise {issuer} {} refused: {e}", case.id),
        }
    }
}

/// The compromised node queues a forged message about a case outside its subtree, as its
/// own link would carry it.
pub async fn forge(w: &mut World, t: &mut Truth) -> String {
    let Some(forger) = t.forger.clone() else {
        return "forge skipped".into();
    };
    let Some(parent) = forger.parent() else {
        return "forge skipped".into();
    };
    let mine = subtree(w, &forger);
    // A case owned outside the forger's subtree, as its owner holds it.
    let mut outside = Vec::new();
    for code in w.order.clone() {
        if mine.contains(&code) {
            continue;
        }
        outside.extend(
            owned(w, &code)
                .into_iter()
                .filter(|c| !t.moved_to_forger.contains(&c.id)),
        );
    }
    let Some(case) = w.pick(&outside).cloned() else {
        return "forge skipped: no case outside".into();
    };
    let owner = NodeCode::parse(&case.owner_node).expect("an owner's code");
    let history = w
        .node(&owner)
        .state()
        .store
        .history(&case.id)
        .unwrap_or_default();
    let now = w.node(&forger).clock.now();
    let root = w.order[0].clone();
    let (origin, destination, body, what) = match w.rng.random_range(0..4) {
        0 => {
            let mut stolen = case.clone();
            stolen.owner_node = forger.to_string();
            stolen.summary = format!("{FORGED}移交");
            (
                forger.clone(),
                parent.clone(),
                Body::Transfer(Transfer {
                    case: stolen,
                    history,
                    epoch: case.epoch + 1,
                    kind: MoveKind::TakeOver,
                    reason: format!("{FORGED}提级"),
                }),
                "transfer",
            )
        }
        1 => {
            // An order in the name of the top of the federation, moving the case to the
            // forger.
            (
                root.clone(),
                owner.clone(),
                Body::Order(Order {
                    id: w.rng.random_range(1..u64::MAX),
                    case_id: case.id.clone(),
                    actor: director(&root).uri(),
                    redirects: 0,
                    kind: OrderKind::Transfer {
                        to_node: forger.clone(),
                        reason: format!("{FORGED}流转"),
                    },
                }),
                "order-as-root",
            )
        }
        2 => (
            forger.clone(),
            owner.clone(),
            Body::Order(Order {
                id: w.rng.random_range(1..u64::MAX),
                case_id: case.id.clone(),
                actor: director(&forger).uri(),
                redirects: 0,
                kind: OrderKind::Supervise {
                    instruction: format!("{FORGED}督办"),
                    due_at: None,
                },
            }),
            "order",
        ),
        _ => {
            let mut copy = case.clone();
            copy.owner_node = forger.to_string();
            copy.summary = format!("{FORGED}副本");
            (
                forger.clone(),
                parent.clone(),
                Body::Sync(fengqiao_node::protocol::message::CaseCopy {
                    case: copy,
                    history,
                }),
                "copy",
            )
        }
    };
    t.forged.insert(case.id.clone());
    let out = Outgoing::new(&origin, parent, destination, now, body);
    match w.node(&forger).state().store.send(vec![out]).await {
        Ok(()) => format!("forge {what} {forger} about {}", case.id),
        Err(e) => format!("forge {what} {forger} failed: {e}"),
    }
}
