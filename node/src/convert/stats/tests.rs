use super::*;
use crate::stats::Figures;

#[test]
fn figures_round_trip_through_the_wire() {
    let f = Figures {
        received: 3,
        resolved: 2,
        unresolved: 1,
        resolved_township: 1,
        resolved_village: 1,
        amount_received_fen: 440_000,
        resolution_ms_total: 3 * 86_400_000,
        satisfaction_total: 9,
        satisfaction_count: 2,
        overdue_resolve: 1,
        ..Figures::default()
    };
    let p = figures_to_proto(&f, true);
    assert!((p.success_rate - 2.0 / 3.0).abs() < 1e-9);
    assert!((p.mean_days_to_resolution - 1.0).abs() < 1e-9);
    assert!((p.satisfaction_mean - 4.5).abs() < 1e-9);
    assert!((p.settled_locally_share - 1.0).abs() < 1e-9);
    assert_eq!(p.resolved_by_tier.len(), 2);
    assert_eq!(figures_from_proto(p).unwrap(), f);
}

#[test]
fn contributions_round_trip_and_are_checked() {
    let mut cells = Cells::default();
    let f = Figures {
        received: 1,
        ..Figures::default()
    };
    let dims = [
        Cell {
            dim: Dim::Category,
            value: Category::Labor.code(),
        },
        Cell {
            dim: Dim::MediationType,
            value: 0,
        },
    ];
    cells.apply(&dims, &f, true);
    let node = NodeCode::parse("610116001001").unwrap();
    let c = contribution_to_proto(Kind::Subtree, &node, 202505, 7, &cells);
    let back = incoming_from_proto(c.clone()).unwrap();
    assert_eq!(
        (back.kind, back.bucket, back.version),
        (Kind::Subtree, 202505, 7)
    );
    assert_eq!(back.cells, cells);

    let refused = |edit: fn(&mut pb::Contribution)| {
        let mut bad = c.clone();
        edit(&mut bad);
        incoming_from_proto(bad).unwrap_err().to_string()
    };
    assert!(refused(|c| c.kind = 0).contains("contributions.kind"));
    assert!(refused(|c| c.kind = 9).contains("contributions.kind"));
    assert!(refused(|c| c.month = 202513).contains("contributions.month"));
    assert!(refused(|c| c.version = 0).contains("contributions.version"));
    assert!(refused(|c| c.node = "61011".into()).contains("contributions.node"));
    assert!(refused(|c| c.cells[0].by = pb::GroupBy::Month as i32).contains("cells.by"));
    assert!(refused(|c| c.cells[0].value = 0).contains("cells.value"));
    assert!(refused(|c| c.cells[1] = c.cells[0].clone()).contains("twice"));
}

#[test]
fn group_by_refuses_unspecified_and_unknown() {
    assert_eq!(
        group_by_from_proto(&[pb::GroupBy::Child as i32, pb::GroupBy::Category as i32]).unwrap(),
        vec![GroupBy::Child, GroupBy::Dim(Dim::Category)]
    );
    assert!(group_by_from_proto(&[0]).is_err());
    assert!(group_by_from_proto(&[42]).is_err());
    assert_eq!(scope_from_proto("").unwrap(), None);
    assert!(scope_from_proto("6101x").is_err());
}
