//! End to end: certificates revoked and rotated without a restart. County IT revokes an
//! operator's certificate with `fqctl pki revoke`; the township, whose `tls.crl` names the
//! file, re-reads it on SIGHUP: the certificate is refused at the handshake and on the
//! connection it already had open, at its next call, while other certificates work on. The
//! CRL travels down the link, so the village (no CRL file of its own) refuses a revoked
//! certificate of its own operators too. Then the township's own certificate is rotated while
//! the village's link runs: the link stays up and a case escalated after it arrives.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use support::*;

const TOWN: &str = "610116001";
const VILLAGE: &str = "610116001001";

async fn lists(
    c: &mut pb::case_service_client::CaseServiceClient<tonic::transport::Channel>,
) -> Result<(), tonic::Status> {
    c.list_cases(pb::ListCasesRequest::default())
        .await
        .map(|_| ())
}

/// Whether a new connection with this certificate is refused (at the handshake, or at its
/// first call when the handshake error only shows then).
async fn refused(
    addr: std::net::SocketAddr,
    pki: &Pki,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> bool {
    match channel(addr, &pki.ca(), Some((cert, key))).await {
        Err(_) => true,
        Ok(ch) => lists(&mut pb::case_service_client::CaseServiceClient::new(ch))
            .await
            .is_err(),
    }
}

fn revoke(pki: &Pki, cert: &std::path::Path) -> String {
    let (code, out, err) = fqctl(&[
        "pki",
        "revoke",
        cert.to_str().unwrap(),
        "--dir",
        pki.dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_rotation_without_a_restart() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    // A first CRL (an old certificate of someone who left), so the file exists.
    let (gone, _) = pki.operator(TOWN, "intake", "left");
    let out = revoke(&pki, &gone);
    assert!(out.contains("CRL number 1"), "{out}");
    let crl = pki.dir.join("crl.pem");
    let town = NodeProc::start_with(
        &pki,
        root.path(),
        TOWN,
        &NodeOpts {
            extra: format!("crl = \"{}\"\n{FAST_LINKS}", crl.display()),
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

    // The revoked one never gets in; two directors and a village clerk work.
    let (gone_cert, gone_key) = pki.operator(TOWN, "intake", "left");
    assert!(
        refused(town.listen, &pki, &gone_cert, &gone_key).await,
        "a certificate revoked before the start is refused"
    );
    let mut a = operator_client(&pki, &town, TOWN, "director", "a").await;
    let mut b = operator_client(&pki, &town, TOWN, "director", "b").await;
    let mut v = operator_client(&pki, &village, VILLAGE, "intake", "v1").await;
    lists(&mut a).await.unwrap();
    lists(&mut b).await.unwrap();
    lists(&mut v).await.unwrap();

    // County IT revokes director a and the village clerk, then tells the township.
    let (a_cert, a_key) = pki.operator(TOWN, "director", "a");
    let out = revoke(&pki, &a_cert);
    assert!(out.contains("CRL number 2"), "{out}");
    let (v_cert, v_key) = pki.operator(VILLAGE, "intake", "v1");
    let out = revoke(&pki, &v_cert);
    assert!(
        out.contains("CRL number 3") && out.contains("3 revoked"),
        "{out}"
    );
    town.hangup();

    // a's open connection is refused at its next call; b's works on.
    let status = eventually(
        "a's open connection refused",
        Duration::from_secs(20),
        || {
            let mut a = a.clone();
            async move { lists(&mut a).await.err() }
        },
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    lists(&mut b).await.unwrap();
    // A new connection of a's fails at the handshake.
    assert!(
        refused(town.listen, &pki, &a_cert, &a_key).await,
        "a new connection with a revoked certificate"
    );
    let (b_cert, b_key) = pki.operator(TOWN, "director", "b");
    assert!(!refused(town.listen, &pki, &b_cert, &b_key).await);

    // The village takes the CRL from its parent: its own clerk's certificate is refused, with
    // no file copied by hand.
    let status = eventually("the village refuses v1", Duration::from_secs(30), || {
        let mut v = v.clone();
        async move { lists(&mut v).await.err() }
    })
    .await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let kept = root
        .path()
        .join(format!("data-{VILLAGE}"))
        .join("crl-from-parent.pem");
    assert!(kept.exists(), "the village keeps the CRL it received");
    assert!(refused(village.listen, &pki, &v_cert, &v_key).await);
    let mut v2 = operator_client(&pki, &village, VILLAGE, "director", "v2").await;
    lists(&mut v2).await.unwrap();

    // Rotation of the township's own certificate while the village's link runs.
    let (node_cert, _) = pki.node(TOWN);
    let old_serial = fengqiao_node::pki::serial_of_file(&node_cert).unwrap();
    let (code, out, err) = fqctl(&["pki", "node", TOWN, "--dir", pki.dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let new_serial = fengqiao_node::pki::serial_of_file(&node_cert).unwrap();
    assert_ne!(old_serial, new_serial);
    town.hangup();
    let hex: String = new_serial.iter().map(|b| format!("{b:02x}")).collect();
    eventually(
        "the township uses its new certificate",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(&town.stderr_log).unwrap_or_default();
            let hex = hex.clone();
            async move { log.contains(&hex).then_some(()) }
        },
    )
    .await;
    // The link keeps working: a case escalated now reaches the township.
    let case = v2
        .register_case(register_request("after-rotation"))
        .await
        .unwrap()
        .into_inner();
    v2.escalate_case(pb::EscalateCaseRequest {
        case_id: case.id.clone(),
        mode: pb::EscalationMode::TakeOver as i32,
        reason: "需乡镇统筹".into(),
    })
    .await
    .unwrap();
    let id = case.id.clone();
    eventually(
        "the escalated case reaches the township",
        Duration::from_secs(60),
        || {
            let mut b = b.clone();
            let id = id.clone();
            async move {
                b.get_case(pb::GetCaseRequest { case_id: id })
                    .await
                    .ok()
                    .filter(|r| r.get_ref().owner_node == TOWN)
            }
        },
    )
    .await;
    // b's connection, opened before the rotation, still works; new ones see the new one.
    lists(&mut b).await.unwrap();
    let mut b2 = operator_client(&pki, &town, TOWN, "director", "b").await;
    lists(&mut b2).await.unwrap();
    // Both reloads are in the township's audit log; the village's CRL from above in its own.
    let (code, out, err) = fqctl_as(&pki, &town, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.matches("TlsReload").count() >= 2, "{out}");
    let (code, out, err) = fqctl_as(&pki, &village, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CRL number 3"), "{out}");
}
