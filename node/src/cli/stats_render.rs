//! How `fqctl stats` shows an answer: tables with Chinese labels (English with `--lang en`),
//! CSV with every figure, JSON with machine names.

use fengqiao_proto::v1 as pb;
use serde_json::{Value, json};

use super::Lang;
use super::render::{
    category_label, channel_label, fmt_fen, fmt_time, mediation_type_label, pad, rfc3339,
    risk_label, table,
};

/// A figure's value, kept typed so each output can format it its own way.
enum Val {
    Count(u64),
    Fen(i64),
    /// A fraction 0–1, shown as a percentage.
    Share(f64),
    Num(f64),
}

impl Val {
    fn human(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Fen(f) => fmt_fen(*f),
            Val::Share(s) => format!("{:.1}%", s * 100.0),
            Val::Num(x) => format!("{x:.1}"),
        }
    }

    fn csv(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Fen(f) => format!(
                "{}{}.{:02}",
                if *f < 0 { "-" } else { "" },
                f.unsigned_abs() / 100,
                f.unsigned_abs() % 100
            ),
            Val::Share(s) => format!("{:.2}", s * 100.0),
            Val::Num(x) => format!("{x:.2}"),
        }
    }

    fn json(&self) -> Value {
        match self {
            Val::Count(n) => json!(n),
            Val::Fen(f) => json!(f),
            Val::Share(x) | Val::Num(x) => json!(x),
        }
    }
}

/// One figure: labels, JSON key, and how to read it.
struct Col {
    zh: &'static str,
    en: &'static str,
    key: &'static str,
    get: fn(&pb::Figures) -> Val,
}

fn tier_share(f: &pb::Figures, tier: pb::Tier) -> Val {
    Val::Share(
        f.resolved_by_tier
            .iter()
            .find(|t| t.tier == tier as i32)
            .map_or(0.0, |t| t.share),
    )
}

const fn col(
    zh: &'static str,
    en: &'static str,
    key: &'static str,
    get: fn(&pb::Figures) -> Val,
) -> Col {
    Col { zh, en, key, get }
}

/// Every figure, in the order people read them.
#[rustfmt::skip]
const COLS: &[Col] = &[
    col("收案", "received", "received", |f| Val::Count(f.received)),
    col("受理", "accepted", "accepted", |f| Val::Count(f.accepted)),
    col("不予受理", "rejected", "rejected", |f| Val::Count(f.rejected)),
    col("化解成功", "resolved", "resolved", |f| Val::Count(f.resolved)),
    col("调解不成", "unresolved", "unresolved", |f| Val::Count(f.unresolved)),
    col("化解率", "success rate", "success_rate", |f| Val::Share(f.success_rate)),
    col("办结", "closed", "closed", |f| Val::Count(f.closed)),
    col("在办", "open", "open", |f| Val::Count(f.open)),
    col("未审核", "unreviewed", "unreviewed", |f| Val::Count(f.unreviewed)),
    col("待回访", "awaiting follow-up", "awaiting_follow_up", |f| Val::Count(f.awaiting_follow_up)),
    col("审核超期", "overdue review", "overdue_review", |f| Val::Count(f.overdue_review)),
    col("办理超期", "overdue resolution", "overdue_resolve", |f| Val::Count(f.overdue_resolve)),
    col("回访超期", "overdue follow-up", "overdue_follow_up", |f| Val::Count(f.overdue_follow_up)),
    col("涉及金额(元)", "amount involved (yuan)", "amount_received_fen", |f| Val::Fen(f.amount_received_fen)),
    col("化解案件涉及金额(元)", "amount in resolved (yuan)", "amount_resolved_fen", |f| Val::Fen(f.amount_resolved_fen)),
    col("履行金额(元)", "settled (yuan)", "settled_fen", |f| Val::Fen(f.settled_fen)),
    col("平均办理天数", "mean days to resolution", "mean_days_to_resolution", |f| Val::Num(f.mean_days_to_resolution)),
    col("回访满意度", "satisfaction (1-5)", "satisfaction_mean", |f| Val::Num(f.satisfaction_mean)),
    col("回访数", "follow-ups", "satisfaction_count", |f| Val::Count(f.satisfaction_count)),
    col("重新办理", "reopened", "reopened", |f| Val::Count(f.reopened)),
    col("上交", "escalated out", "escalated_out", |f| Val::Count(f.escalated_out)),
    col("接收上交", "escalated in", "escalated_in", |f| Val::Count(f.escalated_in)),
    col("下交/流转", "transferred out", "transferred_out", |f| Val::Count(f.transferred_out)),
    col("接收下交/流转", "transferred in", "transferred_in", |f| Val::Count(f.transferred_in)),
    col("村级化解占比", "resolved at village", "share_village", |f| tier_share(f, pb::Tier::Village)),
    col("乡镇级化解占比", "resolved at township", "share_township", |f| tier_share(f, pb::Tier::Township)),
    col("县级化解占比", "resolved at county", "share_county", |f| tier_share(f, pb::Tier::County)),
    col("市级化解占比", "resolved at city", "share_city", |f| tier_share(f, pb::Tier::City)),
    col("省级化解占比", "resolved at province", "share_province", |f| tier_share(f, pb::Tier::Province)),
    col("小事不出村、大事不出镇", "settled at township or village", "settled_locally_share", |f| Val::Share(f.settled_locally_share)),
];

/// The figures shown in a breakdown table (CSV and JSON have them all).
const ROW_KEYS: &[&str] = &[
    "received",
    "accepted",
    "resolved",
    "unresolved",
    "success_rate",
    "closed",
    "open",
    "overdue_review",
    "overdue_resolve",
    "amount_received_fen",
    "settled_fen",
];

fn group_title(by: i32, lang: Lang) -> &'static str {
    match pb::GroupBy::try_from(by) {
        Ok(pb::GroupBy::Category) => lang.t("按纠纷类别", "by category"),
        Ok(pb::GroupBy::Channel) => lang.t("按受理渠道", "by channel"),
        Ok(pb::GroupBy::Risk) => lang.t("按风险等级", "by risk"),
        Ok(pb::GroupBy::MediationType) => lang.t("按调解类型", "by mediation type"),
        Ok(pb::GroupBy::Month) => lang.t("按月份", "by month"),
        Ok(pb::GroupBy::Child) => lang.t("按下级中心", "by child"),
        _ => "-",
    }
}

fn group_key(by: i32) -> &'static str {
    match pb::GroupBy::try_from(by) {
        Ok(pb::GroupBy::Category) => "category",
        Ok(pb::GroupBy::Channel) => "channel",
        Ok(pb::GroupBy::Risk) => "risk",
        Ok(pb::GroupBy::MediationType) => "mediation_type",
        Ok(pb::GroupBy::Month) => "month",
        Ok(pb::GroupBy::Child) => "child",
        _ => "",
    }
}

/// The readable label of a row's key.
fn row_label(row: &pb::GroupRow, scope: &str, lang: Lang) -> String {
    use pb::group_row::Key;
    match &row.key {
        Some(Key::Category(v)) => category_label(*v, lang),
        Some(Key::Channel(v)) => channel_label(*v, lang),
        Some(Key::Risk(v)) => risk_label(*v, lang),
        Some(Key::MediationType(0)) => lang.t("未调解", "none recorded").to_string(),
        Some(Key::MediationType(v)) => mediation_type_label(*v, lang),
        Some(Key::Month(m)) => m.clone(),
        Some(Key::Node(n)) if n == scope => format!("{n} ({})", lang.t("本级", "own")),
        Some(Key::Node(n)) => n.clone(),
        None => "-".to_string(),
    }
}

/// The machine form of a row's key (proto enum names, months, codes).
fn row_json_key(row: &pb::GroupRow) -> String {
    use pb::group_row::Key;
    let name = |r: Result<&'static str, prost::UnknownEnumValue>| r.unwrap_or("").to_string();
    match &row.key {
        Some(Key::Category(v)) => name(pb::Category::try_from(*v).map(|e| e.as_str_name())),
        Some(Key::Channel(v)) => name(pb::Channel::try_from(*v).map(|e| e.as_str_name())),
        Some(Key::Risk(v)) => name(pb::RiskLevel::try_from(*v).map(|e| e.as_str_name())),
        Some(Key::MediationType(v)) => {
            name(pb::MediationType::try_from(*v).map(|e| e.as_str_name()))
        }
        Some(Key::Month(m)) => m.clone(),
        Some(Key::Node(n)) => n.clone(),
        None => String::new(),
    }
}

fn period(a: &pb::Aggregates, lang: Lang) -> String {
    let side = |m: &str, open: &'static str| {
        if m.is_empty() {
            open.to_string()
        } else {
            m.to_string()
        }
    };
    format!(
        "{} {} {}",
        side(&a.first_month, lang.t("最早", "start")),
        lang.t("至", "to"),
        side(&a.last_month, lang.t("最新", "latest"))
    )
}

fn heard(s: &pb::ChildStatus, lang: Lang) -> String {
    match &s.last_heard {
        Some(_) => fmt_time(&s.last_heard),
        None => lang.t("尚未联系", "never").to_string(),
    }
}

pub fn tables(a: &pb::Aggregates, lang: Lang) -> String {
    let totals = a.totals.clone().unwrap_or_default();
    let mut out = format!(
        "{}: {}    {}: {}    {}: {}\n\n",
        lang.t("统计范围", "scope"),
        a.scope_node,
        lang.t("期间", "period"),
        period(a, lang),
        lang.t("截至", "as of"),
        fmt_time(&a.as_of),
    );
    let width = COLS
        .iter()
        .map(|c| unicode_width::UnicodeWidthStr::width(lang.t(c.zh, c.en)))
        .max()
        .unwrap_or(0);
    for c in COLS {
        out.push_str(&format!(
            "{}  {}\n",
            pad(lang.t(c.zh, c.en), width),
            (c.get)(&totals).human()
        ));
    }
    out.push_str(&format!(
        "\n{}\n",
        lang.t(
            "在办、未审核、待回访及各项超期为当前状态，不受期间限制。",
            "Open, unreviewed, awaiting follow-up and overdue are as of now, whatever the period."
        )
    ));
    let cols: Vec<&Col> = ROW_KEYS
        .iter()
        .filter_map(|k| COLS.iter().find(|c| c.key == *k))
        .collect();
    for g in &a.groups {
        let mut header = vec![group_title(g.by, lang)];
        header.extend(cols.iter().map(|c| lang.t(c.zh, c.en)));
        let rows: Vec<Vec<String>> = g
            .rows
            .iter()
            .map(|r| {
                let f = r.figures.clone().unwrap_or_default();
                let mut row = vec![row_label(r, &a.scope_node, lang)];
                row.extend(cols.iter().map(|c| (c.get)(&f).human()));
                row
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&header, &rows));
    }
    if a.children_folded {
        out.push_str(&format!(
            "\n{} ({} {})\n",
            lang.t(
                "下级明细已合并：该范围位于本中心保留层级的最底层",
                "Children folded: the scope lies at this node's retention depth"
            ),
            lang.t("保留层级", "retention depth"),
            a.retention_depth
        ));
    }
    if !a.children.is_empty() {
        let header = [
            lang.t("下级中心", "child"),
            lang.t("最近联系", "last heard"),
            lang.t("状态", "state"),
        ];
        let rows: Vec<Vec<String>> = a
            .children
            .iter()
            .map(|s| {
                vec![
                    s.node.clone(),
                    heard(s, lang),
                    if s.stale {
                        lang.t("失联", "stale").to_string()
                    } else {
                        lang.t("正常", "ok").to_string()
                    },
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&header, &rows));
    }
    if !a.stale_descendants.is_empty() {
        out.push_str(&format!(
            "\n{}:\n",
            lang.t(
                "数据可能未更新的下级（失联，含其全部下级）",
                "Stale descendants (figures may be out of date, with everything below them)"
            )
        ));
        for s in &a.stale_descendants {
            out.push_str(&format!(
                "  {}  {}: {}\n",
                s.node,
                lang.t("最近联系", "last heard"),
                heard(s, lang)
            ));
        }
    }
    out
}

/// CSV: a header, the total, then one row per breakdown row. Fields with commas or quotes
/// are quoted.
pub fn csv(a: &pb::Aggregates, lang: Lang) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut header = vec![
        lang.t("分组", "group").to_string(),
        lang.t("项目", "key").to_string(),
    ];
    header.extend(COLS.iter().map(|c| {
        let label = lang.t(c.zh, c.en);
        match (c.get)(&pb::Figures::default()) {
            Val::Share(_) => format!("{label}(%)"),
            _ => label.to_string(),
        }
    }));
    let line = |group: &str, key: &str, f: &pb::Figures| -> String {
        let mut cells = vec![field(group), field(key)];
        cells.extend(COLS.iter().map(|c| (c.get)(f).csv()));
        cells.join(",") + "\n"
    };
    let mut out = header
        .iter()
        .map(|h| field(h))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    out.push_str(&line(
        lang.t("合计", "total"),
        &a.scope_node,
        &a.totals.clone().unwrap_or_default(),
    ));
    for g in &a.groups {
        for r in &g.rows {
            out.push_str(&line(
                group_title(g.by, lang),
                &row_label(r, &a.scope_node, lang),
                &r.figures.clone().unwrap_or_default(),
            ));
        }
    }
    out
}

fn figures_json(f: &pb::Figures) -> Value {
    let mut m = serde_json::Map::new();
    for c in COLS {
        m.insert(c.key.to_string(), (c.get)(f).json());
    }
    m.insert("resolution_ms_total".into(), json!(f.resolution_ms_total));
    m.insert("satisfaction_total".into(), json!(f.satisfaction_total));
    Value::Object(m)
}

fn status_json(s: &pb::ChildStatus) -> Value {
    json!({ "node": s.node, "last_heard": rfc3339(&s.last_heard), "stale": s.stale })
}

pub fn json(a: &pb::Aggregates) -> Value {
    json!({
        "scope_node": a.scope_node,
        "first_month": a.first_month,
        "last_month": a.last_month,
        "as_of": rfc3339(&a.as_of),
        "totals": figures_json(&a.totals.clone().unwrap_or_default()),
        "groups": a.groups.iter().map(|g| json!({
            "by": group_key(g.by),
            "rows": g.rows.iter().map(|r| json!({
                "key": row_json_key(r),
                "figures": figures_json(&r.figures.clone().unwrap_or_default()),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "children": a.children.iter().map(status_json).collect::<Vec<_>>(),
        "stale_descendants": a.stale_descendants.iter().map(status_json).collect::<Vec<_>>(),
        "children_folded": a.children_folded,
        "retention_depth": a.retention_depth,
    })
}

#[cfg(test)]
mod tests;
