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

    // Neither file nor both: a usage error; the exports are in the audit log.
    let (code, _, _) = fqctl_as(&pki, &node, "director", &["case", "export"]);
    assert_ne!(code, 0);
    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("ExportCases").count(), 2, "{out}");
}
