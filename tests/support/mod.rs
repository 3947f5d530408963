//! Shared harness of the end-to-end tests: real `fqnode` processes on free loopback ports,
//! certificates made by the real `fqctl pki`, gRPC clients over mutual TLS.
//!
//! Every wait is bounded; every child process is killed when its handle drops.
#![allow(dead_code)]

pub mod browser;
pub mod proxy;
pub mod python;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub const FQNODE: &str = env!("CARGO_BIN_EXE_fqnode");
pub const FQCTL: &str = env!("CARGO_BIN_EXE_fqctl");

/// How long a node may take to start (a debug build on a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn init() {
    fengqiao_node::tls::install_crypto_provider();
}

/// Runs `fqctl` and returns (exit code, stdout, stderr).
pub fn fqctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(FQCTL).args(args).output().expect("run fqctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fqctl_ok(args: &[&str]) {
    let (code, out, err) = fqctl(args);
    assert_eq!(code, 0, "fqctl {args:?} failed: {out}{err}");
}

/// A PKI folder made with `fqctl pki`.
pub struct Pki {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        fqctl_ok(&["pki", "init", "--dir", dir.to_str().unwrap()]);
        Pki { _tmp: tmp, dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn node(&self, code: &str) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("node-{code}.pem"));
        if !cert.exists() {
            fqctl_ok(&["pki", "node", code, "--dir", self.dir.to_str().unwrap()]);
        }
        (cert, self.dir.join(format!("node-{code}.key")))
    }

    pub fn operator(&self, code: &str, role: &str, user: &str) -> (PathBuf, PathBuf) {
        let stem = format!("op-{code}-{role}-{user}");
        let cert = self.dir.join(format!("{stem}.pem"));
        if !cert.exists() {
            fqctl_ok(&[
                "pki",
                "operator",
                code,
                role,
                user,
                "--dir",
                self.dir.to_str().unwrap(),
            ]);
        }
        (cert, self.dir.join(format!("{stem}.key")))
    }
}

/// A running `fqnode` child process.
pub struct NodeProc {
    pub code: String,
    pub config: PathBuf,
    pub listen: SocketAddr,
    pub federation_listen: SocketAddr,
    /// The web console's address, when the config sets `web_listen`.
    pub web: Option<SocketAddr>,
    /// The citizens' channel's address, when the config sets `public_listen`.
    pub public: Option<SocketAddr>,
    /// The metrics' address, when the config sets `metrics_listen`.
    pub metrics: Option<SocketAddr>,
    child: Option<Child>,
    pub stderr_log: PathBuf,
}

impl NodeProc {
    /// Writes a config for `code` under `root` (data in `root/data-CODE`) and starts the node.
    pub fn start(pki: &Pki, root: &Path, code: &str) -> NodeProc {
        Self::start_with(pki, root, code, &NodeOpts::default())
    }

    /// Like [`NodeProc::start`], with a parent link, extra config and environment.
    pub fn start_with(pki: &Pki, root: &Path, code: &str, opts: &NodeOpts) -> NodeProc {
        let config = write_config(pki, root, code, opts);
        Self::start_with_env(code, &config, root, &opts.env)
    }

    pub fn start_with_config(code: &str, config: &Path, root: &Path) -> NodeProc {
        Self::start_with_env(code, config, root, &[])
    }

    pub fn start_with_env(
        code: &str,
        config: &Path,
        root: &Path,
        env: &[(String, String)],
    ) -> NodeProc {
        let stderr_log = root.join(format!("{code}.stderr.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_log)
            .expect("log file");
        let mut child = Command::new(FQNODE)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            // Tests move clocks (`restart_at`) and set crash points.
            .env("FENGQIAO_TEST_MODE", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn fqnode");
        let stdout = child.stdout.take().expect("stdout");
        let line = wait_for_line(stdout, "fengqiao-ready", START_TIMEOUT);
        let Some(line) = line else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            panic!("fqnode {code} did not become ready within {START_TIMEOUT:?}; stderr:\n{log}");
        };
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in ready line {line:?}"))
        };
        NodeProc {
            code: code.to_string(),
            config: config.to_path_buf(),
            listen: field("listen"),
            federation_listen: field("federation_listen"),
            web: line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("web="))
                .and_then(|v| v.parse().ok()),
            public: line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("public="))
                .and_then(|v| v.parse().ok()),
            metrics: line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("metrics="))
                .and_then(|v| v.parse().ok()),
            child: Some(child),
            stderr_log,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    /// The URL children put in `parent`.
    pub fn federation_url(&self) -> String {
        format!("https://{}", self.federation_listen)
    }

    /// Whether the process is still running (false once it exited, e.g. at a failpoint).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits (bounded) for the process to exit by itself, e.g. at a failpoint.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if !self.alive() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Restarts the node from its config with these environment variables.
    pub fn restart_with_env(&mut self, root: &Path, env: &[(String, String)]) {
        self.kill9();
        let mut fresh = NodeProc::start_with_env(&self.code, &self.config.clone(), root, env);
        self.listen = fresh.listen;
        self.federation_listen = fresh.federation_listen;
        self.web = fresh.web;
        self.child = fresh.child.take();
    }

    /// SIGHUP: the node re-reads its certificates, key, CA and CRL.
    pub fn hangup(&self) {
        let pid = self.child.as_ref().expect("a running node").id();
        let sent = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .expect("kill -HUP");
        assert!(sent.success());
    }

    /// SIGKILL: no chance to flush or sync anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// Restarts the node from the same config (same data); addresses may change.
    pub fn restart(&mut self, root: &Path) {
        self.kill9();
        let fresh = NodeProc::start_with_config(&self.code, &self.config, root);
        self.listen = fresh.listen;
        self.federation_listen = fresh.federation_listen;
        self.web = fresh.web;
        let mut fresh = fresh;
        self.child = fresh.child.take();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Options of a test node.
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    /// The parent's federation URL.
    pub parent: Option<String>,
    /// Fixed federation port (0: any), so children can find a restarted parent.
    pub federation_port: u16,
    /// Extra TOML appended to the config (sections included).
    pub extra: String,
    /// Environment variables of the process (e.g. FENGQIAO_FAILPOINTS).
    pub env: Vec<(String, String)>,
    /// Serve the web console on a free port (`web_listen`).
    pub web: bool,
    /// Serve the citizens' channel on a free port (`public_listen`), without its captcha
    /// unless `extra` has a `[public]` section of its own.
    pub public: bool,
    /// Serve the Prometheus metrics on a free loopback port (`metrics_listen`).
    pub metrics: bool,
}

/// Fast link settings for tests: short backoff so repaired links recover quickly.
pub const FAST_LINKS: &str =
    "[federation]\nbackoff_min = \"20ms\"\nbackoff_max = \"500ms\"\npull_wait = \"5s\"\n";

/// Writes the config of `code` under `root`.
pub fn write_config(pki: &Pki, root: &Path, code: &str, opts: &NodeOpts) -> PathBuf {
    let (cert, key) = pki.node(code);
    let config = root.join(format!("{code}.toml"));
    let mut extra = if opts.extra.is_empty() {
        FAST_LINKS.to_owned()
    } else {
        opts.extra.clone()
    };
    if opts.public && !extra.contains("[public]") {
        extra.push_str("\n[public]\ncaptcha = false\n");
    }
    std::fs::write(
        &config,
        format!(
            "code = \"{code}\"\nlisten = \"127.0.0.1:0\"\nfederation_listen = \"127.0.0.1:{port}\"\n{web}{public}{metrics}\
             parent = \"{parent}\"\ndata_dir = \"{data}\"\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n{extra}",
            port = opts.federation_port,
            web = if opts.web { "web_listen = \"127.0.0.1:0\"\n" } else { "" },
            public = if opts.public { "public_listen = \"127.0.0.1:0\"\n" } else { "" },
            metrics = if opts.metrics { "metrics_listen = \"127.0.0.1:0\"\n" } else { "" },
            parent = opts.parent.clone().unwrap_or_default(),
            data = root.join(format!("data-{code}")).display(),
            ca = pki.ca().display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .expect("write config");
    config
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads lines from `r` on a thread until one contains `needle`, for at most `timeout`.
pub fn wait_for_line(
    r: impl std::io::Read + Send + 'static,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if !found && line.contains(&needle) {
                found = true;
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
        }
    });
    rx.recv_timeout(timeout).ok()
}

fn tls_config(pki_ca: &Path, identity: Option<(&Path, &Path)>) -> ClientTlsConfig {
    let ca = std::fs::read(pki_ca).expect("read ca");
    let mut cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        let cert = std::fs::read(cert).expect("read cert");
        let key = std::fs::read(key).expect("read key");
        cfg = cfg.identity(Identity::from_pem(cert, key));
    }
    cfg
}

/// A channel to `addr` over mutual TLS with the given client certificate (or none).
pub async fn channel(
    addr: SocketAddr,
    server_ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls_config(server_ca, identity))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
}

/// A CaseService client for operator `role`/`user` of node `code`.
pub async fn operator_client(
    pki: &Pki,
    node: &NodeProc,
    code: &str,
    role: &str,
    user: &str,
) -> CaseServiceClient<Channel> {
    let (cert, key) = pki.operator(code, role, user);
    let ch = channel(node.listen, &pki.ca(), Some((&cert, &key)))
        .await
        .expect("connect");
    CaseServiceClient::new(ch)
}

/// Waits until `parent` (a node of code `parent_code`) has heard from its child `child`: a
/// node sends cases down only to children it knows, so a test that transfers a case down
/// right after starting the child waits for this first.
pub async fn linked(pki: &Pki, parent: &NodeProc, parent_code: &str, child: &str) {
    let c = operator_client(pki, parent, parent_code, "director", "links").await;
    eventually(
        &format!("{parent_code} to hear from {child}"),
        Duration::from_secs(60),
        || {
            let mut c = c.clone();
            async move {
                let links = c
                    .get_links(pb::GetLinksRequest {})
                    .await
                    .ok()?
                    .into_inner()
                    .links;
                links
                    .iter()
                    .any(|l| l.peer == child && l.last_heard.is_some())
                    .then_some(())
            }
        },
    )
    .await
}

/// A complete, valid registration request.
pub fn register_request(key: &str) -> pb::RegisterCaseRequest {
    pb::RegisterCaseRequest {
        idempotency_key: key.to_string(),
        category: pb::Category::Labor as i32,
        channel: pb::Channel::WalkIn as i32,
        summary: "农民工讨薪：工程款拖欠三个月".to_string(),
        description: "申请人在某建筑工地务工，被拖欠工资 4400 元。".to_string(),
        parties: vec![
            pb::Party {
                role: pb::PartyRole::Applicant as i32,
                name: "张三".to_string(),
                phone: "13812345678".to_string(),
                id_number: "610102199001011234".to_string(),
            },
            pb::Party {
                role: pb::PartyRole::Respondent as i32,
                name: "某建筑公司".to_string(),
                phone: "02988886666".to_string(),
                id_number: String::new(),
            },
        ],
        amount_fen: 440_000,
        risk: pb::RiskLevel::Yellow as i32,
        grid_id: "610116001001-03".to_string(),
    }
}

/// A registration with its own applicant ID number, respondent and risk.
pub fn request(
    key: &str,
    risk: pb::RiskLevel,
    id_number: &str,
    respondent: &str,
) -> pb::RegisterCaseRequest {
    let mut r = register_request(key);
    r.risk = risk as i32;
    r.parties[0].id_number = id_number.to_string();
    r.parties[1].name = respondent.to_string();
    r
}

/// Restarts `node` with its clock `offset` ahead (e.g. "60h"): how end-to-end tests move a
/// node's time without waiting.
pub fn restart_at(node: &mut NodeProc, root: &Path, offset: &str) {
    let body = std::fs::read_to_string(&node.config).unwrap();
    let rest: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with("clock_offset"))
        .collect();
    let body = format!("clock_offset = \"{offset}\"\n{}\n", rest.join("\n"));
    std::fs::write(&node.config, body).unwrap();
    node.restart(root);
}

/// Every case `req` lists, page after page (500 a page unless `req` says otherwise).
pub async fn list_all(
    c: &mut CaseServiceClient<Channel>,
    mut req: pb::ListCasesRequest,
) -> Vec<pb::Case> {
    if req.page_size == 0 {
        req.page_size = 500;
    }
    let mut out = Vec::new();
    loop {
        let page = c.list_cases(req.clone()).await.unwrap().into_inner();
        out.extend(page.cases);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
}

/// A case by id.
pub async fn get(c: &mut CaseServiceClient<Channel>, id: &str) -> pb::Case {
    c.get_case(pb::GetCaseRequest {
        case_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// fqctl as operator `role`/`zhao` of `node`, at the node's current address.
pub fn fqctl_as(pki: &Pki, node: &NodeProc, role: &str, args: &[&str]) -> (i32, String, String) {
    let (cert, key) = pki.operator(&node.code, role, "zhao");
    let endpoint = node.url();
    let ca = pki.ca();
    let mut all = vec![
        "--endpoint",
        endpoint.as_str(),
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    fqctl(&all)
}

/// `fqctl` as an operator of `role`, with `stdin` on its standard input.
pub fn fqctl_as_stdin(
    pki: &Pki,
    node: &NodeProc,
    role: &str,
    args: &[&str],
    stdin: &str,
) -> (i32, String, String) {
    let (cert, key) = pki.operator(&node.code, role, "zhao");
    let mut child = Command::new(FQCTL)
        .args(["--endpoint", &node.url(), "--ca"])
        .arg(pki.ca())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fqctl");
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
