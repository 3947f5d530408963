//! End to end: a village PC replaced (an empty data folder, the same certificate) and one
//! restored from an older copy of its folder. Township 610116001 and village 610116001001, real
//! processes. Either way the village issues no case id twice, its escalations after its return
//! reach the township (none skipped as a repeat), the case the township transferred down to it
//! since is delivered again, and both sides show a `link_resync` alert. The same for the
//! township restored from an older copy: the village's later messages reach it again.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use support::*;
use tonic::transport::Channel;

const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";
const SETTLE: Duration = Duration::from_secs(60);

type Client = CaseServiceClient<Channel>;

struct Pair {
    pki: Pki,
    root: tempfile::TempDir,
    town: NodeProc,
    village: NodeProc,
}

impl Pair {
    async fn start() -> Pair {
        let pki = Pki::new();
        let root = tempfile::tempdir().unwrap();
        let town = NodeProc::start(&pki, root.path(), TOWN);
        let village = NodeProc::start_with(
            &pki,
            root.path(),
            VILLAGE,
            &NodeOpts {
                parent: Some(town.federation_url()),
                ..NodeOpts::default()
            },
        );
        linked(&pki, &town, TOWN, VILLAGE).await;
        Pair {
            pki,
            root,
            town,
            village,
        }
    }

    async fn client(&self, code: &str) -> Client {
        let node = if code == TOWN {
            &self.town
        } else {
            &self.village
        };
        operator_client(&self.pki, node, code, "director", "boss").await
    }

    fn village_data(&self) -> std::path::PathBuf {
        self.root.path().join(format!("data-{VILLAGE}"))
    }

    /// Stops the village cleanly, lets `change` do what it will to its data folder, starts it
    /// again with the same config and certificate, `later` on its clock (a PC is not replaced,
    /// nor a folder restored, within a second: case numbers are floored by the tenth of a
    /// second, see the README).
    fn village_back(&mut self, later: &str, change: impl FnOnce(&Path)) {
        assert!(self.village.terminate(), "the village stops cleanly");
        change(&self.village_data());
        restart_at(&mut self.village, self.root.path(), later);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn register(c: &mut Client, key: &str) -> pb::Case {
    c.register_case(register_request(key))
        .await
        .unwrap_or_else(|s| panic!("register {key}: {s:?}"))
        .into_inner()
}

async fn escalate(c: &mut Client, id: &str) {
    c.escalate_case(pb::EscalateCaseRequest {
        case_id: id.to_string(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "需乡镇统筹".into(),
    })
    .await
    .unwrap_or_else(|s| panic!("escalate {id}: {s:?}"));
}

/// Waits until `c`'s node owns case `id`.
async fn owned_at(c: &Client, id: &str, code: &str) -> pb::Case {
    eventually(&format!("{id} owned by {code}"), SETTLE, || {
        let mut c = c.clone();
        async move {
            c.get_case(pb::GetCaseRequest {
                case_id: id.to_string(),
            })
            .await
            .ok()
            .map(|r| r.into_inner())
            .filter(|k| k.owner_node == code && k.status != pb::CaseStatus::Transferred as i32)
        }
    })
    .await
}

async fn resync_alerts(c: &Client) -> Vec<String> {
    c.clone()
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts
        .into_iter()
        .filter(|a| a.kind == "link_resync")
        .map(|a| a.message)
        .collect()
}

/// Both ends of the link show a `link_resync` alert naming the other, and count the resync in
/// GetLinks.
async fn both_alerted(town: &Client, village: &Client) {
    for (c, other, at) in [(town, VILLAGE, "township"), (village, TOWN, "village")] {
        let alerts = eventually(
            &format!("a link_resync alert at the {at}"),
            SETTLE,
            || async { Some(resync_alerts(c).await).filter(|a| !a.is_empty()) },
        )
        .await;
        assert!(alerts.iter().any(|m| m.contains(other)), "{at}: {alerts:?}");
        let links = c
            .clone()
            .get_links(pb::GetLinksRequest {})
            .await
            .unwrap()
            .into_inner()
            .links;
        let link = links.iter().find(|l| l.peer == other).unwrap();
        assert!(
            link.resyncs >= 1 && link.last_resync.is_some(),
            "{at}: {link:?}"
        );
    }
}

/// A case registered at the township and transferred down to the village, once there.
async fn transferred_down(pair: &Pair, key: &str) -> String {
    let mut town = pair.client(TOWN).await;
    let down = register(&mut town, key).await;
    town.transfer_case(pb::TransferCaseRequest {
        case_id: down.id.clone(),
        to_node: VILLAGE.into(),
        reason: "交办属地".into(),
    })
    .await
    .unwrap();
    owned_at(&pair.client(VILLAGE).await, &down.id, VILLAGE).await;
    down.id
}

/// After the village's return: a new case has an id never issued before, its escalation
/// reaches the township, the case transferred down before is there again, and both sides show
/// what happened.
async fn nothing_lost(pair: &Pair, issued: &BTreeSet<String>, down: &str) {
    let mut village = pair.client(VILLAGE).await;
    let town = pair.client(TOWN).await;
    let fresh = register(&mut village, "after-return").await;
    assert!(!issued.contains(&fresh.id), "{} issued twice", fresh.id);
    escalate(&mut village, &fresh.id).await;
    owned_at(&town, &fresh.id, TOWN).await;
    owned_at(&village, down, VILLAGE).await;
    both_alerted(&town, &village).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_on_an_empty_folder_loses_nothing_and_repeats_no_id() {
    init();
    let mut pair = Pair::start().await;
    let mut village = pair.client(VILLAGE).await;
    let mut issued = BTreeSet::new();
    let up = register(&mut village, "before-1").await;
    escalate(&mut village, &up.id).await;
    owned_at(&pair.client(TOWN).await, &up.id, TOWN).await;
    issued.insert(up.id);
    issued.insert(register(&mut village, "before-2").await.id);
    let down = transferred_down(&pair, "down").await;

    // The PC is replaced: a new, empty data folder; the same certificate.
    pair.village_back("10m", |data| std::fs::remove_dir_all(data).unwrap());
    nothing_lost(&pair, &issued, &down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_on_an_older_copy_loses_nothing_and_repeats_no_id() {
    init();
    let mut pair = Pair::start().await;
    let mut village = pair.client(VILLAGE).await;
    let mut issued = BTreeSet::new();
    issued.insert(register(&mut village, "before-copy").await.id);

    // A copy of the folder, taken with the node stopped.
    let backup = pair.root.path().join("backup");
    pair.village_back("10m", |data| copy_dir(data, &backup));
    let mut village = pair.client(VILLAGE).await;
    let up = register(&mut village, "after-copy").await;
    escalate(&mut village, &up.id).await;
    owned_at(&pair.client(TOWN).await, &up.id, TOWN).await;
    issued.insert(up.id);
    let down = transferred_down(&pair, "down-after-copy").await;

    // Days later the disk fails and the copy is put back.
    pair.village_back("20m", |data| {
        std::fs::remove_dir_all(data).unwrap();
        copy_dir(&backup, data);
    });
    nothing_lost(&pair, &issued, &down).await;
}

/// The township restored from an older copy of its folder: the village's escalations it had
/// applied since the copy come to it again (the village kept them), and later ones arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_on_an_older_copy_gets_the_village_messages_again() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    // A fixed federation port: the village finds its restarted parent where it was.
    let mut town = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            federation_port: free_port(),
            ..NodeOpts::default()
        },
    );
    let village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(town.federation_url()),
            ..NodeOpts::default()
        },
    );
    linked(&pki, &town, TOWN, VILLAGE).await;
    let mut v = operator_client(&pki, &village, VILLAGE, "director", "boss").await;

    // A copy of the township's folder, taken with it stopped.
    let data = root.path().join(format!("data-{TOWN}"));
    let backup = root.path().join("town-backup");
    assert!(town.terminate());
    copy_dir(&data, &backup);
    town.restart(root.path());
    let t = operator_client(&pki, &town, TOWN, "director", "boss").await;
    let since = register(&mut v, "after-town-copy").await;
    escalate(&mut v, &since.id).await;
    owned_at(&t, &since.id, TOWN).await;

    // The township's disk fails; the copy is put back.
    assert!(town.terminate());
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&backup, &data);
    restart_at(&mut town, root.path(), "10m");
    let t = operator_client(&pki, &town, TOWN, "director", "boss").await;
    owned_at(&t, &since.id, TOWN).await;
    let later = register(&mut v, "after-town-restore").await;
    escalate(&mut v, &later.id).await;
    owned_at(&t, &later.id, TOWN).await;
    both_alerted(&t, &v).await;
}
