//! End to end: `fqctl backup` of a village taken while cases are being registered,
//! `fqctl backup verify`, `fqnode restore` onto a new folder, and the village started on it —
//! every case acknowledged before the backup is there, no case id issued after the backup is
//! issued again (however fast they came), and the restored village rejoins its township: a
//! case escalated after the restore reaches it.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use support::*;
use tokio::sync::Mutex;

const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_and_rejoins() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let town = NodeProc::start(&pki, root.path(), TOWN);
    let mut village = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            parent: Some(town.federation_url()),
            ..NodeOpts::default()
        },
    );
    linked(&pki, &town, TOWN, VILLAGE).await;
    let mut c = operator_client(&pki, &village, VILLAGE, "director", "boss").await;
    let mut before = BTreeSet::new();
    for i in 0..20 {
        let case = c
            .register_case(register_request(&format!("before-{i}")))
            .await
            .unwrap()
            .into_inner();
        before.insert(case.id);
    }

    // A write load while the backup is taken: each acknowledged id with whether the backup
    // had started when it was sent.
    let started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(bool, bool, String)>>> = Arc::default();
    let load = {
        let (started, stop, acked) = (started.clone(), stop.clone(), acked.clone());
        let mut c = operator_client(&pki, &village, VILLAGE, "director", "load").await;
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let sent_after_start = started.load(Ordering::SeqCst);
                if let Ok(r) = c
                    .register_case(register_request(&format!("load-{i}")))
                    .await
                {
                    let acked_before_start = !started.load(Ordering::SeqCst);
                    acked.lock().await.push((
                        sent_after_start,
                        acked_before_start,
                        r.into_inner().id,
                    ));
                }
                i += 1;
            }
        })
    };
    // Let the load run a little, then back up through fqctl as the admin.
    eventually("the load runs", Duration::from_secs(30), || {
        let acked = acked.clone();
        async move { (acked.lock().await.len() >= 20).then_some(()) }
    })
    .await;
    let file = root.path().join("village.fqbackup");
    let out_path = file.to_str().unwrap().to_owned();
    started.store(true, Ordering::SeqCst);
    let backup = {
        let (pki_ca, village_ref) = (&pki, &village);
        let args = ["backup", "--out", out_path.as_str()];
        fqctl_as(pki_ca, village_ref, "admin", &args)
    };
    // Cases acknowledged after the backup answered are surely not in it.
    let mut surely_after = Vec::new();
    for i in 0..5 {
        let case = c
            .register_case(register_request(&format!("after-{i}")))
            .await
            .unwrap()
            .into_inner();
        surely_after.push(case.id);
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (code, out, err) = backup;
    assert_eq!(code, 0, "backup: {out} {err}");
    assert!(out.contains(VILLAGE), "{out}");
    for (_, acked_before_start, id) in acked.lock().await.iter() {
        if *acked_before_start {
            before.insert(id.clone());
        }
    }
    let issued: BTreeSet<String> = acked
        .lock()
        .await
        .iter()
        .map(|(_, _, id)| id.clone())
        .chain(surely_after.iter().cloned())
        .chain(before.iter().cloned())
        .collect();

    // Only the admin backs up; the file checks; a damaged copy does not.
    let (code, _, err) = fqctl_as(&pki, &village, "director", &["backup", "--out", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (code, out, err) = fqctl(&["backup", "verify", &out_path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("校验通过") && out.contains(VILLAGE), "{out}");
    let damaged = root.path().join("damaged.fqbackup");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, _, err) = fqctl(&["backup", "verify", damaged.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");

    // The village PC dies; county IT restores the backup onto a new folder.
    assert!(village.terminate());
    let data = root.path().join(format!("data-{VILLAGE}"));
    std::fs::rename(&data, root.path().join("data-lost")).unwrap();
    let restore = |from: &std::path::Path| {
        Command::new(FQNODE)
            .args(["restore", "--from"])
            .arg(from)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let refused = restore(&damaged);
    assert!(!refused.status.success());
    assert!(!data.exists(), "nothing written from a damaged backup");
    let done = restore(&file);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains(VILLAGE));
    // Not over a folder that holds something.
    let again = restore(&file);
    assert!(!again.status.success());

    village.restart(root.path());
    let mut c = operator_client(&pki, &village, VILLAGE, "director", "boss").await;
    for id in &before {
        let case = get(&mut c, id).await;
        assert_eq!(&case.id, id, "acknowledged before the backup, so in it");
    }
    // New cases never take an id issued before the restore, even one after the backup.
    let mut fresh = Vec::new();
    for i in 0..5 {
        let case = c
            .register_case(register_request(&format!("restored-{i}")))
            .await
            .unwrap()
            .into_inner();
        assert!(!issued.contains(&case.id), "{} issued twice", case.id);
        fresh.push(case.id);
    }
    // The restored village rejoins its township: an escalation reaches it.
    c.escalate_case(pb::EscalateCaseRequest {
        case_id: fresh[0].clone(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "需乡镇统筹".into(),
    })
    .await
    .unwrap();
    let mut t = operator_client(&pki, &town, TOWN, "director", "town").await;
    let id = fresh[0].clone();
    eventually(
        "the township takes the escalated case",
        Duration::from_secs(60),
        || {
            let mut t = t.clone();
            let id = id.clone();
            async move {
                t.get_case(pb::GetCaseRequest { case_id: id })
                    .await
                    .ok()
                    .filter(|r| r.get_ref().owner_node == TOWN)
            }
        },
    )
    .await;
    let _ = &mut t;
    // The backup is in the audit log.
    let (code, out, err) = fqctl_as(
        &pki,
        &village,
        "auditor",
        &["--json", "audit", "--limit", "1000"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Backup"), "{out}");
}

/// deploy/fqnode-backup.sh, as the nightly timer runs it: a checked backup in the folder, and
/// rotation that removes old backups but always keeps the newest three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_script_backs_up_and_rotates() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), VILLAGE);
    let (cert, key) = pki.operator(VILLAGE, "admin", "backup");
    let profile = root.path().join("backup.toml");
    std::fs::write(
        &profile,
        format!(
            "endpoint = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            node.url(),
            pki.ca().display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let dir = root.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Five backups of last month (copies of a real one, aged).
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["backup", "--out", dir.join("seed").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    for day in 1..=5 {
        let old = dir.join(format!("fengqiao-202611{day:02}-023000.fqbackup"));
        std::fs::copy(dir.join("seed"), &old).unwrap();
        let aged = Command::new("touch")
            .args(["-d", &format!("2026-11-{day:02} 02:30")])
            .arg(&old)
            .status()
            .unwrap();
        assert!(aged.success());
    }
    std::fs::remove_file(dir.join("seed")).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/fqnode-backup.sh");
    let run = Command::new("sh")
        .arg(&script)
        .env("FQCTL", FQCTL)
        .env("FQCTL_PROFILE", &profile)
        .env("FENGQIAO_BACKUP_DIR", &dir)
        .env("FENGQIAO_BACKUP_KEEP_DAYS", "14")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // Tonight's, and the two newest old ones (three in all); the other old ones are gone.
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], "fengqiao-20261104-023000.fqbackup", "{left:?}");
    assert_eq!(left[1], "fengqiao-20261105-023000.fqbackup", "{left:?}");
    let (code, out, err) = fqctl(&["backup", "verify", dir.join(&left[2]).to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}
