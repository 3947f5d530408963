//! Reading a spreadsheet into cells for the import of legacy records
//! (`crate::domain::import`): the first sheet of an `.xlsx` (calamine) or a `.csv` (UTF-8,
//! with or without a BOM; comma-separated, quoted as Excel and WPS write).
//!
//! Limits (the file is refused whole, nothing read): [`IMPORT_MAX_BYTES`] of file, and an
//! `.xlsx` whose parts would unpack to more than [`XLSX_MAX_UNPACKED_BYTES`] (a small file
//! that unpacks into gigabytes). Rows are numbered as Excel numbers them: the table starts at
//! row 1 even when the sheet's first rows are empty.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

use crate::domain::import::{Cell, TemplateError};

/// Largest file an import reads.
pub const IMPORT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Largest total an `.xlsx`'s parts may unpack to.
pub const XLSX_MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;

/// The kind of file, by its name's extension (or, failing that, by its first bytes: an
/// `.xlsx` is a zip archive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SheetKind {
    Xlsx,
    Csv,
}

impl SheetKind {
    pub fn of(file_name: &str, content: &[u8]) -> Result<SheetKind, TemplateError> {
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".xlsx") {
            Ok(SheetKind::Xlsx)
        } else if lower.ends_with(".csv") {
            Ok(SheetKind::Csv)
        } else if lower.ends_with(".xls") || lower.ends_with(".et") {
            Err(TemplateError(
                "不支持旧版 .xls/.et 文件：请在 Excel 或 WPS 中另存为 .xlsx 或 CSV（UTF-8）".into(),
            ))
        } else if content.starts_with(b"PK\x03\x04") {
            Ok(SheetKind::Xlsx)
        } else {
            Err(TemplateError(
                "只能导入 .xlsx 或 .csv 文件（按导入模板填写）".into(),
            ))
        }
    }
}

/// The cells of the file's first sheet, row by row from row 1.
pub fn read_table(file_name: &str, content: &[u8]) -> Result<Vec<Vec<Cell>>, TemplateError> {
    if content.len() > IMPORT_MAX_BYTES {
        return Err(TemplateError(format!(
            "文件超过{} MiB：请分批导入",
            IMPORT_MAX_BYTES / 1024 / 1024
        )));
    }
    match SheetKind::of(file_name, content)? {
        SheetKind::Xlsx => xlsx(content),
        SheetKind::Csv => csv(content),
    }
}

fn xlsx(content: &[u8]) -> Result<Vec<Vec<Cell>>, TemplateError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        TemplateError(format!(
            "无法读取这个 .xlsx 文件（{e}）：请用 Excel 或 WPS 另存后再试"
        ))
    };
    // What the parts declare they unpack to, before anything is unpacked.
    let mut archive = zip::ZipArchive::new(Cursor::new(content)).map_err(|e| unreadable(&e))?;
    let mut unpacked: u64 = 0;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(|e| unreadable(&e))?;
        unpacked = unpacked.saturating_add(part.size());
    }
    if unpacked > XLSX_MAX_UNPACKED_BYTES {
        return Err(TemplateError(format!(
            "文件解压后超过{} MiB：请分批导入",
            XLSX_MAX_UNPACKED_BYTES / 1024 / 1024
        )));
    }
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(content)).map_err(|e| unreadable(&e))?;
    let range = match book.worksheet_range_at(0) {
        Some(r) => r.map_err(|e| unreadable(&e))?,
        None => return Err(TemplateError("文件里没有工作表".into())),
    };
    let Some((row0, col0)) = range.start() else {
        return Ok(Vec::new());
    };
    let mut table: Vec<Vec<Cell>> = vec![Vec::new(); row0 as usize];
    for row in range.rows() {
        let mut cells = vec![Cell::Empty; col0 as usize];
        cells.extend(row.iter().map(cell));
        table.push(cells);
    }
    Ok(table)
}

fn cell(d: &Data) -> Cell {
    match d {
        Data::Empty | Data::Error(_) => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::Bool(b) => Cell::Text(if *b { "TRUE" } else { "FALSE" }.into()),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            Cell::Date(i64::from(y), u32::from(m), u32::from(d))
        }
        Data::DateTime(dt) => Cell::Number(dt.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
    }
}

fn csv(content: &[u8]) -> Result<Vec<Vec<Cell>>, TemplateError> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    if std::str::from_utf8(content).is_err() {
        return Err(TemplateError(
            "CSV 文件不是 UTF-8 编码：请在 Excel 中另存为「CSV UTF-8（逗号分隔）」".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(content);
    let mut table = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| TemplateError(format!("第{}行：CSV 格式有误（{e}）", i + 1)))?;
        table.push(
            record
                .iter()
                .map(|f| {
                    if f.is_empty() {
                        Cell::Empty
                    } else {
                        Cell::Text(unneutralised(f).to_owned())
                    }
                })
                .collect(),
        );
    }
    Ok(table)
}

/// A cell our own CSV export (and many others) wrote with a leading quote so that a
/// spreadsheet does not run it as a formula, or Excel's `="..."` text trick for long digits.
fn unneutralised(f: &str) -> &str {
    if let Some(inner) = f.strip_prefix("=\"").and_then(|s| s.strip_suffix('"')) {
        return inner;
    }
    match f.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_a_bom_and_quotes() {
        let file = "\u{feff}登记日期,摘要\n2024-03-05,\"讨薪，三个月\"\n,\n".as_bytes();
        let t = read_table("a.csv", file).unwrap();
        assert_eq!(t[0][0], Cell::Text("登记日期".into()));
        assert_eq!(t[1][1], Cell::Text("讨薪，三个月".into()));
        assert_eq!(t[2], vec![Cell::Empty, Cell::Empty]);
    }

    #[test]
    fn not_utf8_is_named() {
        // "登记" in GBK.
        let err = read_table("a.csv", b"\xb5\xc7\xbc\xc7,x\n").unwrap_err();
        assert!(err.0.contains("UTF-8"), "{err}");
    }

    #[test]
    fn other_files_are_refused() {
        assert!(read_table("a.xls", b"\xd0\xcf").is_err());
        assert!(read_table("a.txt", b"x").is_err());
        assert!(read_table("a.xlsx", b"not a zip").is_err());
        let big = vec![b'a'; IMPORT_MAX_BYTES + 1];
        assert!(read_table("a.csv", &big).is_err());
    }

    #[test]
    fn an_xlsx_reads_text_numbers_and_dates_from_row_1() {
        use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        // Row 1 left empty: the header is on row 2 and the table keeps Excel's numbering.
        sheet.write_string(1, 0, "登记日期").unwrap();
        sheet.write_string(1, 1, "身份证号").unwrap();
        let date = ExcelDateTime::from_ymd(2024, 3, 5).unwrap();
        let fmt = Format::new().set_num_format("yyyy-mm-dd");
        sheet.write_datetime_with_format(2, 0, &date, &fmt).unwrap();
        sheet.write_number(2, 1, 110105194912310020.0).unwrap();
        sheet.write_string(3, 1, "11010519491231002X").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let t = read_table("legacy.xlsx", &bytes).unwrap();
        assert!(t[0].is_empty());
        assert_eq!(t[1][0], Cell::Text("登记日期".into()));
        assert_eq!(t[2][0], Cell::Date(2024, 3, 5));
        assert!(matches!(t[2][1], Cell::Number(_)));
        assert_eq!(t[3][1], Cell::Text("11010519491231002X".into()));
    }
}

/// Arbitrary files and tables: the reader and the row checks never panic, and what they accept
/// is what the template allows.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::import::{TEMPLATE_HEADERS, read_rows};

    fn cell() -> impl Strategy<Value = Cell> {
        prop_oneof![
            Just(Cell::Empty),
            ".{0,24}".prop_map(Cell::Text),
            any::<f64>().prop_map(Cell::Number),
            (1900i64..2100, 0u32..14, 0u32..33).prop_map(|(y, m, d)| Cell::Date(y, m, d)),
            prop::sample::select(vec![
                "劳动争议",
                "窗口来访",
                "已办结",
                "未审核",
                "2024-03-05",
                "13812345678",
                "11010519491231002X",
                "4,400.50",
                "20240305",
                "2024年3月5日",
            ])
            .prop_map(|s| Cell::Text(s.to_owned())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_are_read_or_refused_without_a_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            xlsx in any::<bool>(),
        ) {
            let name = if xlsx { "f.xlsx" } else { "f.csv" };
            let _ = read_table(name, &bytes);
        }

        #[test]
        fn any_table_is_checked_without_a_panic(
            rows in prop::collection::vec(prop::collection::vec(cell(), 0..12), 0..20),
        ) {
            let mut table = vec![TEMPLATE_HEADERS.iter().map(|h| Cell::Text((*h).into())).collect()];
            table.extend(rows);
            let (good, bad) = read_rows(&table, (2026, 12, 5)).unwrap();
            let data_rows = table.len() - 1;
            prop_assert!(good.len() + bad.len() <= data_rows);
            for row in &good {
                // A good row is one the registration's own checks accept.
                prop_assert!(crate::domain::validate::validate_new_case(&row.new_case()).is_ok());
                prop_assert!(row.date <= (2026, 12, 5));
                prop_assert!(row.amount_fen >= 0);
            }
            for r in &bad {
                let prefix = format!("第{}行：", r.line);
                prop_assert!(r.to_string().starts_with(&prefix));
            }
        }
    }
}
