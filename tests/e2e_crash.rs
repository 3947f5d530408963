//! End to end: an acknowledged write survives `kill -9` of the node; a node whose reports
//! folder cannot be written still starts and serves.

mod support;

use fengqiao_proto::v1 as pb;
use support::*;

const NODE: &str = "610116001001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_kill_9() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let mut node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;

    // Concurrent registrations; kill the node the moment the last acknowledgement arrives.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut c = intake.clone();
        tasks.push(tokio::spawn(async move {
            c.register_case(register_request(&format!("burst-{i}")))
                .await
                .map(|r| r.into_inner().id)
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap().expect("registered"));
    }
    let last = intake
        .register_case(register_request("the-last-one"))
        .await
        .unwrap()
        .into_inner();
    node.kill9();
    acked.push(last.id.clone());

    node.restart(root.path());
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    for id in &acked {
        let c = intake
            .get_case(pb::GetCaseRequest {
                case_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&c.id, id);
        let h = intake
            .get_case_history(pb::GetCaseRequest {
                case_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        // The registration; early-warning rules may have added events after it (every
        // request here is the same person against the same employer).
        assert_eq!(h.events[0].kind, "registered");
    }
    // Idempotency also survived: retrying after the crash returns the same case.
    let again = intake
        .register_case(register_request("the-last-one"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, last.id);
    // Case ids stay unique across the restart.
    let fresh = intake
        .register_case(register_request("after-restart"))
        .await
        .unwrap()
        .into_inner();
    assert!(!acked.contains(&fresh.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_and_restart_keeps_everything() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let mut node = NodeProc::start(&pki, root.path(), NODE);
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    let c = intake
        .register_case(register_request("one"))
        .await
        .unwrap()
        .into_inner();
    let c = intake
        .review_case(pb::ReviewCaseRequest {
            case_id: c.id,
            accept: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(node.terminate(), "SIGTERM should stop the node cleanly");
    let fresh = NodeProc::start_with_config(NODE, &node.config.clone(), root.path());
    let mut intake = operator_client(&pki, &fresh, NODE, "intake", "li").await;
    let got = intake
        .get_case(pb::GetCaseRequest {
            case_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, pb::CaseStatus::Accepted as i32);
    let accepted = intake
        .list_cases(pb::ListCasesRequest {
            status: pb::CaseStatus::Accepted as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.cases.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_reports_folder_does_not_stop_the_start() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    // A folder inside a regular file can be made by nobody, root included.
    let blocker = root.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let opts = NodeOpts {
        extra: format!(
            "{FAST_LINKS}\n[reports]\ncadence = \"day\"\ndir = \"{}\"\n",
            blocker.join("reports").display()
        ),
        ..NodeOpts::default()
    };
    let node = NodeProc::start_with(&pki, root.path(), NODE, &opts);
    // It serves: a registration is acknowledged.
    let mut intake = operator_client(&pki, &node, NODE, "intake", "li").await;
    let id = intake
        .register_case(register_request("after-a-bad-folder"))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(id.starts_with(NODE));
    // And says why the rules could not all run.
    let log = std::fs::read_to_string(&node.stderr_log).unwrap();
    assert!(log.contains("could not all be applied at start"), "{log}");
    assert!(log.contains("reports"), "{log}");
}
