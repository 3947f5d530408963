//! Legacy records (历史台账) read in from an office's spreadsheet: the template, the checks of
//! each row and the case a good row becomes. Pure: the file is read into [`Cell`]s by
//! `crate::report::sheet`, the cases are written by the application layer.
//!
//! The template is one header row (row 1, as Excel numbers rows) with [`TEMPLATE_HEADERS`] in
//! any order (other columns are ignored), then one case per row. A row is either imported
//! whole or reported as `第N行：reason` (every problem of the row, in Chinese); blank rows are
//! skipped. Limits (documented in the CLI and the proto): at most [`IMPORT_MAX_ROWS`] rows.
//!
//! Each good row carries an idempotency key derived from its content ([`LegacyRow::key`]), so
//! importing the same file twice adds nothing, and the same record in two files is one case.

use std::fmt;

use super::calendar::{china_date, china_midnight};
use super::validate::{
    AMOUNT_MAX_FEN, ID_NUMBER_CHARS, ID_NUMBER_LEGACY_CHARS, PARTY_NAME_MAX_CHARS,
    SUMMARY_MAX_CHARS, id_check_digit_ok, phone_plausible,
};
use super::{
    CaseStatus, Category, Channel, NewCase, Party, PartyRole, RiskLevel, Timestamp, machine,
};

/// The template's headers, in the template's order.
pub const TEMPLATE_HEADERS: [&str; 9] = [
    "登记日期",
    "类别",
    "受理渠道",
    "摘要",
    "申请人",
    "电话",
    "身份证号",
    "标的额(元)",
    "状态",
];

/// Most data rows one import reads.
pub const IMPORT_MAX_ROWS: usize = 10_000;

/// The earliest registration date a legacy record may carry.
pub const EARLIEST_YEAR: i64 = 1990;

/// One cell of a spreadsheet as the file reader found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// A numeric cell (Excel keeps 15 significant digits: never an ID number).
    Number(f64),
    /// A cell formatted as a date (year, month, day).
    Date(i64, u32, u32),
}

impl Cell {
    fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }
}

/// The statuses a legacy record may carry (not 已移交: a moved case is held by its new center).
pub const IMPORT_STATUSES: [CaseStatus; 7] = [
    CaseStatus::Registered,
    CaseStatus::Accepted,
    CaseStatus::InMediation,
    CaseStatus::Resolved,
    CaseStatus::Unresolved,
    CaseStatus::Rejected,
    CaseStatus::Closed,
];

/// A row that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRow {
    /// The row's number as Excel shows it (the header is 1).
    pub line: usize,
    /// 登记日期 (a day in China).
    pub date: (i64, u32, u32),
    pub category: Category,
    pub channel: Channel,
    pub summary: String,
    pub applicant: Party,
    pub amount_fen: i64,
    pub status: CaseStatus,
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "第{}行：{}", self.line, self.reason)
    }
}

/// The file cannot be read as the template at all (no header, a missing column, too many
/// rows): nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Reads the rows of a sheet (the header first): the good rows and the rejected ones, in the
/// file's order. A row repeating an earlier row of the same file is rejected.
pub fn read_rows(
    table: &[Vec<Cell>],
    today: (i64, u32, u32),
) -> Result<(Vec<LegacyRow>, Vec<Rejected>), TemplateError> {
    let Some(header) = table.first() else {
        return Err(TemplateError("文件是空的：第1行应为表头".into()));
    };
    let columns = columns(header)?;
    let data = &table[1..];
    let filled = data
        .iter()
        .filter(|r| !r.iter().all(Cell::is_blank))
        .count();
    if filled > IMPORT_MAX_ROWS {
        return Err(TemplateError(format!(
            "一次最多导入{IMPORT_MAX_ROWS}行，文件有{filled}行：请分批导入"
        )));
    }
    let mut good: Vec<LegacyRow> = Vec::new();
    let mut bad = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, row) in data.iter().enumerate() {
        let line = i + 2;
        if row.iter().all(Cell::is_blank) {
            continue;
        }
        let cell = |c: usize| row.get(columns[c]).unwrap_or(&Cell::Empty);
        match read_row(line, &cell, today) {
            Ok(r) => match seen.get(&r.key()) {
                Some(first) => bad.push(Rejected {
                    line,
                    reason: format!("与第{first}行重复"),
                }),
                None => {
                    seen.insert(r.key(), line);
                    good.push(r);
                }
            },
            Err(reasons) => bad.push(Rejected {
                line,
                reason: reasons.join("；"),
            }),
        }
    }
    Ok((good, bad))
}

/// The column of each template header.
fn columns(header: &[Cell]) -> Result<[usize; 9], TemplateError> {
    let names: Vec<String> = header
        .iter()
        .map(|c| match c {
            Cell::Text(s) => normalize_header(s),
            _ => String::new(),
        })
        .collect();
    let mut out = [0; 9];
    let mut missing = Vec::new();
    for (slot, want) in out.iter_mut().zip(TEMPLATE_HEADERS) {
        match names.iter().position(|n| *n == normalize_header(want)) {
            Some(i) => *slot = i,
            None => missing.push(want),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    Err(TemplateError(format!(
        "第1行应为模板表头（{}），缺少：{}",
        TEMPLATE_HEADERS.join("，"),
        missing.join("，")
    )))
}

/// Full-width parentheses and spaces do not matter in a header.
fn normalize_header(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            c => c,
        })
        .collect()
}

fn read_row<'a>(
    line: usize,
    cell: &dyn Fn(usize) -> &'a Cell,
    today: (i64, u32, u32),
) -> Result<LegacyRow, Vec<String>> {
    let mut errs = Vec::new();
    let date = date(cell(0), today).map_err(|e| errs.push(e)).ok();
    let category = label(
        cell(1),
        "类别",
        Category::ALL,
        Category::label_zh,
        Category::label_en,
    )
    .map_err(|e| errs.push(e))
    .ok();
    let channel = label(
        cell(2),
        "受理渠道",
        Channel::ALL,
        Channel::label_zh,
        Channel::label_en,
    )
    .map_err(|e| errs.push(e))
    .ok();
    let summary = line_text(cell(3), "摘要", SUMMARY_MAX_CHARS, true)
        .map_err(|e| errs.push(e))
        .ok();
    let name = line_text(cell(4), "申请人", PARTY_NAME_MAX_CHARS, true)
        .map_err(|e| errs.push(e))
        .ok();
    let phone = phone(cell(5)).map_err(|e| errs.push(e)).ok();
    let id_number = id_number(cell(6)).map_err(|e| errs.push(e)).ok();
    let amount_fen = amount(cell(7)).map_err(|e| errs.push(e)).ok();
    let status = label(
        cell(8),
        "状态",
        &IMPORT_STATUSES,
        CaseStatus::label_zh,
        CaseStatus::label_en,
    )
    .map_err(|e| errs.push(e))
    .ok();
    match (
        date, category, channel, summary, name, phone, id_number, amount_fen, status,
    ) {
        (
            Some(date),
            Some(category),
            Some(channel),
            Some(summary),
            Some(name),
            Some(phone),
            Some(id_number),
            Some(amount_fen),
            Some(status),
        ) if errs.is_empty() => Ok(LegacyRow {
            line,
            date,
            category,
            channel,
            summary,
            applicant: Party {
                role: PartyRole::Applicant,
                name,
                phone,
                id_number,
            },
            amount_fen,
            status,
        }),
        _ => Err(errs),
    }
}

fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Text(s) => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn date(c: &Cell, today: (i64, u32, u32)) -> Result<(i64, u32, u32), String> {
    let ymd = match c {
        Cell::Empty => return Err("登记日期不能为空".into()),
        Cell::Date(y, m, d) => Some((*y, *m, *d)),
        // A date typed into a cell formatted as a number: Excel's day count.
        Cell::Number(n) => excel_serial(*n),
        Cell::Text(s) => parse_date(s),
    };
    let Some((y, m, d)) = ymd else {
        return Err(format!("登记日期「{}」不是日期（如 2024-03-05）", shown(c)));
    };
    if y < EARLIEST_YEAR {
        return Err(format!("登记日期早于{EARLIEST_YEAR}年"));
    }
    if (y, m, d) > today {
        return Err("登记日期晚于今天".into());
    }
    Ok((y, m, d))
}

/// `2024-03-05`, `2024/3/5`, `2024.3.5`, `2024年3月5日`, `20240305`; a time after the date
/// (as some exports write) is ignored.
pub fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let s = s.trim();
    let s = s.split([' ', 'T']).next().unwrap_or(s);
    let parts: Vec<&str> = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        vec![&s[..4], &s[4..6], &s[6..]]
    } else {
        s.trim_end_matches('日')
            .split(['-', '/', '.', '年', '月'])
            .collect()
    };
    let [y, m, d] = parts[..] else {
        return None;
    };
    if y.len() != 4 || !(1..=2).contains(&m.len()) || !(1..=2).contains(&d.len()) {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    real_date(y, m, d)
}

fn real_date(y: i64, m: u32, d: u32) -> Option<(i64, u32, u32)> {
    (china_date(china_midnight(y, m, d)) == (y, m, d)).then_some((y, m, d))
}

/// Excel's serial day number (1900 system; 60 is the fictitious 1900-02-29).
fn excel_serial(n: f64) -> Option<(i64, u32, u32)> {
    if !(61.0..=2_958_465.0).contains(&n) {
        return None;
    }
    // Serial 25569 is 1970-01-01.
    let days = n.floor() as i64 - 25_569;
    let ts = Timestamp(days * 86_400_000 + 8 * 3_600_000);
    Some(china_date(ts))
}

fn label<T: Copy>(
    c: &Cell,
    field: &str,
    all: &[T],
    zh: fn(T) -> &'static str,
    en: fn(T) -> &'static str,
) -> Result<T, String> {
    let s = text(c).unwrap_or_else(|| shown(c));
    if s.is_empty() {
        return Err(format!("{field}不能为空"));
    }
    all.iter()
        .copied()
        .find(|v| zh(*v) == s || en(*v).eq_ignore_ascii_case(&s))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| zh(*v)).collect();
            format!("{field}「{s}」不在模板之内（{}）", names.join("、"))
        })
}

fn line_text(c: &Cell, field: &str, max: usize, required: bool) -> Result<String, String> {
    let s = text(c).unwrap_or_else(|| shown(c));
    if s.is_empty() && required {
        return Err(format!("{field}不能为空"));
    }
    if s.chars().count() > max {
        return Err(format!("{field}最多{max}个字"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{field}含有换行或控制字符"));
    }
    Ok(s)
}

fn phone(c: &Cell) -> Result<String, String> {
    let s = match c {
        Cell::Empty => return Ok(String::new()),
        Cell::Number(_) | Cell::Date(..) => return Err("电话请设置为文本格式".into()),
        Cell::Text(s) => s.trim().to_owned(),
    };
    if s.is_empty() {
        return Ok(s);
    }
    if !phone_plausible(&s) {
        return Err(format!("电话「{s}」不是手机号（11位）或带区号的固定电话"));
    }
    Ok(s)
}

fn id_number(c: &Cell) -> Result<String, String> {
    let s = match c {
        Cell::Empty => return Ok(String::new()),
        Cell::Number(_) | Cell::Date(..) => return Err("身份证号请设置为文本格式".into()),
        Cell::Text(s) => s.trim().to_ascii_uppercase(),
    };
    if s.is_empty() {
        return Ok(s);
    }
    if s.len() != ID_NUMBER_CHARS && s.len() != ID_NUMBER_LEGACY_CHARS {
        return Err(format!(
            "身份证号应为{ID_NUMBER_CHARS}位（或{ID_NUMBER_LEGACY_CHARS}位旧号）"
        ));
    }
    if !id_check_digit_ok(&s) {
        return Err("身份证号校验位不符，请核对".into());
    }
    Ok(s)
}

fn amount(c: &Cell) -> Result<i64, String> {
    let fen = match c {
        Cell::Empty => return Ok(0),
        Cell::Date(..) => None,
        Cell::Number(n) => {
            let fen = (n * 100.0).round();
            (n.is_finite() && (fen - n * 100.0).abs() < 1e-6 && fen >= 0.0)
                .then_some(fen)
                .filter(|f| *f <= AMOUNT_MAX_FEN as f64)
                .map(|f| f as i64)
        }
        Cell::Text(s) => {
            let s: String = s
                .trim()
                .trim_end_matches('元')
                .chars()
                .filter(|c| *c != ',' && *c != '，')
                .collect();
            if s.is_empty() {
                return Ok(0);
            }
            yuan_to_fen(&s)
        }
    };
    fen.ok_or_else(|| {
        format!(
            "标的额「{}」不是不小于0、最多两位小数的金额（元）",
            shown(c)
        )
    })
}

fn yuan_to_fen(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 15
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    let fen = int.parse::<i64>().ok()?.checked_mul(100)? + frac.parse::<i64>().ok()?;
    (fen <= AMOUNT_MAX_FEN).then_some(fen)
}

fn shown(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(s) => s.trim().to_owned(),
        Cell::Number(n) => format!("{n}"),
        Cell::Date(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
    }
}

impl LegacyRow {
    /// The registration's idempotency key: a digest of what the row says (not of where it
    /// stands in the file), so the same record imported again is the same case.
    pub fn key(&self) -> String {
        let (y, m, d) = self.date;
        let canonical = format!(
            "{y:04}{m:02}{d:02}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.category.code(),
            self.channel.code(),
            self.summary,
            self.applicant.name,
            self.applicant.phone,
            self.applicant.id_number,
            self.amount_fen,
            self.status.code(),
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let hex: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("import-{hex}")
    }

    /// The day of the case id, `YYYYMMDD`: the registration date's.
    pub fn day(&self) -> String {
        let (y, m, d) = self.date;
        format!("{y:04}{m:02}{d:02}")
    }

    /// The registration as the operator API would send it (validated by the caller's
    /// `validate_new_case` as any registration is).
    pub fn new_case(&self) -> NewCase {
        NewCase {
            idempotency_key: self.key(),
            category: self.category,
            channel: self.channel,
            summary: self.summary.clone(),
            description: String::new(),
            parties: vec![self.applicant.clone()],
            amount_fen: self.amount_fen,
            risk: RiskLevel::Blue,
            grid_id: String::new(),
        }
    }
}

/// The case a legacy row becomes: registered on its date (the case id's day and `created_at`)
/// with its historic status, by `ctx.actor` at `ctx.now`. The deadline that status runs
/// starts at the import (a center takes the record up in the system now, so it is not overdue
/// on arrival); a resolved or closed record is resolved (and closed) on its date. One event,
/// 登记受理 on the registration date, says it came from the 台账 (by whom: its actor).
pub fn legacy_case(
    ctx: &super::Ctx,
    row: &LegacyRow,
    id: String,
    lookup_code: String,
) -> Result<(super::Case, super::Event), super::DomainError> {
    let (mut case, mut event) = machine::register(ctx, &row.new_case(), id, lookup_code)?;
    let (y, m, d) = row.date;
    let on = china_midnight(y, m, d);
    case.created_at = on;
    case.status = row.status;
    match row.status {
        CaseStatus::Registered => {}
        CaseStatus::Accepted | CaseStatus::InMediation => {
            case.resolve_started_at = Some(ctx.now);
            case.resolve_due_at = Some(ctx.now.plus(ctx.deadlines.resolve));
        }
        CaseStatus::Resolved | CaseStatus::Unresolved => {
            case.resolved_at = Some(on);
            case.follow_up_due_at = Some(ctx.now.plus(ctx.deadlines.follow_up));
        }
        CaseStatus::Rejected => case.reason = "历史台账导入".into(),
        CaseStatus::Closed => {
            case.resolved_at = Some(on);
            case.closed_at = Some(on);
        }
        CaseStatus::Transferred => {
            return Err(super::DomainError::invalid(
                "status",
                "a moved case is not imported",
            ));
        }
    }
    event.to_status = row.status;
    // On its date: the report of that period counts it as received then, not at the import.
    event.at = on;
    event.detail = format!(
        "历史台账导入（第{}行）：登记日期{y:04}-{m:02}-{d:02}，{}，{}，状态{}，当事人1人，涉及金额{}元",
        row.line,
        row.category.label_zh(),
        row.channel.label_zh(),
        row.status.label_zh(),
        machine::yuan(row.amount_fen),
    );
    Ok((case, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    fn header() -> Vec<Cell> {
        TEMPLATE_HEADERS.iter().map(|h| t(h)).collect()
    }

    fn good() -> Vec<Cell> {
        vec![
            t("2024-03-05"),
            t("劳动争议"),
            t("窗口来访"),
            t("讨薪：拖欠工资三个月"),
            t("张三"),
            t("13812345678"),
            t("11010519491231002X"),
            t("4,400.50"),
            t("已办结"),
        ]
    }

    const TODAY: (i64, u32, u32) = (2026, 12, 5);

    #[test]
    fn a_good_row_reads_whole() {
        let (rows, bad) = read_rows(&[header(), good()], TODAY).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        let r = &rows[0];
        assert_eq!(r.line, 2);
        assert_eq!(r.date, (2024, 3, 5));
        assert_eq!(r.category, Category::Labor);
        assert_eq!(r.amount_fen, 440_050);
        assert_eq!(r.status, CaseStatus::Closed);
        assert_eq!(r.applicant.id_number, "11010519491231002X");
        assert_eq!(r.day(), "20240305");
        assert!(r.key().starts_with("import-"));
    }

    #[test]
    fn every_problem_of_a_row_is_named_with_its_excel_line() {
        let mut row = good();
        row[6] = Cell::Number(110105194912310020.0);
        row[8] = t("结案");
        row[0] = t("2030-01-01");
        let (rows, bad) = read_rows(&[header(), good(), Vec::new(), row], TODAY).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(bad.len(), 1);
        let line = bad[0].to_string();
        assert!(line.starts_with("第4行："), "{line}");
        assert!(line.contains("身份证号请设置为文本格式"), "{line}");
        assert!(line.contains("状态「结案」"), "{line}");
        assert!(line.contains("登记日期晚于今天"), "{line}");
    }

    #[test]
    fn a_repeated_row_is_reported_once() {
        let (rows, bad) = read_rows(&[header(), good(), good()], TODAY).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(bad[0].to_string(), "第3行：与第2行重复");
    }

    #[test]
    fn headers_in_any_order_with_full_width_brackets() {
        let mut h = header();
        h.swap(0, 8);
        h[7] = t("标的额（元）");
        let mut row = good();
        row.swap(0, 8);
        let (rows, bad) = read_rows(&[h, row], TODAY).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows[0].date, (2024, 3, 5));
        let err = read_rows(&[vec![t("日期")]], TODAY).unwrap_err();
        assert!(err.0.contains("缺少"), "{err}");
    }

    #[test]
    fn dates_in_the_forms_offices_write() {
        for s in [
            "2024-03-05",
            "2024/3/5",
            "2024.3.5",
            "2024年3月5日",
            "20240305",
        ] {
            assert_eq!(parse_date(s), Some((2024, 3, 5)), "{s}");
        }
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("5/3/2024"), None);
        // Excel's serial 45356 is 2024-03-05.
        assert_eq!(excel_serial(45356.0), Some((2024, 3, 5)));
    }

    #[test]
    fn amounts_and_phones() {
        assert_eq!(amount(&Cell::Number(12.5)), Ok(1250));
        assert_eq!(amount(&t("1，000元")), Ok(100_000));
        assert!(amount(&Cell::Number(-1.0)).is_err());
        assert!(amount(&t("1.234")).is_err());
        assert!(phone(&Cell::Number(13812345678.0)).is_err());
        assert!(phone(&t("12345")).is_err());
        assert_eq!(phone(&t("")), Ok(String::new()));
    }

    #[test]
    fn too_many_rows_refuse_the_file() {
        let mut table = vec![header()];
        table.extend(std::iter::repeat_n(good(), IMPORT_MAX_ROWS + 1));
        assert!(read_rows(&table, TODAY).is_err());
    }

    #[test]
    fn a_legacy_case_keeps_its_date_and_status() {
        let (rows, _) = read_rows(&[header(), good()], TODAY).unwrap();
        let deadlines = crate::domain::Deadlines::default();
        let now = china_midnight(2026, 12, 5);
        let ctx = crate::domain::Ctx {
            now,
            node: "610116001001",
            actor: "spiffe://fengqiao/op/610116001001/director/boss",
            deadlines: &deadlines,
        };
        let id = machine::case_id("610116001001", &rows[0].day(), 1);
        let (case, event) = legacy_case(&ctx, &rows[0], id, "X".into()).unwrap();
        assert_eq!(case.id, "610116001001-20240305-000001");
        assert_eq!(case.status, CaseStatus::Closed);
        assert_eq!(case.created_at, china_midnight(2024, 3, 5));
        assert_eq!(case.closed_at, Some(china_midnight(2024, 3, 5)));
        assert_eq!(event.to_status, CaseStatus::Closed);
        assert!(
            event.detail.contains("历史台账导入（第2行）"),
            "{}",
            event.detail
        );
        assert!(!event.detail.contains("张三"));
    }
}
