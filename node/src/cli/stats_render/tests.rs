use super::*;

fn sample() -> pb::Aggregates {
    let f = pb::Figures {
        received: 12,
        resolved: 9,
        unresolved: 1,
        amount_received_fen: 1_574_000_000,
        success_rate: 0.9,
        resolved_by_tier: vec![pb::TierCount {
            tier: pb::Tier::Village as i32,
            resolved: 9,
            share: 1.0,
        }],
        ..Default::default()
    };
    pb::Aggregates {
        scope_node: "610116".into(),
        first_month: "2025-01".into(),
        totals: Some(f.clone()),
        groups: vec![pb::Group {
            by: pb::GroupBy::Category as i32,
            rows: vec![pb::GroupRow {
                key: Some(pb::group_row::Key::Category(pb::Category::Labor as i32)),
                figures: Some(f),
            }],
        }],
        children: vec![pb::ChildStatus {
            node: "610116001".into(),
            last_heard: None,
            stale: true,
        }],
        ..Default::default()
    }
}

#[test]
fn tables_speak_chinese_by_default() {
    let t = tables(&sample(), Lang::Zh);
    for label in [
        "收案",
        "化解率",
        "90.0%",
        "劳动争议",
        "15,740,000.00",
        "失联",
        "2025-01 至 最新",
    ] {
        assert!(t.contains(label), "{label} missing in\n{t}");
    }
    let t = tables(&sample(), Lang::En);
    assert!(
        t.contains("received") && t.contains("labor") && t.contains("stale"),
        "{t}"
    );
}

#[test]
fn csv_has_every_figure_per_row() {
    let c = csv(&sample(), Lang::Zh);
    let lines: Vec<&str> = c.lines().collect();
    assert_eq!(lines.len(), 3);
    let width = lines[0].split(',').count();
    assert_eq!(width, COLS.len() + 2);
    assert!(lines.iter().all(|l| l.split(',').count() == width), "{c}");
    assert!(lines[0].contains("化解率(%)"));
    assert!(lines[1].starts_with("合计,610116,12,"), "{}", lines[1]);
    assert!(lines[1].contains(",15740000.00,"), "{}", lines[1]);
    assert!(lines[2].starts_with("按纠纷类别,劳动争议,"), "{}", lines[2]);
}

#[test]
fn json_uses_machine_names() {
    let j = json(&sample());
    assert_eq!(j["totals"]["received"], 12);
    assert_eq!(j["groups"][0]["by"], "category");
    assert_eq!(j["groups"][0]["rows"][0]["key"], "CATEGORY_LABOR");
    assert_eq!(j["children"][0]["stale"], true);
}
