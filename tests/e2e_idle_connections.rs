//! End to end: a node limited to 1,024 open files (the usual service default) under ~3,000
//! idle TCP connections to its two ports keeps serving the operator who was already
//! connected, and once the flood stops takes new connections and writes normally, with health
//! SERVING: a transient shortage of file descriptors never latches the store.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fengqiao_proto::v1::case_service_client::CaseServiceClient;
use support::*;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const NODE: &str = "610116001";
/// Idle connections opened, spread over the two ports.
const FLOOD: usize = 3_000;
/// The open-files limit of the node under test.
const NODE_NOFILE: u32 = 1_024;

/// `fqnode` started through `sh -c 'ulimit -n 1024 && exec fqnode ...'`; killed on drop.
struct LimitedNode {
    child: Child,
    listen: SocketAddr,
    federation_listen: SocketAddr,
    stderr_log: PathBuf,
}

impl LimitedNode {
    fn start(pki: &Pki, root: &Path) -> LimitedNode {
        let config = write_config(pki, root, NODE, &NodeOpts::default());
        let stderr_log = root.join("node.stderr.log");
        let stderr = std::fs::File::create(&stderr_log).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {NODE_NOFILE} && exec \"$0\" --config \"$1\""
            ))
            .arg(FQNODE)
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn sh");
        let stdout = child.stdout.take().unwrap();
        let Some(line) = wait_for_line(stdout, "fengqiao-ready", START_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node did not start: {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        };
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let node = LimitedNode {
            listen: field("listen"),
            federation_listen: field("federation_listen"),
            child,
            stderr_log,
        };
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.child.id()))
            .unwrap_or_default();
        let open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            open_files.split_whitespace().nth(3) == Some(&NODE_NOFILE.to_string()),
            "the node runs with {NODE_NOFILE} open files: {open_files:?}"
        );
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for LimitedNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft open-files limit to its hard limit (the flood needs ~3,000).
fn raise_own_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

async fn operator(pki: &Pki, addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    let (cert, key) = pki.operator(NODE, "intake", "li");
    channel(addr, &pki.ca(), Some((&cert, &key))).await
}

async fn health(ch: Channel, service: &str) -> Result<i32, tonic::Status> {
    Ok(HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner()
        .status)
}

/// Opens `n` plain TCP connections (no TLS, never a byte sent) to `addrs` in turn, each
/// within a bounded time; returns those that connected.
async fn flood(addrs: [SocketAddr; 2], n: usize) -> Vec<tokio::net::TcpStream> {
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let addr = addrs[i % 2];
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
        {
            open.push(s);
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_neither_stop_open_operators_nor_latch_the_store() {
    init();
    let own = raise_own_nofile();
    // Three thousand where the machine allows it (this process holds the flood); never fewer
    // than enough to fill both listeners' caps (2 × 256) several times over.
    let flood_size = FLOOD.min(
        usize::try_from(own)
            .unwrap_or(usize::MAX)
            .saturating_sub(256),
    );
    assert!(
        flood_size >= 1_500,
        "this test needs at least 1,756 open files for itself; the hard limit here is {own}"
    );
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = LimitedNode::start(&pki, root.path());

    // The operator connects before the flood and keeps that connection.
    let ch = operator(&pki, node.listen)
        .await
        .expect("operator connects");
    let mut intake = CaseServiceClient::new(ch.clone());
    intake
        .register_case(register_request("before-flood"))
        .await
        .expect("a write before the flood");

    let flood = flood([node.listen, node.federation_listen], flood_size).await;
    assert!(
        flood.len() >= flood_size / 2,
        "only {} of {flood_size} flood connections opened",
        flood.len()
    );
    // The flood pressed on the node: both listeners reached their cap (default 256 each, far
    // below the 3,000 connections) and closed what came over it.
    let log = eventually(
        "both listeners to reach their connection cap",
        Duration::from_secs(30),
        || {
            let log = node.log();
            async move { (log.matches("connection cap reached").count() >= 2).then_some(log) }
        },
    )
    .await;
    assert!(!log.contains("refusing every write"), "{log}");

    // During the flood: the operator's open connection is served, and writes succeed, first
    // time, several times over.
    for i in 0..5 {
        let c = intake
            .register_case(register_request(&format!("during-flood-{i}")))
            .await
            .unwrap_or_else(|s| panic!("write {i} during the flood failed: {s:?}"))
            .into_inner();
        assert!(c.id.starts_with(NODE), "{}", c.id);
    }
    assert_eq!(
        health(ch.clone(), "").await.unwrap(),
        ServingStatus::Serving as i32
    );

    // The flood stops.
    drop(flood);

    // New connections get through again (bounded polling: the node notices the closed
    // connections as their handshakes end), on both ports.
    for addr in [node.listen, node.federation_listen] {
        let fresh = eventually(
            "a new connection after the flood",
            Duration::from_secs(60),
            || {
                let pki = &pki;
                async move {
                    let ch = operator(pki, addr).await.ok()?;
                    (health(ch.clone(), "").await.ok()? == ServingStatus::Serving as i32)
                        .then_some(ch)
                }
            },
        )
        .await;
        if addr == node.listen {
            let mut fresh = CaseServiceClient::new(fresh.clone());
            fresh
                .register_case(register_request("after-flood"))
                .await
                .expect("a write on a new connection after the flood");
            assert_eq!(
                health(fresh_channel(&pki, addr).await, "fengqiao.v1.CaseService")
                    .await
                    .unwrap(),
                ServingStatus::Serving as i32
            );
        }
    }
    // And the connection the operator held all along still works.
    intake
        .register_case(register_request("after-flood-old-connection"))
        .await
        .expect("a write on the old connection after the flood");
    let listed = list_all(&mut intake, Default::default()).await;
    assert_eq!(listed.len(), 8, "every acknowledged write is there, once");
    let log = node.log();
    assert!(!log.contains("refusing every write"), "{log}");
    assert!(!log.contains("STORE REFUSES WRITES"), "{log}");
}

async fn fresh_channel(pki: &Pki, addr: SocketAddr) -> Channel {
    operator(pki, addr).await.expect("connect")
}
