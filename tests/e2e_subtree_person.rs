//! End to end: the repeat-person count over a subtree (issue 5). A township and two villages
//! share the federation's person key (`person.key` from `fqctl pki init`); one ID number
//! registered twice at village 1 and once at village 2 is matched at the township, which
//! raises a `repeat_person` alert naming the three cases — while neither village reaches the
//! threshold on its own.

mod support;

use fengqiao_proto::v1 as pb;
use support::*;

const TOWNSHIP: &str = "610116001";
const V1: &str = "610116001001";
const V2: &str = "610116001002";
/// Bound on waits for traffic between the nodes to settle.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_at_two_villages_is_matched_at_their_township() {
    init();
    let pki = Pki::new();
    let key = pki.ca().with_file_name("person.key");
    assert!(key.exists(), "fqctl pki init writes the person key");
    let extra = format!(
        "{FAST_LINKS}[early_warning]\nperson_key_file = \"{}\"\n",
        key.display()
    );
    let root = tempfile::tempdir().unwrap();
    let opts = |parent: Option<String>| NodeOpts {
        parent,
        extra: extra.clone(),
        ..NodeOpts::default()
    };
    let township = NodeProc::start_with(&pki, root.path(), TOWNSHIP, &opts(None));
    let v1 = NodeProc::start_with(
        &pki,
        root.path(),
        V1,
        &opts(Some(township.federation_url())),
    );
    let v2 = NodeProc::start_with(
        &pki,
        root.path(),
        V2,
        &opts(Some(township.federation_url())),
    );
    let town = operator_client(&pki, &township, TOWNSHIP, "director", "wang").await;
    let intake1 = operator_client(&pki, &v1, V1, "intake", "li").await;
    let intake2 = operator_client(&pki, &v2, V2, "intake", "zhang").await;
    let mut director1 = operator_client(&pki, &v1, V1, "director", "zhao").await;
    let mut director2 = operator_client(&pki, &v2, V2, "director", "qian").await;

    let person = "610102199001011234";
    let mut ids = Vec::new();
    for (i, mut client) in [intake1.clone(), intake1, intake2].into_iter().enumerate() {
        // Different respondents: only the person repeats.
        let c = client
            .register_case(request(
                &format!("p{i}"),
                pb::RiskLevel::Yellow,
                person,
                &format!("被申请人{i}"),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            c.risk,
            pb::RiskLevel::Yellow as i32,
            "no village sees 3 cases"
        );
        ids.push(c.id);
    }

    let alert = eventually(
        "the subtree repeat-person alert at the township",
        SETTLE,
        || {
            let mut t = town.clone();
            async move {
                t.list_alerts(pb::ListAlertsRequest {})
                    .await
                    .ok()?
                    .into_inner()
                    .alerts
                    .into_iter()
                    .find(|a| a.kind == "repeat_person" && a.node == TOWNSHIP)
            }
        },
    )
    .await;
    assert_eq!(alert.case_ids, ids, "the three cases, oldest first");
    assert!(
        alert.message.contains(V1) && alert.message.contains(V2),
        "{}",
        alert.message
    );
    assert!(!alert.message.contains(person), "{}", alert.message);
    assert!(!alert.message.contains("1234"), "{}", alert.message);

    // Raised once: no village raised one (each has fewer than three cases), and the township
    // holds exactly one.
    for (client, node) in [(&mut director1, V1), (&mut director2, V2)] {
        let alerts = client
            .list_alerts(pb::ListAlertsRequest {})
            .await
            .unwrap()
            .into_inner()
            .alerts;
        assert!(
            !alerts.iter().any(|a| a.kind == "repeat_person"),
            "{node}: {alerts:?}"
        );
    }
    let mut t = town.clone();
    let at_town = t
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(
        at_town.iter().filter(|a| a.kind == "repeat_person").count(),
        1,
        "{at_town:?}"
    );
}
