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

    // The township told village 2, which holds the newest case, to raise its risk one
    // colour: done there through its own rule's command, with the reason in the history.
    let newest = ids[2].clone();
    let raised = eventually("the newest case raised at village 2", SETTLE, || {
        let mut d = director2.clone();
        let id = newest.clone();
        async move {
            let c = get(&mut d, &id).await;
            (c.risk == pb::RiskLevel::Orange as i32).then_some(c)
        }
    })
    .await;
    assert_eq!(raised.supervising_nodes, [TOWNSHIP], "orange at a village");
    let history = director2
        .get_case_history(pb::GetCaseRequest {
            case_id: newest.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        history
            .iter()
            .any(|e| e.kind == "risk_changed" && e.detail.contains("辖区比对")),
        "{history:?}"
    );
    // Raised once: village 1 raised nothing (it has two cases), village 2 holds the alert of
    // the order, which also keeps its own rule from raising the case again; the township
    // holds exactly one.
    let repeat_alerts = |alerts: Vec<pb::Alert>| {
        alerts
            .into_iter()
            .filter(|a| a.kind == "repeat_person")
            .collect::<Vec<_>>()
    };
    let at_v1 = repeat_alerts(
        director1
            .list_alerts(pb::ListAlertsRequest {})
            .await
            .unwrap()
            .into_inner()
            .alerts,
    );
    assert!(at_v1.is_empty(), "{at_v1:?}");
    let at_v2 = repeat_alerts(
        director2
            .list_alerts(pb::ListAlertsRequest {})
            .await
            .unwrap()
            .into_inner()
            .alerts,
    );
    assert_eq!(at_v2.len(), 1, "{at_v2:?}");
    assert_eq!(at_v2[0].case_ids, std::slice::from_ref(&newest));
    assert!(!at_v2[0].message.contains(person));
    // A case registered at the township itself counts with its villages' cases: two at
    // village 1 and the township's own make three, and the township raises its own case.
    let other = "610102198507071234";
    let mut town_intake = operator_client(&pki, &township, TOWNSHIP, "intake", "sun").await;
    let mut intake1 = operator_client(&pki, &v1, V1, "intake", "li").await;
    for i in 0..2 {
        intake1
            .register_case(request(
                &format!("q{i}"),
                pb::RiskLevel::Blue,
                other,
                &format!("另一被申请人{i}"),
            ))
            .await
            .unwrap();
    }
    // The township has village 1's two sightings (acknowledged, so applied) before its own
    // registration.
    eventually("village 1's sightings at the township", SETTLE, || {
        let mut links = director1.clone();
        async move {
            let l = links
                .get_links(pb::GetLinksRequest {})
                .await
                .ok()?
                .into_inner();
            l.links.iter().all(|k| k.queue_out == 0).then_some(())
        }
    })
    .await;
    let own = town_intake
        .register_case(request(
            "q-town",
            pb::RiskLevel::Blue,
            other,
            "镇上被申请人",
        ))
        .await
        .unwrap()
        .into_inner();
    let own_raised = eventually("the township's own case raised", SETTLE, || {
        let mut t = town_intake.clone();
        let id = own.id.clone();
        async move {
            let c = get(&mut t, &id).await;
            (c.risk == pb::RiskLevel::Yellow as i32).then_some(c)
        }
    })
    .await;
    assert_eq!(own_raised.owner_node, TOWNSHIP);

    let mut t = town.clone();
    let at_town = t
        .list_alerts(pb::ListAlertsRequest {})
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let subtree: Vec<_> = at_town
        .iter()
        .filter(|a| a.kind == "repeat_person" && a.node == TOWNSHIP)
        .collect();
    assert_eq!(
        subtree
            .iter()
            .filter(|a| a.case_ids.contains(&ids[2]))
            .count(),
        1,
        "{at_town:?}"
    );
    assert!(
        subtree.iter().any(|a| a.case_ids.contains(&own.id)),
        "{at_town:?}"
    );
}
