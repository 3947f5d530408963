//! A report as CSV and as readable text, and the CSV read back.
//!
//! CSV (RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled; UTF-8,
//! header row first) with the columns of [`HEADER`]. `section` says what a row is:
//!
//! | section     | name                  | value        | case_id, status, risk, category | time            | nodes              | text    |
//! |-------------|-----------------------|--------------|----------------|-----------------|--------------------|---------|
//! | `meta`      | node, period, from, to, made_at | node / period |      | from, to, made_at |                  |         |
//! | `figure`    | received, accepted, … | the count (`success_rate`: percent, for people only) | | |        |         |
//! | `overdue`, `high_risk` | the deadline running | its warning | the case | due            | supervising (`;`)  | summary |
//! | `alert`     | its kind              |              | case ids (`;`) | raised at       | raising node       | message |
//!
//! Enum values are the domain's English labels; times are RFC 3339 in China time.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{AlertLine, CaseLine, Figures, ReportData};
use crate::domain::alert::AlertKind;
use crate::domain::calendar::china_datetime;
use crate::domain::rules::Warning;
use crate::domain::{CaseStatus, Category, DeadlineKind, RiskLevel, Timestamp};
use crate::text::{Lang, fmt_fen};

/// The CSV columns.
pub const HEADER: [&str; 10] = [
    "section", "name", "value", "case_id", "status", "risk", "category", "time", "nodes", "text",
];

/// The figures in CSV order: machine name, Chinese label, English label, getter.
type Getter = fn(&Figures) -> u64;
const FIGURES: [(&str, &str, &str, Getter); 10] = [
    ("received", "登记受理", "received", |f| f.received),
    ("accepted", "审核通过", "accepted", |f| f.accepted),
    ("rejected", "不予受理", "rejected", |f| f.rejected),
    ("resolved", "化解成功", "resolved", |f| f.resolved),
    ("unresolved", "调解不成", "unresolved", |f| f.unresolved),
    ("closed", "回访办结", "closed after follow-up", |f| {
        f.closed
    }),
    ("reopened", "重新办理", "reopened", |f| f.reopened),
    ("open", "当前在办", "open now", |f| f.open),
    (
        "overdue",
        "逾期未办（含回访）",
        "overdue (follow-up included)",
        |f| f.overdue,
    ),
    (
        "high_risk",
        "红色、橙色风险",
        "red and orange",
        |f| f.high_risk,
    ),
];

fn set_figure(f: &mut Figures, name: &str, v: &str) -> Option<()> {
    if name == "amount_fen" {
        f.amount_fen = v.parse().ok()?;
        return Some(());
    }
    let slot = match name {
        "received" => &mut f.received,
        "accepted" => &mut f.accepted,
        "rejected" => &mut f.rejected,
        "resolved" => &mut f.resolved,
        "unresolved" => &mut f.unresolved,
        "closed" => &mut f.closed,
        "reopened" => &mut f.reopened,
        "open" => &mut f.open,
        "overdue" => &mut f.overdue,
        "high_risk" => &mut f.high_risk,
        _ => return Some(()), // success_rate and figures of later versions: not data
    };
    *slot = v.parse().ok()?;
    Some(())
}

fn rfc3339(t: Timestamp) -> String {
    let offset = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .ok()
        .map(|d| d.to_offset(offset))
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse_time(s: &str) -> Option<Timestamp> {
    let d = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(d.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_row(out: &mut String, cells: [&str; 10]) {
    let row: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
    out.push_str(&row.join(","));
    out.push_str("\r\n");
}

fn case_row(out: &mut String, section: &str, c: &CaseLine) {
    let due = c.due_at.map(rfc3339).unwrap_or_default();
    csv_row(
        out,
        [
            section,
            c.deadline.map_or("", |d| d.label_en()),
            c.warning.label_en(),
            &c.case_id,
            c.status.label_en(),
            c.risk.label_en(),
            c.category.label_en(),
            &due,
            &c.supervising.join(";"),
            &c.summary,
        ],
    );
}

/// The report as CSV.
pub fn to_csv(r: &ReportData) -> String {
    let mut out = String::new();
    csv_row(&mut out, HEADER);
    let meta = |out: &mut String, name: &str, value: &str, time: Option<Timestamp>| {
        let time = time.map(rfc3339).unwrap_or_default();
        csv_row(out, ["meta", name, value, "", "", "", "", &time, "", ""]);
    };
    meta(&mut out, "node", &r.node, None);
    meta(&mut out, "period", &r.period, None);
    meta(&mut out, "from", "", Some(r.from));
    meta(&mut out, "to", "", Some(r.to));
    meta(&mut out, "made_at", "", Some(r.made_at));
    for (name, _, _, get) in FIGURES {
        let v = get(&r.figures).to_string();
        csv_row(&mut out, ["figure", name, &v, "", "", "", "", "", "", ""]);
    }
    let amount = r.figures.amount_fen.to_string();
    csv_row(
        &mut out,
        ["figure", "amount_fen", &amount, "", "", "", "", "", "", ""],
    );
    let rate = r
        .figures
        .success_permille()
        .map(|p| format!("{}.{}", p / 10, p % 10))
        .unwrap_or_default();
    csv_row(
        &mut out,
        ["figure", "success_rate", &rate, "", "", "", "", "", "", ""],
    );
    for c in &r.overdue {
        case_row(&mut out, "overdue", c);
    }
    for c in &r.high_risk {
        case_row(&mut out, "high_risk", c);
    }
    for a in &r.alerts {
        let ids = a.case_ids.join(";");
        let at = rfc3339(a.raised_at);
        csv_row(
            &mut out,
            [
                "alert",
                a.kind.as_str(),
                "",
                &ids,
                "",
                "",
                "",
                &at,
                &a.node,
                &a.message,
            ],
        );
    }
    out
}

/// Splits CSV text into rows of fields (RFC 4180).
fn parse_rows(csv: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = csv.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

fn by_label<T: Copy>(all: &[T], label: impl Fn(T) -> &'static str, s: &str) -> Option<T> {
    all.iter().copied().find(|v| label(*v) == s)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a report back from its CSV.
pub fn from_csv(csv: &str) -> Result<ReportData, String> {
    let rows = parse_rows(csv)?;
    let Some((header, rows)) = rows.split_first() else {
        return Err("empty report".into());
    };
    if header.iter().map(String::as_str).ne(HEADER) {
        return Err(format!("unexpected header {header:?}"));
    }
    let mut r = ReportData {
        node: String::new(),
        period: String::new(),
        from: Timestamp(0),
        to: Timestamp(0),
        made_at: Timestamp(0),
        figures: Figures::default(),
        overdue: Vec::new(),
        high_risk: Vec::new(),
        alerts: Vec::new(),
    };
    for (i, row) in rows.iter().enumerate() {
        let bad = || format!("row {}: {row:?}", i + 2);
        let [
            section,
            name,
            value,
            case_id,
            status,
            risk,
            category,
            time,
            nodes,
            text,
        ] = <[String; 10]>::try_from(row.clone()).map_err(|_| bad())?;
        let at = || parse_time(&time).ok_or_else(bad);
        match section.as_str() {
            "meta" => match name.as_str() {
                "node" => r.node = value,
                "period" => r.period = value,
                "from" => r.from = at()?,
                "to" => r.to = at()?,
                "made_at" => r.made_at = at()?,
                _ => {}
            },
            "figure" => set_figure(&mut r.figures, &name, &value).ok_or_else(bad)?,
            "overdue" | "high_risk" => {
                let line = CaseLine {
                    case_id,
                    status: by_label(CaseStatus::ALL, CaseStatus::label_en, &status)
                        .ok_or_else(bad)?,
                    risk: by_label(RiskLevel::ALL, RiskLevel::label_en, &risk).ok_or_else(bad)?,
                    category: by_label(Category::ALL, Category::label_en, &category)
                        .ok_or_else(bad)?,
                    deadline: by_label(DeadlineKind::ALL, DeadlineKind::label_en, &name),
                    due_at: parse_time(&time),
                    warning: by_label(Warning::ALL, Warning::label_en, &value).ok_or_else(bad)?,
                    supervising: split_list(&nodes),
                    summary: text,
                };
                if section == "overdue" {
                    r.overdue.push(line);
                } else {
                    r.high_risk.push(line);
                }
            }
            "alert" => r.alerts.push(AlertLine {
                raised_at: at()?,
                kind: by_label(AlertKind::ALL, AlertKind::as_str, &name).ok_or_else(bad)?,
                node: nodes,
                case_ids: split_list(&case_id),
                message: text,
            }),
            // Sections of later versions are skipped.
            _ => {}
        }
    }
    Ok(r)
}

fn case_text(lang: Lang, n: usize, c: &CaseLine, supervising: bool) -> String {
    let label = |zh: &'static str, en: &'static str| lang.t(zh, en).to_owned();
    let mut s = format!(
        "  {n}. {}  {}  {}  {}",
        c.case_id,
        label(c.status.label_zh(), c.status.label_en()),
        match lang {
            Lang::Zh => format!("{}色", c.risk.label_zh()),
            Lang::En => c.risk.label_en().to_owned(),
        },
        label(c.category.label_zh(), c.category.label_en()),
    );
    if let (Some(kind), Some(due)) = (c.deadline, c.due_at) {
        s.push_str(&format!(
            "  {} {}",
            label(kind.label_zh(), kind.label_en()),
            china_datetime(due)
        ));
    }
    if supervising && !c.supervising.is_empty() {
        s.push_str(&format!(
            "  {} {}",
            lang.t("督办:", "supervised by"),
            c.supervising.join(", ")
        ));
    }
    s.push_str(&format!("\n     {}\n", c.summary));
    s
}

/// The report as readable text.
pub fn to_text(r: &ReportData, lang: Lang) -> String {
    let f = &r.figures;
    let mut s = match lang {
        Lang::Zh => format!(
            "枫桥综治中心工作报告\n中心：{}    时段：{}（{} 至 {}，北京时间）\n生成时间：{}\n\n一、主要数据\n",
            r.node,
            r.period,
            china_datetime(r.from),
            china_datetime(r.to),
            china_datetime(r.made_at)
        ),
        Lang::En => format!(
            "fengqiao center report\nnode: {}    period: {} ({} to {}, China time)\nmade: {}\n\n1. Figures\n",
            r.node,
            r.period,
            china_datetime(r.from),
            china_datetime(r.to),
            china_datetime(r.made_at)
        ),
    };
    for (_, zh, en, get) in FIGURES {
        s.push_str(&format!("  {}: {}\n", lang.t(zh, en), get(f)));
    }
    let rate = f
        .success_permille()
        .map_or_else(|| "-".to_owned(), |p| format!("{}.{}%", p / 10, p % 10));
    s.push_str(&format!(
        "  {}: {rate}\n",
        lang.t("化解成功率", "success rate")
    ));
    s.push_str(&format!(
        "  {}: {}\n",
        lang.t("受理涉及金额(元)", "amount received (yuan)"),
        fmt_fen(f.amount_fen)
    ));
    let section = |s: &mut String, zh: &str, en: &str, n: usize| {
        s.push_str(&match lang {
            Lang::Zh => format!("\n{zh}（{n}）\n"),
            Lang::En => format!("\n{en} ({n})\n"),
        });
        if n == crate::report::REPORT_LIST_MAX {
            s.push_str(&format!(
                "  {}\n",
                lang.t(
                    "（仅列出前1000件，总数见上方数字）",
                    "(the first 1,000 only; the figures above count them all)"
                )
            ));
        }
        if n == 0 {
            s.push_str(&format!("  {}\n", lang.t("无", "none")));
        }
    };
    section(&mut s, "二、逾期案件", "2. Overdue cases", r.overdue.len());
    for (i, c) in r.overdue.iter().enumerate() {
        s.push_str(&case_text(lang, i + 1, c, false));
    }
    section(
        &mut s,
        "三、红色、橙色风险案件",
        "3. Red and orange cases",
        r.high_risk.len(),
    );
    for (i, c) in r.high_risk.iter().enumerate() {
        s.push_str(&case_text(lang, i + 1, c, true));
    }
    section(&mut s, "四、预警信息", "4. Alerts", r.alerts.len());
    for (i, a) in r.alerts.iter().enumerate() {
        s.push_str(&format!(
            "  {}. {}  {}  {}\n     {}\n",
            i + 1,
            china_datetime(a.raised_at),
            lang.t(a.kind.label_zh(), a.kind.label_en()),
            a.node,
            a.message
        ));
    }
    s
}
