//! The 台账: a list of cases as offices keep it, in CSV or Excel (.xlsx) — a title row, the
//! period or moment, then 序号 and Chinese headers with 案件编号 first. Phones and ID numbers
//! are text cells (Excel would otherwise show an 18-digit number in exponent form); the
//! caller decides what is masked (a listing always is). A cell of a CSV that starts with
//! `=`, `+`, `-` or `@` is neutralised with a quote so that a spreadsheet does not run it.

use rust_xlsxwriter::{Format, Workbook};

use crate::domain::Case;
use crate::text::{Lang, fmt_fen};

/// The columns of a 台账 line.
const COLUMNS: [(&str, &str); 14] = [
    ("序号", "No."),
    ("案件编号", "Case id"),
    ("登记时间", "Registered"),
    ("类别", "Category"),
    ("受理渠道", "Channel"),
    ("状态", "Status"),
    ("风险等级", "Risk"),
    ("摘要", "Summary"),
    ("申请人", "Applicant"),
    ("电话", "Phone"),
    ("身份证号", "ID number"),
    ("标的额(元)", "Amount (yuan)"),
    ("承办", "Handler"),
    ("办结时间", "Closed"),
];

/// One line: the cells as text, in [`COLUMNS`] order (序号 left out).
fn cells(c: &Case, lang: Lang) -> Vec<String> {
    let applicant = c
        .parties
        .iter()
        .find(|p| p.role == crate::domain::PartyRole::Applicant);
    let t = |zh: &'static str, en: &'static str| lang.t(zh, en).to_owned();
    vec![
        c.id.clone(),
        crate::domain::calendar::china_datetime(c.created_at),
        t(c.category.label_zh(), c.category.label_en()),
        t(c.channel.label_zh(), c.channel.label_en()),
        t(c.status.label_zh(), c.status.label_en()),
        t(c.risk.label_zh(), c.risk.label_en()),
        c.summary.clone(),
        applicant.map_or(String::new(), |p| p.name.clone()),
        applicant.map_or(String::new(), |p| p.phone.clone()),
        applicant.map_or(String::new(), |p| p.id_number.clone()),
        fmt_fen(c.amount_fen),
        c.handler.clone().unwrap_or_default(),
        c.closed_at
            .map_or(String::new(), crate::domain::calendar::china_datetime),
    ]
}

/// One CSV field, quoted when needed, a leading formula character neutralised.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV line (CRLF, as Excel writes them).
pub fn csv_line(cells: &[String]) -> String {
    let mut line = cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The import template (`fqctl case import --template`, the console's 下载导入模板): the
/// header row of `crate::domain::import::TEMPLATE_HEADERS` and one example row, the columns
/// of phones and ID numbers formatted as text so that Excel keeps every digit.
pub fn import_template() -> Result<Vec<u8>, String> {
    use crate::domain::import::TEMPLATE_HEADERS;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("导入模板").map_err(|e| e.to_string())?;
    let bold = Format::new().set_bold().set_num_format("@");
    let text = Format::new().set_num_format("@");
    let example = [
        "2024-03-05",
        "劳动争议",
        "窗口来访",
        "讨薪：拖欠工资三个月",
        "张三",
        "13812345678",
        "11010519491231002X",
        "4400",
        "已办结",
    ];
    for (col, (head, value)) in TEMPLATE_HEADERS.iter().zip(example).enumerate() {
        let col = col as u16;
        sheet
            .write_string_with_format(0, col, *head, &bold)
            .map_err(|e| e.to_string())?;
        sheet
            .write_string_with_format(1, col, value, &text)
            .map_err(|e| e.to_string())?;
        let width = match *head {
            "摘要" => 40.0,
            "身份证号" => 21.0,
            "电话" | "登记日期" => 14.0,
            _ => 11.0,
        };
        // Text format for the whole column, so what a clerk types or pastes stays text.
        sheet
            .set_column_format(col, &text)
            .map_err(|e| e.to_string())?;
        sheet
            .set_column_width(col, width)
            .map_err(|e| e.to_string())?;
    }
    sheet.set_freeze_panes(1, 0).map_err(|e| e.to_string())?;
    book.save_to_buffer().map_err(|e| e.to_string())
}

/// The 台账 as CSV: UTF-8 with a byte-order mark (so Excel and WPS read the Chinese), the
/// title row, then the header and one line per case.
pub fn csv(title: &str, cases: &[Case], lang: Lang) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&csv_line(&[title.to_owned()]));
    out.push_str(&csv_line(
        &COLUMNS
            .iter()
            .map(|(zh, en)| lang.t(zh, en).to_owned())
            .collect::<Vec<_>>(),
    ));
    for (i, c) in cases.iter().enumerate() {
        let mut row = vec![(i + 1).to_string()];
        row.extend(cells(c, lang));
        out.push_str(&csv_line(&row));
    }
    out
}

/// The 台账 as an Excel workbook (.xlsx): the title merged over the columns, a bold header
/// row frozen under it, every cell text but 序号 and the amount.
pub fn xlsx(title: &str, cases: &[Case], lang: Lang) -> Result<Vec<u8>, String> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let sheet_name = lang.t("台账", "Register");
    sheet.set_name(sheet_name).map_err(|e| e.to_string())?;
    let bold = Format::new().set_bold();
    let title_format = Format::new().set_bold().set_font_size(14);
    let text = Format::new().set_num_format("@");
    let money = Format::new().set_num_format("#,##0.00");
    let last_col = (COLUMNS.len() - 1) as u16;
    sheet
        .merge_range(0, 0, 0, last_col, title, &title_format)
        .map_err(|e| e.to_string())?;
    for (col, (zh, en)) in COLUMNS.iter().enumerate() {
        sheet
            .write_string_with_format(1, col as u16, lang.t(zh, en), &bold)
            .map_err(|e| e.to_string())?;
    }
    sheet.set_freeze_panes(2, 0).map_err(|e| e.to_string())?;
    for (i, c) in cases.iter().enumerate() {
        let row = (i + 2) as u32;
        sheet
            .write_number(row, 0, (i + 1) as f64)
            .map_err(|e| e.to_string())?;
        for (j, value) in cells(c, lang).iter().enumerate() {
            let col = (j + 1) as u16;
            if COLUMNS[j + 1].0 == "标的额(元)" {
                sheet
                    .write_number_with_format(row, col, c.amount_fen as f64 / 100.0, &money)
                    .map_err(|e| e.to_string())?;
            } else {
                sheet
                    .write_string_with_format(row, col, value, &text)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    for (col, width) in [
        (0u16, 6.0),
        (1, 30.0),
        (2, 17.0),
        (7, 40.0),
        (9, 14.0),
        (10, 21.0),
    ] {
        sheet
            .set_column_width(col, width)
            .map_err(|e| e.to_string())?;
    }
    book.save_to_buffer().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("讨薪"), "讨薪");
    }

    #[test]
    fn an_empty_ledger_is_a_workbook() {
        let bytes = xlsx("台账", &[], Lang::Zh).unwrap();
        assert_eq!(&bytes[..2], b"PK", "a zip container");
        let text = csv("台账", &[], Lang::Zh);
        assert!(text.starts_with("\u{feff}台账\r\n序号,案件编号,"));
    }
}
