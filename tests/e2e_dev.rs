//! End to end: the README's main job. `fqnode dev` starts the five-node dev federation with a
//! generated PKI, and `fqctl` drives a node through the profile it wrote.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

const NODES: [&str; 5] = [
    "6101",
    "610116",
    "610116001",
    "610116001001",
    "610116001002",
];

struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fqnode_dev_runs_five_nodes_that_fqctl_can_use() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dev");
    let mut child = Command::new(FQNODE)
        .args(["dev", "--base-port", "0", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fqnode dev");
    let stdout = child.stdout.take().unwrap();
    let mut dev = Dev(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ready = Vec::new();
    let mut banner = String::new();
    while ready.len() < NODES.len() {
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .expect("fqnode dev did not start all nodes in time");
        if line.starts_with("fengqiao-ready") {
            ready.push(line);
        } else {
            banner.push_str(&line);
            banner.push('\n');
        }
    }
    for code in NODES {
        assert!(
            ready.iter().any(|l| l.contains(&format!("code={code} "))),
            "{code} missing: {ready:?}"
        );
        assert!(
            banner.contains(&format!("profiles/{code}.toml")),
            "banner names the profile of {code}:\n{banner}"
        );
    }

    let profile = dir.join("profiles/610116001001.toml");
    let p = profile.to_str().unwrap();
    let (code, out, err) = fqctl(&[
        "--profile",
        p,
        "case",
        "register",
        "--category",
        "labor",
        "--channel",
        "walk-in",
        "--risk",
        "yellow",
        "--summary",
        "讨薪：拖欠工资三个月",
        "--amount-yuan",
        "4400",
        "--party",
        "applicant,张三,13812345678,610102199001011234",
        "--idempotency-key",
        "dev-e2e-1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("未审核") && out.contains("4,400.00"),
        "Chinese labels by default:\n{out}"
    );

    let (code, out, err) = fqctl(&["--profile", p, "--lang", "en", "case", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("registered") && out.contains("1 case(s)"),
        "{out}"
    );

    let (code, out, _) = fqctl(&["--profile", p, "--json", "case", "list"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    let case = &v["cases"][0];
    assert_eq!(case["status"], "CASE_STATUS_REGISTERED");
    assert_eq!(
        case["parties"][0]["id_number"], "6101**********1234",
        "listings mask personal data"
    );
    let id = case["id"].as_str().unwrap().to_string();

    let (code, out, err) = fqctl(&["--profile", p, "case", "review", &id, "--accept"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("待办理"), "{out}");
    let (code, out, _) = fqctl(&["--profile", p, "case", "history", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("registered") && out.contains("accepted"),
        "{out}"
    );

    // Exit codes scripts rely on: 1 refused by the node, 2 bad usage, 3 unreachable.
    let (code, _, err) = fqctl(&[
        "--profile",
        p,
        "case",
        "get",
        "610116001001-20000101-000001",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("NOT_FOUND"), "{err}");
    let (code, _, err) = fqctl(&[
        "--profile",
        p,
        "case",
        "register",
        "--category",
        "gossip",
        "--channel",
        "walk-in",
        "--summary",
        "x",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = fqctl(&[
        "--profile",
        p,
        "--endpoint",
        "https://127.0.0.1:1",
        "case",
        "list",
    ]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = fqctl(&[
        "--profile",
        p,
        "--endpoint",
        "http://127.0.0.1:1",
        "case",
        "list",
    ]);
    assert_eq!(code, 2, "plaintext endpoints are refused: {err}");

    // Every node answers its own director.
    for code in NODES {
        let prof = dir.join(format!("profiles/{code}.toml"));
        let (rc, out, err) = fqctl(&["--profile", prof.to_str().unwrap(), "health"]);
        assert_eq!(rc, 0, "{code}: {out}{err}");
    }

    // SIGTERM stops all five cleanly.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(dev.0.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            assert!(status.success(), "fqnode dev exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fqnode dev did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
