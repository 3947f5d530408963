//! Tests of message application: what each kind of message does where.

use super::*;
use crate::domain::machine::tests::{parties, sample_case};

fn c(s: &str) -> NodeCode {
    NodeCode::parse(s).unwrap()
}

const NOW: Timestamp = Timestamp(1_714_600_000_000);

struct At {
    me: NodeCode,
    up: Option<NodeCode>,
    deadlines: Deadlines,
    refuse_transfers: Option<String>,
    policy: crate::domain::Policy,
}

impl At {
    fn new(me: &str) -> At {
        let me = c(me);
        At {
            up: me.parent(),
            me,
            deadlines: Deadlines::default(),
            refuse_transfers: None,
            policy: crate::domain::Policy::default(),
        }
    }
    fn top(me: &str) -> At {
        At {
            up: None,
            ..At::new(me)
        }
    }
    fn node(&self) -> Node<'_> {
        Node {
            me: &self.me,
            uplink: self.up.as_ref(),
            now: NOW,
            deadlines: &self.deadlines,
            refuse_transfers: self.refuse_transfers.as_deref(),
            policy: &self.policy,
            children: None,
        }
    }
}

/// Applies `msg` at `at` as it arrives there: from the child on the way from its origin when
/// the origin is below, else from the parent; what this node believes of where the case is
/// comes from `local`'s record as the store would compute it.
fn deliver(node: &Node, msg: &Message, local: &Local) -> Effects {
    let from = if node.me.is_ancestor_of(&msg.origin) {
        let mut hop = msg.origin.clone();
        while hop.parent().as_ref() != Some(node.me) {
            hop = hop.parent().unwrap();
        }
        hop
    } else {
        node.me.parent().unwrap_or_else(|| c("61"))
    };
    let mut local = local.clone();
    if local.holders.is_empty() {
        // As the store would know it: the case is where the message comes from (the trust
        // checks themselves are tested in `trust`).
        local.holders = msg
            .case_ids()
            .iter()
            .map(|_| Some(msg.origin.clone()))
            .collect();
    }
    incoming(node, &from, msg, &local)
}

/// A director at `node`, as an actor.
fn op(node: &str) -> String {
    format!("spiffe://fengqiao/op/{node}/director/zhang")
}

/// A case owned by `owner` with a one-event history.
fn owned(owner: &str) -> (Case, Vec<Event>) {
    let mut case = sample_case(parties());
    case.owner_node = owner.into();
    case.origin_node = owner.into();
    case.id = format!("{owner}-20240501-000007");
    let e = Event {
        seq: 1,
        at: case.created_at,
        node: owner.into(),
        actor: crate::domain::moves::node_actor(owner),
        kind: crate::domain::EventKind::Registered,
        from_status: None,
        to_status: case.status,
        detail: String::new(),
    };
    (case, vec![e])
}

/// The transfer `from` (the owner) sends toward `to`.
fn transfer(from: &str, to: &str) -> (Case, Message) {
    let (case, history) = owned(from);
    let at = At::new(from);
    let (tomb, _, out) = move_out(
        &at.node(),
        &case,
        &history,
        &op(from),
        &c(to),
        MoveKind::Transfer,
        "理由",
    )
    .unwrap();
    (tomb, out.message)
}

fn install(at: &At, msg: &Message, local: &Local) -> Case {
    let e = deliver(&at.node(), msg, local);
    let (case, events) = e.case.expect("installed");
    assert_eq!(case.history_len, events.last().unwrap().seq);
    case
}

#[test]
fn a_transfer_is_relayed_then_installed_with_its_history() {
    let (_, msg) = transfer("610116", "610116001001");
    // The county's own queue entry goes to the township.
    let town = At::new("610116001");
    let e = deliver(&town.node(), &msg, &Local::default());
    assert!(e.case.is_none());
    assert_eq!(e.send.len(), 1);
    assert_eq!(e.send[0].next_hop, c("610116001001"));
    let relayed = e.send[0].message.clone();
    let Body::Transfer(t) = &relayed.body else {
        panic!()
    };
    assert_eq!(t.history.len(), 3);
    assert_eq!(t.history[2].kind, crate::domain::EventKind::Relayed);

    let village = At::new("610116001001");
    let case = install(&village, &relayed, &Local::default());
    assert_eq!(case.owner_node, "610116001001");
    assert_eq!(case.epoch, 2);
    assert_eq!(case.history_len, 4);
    assert_eq!(case.status, CaseStatus::Registered);
}

#[test]
fn a_live_record_refuses_and_a_stale_epoch_is_dropped() {
    let (_, msg) = transfer("610116001001", "610116001");
    let town = At::new("610116001");
    let (mine, _) = owned("610116001");
    let local = Local {
        case: Some(Case {
            id: msg.case_id().into(),
            ..mine
        }),
        ..Local::default()
    };
    let e = deliver(&town.node(), &msg, &local);
    assert!(e.case.is_none());
    assert_eq!(e.send.len(), 1);
    assert_eq!(e.send[0].message.destination, c("610116001001"));
    assert!(matches!(e.send[0].message.body, Body::Refused(_)));

    let mut tomb = local.case.clone().unwrap();
    tomb.status = CaseStatus::Transferred;
    tomb.epoch = 5;
    let e = deliver(
        &town.node(),
        &msg,
        &Local {
            case: Some(tomb),
            ..Local::default()
        },
    );
    assert!(e.case.is_none() && e.send.is_empty());
    assert!(e.note.unwrap().warn);
}

#[test]
fn an_unroutable_transfer_comes_back_and_is_restored() {
    let (tomb, msg) = transfer("610116", "620102");
    // The city at the top cannot route to another province.
    let city = At::top("6101");
    let e = deliver(&city.node(), &msg, &Local::default());
    assert_eq!(e.send.len(), 1);
    assert_eq!(e.send[0].next_hop, c("610116"));
    let refusal = e.send[0].message.clone();
    let county = At::new("610116");
    let local = Local {
        case: Some(tomb.clone()),
        ..Local::default()
    };
    let case = install(&county, &refusal, &local);
    assert_eq!(case.owner_node, "610116");
    assert_eq!(case.epoch, 3, "above the refused epoch 2");
    assert_eq!(case.status, CaseStatus::Registered);
    // A second copy of the refusal finds a live case and is dropped.
    let live = Local {
        case: Some(case),
        ..Local::default()
    };
    assert!(deliver(&county.node(), &refusal, &live).case.is_none());
}

#[test]
fn a_node_closed_to_incoming_cases_refuses_them_with_its_reason() {
    const WHY: &str = "本镇已撤并，请移交新设中心";
    let closed = |code: &str| At {
        refuse_transfers: Some(WHY.into()),
        ..At::new(code)
    };
    // A village escalates to its township, which is closed: the transfer comes back.
    let (tomb, msg) = transfer("610116001001", "610116001");
    let town = closed("610116001");
    let e = deliver(&town.node(), &msg, &Local::default());
    assert!(e.case.is_none(), "nothing installed at the closed node");
    assert!(e.note.as_ref().is_some_and(|n| n.warn));
    assert_eq!(e.send.len(), 1);
    assert_eq!(e.send[0].next_hop, c("610116001001"));
    let refusal = e.send[0].message.clone();
    let Body::Refused(r) = &refusal.body else {
        panic!("{:?}", refusal.body)
    };
    assert_eq!(r.reason, format!("610116001不接收移交案件：{WHY}"));
    assert_eq!(r.intended_owner, c("610116001"));

    let village = At::new("610116001001");
    let local = Local {
        case: Some(tomb),
        ..Local::default()
    };
    let e = deliver(&village.node(), &refusal, &local);
    let (case, events) = e.case.expect("restored");
    assert_eq!(case.owner_node, "610116001001");
    assert_eq!(case.status, CaseStatus::Registered);
    assert_eq!(case.epoch, 3, "above the refused epoch 2");
    let returned = events.last().unwrap();
    assert_eq!(returned.kind, crate::domain::EventKind::Returned);
    assert!(returned.detail.contains(WHY), "{}", returned.detail);

    // A closed node still relays cases for others, and takes back its own refused ones.
    let (_, down) = transfer("610116", "610116001001");
    let e = deliver(&town.node(), &down, &Local::default());
    assert!(e.forwarded && e.send.len() == 1 && e.case.is_none());
    assert_eq!(e.send[0].next_hop, c("610116001001"));
    let (tomb, up) = transfer("610116001", "610116");
    let county = closed("610116");
    let back = deliver(&county.node(), &up, &Local::default()).send[0]
        .message
        .clone();
    let local = Local {
        case: Some(tomb),
        ..Local::default()
    };
    let case = install(&town, &back, &local);
    assert_eq!(case.owner_node, "610116001");
}

#[test]
fn messages_from_outside_a_subtree_are_not_passed_upward() {
    let (_, mut msg) = transfer("610116001001", "6101");
    msg.origin = c("610116002001");
    let town = At::new("610116001");
    let e = deliver(&town.node(), &msg, &Local::default());
    assert!(e.send.is_empty());
    assert!(e.note.unwrap().warn);
}

fn order(issuer: &str, target: &str, kind: OrderKind) -> Message {
    let at = At::new(issuer);
    let (case, _) = owned("610116001001");
    let o = Order {
        id: 9,
        case_id: case.id,
        actor: format!("spiffe://fengqiao/op/{issuer}/director/d"),
        redirects: 0,
        kind,
    };
    issue_order(&at.node(), &c(target), o).unwrap().message
}

#[test]
fn a_supervision_order_lands_in_the_history_and_adds_the_issuer() {
    let msg = order(
        "6101",
        "610116001001",
        OrderKind::Supervise {
            instruction: "十日内化解".into(),
            due_at: None,
        },
    );
    let village = At::new("610116001001");
    let (case, history) = owned("610116001001");
    let local = Local {
        case: Some(case),
        history,
        copy: None,
        sightings: Vec::new(),
        repeat_person_held: false,
        ..Local::default()
    };
    let got = install(&village, &msg, &local);
    assert_eq!(got.supervising_nodes, vec!["6101".to_string()]);
    // From a node that is not an ancestor: ignored.
    let mut foreign = msg.clone();
    foreign.origin = c("610117");
    assert!(deliver(&village.node(), &foreign, &local).case.is_none());
}

#[test]
fn a_transfer_order_moves_the_case_sideways() {
    let msg = order(
        "610116001",
        "610116001001",
        OrderKind::Transfer {
            to_node: c("610116001002"),
            reason: "属地管辖".into(),
        },
    );
    let village = At::new("610116001001");
    let (case, history) = owned("610116001001");
    let local = Local {
        case: Some(case),
        history,
        copy: None,
        sightings: Vec::new(),
        repeat_person_held: false,
        ..Local::default()
    };
    let e = deliver(&village.node(), &msg, &local);
    let (tomb, events) = e.case.unwrap();
    assert_eq!(tomb.status, CaseStatus::Transferred);
    assert_eq!(tomb.moved_to.as_deref(), Some("610116001002"));
    assert_eq!(events[0].actor, "spiffe://fengqiao/op/610116001/director/d");
    assert_eq!(e.send[0].next_hop, c("610116001"));
    assert_eq!(e.send[0].message.destination, c("610116001002"));

    // Ordered by a township that is not above the target: recorded, not executed.
    let bad = order(
        "610116001",
        "610116001001",
        OrderKind::Transfer {
            to_node: c("610116002001"),
            reason: "x".into(),
        },
    );
    let e = deliver(&village.node(), &bad, &local);
    let (same, events) = e.case.unwrap();
    assert_eq!(same.status, CaseStatus::Registered);
    assert_eq!(events[0].kind, crate::domain::EventKind::OrderNotExecuted);
    assert!(e.send.is_empty());
}

/// Found by `fqsim`: a node that moved a case on and later relayed a further move of it
/// followed its own older tombstone, and orders went round a loop until they were dropped.
#[test]
fn a_tombstone_follows_the_newest_move_this_node_passed_on() {
    let msg = order(
        "6101",
        "610111003",
        OrderKind::Supervise {
            instruction: "i".into(),
            due_at: None,
        },
    );
    // The county moved the case to a township, then relayed its move to a village of another
    // township: the order goes down to the village, not to the township.
    let county = At::new("610111");
    let (mut tomb, _) = owned("610111");
    tomb.status = CaseStatus::Transferred;
    tomb.moved_to = Some("610111003".into());
    let e = deliver(
        &county.node(),
        &msg,
        &Local {
            case: Some(tomb),
            holders: vec![Some(c("610111001003"))],
            ..Local::default()
        },
    );
    assert_eq!(e.send[0].message.destination, c("610111001003"));
    assert_eq!(e.send[0].next_hop, c("610111001"));
    assert!(matches!(e.send[0].message.body, Body::Order(_)));
}

#[test]
fn a_tombstone_passes_orders_down_or_back_to_the_issuer() {
    let msg = order(
        "610116",
        "610116001001",
        OrderKind::Supervise {
            instruction: "i".into(),
            due_at: None,
        },
    );
    // The village moved the case up to its township: redirect to the issuer.
    let village = At::new("610116001001");
    let (mut tomb, _) = owned("610116001001");
    tomb.status = CaseStatus::Transferred;
    tomb.moved_to = Some("610116001".into());
    let e = deliver(
        &village.node(),
        &msg,
        &Local {
            case: Some(tomb.clone()),
            // As the store knows it: where the village sent the case.
            holders: vec![Some(c("610116001"))],
            ..Local::default()
        },
    );
    let redirect = e.send[0].message.clone();
    assert_eq!(redirect.destination, c("610116"));
    assert!(matches!(redirect.body, Body::Redirect { .. }));
    // The township passes the redirect up; the county routes the order it kept again.
    let county = At::new("610116");
    let Body::Order(issued) = &msg.body else {
        unreachable!()
    };
    let kept = Local {
        issued: Some(issued.clone()),
        ..Local::default()
    };
    let e = deliver(&county.node(), &redirect, &kept);
    assert_eq!(e.send[0].message.destination, c("610116001"));
    assert_eq!(e.send[0].next_hop, c("610116001"));
    assert!(matches!(e.send[0].message.body, Body::Order(_)));
    // A redirect of an order the county does not hold, or holds for another case, is refused
    // and changes nothing.
    for local in [
        Local::default(),
        Local {
            issued: Some(Order {
                case_id: "610116001002-20240501-000001".into(),
                ..issued.clone()
            }),
            ..Local::default()
        },
    ] {
        let e = deliver(&county.node(), &redirect, &local);
        assert!(e.refused.is_some() && e.send.is_empty() && e.case.is_none());
        assert_eq!(e.alerts[0].kind, alert::AlertKind::Security);
    }
    // The county re-issues what it issued, not what the redirect says.
    let mut forged = redirect.clone();
    if let Body::Redirect { order, .. } = &mut forged.body {
        order.kind = OrderKind::Transfer {
            to_node: c("610116002"),
            reason: "x".into(),
        };
    }
    let e = deliver(&county.node(), &forged, &kept);
    let Body::Order(again) = &e.send[0].message.body else {
        panic!("{:?}", e.send)
    };
    assert_eq!(&again.kind, &issued.kind);
}

#[test]
fn copies_are_kept_newest_first_and_closed_by_epoch() {
    let (mut case, history) = owned("610116001001");
    case.supervising_nodes = vec!["610116001".into()];
    let copy = supervision::copy_for_supervisor(&case, &history);
    let msg = Message {
        origin: c("610116001001"),
        origin_seq: 1,
        destination: c("610116001"),
        sent_at: NOW,
        body: Body::Sync(copy.clone()),
    };
    let town = At::new("610116001");
    let e = deliver(&town.node(), &msg, &Local::default());
    assert_eq!(e.copy, CopyChange::Put(Box::new(copy.clone())));
    let held = Local {
        copy: Some(copy.clone()),
        ..Local::default()
    };
    assert_eq!(deliver(&town.node(), &msg, &held).copy, CopyChange::Keep);
    let close = Message {
        body: Body::Close {
            case_id: case.id.clone(),
            epoch: case.epoch,
        },
        ..msg.clone()
    };
    assert_eq!(
        deliver(&town.node(), &close, &held).copy,
        CopyChange::Remove
    );
    let old_close = Message {
        body: Body::Close {
            case_id: case.id.clone(),
            epoch: case.epoch - 1,
        },
        ..msg
    };
    assert_eq!(
        deliver(&town.node(), &old_close, &held).copy,
        CopyChange::Keep
    );
}

/// The transfer of `case` (with `history`) by its owner `from` toward `to`, and the tombstone.
fn send(case: &Case, history: &[Event], from: &str, to: &str, kind: MoveKind) -> (Case, Message) {
    let at = At::new(from);
    let (tomb, _, out) = move_out(
        &at.node(),
        case,
        history,
        &op(at.me.as_str()),
        &c(to),
        kind,
        "理由",
    )
    .unwrap();
    (tomb, out.message)
}

#[test]
fn an_installed_case_gets_the_colour_rule_of_its_new_owner() {
    use crate::domain::alert::AlertKind;
    use crate::domain::{EventKind, RiskLevel, rules};

    // 交办: a red county case moved down to a village, through the township.
    let (mut red, history) = owned("610116");
    red.risk = RiskLevel::Red;
    let (_, msg) = send(&red, &history, "610116", "610116001001", MoveKind::Transfer);
    let town = At::new("610116001");
    let relayed = deliver(&town.node(), &msg, &Local::default()).send[0]
        .message
        .clone();
    let village = At::new("610116001001");
    let e = deliver(&village.node(), &relayed, &Local::default());
    let (case, events) = e.case.expect("installed");
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Registered,
            EventKind::TransferredOut,
            EventKind::Relayed,
            EventKind::Received,
            EventKind::SupervisionOpened
        ]
    );
    assert_eq!(case.history_len, 5);
    assert_eq!(case.supervising_nodes, ["610116"]);
    // The village is alerted, as when it registers a red case itself...
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts[0].kind, AlertKind::Supervision);
    assert!(
        e.alerts[0].message.contains("提请610116督办"),
        "{:?}",
        e.alerts
    );
    // ...and the write sends the county its copy, up through the township.
    let plan = supervision::plan(None, &case);
    assert_eq!(plan.fresh, [c("610116")]);
    let out = supervision::messages(&plan, &case, &[], &events);
    assert_eq!(out[0].next_hop, c("610116001"));

    // 提级办理 back: the township takes it over (the county still follows red), then the
    // county, which held the supervised copy: the copy goes, and so does the supervision.
    // (Nothing was held here before: `events` is the whole history.)
    let carried = events.clone();
    let (_, up) = send(
        &case,
        &carried,
        "610116001001",
        "610116001",
        MoveKind::TakeOver,
    );
    let e = deliver(&town.node(), &up, &Local::default());
    let (at_town, events) = e.case.expect("installed");
    assert_eq!(at_town.supervising_nodes, ["610116"]);
    assert_eq!(events.last().unwrap().kind, EventKind::Received);
    assert!(e.alerts.is_empty(), "the county was already following");
    let carried = events;
    let (_, up) = send(
        &at_town,
        &carried,
        "610116001",
        "610116",
        MoveKind::TakeOver,
    );
    let county = At::new("610116");
    let held = Local {
        copy: Some(supervision::copy_for_supervisor(&case, &carried)),
        ..Local::default()
    };
    let e = deliver(&county.node(), &up, &held);
    let (at_county, events) = e.case.expect("installed");
    assert_eq!(e.copy, CopyChange::Remove);
    assert!(at_county.supervising_nodes.is_empty());
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::SupervisionClosed);
    assert_eq!(
        last.detail,
        "610116已承办本案，红色风险由其自行跟踪，解除风险督办"
    );
    assert_eq!(
        supervision::plan(None, &at_county),
        supervision::Plan::default()
    );

    // A refused transfer back at a red village case's owner: the county still follows it.
    let (mut red, history) = owned("610116001001");
    red.risk = RiskLevel::Red;
    rules::reconcile_risk(&mut red);
    let (tomb, msg) = send(
        &red,
        &history,
        "610116001001",
        "610116001",
        MoveKind::TakeOver,
    );
    let closed = At {
        refuse_transfers: Some("撤并".into()),
        ..At::new("610116001")
    };
    let refusal = deliver(&closed.node(), &msg, &Local::default()).send[0]
        .message
        .clone();
    let local = Local {
        case: Some(tomb.clone()),
        ..Local::default()
    };
    let e = deliver(&village.node(), &refusal, &local);
    let (back, events) = e.case.expect("restored");
    assert_eq!(back.supervising_nodes, ["610116"]);
    assert_eq!(events.last().unwrap().kind, EventKind::Returned);
    assert!(e.alerts.is_empty());
    assert_eq!(supervision::plan(Some(&tomb), &back).fresh, [c("610116")]);
}

#[test]
fn an_alert_is_stored_at_its_destination_and_goes_no_further() {
    let alert = crate::domain::alert::Alert {
        key: "reopened/c/1".into(),
        kind: crate::domain::alert::AlertKind::Reopened,
        case_ids: vec!["610116001001-20250101-000001".into()],
        node: "610116001001".into(),
        raised_at: Timestamp(1),
        message: "m".into(),
        forward_to: vec!["6101".into()],
    };
    let msg = |dest: &str| Message {
        origin: c("610116001001"),
        origin_seq: 1,
        destination: c(dest),
        sent_at: Timestamp(1),
        body: Body::Alert(alert.clone()),
    };
    let deadlines = crate::domain::Deadlines::default();
    let node = Node {
        me: &c("610116001"),
        uplink: Some(&c("610116")),
        now: Timestamp(2),
        deadlines: &deadlines,
        refuse_transfers: None,
        policy: &crate::domain::Policy::default(),
        children: None,
    };
    let here = deliver(&node, &msg("610116001"), &Local::default());
    assert_eq!(here.alerts.len(), 1);
    assert!(here.alerts[0].forward_to.is_empty());
    assert!(here.send.is_empty() && here.case.is_none());
    // For the county: passed on, not stored here.
    let relayed = deliver(&node, &msg("610116"), &Local::default());
    assert!(relayed.alerts.is_empty());
    assert_eq!(relayed.send.len(), 1);
    assert_eq!(relayed.send[0].next_hop, c("610116"));
}

#[test]
fn a_risk_raise_order_raises_once_with_the_owners_alert() {
    let msg = order(
        "610116001",
        "610116001001",
        OrderKind::RaiseRisk {
            reason: "同一当事人6个月内在辖区共有3件案件".into(),
        },
    );
    let village = At::new("610116001001");
    let (case, history) = owned("610116001001");
    let before = case.risk;
    let local = Local {
        case: Some(case.clone()),
        history,
        copy: None,
        sightings: Vec::new(),
        repeat_person_held: false,
        ..Local::default()
    };
    let e = deliver(&village.node(), &msg, &local);
    let (raised, events) = e.case.expect("the risk goes up");
    assert_eq!(raised.risk, before.raised());
    assert!(
        events
            .iter()
            .any(|ev| ev.detail.contains("同一当事人6个月内在辖区共有3件案件")),
        "{events:?}"
    );
    let own = e
        .alerts
        .iter()
        .find(|a| a.key == crate::domain::alert::repeat_person_key(&case.id))
        .expect("the owner's alert, which gates its own rule");
    assert!(own.forward_to.is_empty() && own.message.contains("610116001"));
    // Already raised for this person (its own rule or an earlier order): nothing changes.
    let held = Local {
        repeat_person_held: true,
        ..local
    };
    let e = deliver(&village.node(), &msg, &held);
    assert!(e.case.is_none() && e.alerts.is_empty());
}

#[test]
fn a_transfer_the_receiver_refused_comes_back_to_its_old_owner() {
    let refusal = Refusal::new(RefusalKind::Forbidden, "不在辖区内");
    // The old owner takes its case back from its tombstone, with the reason, and is alerted.
    let (tomb, msg) = transfer("610116001001", "610116001");
    let village = At::new("610116001001");
    let local = Local {
        case: Some(tomb.clone()),
        ..Local::default()
    };
    let e = refused_by_peer(&village.node(), &c("610116001"), &msg, &refusal, &local);
    let (back, events) = e.case.expect("restored");
    assert_eq!(back.owner_node, "610116001001");
    assert_eq!(back.status, CaseStatus::Registered);
    assert!(back.epoch > tomb.epoch);
    assert_eq!(
        events.last().unwrap().kind,
        crate::domain::EventKind::Returned
    );
    assert!(events.last().unwrap().detail.contains("不在辖区内"));
    assert!(
        e.alerts
            .iter()
            .any(|a| a.kind == alert::AlertKind::Undelivered)
    );
    // A relay refused further on sends the case back toward its old owner.
    let town = At::new("610116001");
    let e = refused_by_peer(
        &town.node(),
        &c("610116"),
        &msg,
        &refusal,
        &Local::default(),
    );
    assert!(e.case.is_none());
    assert_eq!(e.send[0].message.destination, c("610116001001"));
    assert!(matches!(e.send[0].message.body, Body::Refused(_)));
    // Anything else: an alert, nothing changed.
    let (_, history) = owned("610116001001");
    let (case, _) = owned("610116001001");
    let copy = Message {
        body: Body::Sync(CaseCopy { case, history }),
        ..msg
    };
    let e = refused_by_peer(&village.node(), &c("610116001"), &copy, &refusal, &local);
    assert!(e.case.is_none() && e.send.is_empty());
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts[0].kind, alert::AlertKind::Undelivered);
}

#[test]
fn nothing_goes_down_to_a_child_this_node_does_not_know() {
    use std::collections::BTreeSet;
    let (case, history) = owned("610116");
    let county = At::new("610116");
    let known: BTreeSet<NodeCode> = [c("610116001")].into();
    let node = Node {
        children: Some(&known),
        ..county.node()
    };
    let move_to = |to: &str| {
        move_out(
            &node,
            &case,
            &history,
            &op("610116"),
            &c(to),
            MoveKind::Transfer,
            "交办",
        )
    };
    // Below a township that has never linked or reported: refused when ordered.
    assert!(matches!(
        move_to("610116002001"),
        Err(MoveError::Unroutable)
    ));
    // Below a known one: queued toward it (the township checks its own children).
    let (_, _, out) = move_to("610116001009").unwrap();
    assert_eq!(out.next_hop, c("610116001"));
    // The township does not know that village: the transfer goes back to its old owner.
    let town = At::new("610116001");
    let known_here: BTreeSet<NodeCode> = [c("610116001001")].into();
    let relay = Node {
        children: Some(&known_here),
        ..town.node()
    };
    let e = deliver(&relay, &out.message, &Local::default());
    match &e.send[..] {
        [back] => match &back.message.body {
            Body::Refused(r) => {
                assert_eq!(back.message.destination, c("610116"));
                assert!(r.reason.contains("不存在"), "{}", r.reason);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // To a village it knows, it passes the case on.
    let (_, _, out) = move_to("610116001001").unwrap();
    let e = deliver(&relay, &out.message, &Local::default());
    assert_eq!(e.send[0].next_hop, c("610116001001"));
}
