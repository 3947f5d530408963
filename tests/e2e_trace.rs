//! End to end: JSON logs follow a message across tiers. A red case registered at a village is
//! followed by the county (the colour rule): its copy goes up through the township; the three
//! nodes' JSON logs name the same `trace_id` (the message's federation-wide id) — "message
//! sent" at the village, "message passed on" at the township, "message applied" at the county
//! — and the RPC that started it carries its name and caller. No colour codes in a log that is
//! a file.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use support::*;

const COUNTY: &str = "610116";
const TOWN: &str = "610116001";
const V1: &str = "610116001001";

/// The JSON lines of a node's log whose message is `what`.
fn lines(node: &NodeProc, what: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&node.stderr_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == what)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_traced_across_tiers() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let json = format!("{FAST_LINKS}[log]\nformat = \"json\"\n");
    let start = |code: &str, parent: Option<String>| {
        NodeProc::start_with(
            &pki,
            root.path(),
            code,
            &NodeOpts {
                parent,
                extra: json.clone(),
                ..NodeOpts::default()
            },
        )
    };
    let county = start(COUNTY, None);
    let town = start(TOWN, Some(county.federation_url()));
    linked(&pki, &county, COUNTY, TOWN).await;
    let v1 = start(V1, Some(town.federation_url()));
    linked(&pki, &town, TOWN, V1).await;

    let mut c = operator_client(&pki, &v1, V1, "director", "wang").await;
    let case = c
        .register_case(request(
            "traced",
            pb::RiskLevel::Red,
            "610102199001011231",
            "某公司",
        ))
        .await
        .unwrap()
        .into_inner();

    let applied = eventually(
        "the county holds the red case's copy",
        Duration::from_secs(60),
        || {
            let found = lines(&county, "message applied")
                .into_iter()
                .find(|l| l["fields"]["case_id"] == case.id.as_str());
            async move { found }
        },
    )
    .await;
    let trace = applied["fields"]["trace_id"].as_str().unwrap().to_owned();
    assert!(trace.starts_with(&format!("{V1}:")), "{applied}");
    let with_trace = |node: &NodeProc, what: &str| {
        lines(node, what)
            .into_iter()
            .any(|l| l["fields"]["trace_id"] == trace.as_str())
    };
    assert!(with_trace(&v1, "message sent"), "the village it left");
    assert!(
        with_trace(&town, "message passed on"),
        "the township between"
    );
    // The RPC that started it: its span names the call and the caller.
    let log = std::fs::read_to_string(&v1.stderr_log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("RegisterCase") && l.contains("director/wang")),
        "the RPC and its caller in the origin's log"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file");
}
