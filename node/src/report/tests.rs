//! Reports from a store, and their CSV and text forms.

use super::render::{from_csv, to_csv, to_text};
use super::*;
use crate::domain::machine::tests::parties;
use crate::domain::{Channel, Command, Confirmation, Ctx, Deadlines, NewCase, machine};
use crate::storage::{Store, StoreOptions};
use crate::text::Lang;

const H: i64 = 3_600_000;
/// 2024-05-01 08:00 in China.
const T0: Timestamp = Timestamp(1_714_521_600_000);
const NODE: &str = "610116001";

fn at(h: i64) -> Timestamp {
    Timestamp(T0.0 + h * H)
}

async fn register(store: &Store, key: &str, risk: RiskLevel, now: Timestamp) -> Case {
    let new = NewCase {
        idempotency_key: key.into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "张三（13812345678）讨薪, \"急\"".into(),
        description: String::new(),
        parties: parties(),
        amount_fen: 440_000,
        risk,
        grid_id: String::new(),
    };
    let day = machine::china_day(now);
    let d = day.clone();
    let key = key.to_owned();
    store
        .register(key.clone(), day, move |seq| {
            let deadlines = Deadlines::default();
            let ctx = Ctx {
                now,
                node: NODE,
                actor: "spiffe://fengqiao/op/610116001/intake/li",
                deadlines: &deadlines,
            };
            machine::register(
                &ctx,
                &new,
                machine::case_id(NODE, &d, seq),
                format!("{key}{seq}"),
            )
        })
        .await
        .unwrap()
        .case
}

async fn apply(store: &Store, id: &str, now: Timestamp, cmd: Command) -> Case {
    store
        .update(id.to_owned(), move |c| {
            let deadlines = Deadlines::default();
            let ctx = Ctx {
                now,
                node: NODE,
                actor: "spiffe://fengqiao/op/610116001/director/zhao",
                deadlines: &deadlines,
            };
            machine::apply(c, &ctx, &cmd)
        })
        .await
        .unwrap()
}

fn accept() -> Command {
    Command::Review {
        accept: true,
        reason: String::new(),
        guidance: String::new(),
    }
}

#[tokio::test]
async fn a_report_counts_what_happened_in_its_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        &StoreOptions::new(crate::code::NodeCode::parse(NODE).unwrap(), at(-100)),
    )
    .unwrap();
    // Before the period: registered and accepted.
    let old = register(&store, "old", RiskLevel::Orange, at(-48)).await;
    apply(&store, &old.id, at(-47), accept()).await;
    // In the period: one resolved, one rejected, one left unreviewed (and overdue at the end).
    let a = register(&store, "a", RiskLevel::Blue, at(1)).await;
    apply(&store, &a.id, at(2), accept()).await;
    let resolve = Command::Resolve {
        resolved: true,
        agreement: "付清".into(),
        settled_amount_fen: 440_000,
        confirmation: Confirmation::None,
    };
    apply(&store, &a.id, at(3), resolve).await;
    let b = register(&store, "b", RiskLevel::Blue, at(4)).await;
    let reject = Command::Review {
        accept: false,
        reason: "不属本辖区".into(),
        guidance: "请到户籍地申请".into(),
    };
    apply(&store, &b.id, at(5), reject).await;
    let c = register(&store, "c", RiskLevel::Red, at(6)).await;
    // After the period: not counted.
    apply(
        &store,
        &old.id,
        at(200),
        Command::AddProgress { text: "x".into() },
    )
    .await;
    let late = register(&store, "late", RiskLevel::Blue, at(200)).await;
    store
        .raise_alerts(vec![
            crate::domain::alert::overdue(&c, NODE, at(100)).unwrap(),
        ])
        .await
        .unwrap();

    let period = Period {
        label: "2024-05-01..2024-05-07".into(),
        from: at(0),
        to: at(168),
    };
    let now = at(300);
    let r = make(&store, NODE, &period, now).unwrap();
    let f = &r.figures;
    assert_eq!(
        (
            f.received,
            f.accepted,
            f.rejected,
            f.resolved,
            f.unresolved,
            f.closed
        ),
        (3, 1, 1, 1, 0, 0)
    );
    assert_eq!(f.amount_fen, 3 * 440_000);
    assert_eq!(f.success_permille(), Some(1000));
    // Open now: old (accepted), c (registered), late (registered). Overdue at 300 h: c and
    // late (review due 78 h and 272 h) and a (follow-up due 171 h); old's resolution is due
    // at 673 h.
    assert_eq!((f.open, f.overdue), (3, 3));
    let overdue: Vec<_> = r.overdue.iter().map(|l| l.case_id.as_str()).collect();
    assert_eq!(overdue, [c.id.as_str(), a.id.as_str(), late.id.as_str()]);
    assert_eq!(r.overdue[1].deadline, Some(DeadlineKind::FollowUp));
    let high: Vec<_> = r
        .high_risk
        .iter()
        .map(|l| (l.case_id.as_str(), l.risk))
        .collect();
    assert_eq!(
        high,
        [
            (c.id.as_str(), RiskLevel::Red),
            (old.id.as_str(), RiskLevel::Orange)
        ]
    );
    assert_eq!(
        r.high_risk[0].supervising,
        ["610116"],
        "red at a township: the county"
    );
    assert_eq!(r.alerts.len(), 1);
    // No personal data anywhere.
    for text in [to_csv(&r), to_text(&r, Lang::Zh), to_text(&r, Lang::En)] {
        assert!(
            !text.contains("13812345678") && !text.contains("张三"),
            "{text}"
        );
    }
}

#[test]
fn csv_reads_back_into_the_same_report() {
    let line = |id: &str, risk| CaseLine {
        case_id: id.into(),
        status: CaseStatus::InMediation,
        risk,
        category: Category::PropertyManagement,
        deadline: Some(DeadlineKind::Resolve),
        due_at: Some(at(5)),
        warning: Warning::Red,
        supervising: vec!["610116".into(), "6101".into()],
        summary: "物业费, \"六千元\"\n第二行".into(),
    };
    let r = ReportData {
        node: NODE.into(),
        period: "2024-05-01..2024-05-31".into(),
        from: at(0),
        to: at(720),
        made_at: at(721),
        figures: Figures {
            received: 5,
            accepted: 4,
            rejected: 1,
            resolved: 3,
            unresolved: 1,
            closed: 2,
            reopened: 1,
            amount_fen: 1_234_567,
            open: 2,
            overdue: 1,
            high_risk: 1,
        },
        overdue: vec![line("x-1", RiskLevel::Blue)],
        high_risk: vec![line("x-2", RiskLevel::Red)],
        alerts: vec![AlertLine {
            raised_at: at(10),
            kind: AlertKind::GroupDispute,
            node: NODE.into(),
            case_ids: vec!["x-1".into(), "x-2".into()],
            message: "被申请人“某公司”涉及2件在办案件".into(),
        }],
    };
    let csv = to_csv(&r);
    assert!(csv.starts_with("section,name,value,case_id,status,risk,category,time,nodes,text\r\n"));
    assert!(csv.contains("figure,success_rate,75.0"), "{csv}");
    assert!(csv.contains("2024-05-01T13:00:00+08:00"), "{csv}");
    assert_eq!(from_csv(&csv).unwrap(), r);
    assert!(from_csv("").is_err());
    assert!(from_csv("a,b\r\n").is_err());
    assert!(from_csv(&csv.replace("figure,received,5", "figure,received,five")).is_err());
    assert!(from_csv("section,\"unterminated").is_err());

    let zh = to_text(&r, Lang::Zh);
    assert!(zh.contains("化解成功率: 75.0%"), "{zh}");
    assert!(zh.contains("二、逾期案件（1）"), "{zh}");
    assert!(zh.contains("督办: 610116, 6101"), "{zh}");
    assert!(zh.contains("群体性纠纷苗头"), "{zh}");
    let en = to_text(&r, Lang::En);
    assert!(en.contains("success rate: 75.0%"), "{en}");
    assert!(en.contains("2. Overdue cases (1)"), "{en}");
    assert!(en.contains("group dispute"), "{en}");
}
