//! How fqctl shows things to people: tables and detail views with Chinese labels (English with
//! `--lang en`), amounts in yuan, times in China time; and JSON with proto enum names for
//! scripts.

use fengqiao_proto::v1 as pb;
use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;

use super::{Failure, Lang};
use crate::domain;
pub use crate::text::{code_name, fmt_fen};

/// The generated proto enums, by name.
pub trait ProtoEnum: Sized + Copy + Into<i32> {
    fn from_name(name: &str) -> Option<Self>;
    fn name(self) -> &'static str;
    fn from_i32(v: i32) -> Option<Self>;
}

macro_rules! proto_enum {
    ($($t:ident),+) => {$(
        impl ProtoEnum for pb::$t {
            fn from_name(name: &str) -> Option<Self> { pb::$t::from_str_name(name) }
            fn name(self) -> &'static str { self.as_str_name() }
            fn from_i32(v: i32) -> Option<Self> { pb::$t::try_from(v).ok() }
        }
    )+};
}
proto_enum!(
    EscalationMode,
    CaseStatus,
    Category,
    Channel,
    RiskLevel,
    PartyRole,
    MediationMethod,
    MediationType,
    MediationResult,
    Confirmation,
    Warning
);

/// Parses a CLI value like `walk-in` into `CHANNEL_WALK_IN`; UNSPECIFIED is not a value.
pub fn parse_enum<E: ProtoEnum>(prefix: &str, s: &str, what: &str) -> Result<E, Failure> {
    let name = format!("{prefix}_{}", s.trim().to_uppercase().replace('-', "_"));
    match E::from_name(&name) {
        Some(e) if !e.name().ends_with("_UNSPECIFIED") => Ok(e),
        _ => {
            let valid: Vec<String> = (1..64)
                .filter_map(E::from_i32)
                .map(|e| {
                    e.name()
                        .trim_start_matches(prefix)
                        .trim_start_matches('_')
                        .to_lowercase()
                        .replace('_', "-")
                })
                .collect();
            Err(Failure::usage(format!(
                "unknown {what} {s:?}; one of: {}",
                valid.join(", ")
            )))
        }
    }
}

/// Script-stable name of an enum value (the proto name), or "" for unset.
fn enum_name<E: ProtoEnum>(v: i32) -> &'static str {
    match E::from_i32(v) {
        Some(e) if !e.name().ends_with("_UNSPECIFIED") => e.name(),
        _ => "",
    }
}

fn label(code: i32, f: impl Fn(u8) -> Option<(&'static str, &'static str)>, lang: Lang) -> String {
    u8::try_from(code)
        .ok()
        .and_then(f)
        .map_or_else(|| "-".to_string(), |(zh, en)| lang.t(zh, en).to_string())
}

macro_rules! label_fn {
    ($name:ident, $t:ident) => {
        pub fn $name(v: i32, lang: Lang) -> String {
            label(
                v,
                |c| domain::$t::from_code(c).map(|e| (e.label_zh(), e.label_en())),
                lang,
            )
        }
    };
}
label_fn!(status_label, CaseStatus);
label_fn!(category_label, Category);
label_fn!(channel_label, Channel);
label_fn!(risk_label, RiskLevel);
label_fn!(role_label, PartyRole);
label_fn!(mediation_type_label, MediationType);
label_fn!(confirmation_label, Confirmation);

/// 正常 / 黄灯 / 红灯: how much of the running deadline is used.
pub fn warning_label(v: i32, lang: Lang) -> String {
    label(
        v,
        |c| domain::rules::Warning::from_code(c).map(|e| (e.label_zh(), e.label_en())),
        lang,
    )
}

/// The running deadline as shown: review while unreviewed, follow-up once mediation ended,
/// resolution otherwise.
fn running_due(c: &pb::Case) -> &Option<prost_types::Timestamp> {
    if c.status == pb::CaseStatus::Registered as i32 {
        &c.review_due_at
    } else if c.status == pb::CaseStatus::Resolved as i32
        || c.status == pb::CaseStatus::Unresolved as i32
    {
        &c.follow_up_due_at
    } else {
        &c.resolve_due_at
    }
}

/// "2026-11-22 12:05" in China time, or "-".
pub fn fmt_time(t: &Option<prost_types::Timestamp>) -> String {
    let Some(t) = t else { return "-".into() };
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .map(|d| d.to_offset(time::macros::offset!(+8)))
        .and_then(|d| d.format(fmt).ok())
        .unwrap_or_else(|| "-".into())
}

/// RFC 3339 in UTC, or null.
pub fn rfc3339(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// `s` padded with spaces to `width` display columns (CJK characters count two).
pub fn pad(s: &str, width: usize) -> String {
    let w = UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn truncate(s: &str, width: usize) -> String {
    if UnicodeWidthStr::width(s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for ch in s.chars() {
        if UnicodeWidthStr::width(out.as_str())
            + unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0)
            > width.saturating_sub(1)
        {
            break;
        }
        out.push(ch);
    }
    out.push('…');
    out
}

/// A table with display-width aware columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| UnicodeWidthStr::width(*h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(UnicodeWidthStr::width(c.as_str()));
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "─".repeat(*w)).collect()));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

pub fn case_table(cases: &[pb::Case], next_token: &str, lang: Lang) -> String {
    let header = [
        lang.t("案件编号", "case id"),
        lang.t("状态", "status"),
        lang.t("风险", "risk"),
        lang.t("类别", "category"),
        lang.t("标的额(元)", "amount (yuan)"),
        lang.t("期限", "due"),
        lang.t("预警", "warning"),
        lang.t("摘要", "summary"),
    ];
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            let warning = if c.warning == pb::Warning::None as i32 {
                String::new()
            } else {
                warning_label(c.warning, lang)
            };
            vec![
                c.id.clone(),
                status_label(c.status, lang),
                risk_label(c.risk, lang),
                category_label(c.category, lang),
                fmt_fen(c.amount_fen),
                fmt_time(running_due(c)),
                warning,
                truncate(&c.summary, 30),
            ]
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push_str(&match lang {
        Lang::Zh => format!("共 {} 件", cases.len()),
        Lang::En => format!("{} case(s)", cases.len()),
    });
    if !next_token.is_empty() {
        out.push_str(&format!(
            "  {} --page-token {next_token}",
            lang.t("下一页:", "next page:")
        ));
    }
    out.push('\n');
    out
}

pub fn case_detail(c: &pb::Case, lang: Lang) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        (lang.t("案件编号", "case id"), c.id.clone()),
        (lang.t("查询码", "lookup code"), c.lookup_code.clone()),
        (lang.t("状态", "status"), status_label(c.status, lang)),
        (lang.t("类别", "category"), category_label(c.category, lang)),
        (
            lang.t("受理渠道", "channel"),
            channel_label(c.channel, lang),
        ),
        (lang.t("风险等级", "risk"), risk_label(c.risk, lang)),
        (lang.t("摘要", "summary"), c.summary.clone()),
    ];
    if !c.description.is_empty() {
        rows.push((lang.t("详情", "description"), c.description.clone()));
    }
    for p in &c.parties {
        let mut s = format!("{} {}", role_label(p.role, lang), p.name);
        for extra in [&p.phone, &p.id_number] {
            if !extra.is_empty() {
                s.push_str(&format!("  {extra}"));
            }
        }
        rows.push((lang.t("当事人", "party"), s));
    }
    rows.push((lang.t("标的额(元)", "amount (yuan)"), fmt_fen(c.amount_fen)));
    if !c.grid_id.is_empty() {
        rows.push((lang.t("网格", "grid"), c.grid_id.clone()));
    }
    rows.push((
        lang.t("承办", "handler"),
        if c.handler.is_empty() {
            "-".into()
        } else {
            c.handler.clone()
        },
    ));
    rows.push((lang.t("所属中心", "owner node"), c.owner_node.clone()));
    if c.origin_node != c.owner_node {
        rows.push((lang.t("登记中心", "origin node"), c.origin_node.clone()));
    }
    if !c.moved_to.is_empty() {
        rows.push((lang.t("已移交至", "moved to"), c.moved_to.clone()));
    }
    if c.epoch > 1 {
        rows.push((lang.t("移交轮次", "epoch"), c.epoch.to_string()));
    }
    rows.push((lang.t("登记时间", "registered"), fmt_time(&c.created_at)));
    rows.push((lang.t("审核期限", "review due"), fmt_time(&c.review_due_at)));
    let mut resolve_due = fmt_time(&c.resolve_due_at);
    if c.deadline_extended {
        resolve_due.push_str(lang.t("（已延期）", " (extended)"));
    }
    rows.push((lang.t("办理期限", "resolve due"), resolve_due));
    if c.follow_up_due_at.is_some() {
        rows.push((
            lang.t("回访期限", "follow-up due"),
            fmt_time(&c.follow_up_due_at),
        ));
    }
    if running_due(c).is_some() && c.warning != pb::Warning::Unspecified as i32 {
        rows.push((
            lang.t("期限预警", "warning"),
            warning_label(c.warning, lang),
        ));
    }
    if !c.supervising_nodes.is_empty() {
        rows.push((
            lang.t("督办单位", "supervised by"),
            c.supervising_nodes.join(", "),
        ));
    }
    if c.mediation_type != 0 {
        rows.push((
            lang.t("调解类型", "mediation type"),
            mediation_type_label(c.mediation_type, lang),
        ));
    }
    if !c.agreement.is_empty() {
        rows.push((lang.t("调解协议", "agreement"), c.agreement.clone()));
        rows.push((
            lang.t("履行金额(元)", "settled (yuan)"),
            fmt_fen(c.settled_amount_fen),
        ));
        rows.push((
            lang.t("确认方式", "confirmation"),
            confirmation_label(c.confirmation, lang),
        ));
    }
    if !c.reason.is_empty() {
        rows.push((lang.t("理由", "reason"), c.reason.clone()));
    }
    if !c.guidance.is_empty() {
        rows.push((lang.t("告知去向", "guidance"), c.guidance.clone()));
    }
    if c.satisfaction != 0 {
        rows.push((
            lang.t("回访满意度", "satisfaction"),
            format!("{}/5", c.satisfaction),
        ));
    }
    if c.reopen_count != 0 {
        rows.push((
            lang.t("重新办理次数", "reopened"),
            c.reopen_count.to_string(),
        ));
    }
    if let Some(p) = &c.plan {
        for (zh, en, v) in [
            ("包案领导", "lead leader", &p.lead_leader),
            ("调解组织", "mediation org", &p.mediation_org),
            ("联系单位", "liaison unit", &p.liaison_unit),
            ("化解方案", "plan", &p.plan),
            ("法律政策宣讲", "legal briefing", &p.legal_briefing),
        ] {
            if !v.is_empty() {
                rows.push((lang.t(zh, en), v.clone()));
            }
        }
        for (i, e) in p.progress.iter().enumerate() {
            let label = if i == 0 {
                lang.t("办理进展", "progress")
            } else {
                ""
            };
            rows.push((label, format!("{}  {}", fmt_time(&e.at), e.text)));
        }
    }
    let width = rows
        .iter()
        .map(|(k, _)| UnicodeWidthStr::width(*k))
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{}  {v}\n", pad(k, width)))
        .collect()
}

pub fn history_table(h: &pb::CaseHistory, lang: Lang) -> String {
    let header = [
        "#",
        lang.t("时间", "time"),
        lang.t("中心", "node"),
        lang.t("操作人", "actor"),
        lang.t("事项", "event"),
        lang.t("状态变化", "status"),
        lang.t("说明", "detail"),
    ];
    let rows: Vec<Vec<String>> = h
        .events
        .iter()
        .map(|e| {
            let from = if e.from_status == 0 {
                String::new()
            } else {
                format!("{} → ", status_label(e.from_status, lang))
            };
            vec![
                e.seq.to_string(),
                fmt_time(&e.at),
                e.node.clone(),
                e.actor.trim_start_matches("spiffe://fengqiao/").to_string(),
                e.kind.clone(),
                format!("{from}{}", status_label(e.to_status, lang)),
                e.detail.clone(),
            ]
        })
        .collect();
    format!(
        "{}: {}\n{}",
        lang.t("案件", "case"),
        h.case_id,
        table(&header, &rows)
    )
}

pub fn case_json(c: &pb::Case) -> Value {
    json!({
        "id": c.id,
        "lookup_code": c.lookup_code,
        "status": enum_name::<pb::CaseStatus>(c.status),
        "owner_node": c.owner_node,
        "origin_node": c.origin_node,
        "epoch": c.epoch,
        "moved_to": c.moved_to,
        "category": enum_name::<pb::Category>(c.category),
        "channel": enum_name::<pb::Channel>(c.channel),
        "risk": enum_name::<pb::RiskLevel>(c.risk),
        "summary": c.summary,
        "description": c.description,
        "parties": c.parties.iter().map(|p| json!({
            "role": enum_name::<pb::PartyRole>(p.role),
            "name": p.name,
            "phone": p.phone,
            "id_number": p.id_number,
        })).collect::<Vec<_>>(),
        "amount_fen": c.amount_fen,
        "grid_id": c.grid_id,
        "handler": c.handler,
        "created_at": rfc3339(&c.created_at),
        "updated_at": rfc3339(&c.updated_at),
        "review_due_at": rfc3339(&c.review_due_at),
        "resolve_due_at": rfc3339(&c.resolve_due_at),
        "settled_amount_fen": c.settled_amount_fen,
        "reopen_count": c.reopen_count,
        "reason": c.reason,
        "guidance": c.guidance,
        "agreement": c.agreement,
        "confirmation": enum_name::<pb::Confirmation>(c.confirmation),
        "satisfaction": c.satisfaction,
        "mediation_type": enum_name::<pb::MediationType>(c.mediation_type),
        "resolved_at": rfc3339(&c.resolved_at),
        "closed_at": rfc3339(&c.closed_at),
        "warning": enum_name::<pb::Warning>(c.warning),
        "supervising_nodes": c.supervising_nodes,
        "resolve_started_at": rfc3339(&c.resolve_started_at),
        "follow_up_due_at": rfc3339(&c.follow_up_due_at),
        "deadline_extended": c.deadline_extended,
        "plan": c.plan.as_ref().map(plan_json),
    })
}

fn plan_json(p: &pb::CasePlan) -> Value {
    json!({
        "lead_leader": p.lead_leader,
        "mediation_org": p.mediation_org,
        "liaison_unit": p.liaison_unit,
        "plan": p.plan,
        "legal_briefing": p.legal_briefing,
        "progress": p.progress.iter().map(|e| json!({
            "at": rfc3339(&e.at),
            "actor": e.actor,
            "text": e.text,
        })).collect::<Vec<_>>(),
    })
}

pub fn history_json(h: &pb::CaseHistory) -> Value {
    json!({
        "case_id": h.case_id,
        "events": h.events.iter().map(|e| json!({
            "seq": e.seq,
            "at": rfc3339(&e.at),
            "node": e.node,
            "actor": e.actor,
            "kind": e.kind,
            "from_status": enum_name::<pb::CaseStatus>(e.from_status),
            "to_status": enum_name::<pb::CaseStatus>(e.to_status),
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_enum_names_map_to_proto() {
        assert_eq!(
            parse_enum::<pb::Channel>("CHANNEL", "walk-in", "channel").unwrap(),
            pb::Channel::WalkIn
        );
        assert_eq!(
            parse_enum::<pb::Channel>("CHANNEL", "hotline-12348", "channel").unwrap(),
            pb::Channel::Hotline12348
        );
        let e = parse_enum::<pb::Channel>("CHANNEL", "pigeon", "channel").unwrap_err();
        assert!(e.message.contains("walk-in"), "{}", e.message);
        assert!(parse_enum::<pb::Channel>("CHANNEL", "unspecified", "channel").is_err());
    }

    #[test]
    fn tables_align_chinese_text() {
        let t = table(
            &["编号", "状态"],
            &[
                vec!["a".into(), "未审核".into()],
                vec!["长编号xx".into(), "已办结".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        // The second column starts at the same display column on every row.
        let start = |l: &str, v: &str| UnicodeWidthStr::width(&l[..l.find(v).unwrap()]);
        assert_eq!(start(lines[0], "状态"), start(lines[2], "未审核"));
        assert_eq!(start(lines[0], "状态"), start(lines[3], "已办结"));
    }

    #[test]
    fn labels_follow_language() {
        assert_eq!(status_label(1, Lang::Zh), "未审核");
        assert_eq!(status_label(1, Lang::En), "registered");
        assert_eq!(status_label(99, Lang::Zh), "-");
        assert_eq!(warning_label(pb::Warning::Red as i32, Lang::Zh), "红灯");
        assert_eq!(warning_label(pb::Warning::Amber as i32, Lang::En), "amber");
    }

    #[test]
    fn case_detail_shows_deadlines_supervision_and_the_plan() {
        let c = pb::Case {
            status: pb::CaseStatus::Resolved as i32,
            warning: pb::Warning::Amber as i32,
            follow_up_due_at: Some(prost_types::Timestamp {
                seconds: 1_796_083_200,
                nanos: 0,
            }),
            deadline_extended: true,
            supervising_nodes: vec!["610116".into()],
            plan: Some(pb::CasePlan {
                lead_leader: "王书记".into(),
                progress: vec![pb::ProgressEntry {
                    at: None,
                    actor: String::new(),
                    text: "已约谈".into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let zh = case_detail(&c, Lang::Zh);
        for want in [
            "回访期限",
            "2026-12-01 08:00",
            "（已延期）",
            "期限预警",
            "黄灯",
            "督办单位",
            "610116",
            "包案领导",
            "王书记",
            "办理进展",
            "已约谈",
        ] {
            assert!(zh.contains(want), "{want} in {zh}");
        }
        let en = case_detail(&c, Lang::En);
        assert!(en.contains("supervised by") && en.contains("amber"), "{en}");
        let table = case_table(std::slice::from_ref(&c), "", Lang::Zh);
        assert!(
            table.contains("黄灯") && table.contains("2026-12-01 08:00"),
            "{table}"
        );
    }
}
