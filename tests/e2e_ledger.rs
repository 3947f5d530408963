//! End to end: `fqctl case export` writes the 台账 of a real node as Excel and CSV, read back by
//! independent readers (Python's openpyxl and csv): a title row, 序号 and Chinese headers with
//! 案件编号 first, ID numbers and phones as text and masked, the list's filters applied, and
//! the export in the audit log.

mod support;

use std::path::Path;
use std::process::Command;

use fengqiao_proto::v1 as pb;
use support::*;

const VILLAGE: &str = "610116001001";

fn read(python: &Path, file: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/read_ledger.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(file)
        .output()
        .expect("run the reader");
    assert!(
        out.status.success(),
        "read_ledger {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn data_rows(v: &serde_json::Value) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = serde_json::from_value(v["rows"].clone()).unwrap();
    let header = rows
        .iter()
        .position(|r| r.first().is_some_and(|c| c == "序号"))
        .expect("a header row");
    assert!(header >= 1, "a title row above the header");
    assert_eq!(rows[header][1], "案件编号", "{:?}", rows[header]);
    rows[header + 1..]
        .iter()
        .filter(|r| r.iter().any(|c| !c.is_empty()))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_opens_in_independent_readers() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), VILLAGE);
    let mut c = operator_client(&pki, &node, VILLAGE, "director", "setup").await;
    let mut ids = Vec::new();
    for (i, risk) in [pb::RiskLevel::Red, pb::RiskLevel::Blue]
        .into_iter()
        .enumerate()
    {
        let r = request(
            &format!("ledger-{i}"),
            risk,
            "610102199001011231",
            "某建筑公司",
        );
        ids.push(c.register_case(r).await.unwrap().into_inner().id);
    }

    let xlsx = root.path().join("台账.xlsx");
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "export", "--xlsx", xlsx.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('2'), "{out}");
    let v = read(&python, &xlsx);
    let rows = data_rows(&v);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut listed: Vec<String> = rows.iter().map(|r| r[1].clone()).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        v["types"].as_array().unwrap().iter().all(|t| t == "str"),
        "ID numbers as text cells: {}",
        v["types"]
    );
    let text = v["rows"].to_string();
    assert!(!text.contains("610102199001011231"), "masked: {text}");
    assert!(text.contains("劳动争议") || text.contains("其他"), "{text}");

    // CSV with a filter: the red case only.
    let csv = root.path().join("red.csv");
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &[
            "case",
            "export",
            "--csv",
            csv.to_str().unwrap(),
            "--risk",
            "red",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows = data_rows(&read(&python, &csv));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], ids[0]);

    // In full for a role that may see personal data, when asked: the ID number whole, as
    // text; an auditor may not.
    let full = root.path().join("full.xlsx");
    let path = full.to_str().unwrap();
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "auditor",
        &["case", "export", "--xlsx", path, "--unmasked"],
    );
    assert_ne!(code, 0, "an auditor sees no personal data");
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "export", "--xlsx", path, "--unmasked"],
    );
    assert_eq!(code, 0, "{err}");
    let v = read(&python, &full);
    assert_eq!(data_rows(&v).len(), 2);
    assert!(
        v["rows"].to_string().contains("610102199001011231"),
        "in full: {}",
        v["rows"]
    );
    assert!(v["types"].as_array().unwrap().iter().all(|t| t == "str"));

    // Neither file nor both: a usage error; the exports are in the audit log.
    let (code, _, _) = fqctl_as(&pki, &node, "director", &["case", "export"]);
    assert_ne!(code, 0);
    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("ExportCases").count(), 3, "{out}");
    assert_eq!(out.matches("unmasked").count(), 1, "{out}");
}

fn legacy_sheet(python: &Path, mode: &str, file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/legacy_sheet.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(mode)
        .arg(file)
        .output()
        .expect("run legacy_sheet.py");
    assert!(
        out.status.success(),
        "legacy_sheet {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The cases of the node, as `fqctl --json case list --all` shows them.
fn listed(pki: &Pki, node: &NodeProc) -> Vec<serde_json::Value> {
    let (code, out, err) = fqctl_as(pki, node, "director", &["--json", "case", "list", "--all"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["cases"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_records_import_from_excel_and_csv_once() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), VILLAGE);

    // The template, written without a node, opens in openpyxl with the contract's headers.
    let template = root.path().join("导入模板.xlsx");
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "import", "--template", template.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let header: Vec<String> =
        serde_json::from_str(&legacy_sheet(&python, "header", &template)).unwrap();
    assert_eq!(
        header,
        [
            "登记日期",
            "类别",
            "受理渠道",
            "摘要",
            "申请人",
            "电话",
            "身份证号",
            "标的额(元)",
            "状态"
        ]
    );

    // A workbook as an office keeps it (written by openpyxl): good and bad rows.
    let legacy = root.path().join("2024年台账.xlsx");
    legacy_sheet(&python, "write", &legacy);
    let file = legacy.to_str().unwrap();
    // Only the director imports.
    let (code, _, err) = fqctl_as(&pki, &node, "intake", &["case", "import", file]);
    assert_ne!(code, 0);
    assert!(
        err.contains("PERMISSION_DENIED") || err.contains("权限"),
        "{err}"
    );
    assert!(listed(&pki, &node).is_empty());

    let (code, out, err) = fqctl_as(&pki, &node, "director", &["case", "import", file]);
    assert_eq!(code, 1, "rows were refused: {out} {err}");
    assert!(err.contains("已导入 3"), "{err}");
    assert!(err.contains("第4行：身份证号请设置为文本格式"), "{err}");
    assert!(err.contains("第5行：类别「吵架」"), "{err}");
    assert!(!err.contains("第6行"), "a blank row is skipped: {err}");

    let cases = listed(&pki, &node);
    assert_eq!(cases.len(), 3, "{cases:?}");
    let by_day = |day: &str| {
        cases
            .iter()
            .find(|c| c["id"].as_str().unwrap().contains(day))
            .unwrap_or_else(|| panic!("a case of {day}: {cases:?}"))
            .clone()
    };
    // Each with its historic date (the case id's day) and status.
    assert_eq!(by_day("-20240305-")["status"], "CASE_STATUS_CLOSED");
    assert_eq!(by_day("-20241120-")["status"], "CASE_STATUS_IN_MEDIATION");
    assert_eq!(by_day("-20241201-")["status"], "CASE_STATUS_REGISTERED");
    let closed = by_day("-20240305-");
    let id = closed["id"].as_str().unwrap();
    let (code, out, err) = fqctl_as(&pki, &node, "director", &["--json", "case", "get", id]);
    assert_eq!(code, 0, "{err}");
    let full: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        full["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-03-04T16:00:00"),
        "registered on its day in China: {full}"
    );
    assert_eq!(full["amount_fen"], 440000, "{full}");
    // The ID number arrived whole, as text.
    assert!(out.contains("11010519491231002X"), "{out}");

    // Twice: nothing added.
    let (code, _, err) = fqctl_as(&pki, &node, "director", &["case", "import", file]);
    assert_eq!(code, 1);
    assert!(
        err.contains("已导入 0") && err.contains("此前已导入 3"),
        "{err}"
    );
    assert_eq!(listed(&pki, &node).len(), 3);

    // A CSV without a BOM (and one with): the same rule.
    let csv = root.path().join("补录.csv");
    std::fs::write(
        &csv,
        "登记日期,类别,受理渠道,摘要,申请人,电话,身份证号,标的额(元),状态\n\
         2023-07-08,婚姻家庭,窗口来访,\"赡养费，协商\",周八,0298765432,,\"1,000\",调解不成\n",
    )
    .unwrap();
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "import", csv.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("已导入 1"), "{out}");
    let bom = root.path().join("补录-bom.csv");
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend(std::fs::read(&csv).unwrap());
    std::fs::write(&bom, with_bom).unwrap();
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "import", bom.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("此前已导入 1"), "the same record: {out}");
    assert_eq!(listed(&pki, &node).len(), 4);

    // Not the template: refused whole, nothing written.
    let wrong = root.path().join("wrong.csv");
    std::fs::write(&wrong, "姓名,电话\n张三,13812345678\n").unwrap();
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "director",
        &["case", "import", wrong.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(err.contains("缺少"), "{err}");
    assert_eq!(listed(&pki, &node).len(), 4);

    // The imports are in the audit log.
    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.matches("ImportCases").count() >= 4, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_imports_a_ledger() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            web: true,
            ..NodeOpts::default()
        },
    );
    let url = format!("https://{}", node.web.expect("a console"));
    let args = [
        "user",
        "add",
        "boss",
        "--role",
        "director",
        "--name",
        "王主任",
        "--password-stdin",
    ];
    let (code, _, err) = fqctl_as_stdin(&pki, &node, "admin", &args, "zongzhi2026");
    assert_eq!(code, 0, "{err}");
    let legacy = root.path().join("legacy.xlsx");
    legacy_sheet(&python, "write", &legacy);

    let b = support::browser::Browser::start(1366, 768).await;
    b.sign_in(&url, "boss", "zongzhi2026").await;
    // The sign-in's navigation ends at the home page before another page is loaded.
    b.wait_path("/").await;
    b.goto(&format!("{url}/cases")).await;
    b.follow("导入历史台账").await;
    b.wait_path("/import").await;
    assert!(
        b.unlabelled_controls().await.is_empty(),
        "{:?}",
        b.unlabelled_controls().await
    );
    b.fill("台账文件（.xlsx 或 .csv）", legacy.to_str().unwrap())
        .await;
    b.press("导入").await;
    let text = b.wait_text("导入结果").await;
    assert!(text.contains("已导入 3"), "{text}");
    assert!(text.contains("第4行：身份证号请设置为文本格式"), "{text}");
    // Again: nothing added.
    b.fill("台账文件（.xlsx 或 .csv）", legacy.to_str().unwrap())
        .await;
    b.press("导入").await;
    let text = b.wait_text("此前已导入 3").await;
    assert!(text.contains("已导入 0"), "{text}");
    // An upload without the session's token is refused before the file is read; the
    // template downloads.
    let answers = b
        .client
        .execute(
            r#"const f = new FormData();
               f.append('file', new Blob(['登记日期,类别,受理渠道,摘要,申请人,电话,身份证号,标的额(元),状态\n2022-01-02,其他,窗口来访,x,y,,,,已办结\n']), 'x.csv');
               const forged = await fetch('/import', {method: 'POST', body: f});
               const t = await fetch('/import/template.xlsx');
               const bytes = new Uint8Array(await t.arrayBuffer());
               return [forged.status, t.status, bytes[0], bytes[1]];"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        answers,
        serde_json::json!([403, 200, 0x50, 0x4b]),
        "{answers}"
    );
    b.close().await;

    let mut c = operator_client(&pki, &node, VILLAGE, "director", "check").await;
    assert_eq!(
        list_all(&mut c, pb::ListCasesRequest::default())
            .await
            .len(),
        3
    );
}
