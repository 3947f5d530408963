//! End to end: `metrics_listen` of real nodes, read by the Prometheus Python client's
//! OpenMetrics parser — calls by RPC and code, group commits, a parent's view of its child's
//! link (villages behind NAT cannot be scraped), cases by state and risk, certificate expiry
//! and build info, and no personal data or case id in any label.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use support::*;

const TOWNSHIP: &str = "610116001";
const VILLAGE: &str = "610116001001";

fn scrape(python: &Path, node: &NodeProc) -> (Vec<(String, serde_json::Value, f64)>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/read_metrics.py");
    let url = format!("http://{}/metrics", node.metrics.expect("metrics_listen"));
    let out = Command::new(python)
        .arg(&script)
        .arg(&url)
        .output()
        .expect("run read_metrics.py");
    assert!(
        out.status.success(),
        "read_metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_owned(),
                s[1].clone(),
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    (samples, v["text"].as_str().unwrap().to_owned())
}

fn value(
    samples: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_read_by_a_prometheus_parser() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let township = NodeProc::start_with(
        &pki,
        root.path(),
        TOWNSHIP,
        &NodeOpts {
            metrics: true,
            ..NodeOpts::default()
        },
    );
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            metrics: true,
            parent: Some(township.federation_url()),
            ..NodeOpts::default()
        },
    );
    linked(&pki, &township, TOWNSHIP, VILLAGE).await;
    let mut c = operator_client(&pki, &village, VILLAGE, "director", "metrics").await;
    let mut ids = Vec::new();
    for (i, risk) in [pb::RiskLevel::Red, pb::RiskLevel::Blue, pb::RiskLevel::Blue]
        .into_iter()
        .enumerate()
    {
        let r = request(&format!("m-{i}"), risk, "610102199001011231", "某公司");
        ids.push(c.register_case(r).await.unwrap().into_inner().id);
    }
    // A refused call is counted with its code.
    let missing = c
        .get_case(pb::GetCaseRequest {
            case_id: format!("{VILLAGE}-20240101-000009"),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    let (samples, text) = scrape(&python, &village);
    let rpc = "fengqiao.v1.CaseService/RegisterCase";
    assert_eq!(
        value(
            &samples,
            "fengqiao_rpc_requests_total",
            &[("rpc", rpc), ("code", "OK")]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "fengqiao_rpc_requests_total",
            &[
                ("rpc", "fengqiao.v1.CaseService/GetCase"),
                ("code", "NOT_FOUND")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "fengqiao_rpc_duration_seconds_count",
            &[("rpc", rpc)]
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        value(&samples, "fengqiao_storage_commit_batch_size_count", &[]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&samples, "fengqiao_open_cases", &[("risk", "red")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "fengqiao_cases", &[("state", "unreviewed")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "fengqiao_build_info", &[("node", VILLAGE)]),
        Some(1.0),
        "{text}"
    );
    let expiry = value(
        &samples,
        "fengqiao_certificate_expiry_timestamp_seconds",
        &[("cert", "node")],
    )
    .expect("the node certificate's expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 86_400.0, "{expiry} {now}");
    assert_eq!(
        value(
            &samples,
            "fengqiao_link_up",
            &[("peer", TOWNSHIP), ("role", "parent")]
        ),
        Some(1.0),
        "{text}"
    );
    // No personal data, no case id in the text.
    for secret in ["610102199001011231", "13812345678", ids[0].as_str()] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }

    // The township reports its child's link: heard, and when.
    let samples = eventually(
        "the township sees its village",
        Duration::from_secs(30),
        || {
            let (samples, _) = scrape(&python, &township);
            async move {
                value(
                    &samples,
                    "fengqiao_link_last_heard_timestamp_seconds",
                    &[("peer", VILLAGE), ("role", "child")],
                )
                .map(|_| samples)
            }
        },
    )
    .await;
    assert_eq!(
        value(
            &samples,
            "fengqiao_link_up",
            &[("peer", VILLAGE), ("role", "child")]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "fengqiao_link_silent", &[("peer", VILLAGE)]) == Some(0.0));

    // Anything but /metrics is not found.
    let other = format!("http://{}/", township.metrics.unwrap());
    let status = Command::new(&python)
        .args([
            "-c",
            "import sys, urllib.request, urllib.error\n\
             try:\n    urllib.request.urlopen(sys.argv[1])\nexcept urllib.error.HTTPError as e:\n    print(e.code)",
            &other,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "404");
}
