//! End to end: console accounts kept with `fqctl user` and an admin certificate, against a
//! real node: add with a password from stdin, add with a one-time password, list, disable,
//! enable, reset; refused for other roles and for bad input, with nothing written. And the log
//! of who viewed personal data, for the auditor.

mod support;

use support::*;

const NODE: &str = "610116001";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn an_admin_keeps_the_console_accounts_with_fqctl() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);

    // With a password from stdin.
    let (code, out, err) = fqctl_as_stdin(
        &pki,
        &node,
        "admin",
        &[
            "--json",
            "user",
            "add",
            "li.ming",
            "--role",
            "intake",
            "--name",
            "李明",
            "--password-stdin",
        ],
        "zongzhi2026\n",
    );
    assert_eq!(code, 0, "{err}");
    let added = json(&out);
    assert_eq!(added["user"]["role"], "intake");
    assert_eq!(added["user"]["must_change_password"], false);
    assert_eq!(added["one_time_password"], "");

    // Without: a one-time password, printed once, to be changed at the first sign-in.
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["user", "add", "wang", "--role", "mediator"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("一次性密码"), "{out}");
    let (code, out, _) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["--json", "user", "reset-password", "wang"],
    );
    assert_eq!(code, 0);
    let reset = json(&out);
    assert_eq!(reset["one_time_password"].as_str().unwrap().len(), 12);
    assert_eq!(reset["user"]["must_change_password"], true);

    // The list, in Chinese by default; disable and enable.
    let (code, out, _) = fqctl_as(&pki, &node, "admin", &["user", "list"]);
    assert_eq!(code, 0);
    for word in ["账号", "li.ming", "李明", "wang", "须改密码"] {
        assert!(out.contains(word), "{word} in {out}");
    }
    let (code, out, _) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["--json", "user", "disable", "li.ming"],
    );
    assert_eq!(code, 0);
    assert_eq!(json(&out)["enabled"], false);
    let (code, out, _) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["--json", "user", "enable", "li.ming"],
    );
    assert_eq!(code, 0);
    assert_eq!(json(&out)["enabled"], true);

    // Refused, and nothing written: another role, a taken name, bad input, an unknown account.
    let (code, _, err) = fqctl_as(&pki, &node, "director", &["user", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["user", "add", "wang", "--role", "intake"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["user", "add", "Bad Name", "--role", "intake"],
    );
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("username"),
        "{code} {err}"
    );
    let (code, _, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["user", "add", "zhou", "--role", "boss"],
    );
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("role"),
        "{code} {err}"
    );
    let (code, _, err) = fqctl_as_stdin(
        &pki,
        &node,
        "admin",
        &[
            "user",
            "add",
            "zhou",
            "--role",
            "intake",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("password"),
        "{code} {err}"
    );
    let (code, _, err) = fqctl_as(&pki, &node, "admin", &["user", "disable", "nobody"]);
    assert!(
        err.contains("NOT_FOUND") && err.contains("account nobody"),
        "{code} {err}"
    );
    let (_, out, _) = fqctl_as(&pki, &node, "admin", &["--json", "user", "list"]);
    let names: Vec<_> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["li.ming", "wang"]);

    // Every account change is in the audit log, for the auditor (the refused ones are not).
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "auditor",
        &["--json", "audit", "--actor", "admin/zhao"],
    );
    assert_eq!(code, 0, "{err}");
    let mut what: Vec<String> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_owned())
        .collect();
    // Entries of the same millisecond have no set order: compare them as a set.
    what.sort();
    assert_eq!(
        what,
        [
            "AddUser li.ming (intake)",
            "AddUser wang (mediator)",
            "DisableUser li.ming",
            "EnableUser li.ming",
            "ResetPassword wang",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_of_personal_data_are_listed_for_the_auditor() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&pki, root.path(), NODE);
    let mut director = operator_client(&pki, &node, NODE, "director", "boss").await;
    let case = director
        .register_case(register_request("seen"))
        .await
        .unwrap()
        .into_inner();
    let get = |c: &mut fengqiao_proto::v1::case_service_client::CaseServiceClient<_>| {
        let id = case.id.clone();
        let mut c = c.clone();
        async move {
            c.get_case(fengqiao_proto::v1::GetCaseRequest { case_id: id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    // The director sees the parties in full: recorded.
    let full = get(&mut director).await;
    assert_eq!(full.parties[0].phone, "13812345678");
    // The auditor sees them masked: nothing to record.
    let mut auditor = operator_client(&pki, &node, NODE, "auditor", "sun").await;
    let masked = get(&mut auditor).await;
    assert_ne!(masked.parties[0].phone, "13812345678");

    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    let events = json(&out);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["case_id"], case.id.as_str());
    assert_eq!(events[0]["what"], "GetCase");
    assert!(
        events[0]["actor"]
            .as_str()
            .unwrap()
            .ends_with("/director/boss"),
        "{events:?}"
    );
    let (_, out, _) = fqctl_as(&pki, &node, "auditor", &["audit"]);
    assert!(out.contains("查阅人") && out.contains(&case.id), "{out}");
    // Filters: by actor (or the end of its identity), case and time.
    let count = |args: &[&str]| {
        let mut all = vec!["--json", "audit"];
        all.extend_from_slice(args);
        let (code, out, err) = fqctl_as(&pki, &node, "auditor", &all);
        assert_eq!(code, 0, "{err}");
        json(&out).as_array().unwrap().len()
    };
    assert_eq!(
        count(&[
            "--actor",
            "director/boss",
            "--case",
            &case.id,
            "--since",
            "1h"
        ]),
        1
    );
    assert_eq!(count(&["--actor", "sun"]), 0);
    assert_eq!(count(&["--case", "610116001-20000101-000001"]), 0);
    assert_eq!(count(&["--since", "2099-01-01"]), 0);
    // Only the auditor reads the log.
    let (code, _, err) = fqctl_as(&pki, &node, "director", &["audit"]);
    assert_eq!(code, 1);
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
}
