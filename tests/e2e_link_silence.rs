//! End to end: a dead link is flagged by GetLinks (`silent`, state BACKING_OFF) and logged as
//! an ALERT, with real processes and no waiting for the threshold. A township and its village
//! are linked; one side is killed, and the other is restarted with its clock moved three hours
//! ahead (`clock_offset`), well past `federation.link_silence_alert`. The restarted node knows
//! from its store when the peer was last heard, so it flags the link at once.

mod support;

use std::path::Path;
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::transport::Channel;

const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";
/// The silence time of both nodes; the restarts move their clocks by `OFFSET`, far beyond it.
const ALERT: &str = "1m";
const OFFSET: &str = "3h";
const OFFSET_S: i64 = 3 * 3600;
/// Bound for things that happen promptly (a link coming up, a log line written at start).
const PROMPT: Duration = Duration::from_secs(30);

type Client = CaseServiceClient<Channel>;

fn link_to(l: &pb::Links, peer: &str) -> Option<pb::Link> {
    l.links.iter().find(|k| k.peer == peer).cloned()
}

async fn links(c: &mut Client) -> pb::Links {
    c.get_links(pb::GetLinksRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `c`'s node shows its link to `peer` connected and heard from, and returns it.
async fn connected(c: &Client, peer: &str) -> pb::Link {
    eventually(&format!("link to {peer} connected"), PROMPT, || {
        let mut c = c.clone();
        async move {
            let l = c.get_links(pb::GetLinksRequest {}).await.ok()?.into_inner();
            link_to(&l, peer).filter(|k| {
                k.state == pb::LinkState::Connected as i32 && k.last_heard.is_some() && !k.silent
            })
        }
    })
    .await
}

/// Waits for a line containing `needle` among the log lines written after byte `from`.
async fn logged(log: &Path, from: usize, needle: &str) -> String {
    eventually(&format!("{needle:?} in {}", log.display()), PROMPT, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let line = text
            .get(from..)
            .and_then(|new| new.lines().find(|l| l.contains(needle)))
            .map(str::to_owned);
        async move { line }
    })
    .await
}

fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |m| m.len() as usize)
}

/// The seconds of silence an ALERT line reports ("... silent for N s").
fn silent_for(line: &str) -> i64 {
    line.split("silent for ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line:?}"))
}

/// Asserts that `link` is flagged: silent, backing off, last heard before the restart.
fn assert_flagged(link: &pb::Link, heard_before: &prost_types::Timestamp) {
    assert!(link.silent, "{link:?}");
    assert_eq!(link.state, pb::LinkState::BackingOff as i32, "{link:?}");
    let last = link.last_heard.as_ref().expect("last heard kept");
    assert!(
        last.seconds <= heard_before.seconds + 60,
        "last heard {last:?} is the word before the restart ({heard_before:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_is_flagged_and_alerted_at_once_after_a_restart() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let extra = format!("{FAST_LINKS}link_silence_alert = \"{ALERT}\"\n");
    // A fixed federation port, so the village finds its township again after a restart.
    let mut town = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            federation_port: free_port(),
            extra: extra.clone(),
            ..NodeOpts::default()
        },
    );
    let mut village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(town.federation_url()),
            extra,
            ..NodeOpts::default()
        },
    );
    let t = operator_client(&pki, &town, TOWN, "director", "boss").await;
    let v = operator_client(&pki, &village, VILLAGE, "director", "boss").await;
    // Both sides have heard each other (and stored it: a first word is stored before it shows).
    let heard_by_village = connected(&v, TOWN).await.last_heard.unwrap();
    let heard_by_town = connected(&t, VILLAGE).await.last_heard.unwrap();

    // 1. The village dies; the township is restarted three hours later.
    village.kill9();
    let from = log_len(&town.stderr_log);
    restart_at(&mut town, root.path(), OFFSET);
    let mut t = operator_client(&pki, &town, TOWN, "director", "boss").await;
    let l = links(&mut t).await;
    assert_eq!(l.node, TOWN);
    let child = link_to(&l, VILLAGE).expect("the village's link is remembered");
    assert_eq!(child.role, pb::LinkRole::Child as i32);
    assert_flagged(&child, &heard_by_town);
    let line = logged(
        &town.stderr_log,
        from,
        &format!("ALERT: link to {VILLAGE} silent for"),
    )
    .await;
    assert!(silent_for(&line) >= OFFSET_S, "{line}");
    assert!(line.contains("link_silent"), "{line}");
    // The same through fqctl, as the township's director would look.
    let (code, out, err) = fqctl_as(&pki, &town, "director", &["links", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = json["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["peer"] == VILLAGE)
        .cloned()
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row["silent"], true, "{out}");
    assert_eq!(row["state"], "LINK_STATE_BACKING_OFF", "{out}");
    assert_eq!(row["role"], "LINK_ROLE_CHILD", "{out}");

    // 2. The township dies; the village is restarted, three hours on as well.
    town.kill9();
    let from = log_len(&village.stderr_log);
    restart_at(&mut village, root.path(), OFFSET);
    let mut v = operator_client(&pki, &village, VILLAGE, "director", "boss").await;
    let l = links(&mut v).await;
    let parent = link_to(&l, TOWN).expect("the parent link");
    assert_eq!(parent.role, pb::LinkRole::Parent as i32);
    assert_flagged(&parent, &heard_by_village);
    let line = logged(
        &village.stderr_log,
        from,
        &format!("ALERT: link to {TOWN} silent for"),
    )
    .await;
    assert!(silent_for(&line) >= OFFSET_S, "{line}");

    // 3. The township comes back (same clock as the village): the flag clears on both sides.
    let from_v = log_len(&village.stderr_log);
    town.restart(root.path());
    let t = operator_client(&pki, &town, TOWN, "director", "boss").await;
    connected(&v, TOWN).await;
    connected(&t, VILLAGE).await;
    logged(
        &village.stderr_log,
        from_v,
        &format!("link to {TOWN} heard again"),
    )
    .await;
}
