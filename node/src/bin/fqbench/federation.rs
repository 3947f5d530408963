//! `fqbench escalate` and `fqbench drain`: the federation's figures for BENCHMARKS.md.
//!
//! * **escalate** — latency of a case travelling village → township → county → city: a
//!   TransferCase at the village to the city, relayed (stored durably, forwarded) by the
//!   township and the county and installed at the city: three durable hops. One case at a
//!   time with a pause between (light load). Latency is the city's "received" event time
//!   minus the time the bench sent the request (same machine clock, millisecond resolution).
//! * **drain** — a village queues `--messages` escalations (TAKE_OVER) while its township is
//!   down (the link is cut); then the township starts and the bench measures how fast the
//!   queue empties: messages applied per second at the township, from its start to the last.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fengqiao_node::code::NodeCode;
use fengqiao_node::identity::Role;
use fengqiao_node::{pki, tls};
use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error>;
type Client = CaseServiceClient<Channel>;

/// A started fqnode, killed on drop.
struct Node {
    child: Child,
    listen: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Bench {
    fqnode: PathBuf,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// `federation.batch_max` of every node started; `None`: the node's default.
    batch_max: Option<usize>,
}

impl Bench {
    fn new(fqnode: PathBuf, batch_max: Option<usize>) -> Result<Bench, BoxError> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_owned();
        pki::init_ca(&dir)?;
        Ok(Bench {
            fqnode,
            _tmp: tmp,
            dir,
            batch_max,
        })
    }

    fn start(&self, code: &str, fed_port: u16, parent: Option<u16>) -> Result<Node, BoxError> {
        let c = NodeCode::parse(code)?;
        let cert = pki::issue_node(&self.dir, &c, &[])?;
        pki::issue_operator(&self.dir, &c, Role::Director, "bench")?;
        let config = self.dir.join(format!("{code}.toml"));
        std::fs::write(
            &config,
            format!(
                "code = \"{code}\"\nlisten = \"127.0.0.1:0\"\nfederation_listen = \"127.0.0.1:{fed_port}\"\n\
                 parent = \"{parent}\"\ndata_dir = \"{data}\"\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\
                 [log]\nlevel = \"warn\"\n[federation]\nbackoff_max = \"1s\"\n{batch_max}",
                batch_max = self
                    .batch_max
                    .map(|n| format!("batch_max = {n}\n"))
                    .unwrap_or_default(),
                parent = parent
                    .map(|p| format!("https://127.0.0.1:{p}"))
                    .unwrap_or_default(),
                data = self.dir.join(format!("data-{code}")).display(),
                ca = self.dir.join("ca.pem").display(),
                cert = cert.cert.display(),
                key = cert.key.display(),
            ),
        )?;
        let mut child = Command::new(&self.fqnode)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.fqnode.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("fengqiao-ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| format!("fqnode {code} did not start"))?;
        let listen = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("listen="))
            .ok_or("no listen address")?
            .to_string();
        Ok(Node { child, listen })
    }

    async fn director(&self, code: &str, node: &Node) -> Result<Client, BoxError> {
        let files = tls::TlsFiles {
            ca: self.dir.join("ca.pem"),
            cert: self.dir.join(format!("op-{code}-director-bench.pem")),
            key: self.dir.join(format!("op-{code}-director-bench.key")),
        };
        let ch = tls::connect(&format!("https://{}", node.listen), &files).await?;
        Ok(CaseServiceClient::new(ch))
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A registration with its own applicant (distinct phone and ID number per `n`), so that the
/// early-warning rules see unrelated people, as in real traffic.
fn request(key: String, n: usize) -> pb::RegisterCaseRequest {
    pb::RegisterCaseRequest {
        idempotency_key: key,
        category: pb::Category::Labor as i32,
        channel: pb::Channel::WalkIn as i32,
        summary: "讨薪：拖欠工资三个月".into(),
        description: "申请人在建筑工地务工，被拖欠工资 4400 元，多次讨要未果。".into(),
        parties: vec![pb::Party {
            role: pb::PartyRole::Applicant as i32,
            name: "张三".into(),
            phone: format!("138{:08}", n % 100_000_000),
            id_number: format!("6101021990{:07}X", n % 10_000_000),
        }],
        amount_fen: 440_000,
        risk: pb::RiskLevel::Blue as i32,
        grid_id: "g-01".into(),
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn escalate(fqnode: PathBuf, cases: usize, pause: Duration) -> Result<(), BoxError> {
    let b = Bench::new(fqnode, None)?;
    let codes = ["6101", "610116", "610116001", "610116001001"];
    let mut nodes = Vec::new();
    let mut parent = None;
    for code in codes {
        let port = free_port()?;
        nodes.push(b.start(code, port, parent)?);
        parent = Some(port);
    }
    let mut village = b.director(codes[3], &nodes[3]).await?;
    let mut city = b.director(codes[0], &nodes[0]).await?;
    println!("fqbench escalate: {cases} cases village → city (3 durable hops), {pause:?} apart");
    let mut sent = Vec::with_capacity(cases);
    for i in 0..cases {
        let id = village
            .register_case(request(format!("esc-{i}"), i))
            .await?
            .into_inner()
            .id;
        let t0 = now_ms();
        village
            .transfer_case(pb::TransferCaseRequest {
                case_id: id.clone(),
                to_node: codes[0].into(),
                reason: "提级办理".into(),
            })
            .await?;
        sent.push((id, t0));
        tokio::time::sleep(pause).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lat = Vec::with_capacity(cases);
    for (id, t0) in &sent {
        loop {
            let h = city
                .get_case_history(pb::GetCaseRequest {
                    case_id: id.clone(),
                })
                .await
                .map(|r| r.into_inner().events)
                .unwrap_or_default();
            if let Some(at) = h.iter().find(|e| e.kind == "received").and_then(|e| e.at) {
                let ms = at.seconds * 1000 + i64::from(at.nanos / 1_000_000);
                lat.push((ms - t0) as f64);
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("case {id} did not reach the city").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "village → city latency: p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms   ({} cases, ms resolution)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        lat.len()
    );
    Ok(())
}

/// Runs `op(i)` for i in 0..n on `workers` tasks; returns the results in order.
async fn fan_out<F, Fut>(
    client: &Client,
    n: usize,
    workers: usize,
    op: F,
) -> Result<Vec<String>, BoxError>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<String, tonic::Status>> + Send,
{
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (c, op) = (client.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..n).step_by(workers) {
                out.push((i, op(c.clone(), i).await?));
            }
            Ok::<_, tonic::Status>(out)
        }));
    }
    let mut all = vec![String::new(); n];
    for t in tasks {
        for (i, v) in t.await?? {
            all[i] = v;
        }
    }
    Ok(all)
}

pub async fn drain(
    fqnode: PathBuf,
    messages: usize,
    concurrency: usize,
    batch_max: Option<usize>,
) -> Result<(), BoxError> {
    let b = Bench::new(fqnode, batch_max)?;
    let town_port = free_port()?;
    // The township is not running yet: the village's link to it is cut.
    let village_node = b.start("610116001001", free_port()?, Some(town_port))?;
    let village = b.director("610116001001", &village_node).await?;
    println!(
        "fqbench drain: queueing {messages} escalations behind a cut link ({concurrency} in flight; batch_max {})",
        batch_max.map_or_else(|| "default".to_owned(), |n| n.to_string())
    );
    let t = Instant::now();
    let ids = Arc::new(
        fan_out(&village, messages, concurrency, |mut c, i| async move {
            Ok(c.register_case(request(format!("drain-{i}"), i))
                .await?
                .into_inner()
                .id)
        })
        .await?,
    );
    println!(
        "  registered {messages} cases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let list = ids.clone();
    fan_out(&village, messages, concurrency, move |mut c, i| {
        let id = list[i].clone();
        async move {
            c.escalate_case(pb::EscalateCaseRequest {
                case_id: id,
                mode: pb::EscalationMode::TakeOver as i32,
                reason: "提级办理".into(),
            })
            .await
            .map(|r| r.into_inner().id)
        }
    })
    .await?;
    println!(
        "  queued {messages} escalations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let queued = queue_out(&mut village.clone()).await?;
    println!("  village queue: {queued} messages");

    let start = Instant::now();
    let town_node = b.start("610116001", town_port, None)?;
    let started = start.elapsed();
    let mut v = village.clone();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if queue_out(&mut v).await? == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("the queue did not drain within 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = start.elapsed();
    let mut town = b.director("610116001", &town_node).await?;
    let owned = count(&mut town).await?;
    let secs = (total - started).as_secs_f64();
    println!(
        "drained {queued} messages in {:.2} s after the township started ({:.2} s to start): {:.0} messages/s; township owns {owned} cases",
        secs,
        started.as_secs_f64(),
        queued as f64 / secs
    );
    Ok(())
}

async fn queue_out(c: &mut Client) -> Result<u64, BoxError> {
    let l = c.get_links(pb::GetLinksRequest {}).await?.into_inner();
    Ok(l.links.iter().map(|k| k.queue_out).sum())
}

async fn count(c: &mut Client) -> Result<usize, BoxError> {
    let mut n = 0;
    let mut token = String::new();
    loop {
        let page = c
            .list_cases(pb::ListCasesRequest {
                page_size: 500,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        n += page.cases.len();
        if page.next_page_token.is_empty() {
            return Ok(n);
        }
        token = page.next_page_token;
    }
}
