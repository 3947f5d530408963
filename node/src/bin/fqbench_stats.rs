//! `fqbench-stats`: measurements of the figures for higher tiers, for BENCHMARKS.md.
//!
//! Starts real `fqnode` processes (the sibling binary, so a release build measures release
//! nodes) on loopback with a fresh PKI, then:
//!
//! 1. **query**: a city `6101` is given 1,000 descendant contributions — 20 counties, each
//!    with 49 townships, twelve months of figures plus current figures each, with every
//!    dimension filled — pushed through the real `StatsExchange` with the counties' node
//!    certificates. It then measures `GetAggregates` one request at a time: the city's totals,
//!    a breakdown by child, by category and month, and a drill-down to a county by child,
//!    each against a no-op RPC (health) measured the same way. Reports the city's memory
//!    (VmRSS, VmHWM from /proc: Linux) before and after, and its data folder size.
//! 2. **latency**: a chain village → township → county → city with default `[stats]`
//!    settings; registers a case at the village and polls the city every 2 ms until its
//!    `received` count shows it, `--rounds` times.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use fengqiao_node::code::NodeCode;
use fengqiao_node::convert::stats::contribution_to_proto;
use fengqiao_node::domain::{Category, Channel, MediationType, RiskLevel};
use fengqiao_node::identity::Role;
use fengqiao_node::stats::{CURRENT, Cell, Cells, Dim, Figures, Kind};
use fengqiao_node::{pki, tls};
use fengqiao_proto::v1 as pb;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel as GrpcChannel;

#[derive(Parser)]
#[command(
    name = "fqbench-stats",
    about = "Benchmarks of GetAggregates and of figure propagation"
)]
struct Args {
    /// Requests per measured query.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Village changes timed in the latency run.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// The fqnode binary (default: next to this one).
    #[arg(long)]
    fqnode: Option<PathBuf>,
}

/// A started fqnode, killed on drop.
struct Node {
    child: Child,
    listen: String,
    federation: String,
    data: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type BoxError = Box<dyn std::error::Error>;

fn start(fqnode: &Path, dir: &Path, code: &str, parent: Option<&Node>) -> Result<Node, BoxError> {
    let node_code = NodeCode::parse(code)?;
    let cert = pki::issue_node(dir, &node_code, &[])?;
    let data = dir.join(format!("data-{code}"));
    let config = dir.join(format!("{code}.toml"));
    let parent = parent.map_or(String::new(), |p| {
        format!("parent = \"https://{}\"\n", p.federation)
    });
    std::fs::write(
        &config,
        format!(
            "code = \"{code}\"\nlisten = \"127.0.0.1:0\"\nfederation_listen = \"127.0.0.1:0\"\n\
             {parent}data_dir = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [log]\nlevel = \"warn\"\n",
            data.display(),
            dir.join("ca.pem").display(),
            cert.cert.display(),
            cert.key.display()
        ),
    )?;
    let mut child = Command::new(fqnode)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", fqnode.display()))?;
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
        .map_err(|_| format!("fqnode {code} did not start within 60 s"))?;
    let field = |name: &str| {
        ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} in {ready:?}"))
    };
    Ok(Node {
        listen: field("listen=")?,
        federation: field("federation_listen=")?,
        child,
        data,
    })
}

async fn connect(dir: &Path, addr: &str, cert: &pki::IssuedPaths) -> Result<GrpcChannel, BoxError> {
    let files = tls::TlsFiles {
        ca: dir.join("ca.pem"),
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    };
    Ok(tls::connect(&format!("https://{addr}"), &files).await?)
}

/// (VmRSS, VmHWM) of a process in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Plausible figures of one bucket: every dimension has a few values.
fn bucket(rng: &mut StdRng, current: bool) -> Cells {
    let mut cells = Cells::default();
    for _ in 0..rng.random_range(8..24) {
        let f = if current {
            Figures {
                open: rng.random_range(0..5),
                unreviewed: rng.random_range(0..2),
                overdue_resolve: rng.random_range(0..2),
                ..Figures::default()
            }
        } else {
            let resolved = rng.random_range(0..4);
            Figures {
                received: rng.random_range(1..6),
                accepted: rng.random_range(0..5),
                resolved,
                unresolved: rng.random_range(0..2),
                closed: rng.random_range(0..4),
                amount_received_fen: rng.random_range(0..5_000_000),
                settled_fen: rng.random_range(0..3_000_000),
                resolution_ms_total: rng.random_range(0..2_000_000_000),
                satisfaction_total: rng.random_range(0..20),
                satisfaction_count: rng.random_range(0..4),
                resolved_village: resolved,
                ..Figures::default()
            }
        };
        let pick = |rng: &mut StdRng, n: usize| rng.random_range(0..n);
        let dims = [
            Cell {
                dim: Dim::Category,
                value: Category::ALL[pick(rng, Category::ALL.len())].code(),
            },
            Cell {
                dim: Dim::Channel,
                value: Channel::ALL[pick(rng, Channel::ALL.len())].code(),
            },
            Cell {
                dim: Dim::Risk,
                value: RiskLevel::ALL[pick(rng, RiskLevel::ALL.len())].code(),
            },
            Cell {
                dim: Dim::MediationType,
                value: MediationType::ALL[pick(rng, MediationType::ALL.len())].code(),
            },
        ];
        cells.apply(&dims, &f, true);
    }
    cells
}

const MONTHS: [u32; 12] = [
    202501, 202502, 202503, 202504, 202505, 202506, 202507, 202508, 202509, 202510, 202511, 202512,
];

/// The contributions a county pushes: OWN and SUBTREE of itself, SUBTREE of each township.
fn county_push(rng: &mut StdRng, county: &NodeCode, townships: usize) -> Vec<pb::Contribution> {
    let mut out = Vec::new();
    let mut subtree: Vec<(u32, Cells)> = Vec::new();
    let mut buckets: Vec<u32> = vec![CURRENT];
    buckets.extend(MONTHS);
    for b in &buckets {
        let own = bucket(rng, *b == CURRENT);
        out.push(contribution_to_proto(Kind::Own, county, *b, 1, &own));
        subtree.push((*b, own));
    }
    for t in 1..=townships {
        let code = NodeCode::parse(&format!("{county}{t:03}")).expect("township code");
        for (b, sum) in subtree.iter_mut() {
            let cells = bucket(rng, *b == CURRENT);
            sum.merge(&cells, true);
            out.push(contribution_to_proto(Kind::Subtree, &code, *b, 1, &cells));
        }
    }
    for (b, cells) in &subtree {
        out.push(contribution_to_proto(Kind::Subtree, county, *b, 1, cells));
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn line(name: &str, mut lat: Vec<Duration>) -> String {
    lat.sort_unstable();
    format!(
        "{name:<34} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms   ({} requests)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        lat.len()
    )
}

async fn timed<F, Fut>(n: usize, mut op: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        op().await; // warm-up
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        op().await;
        out.push(t.elapsed());
    }
    out
}

async fn query_bench(fqnode: &Path, dir: &Path, requests: usize) -> Result<(), BoxError> {
    let city_code = NodeCode::parse("6101")?;
    let city = start(fqnode, dir, "6101", None)?;
    let op = pki::issue_operator(dir, &city_code, Role::Auditor, "bench")?;
    let api = connect(dir, &city.listen, &op).await?;
    let pid = city.child.id();
    let (rss0, _) = memory(pid);

    let mut rng = StdRng::seed_from_u64(4);
    let t = Instant::now();
    let (mut entries, mut bytes) = (0usize, 0usize);
    for c in 1..=20 {
        let county = NodeCode::parse(&format!("6101{c:02}"))?;
        let cert = pki::issue_node(dir, &county, &[])?;
        let mut client = pb::stats_exchange_client::StatsExchangeClient::new(
            connect(dir, &city.federation, &cert).await?,
        );
        let all = county_push(&mut rng, &county, 49);
        entries += all.len();
        let mut batch: Vec<pb::Contribution> = Vec::new();
        let mut size = 0;
        let mut first = true;
        for contribution in all.into_iter().map(Some).chain([None]) {
            let flush = contribution
                .as_ref()
                .is_none_or(|c| size + c.encoded_len() > 512 * 1024);
            if flush && !batch.is_empty() {
                let req = pb::PushContributionsRequest {
                    full: first,
                    contributions: std::mem::take(&mut batch),
                    liveness: Vec::new(),
                    sent_at: Some(prost_types::Timestamp::default()),
                };
                bytes += req.encoded_len();
                client.push_contributions(req).await?;
                first = false;
                size = 0;
            }
            if let Some(c) = contribution {
                size += c.encoded_len();
                batch.push(c);
            }
        }
    }
    println!(
        "loaded 20 counties × 49 townships = 1,000 descendants: {entries} entries, {:.1} MiB pushed in {:.1} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    let health = tonic_health::pb::health_client::HealthClient::new(api.clone());
    let noop = timed(requests, || {
        let mut h = health.clone();
        async move {
            let _ = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
        }
    })
    .await;
    let stats = pb::stats_service_client::StatsServiceClient::new(api);
    let year = |scope: &str, group_by: &[pb::GroupBy]| pb::GetAggregatesRequest {
        scope_node: scope.into(),
        // 2025 in China time.
        from: Some(prost_types::Timestamp {
            seconds: 1_735_660_800,
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: 1_767_196_800,
            nanos: 0,
        }),
        group_by: group_by.iter().map(|g| *g as i32).collect(),
    };
    let check = stats
        .clone()
        .get_aggregates(year("", &[]))
        .await?
        .into_inner();
    let totals = check.totals.unwrap_or_default();
    println!(
        "city totals for 2025: received {}, resolved {}, open {}",
        totals.received, totals.resolved, totals.open
    );
    let cases = [
        ("health (no-op baseline)", None),
        ("GetAggregates city, year", Some(year("", &[]))),
        (
            "  … by child (20 rows)",
            Some(year("", &[pb::GroupBy::Child])),
        ),
        (
            "  … by category and by month",
            Some(year("", &[pb::GroupBy::Category, pb::GroupBy::Month])),
        ),
        (
            "  … county drill-down by child",
            Some(year("610107", &[pb::GroupBy::Child])),
        ),
    ];
    for (name, req) in cases {
        let lat = match req {
            None => noop.clone(),
            Some(req) => {
                timed(requests, || {
                    let mut s = stats.clone();
                    let req = req.clone();
                    async move {
                        let _ = s.get_aggregates(req).await;
                    }
                })
                .await
            }
        };
        println!("{}", line(name, lat));
    }
    let (rss, hwm) = memory(pid);
    println!(
        "city memory: VmRSS {rss0:.1} MiB before loading, {rss:.1} MiB after (peak {hwm:.1} MiB); data folder {:.1} MiB",
        dir_size(&city.data) as f64 / 1048576.0
    );
    Ok(())
}

async fn latency_bench(fqnode: &Path, dir: &Path, rounds: usize) -> Result<(), BoxError> {
    let city = start(fqnode, dir, "6101", None)?;
    let county = start(fqnode, dir, "610116", Some(&city))?;
    let township = start(fqnode, dir, "610116001", Some(&county))?;
    let village = start(fqnode, dir, "610116001001", Some(&township))?;
    let intake = pki::issue_operator(
        dir,
        &NodeCode::parse("610116001001")?,
        Role::Intake,
        "bench",
    )?;
    let auditor = pki::issue_operator(dir, &NodeCode::parse("6101")?, Role::Auditor, "bench")?;
    let mut cases = pb::case_service_client::CaseServiceClient::new(
        connect(dir, &village.listen, &intake).await?,
    );
    let mut stats = pb::stats_service_client::StatsServiceClient::new(
        connect(dir, &city.listen, &auditor).await?,
    );
    let received = |a: pb::Aggregates| a.totals.map_or(0, |t| t.received);
    // Let the links settle: the first pushes carry nothing yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lat = Vec::new();
    for round in 0..rounds {
        let before = received(
            stats
                .get_aggregates(pb::GetAggregatesRequest::default())
                .await?
                .into_inner(),
        );
        let t = Instant::now();
        cases
            .register_case(pb::RegisterCaseRequest {
                idempotency_key: format!("latency-{round}"),
                category: pb::Category::Labor as i32,
                channel: pb::Channel::WalkIn as i32,
                summary: "讨薪".into(),
                description: String::new(),
                parties: Vec::new(),
                amount_fen: 440_000,
                risk: pb::RiskLevel::Blue as i32,
                grid_id: String::new(),
            })
            .await?;
        loop {
            let now = received(
                stats
                    .get_aggregates(pb::GetAggregatesRequest::default())
                    .await?
                    .into_inner(),
            );
            if now > before {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err("a village change did not reach the city within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(t.elapsed());
        // Spread the rounds so that each starts from an idle chain.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("{}", line("village change → city (3 hops)", lat));
    drop((village, township, county));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tls::install_crypto_provider();
    let args = Args::parse();
    let fqnode = match args.fqnode {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("fqnode"),
    };
    let tmp = tempfile::tempdir()?;
    pki::init_ca(tmp.path())?;
    println!("fqbench-stats: node {}", fqnode.display());
    query_bench(&fqnode, tmp.path(), args.requests).await?;
    let tmp2 = tempfile::tempdir()?;
    pki::init_ca(tmp2.path())?;
    latency_bench(&fqnode, tmp2.path(), args.rounds).await?;
    Ok(())
}
