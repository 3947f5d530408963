//! `fqbench`: load generator for BENCHMARKS.md.
//!
//! Starts a real `fqnode` (the sibling binary of this one, so `cargo build --release` then
//! `target/release/fqbench` measures a release node) on loopback with a fresh PKI and data
//! folder, then drives it over mutual TLS with `--concurrency` requests in flight:
//!
//! 1. baseline: `grpc.health.v1.Health/Check`, a no-op RPC through the same TLS, HTTP/2 and
//!    tonic stack;
//! 2. `CaseService/RegisterCase`, each a durable (group-committed, fsynced) write.
//!
//! It prints requests/s and p50/p99/max latency for both, and their ratio: the machine is
//! shared and noisy, so the ratio to a baseline measured in the same run is the figure to
//! compare across runs.
//!
//! `fqbench escalate` and `fqbench drain` measure the federation (see `fqbench/federation.rs`),
//! `fqbench console` the web console's pages (see `fqbench/console.rs`), `fqbench public` the
//! citizens' channel (see `fqbench/public.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use fengqiao_node::identity::Role;
use fengqiao_node::tls;
use fengqiao_proto::v1 as pb;
use tonic::transport::Channel;

#[path = "fqbench/console.rs"]
mod console;
#[path = "fqbench/federation.rs"]
mod federation;
#[path = "fqbench/floor.rs"]
mod floor;
#[path = "fqbench/node.rs"]
mod node;
#[path = "fqbench/ops.rs"]
mod ops;
#[path = "fqbench/public.rs"]
mod public;

// The allocator fqnode runs with, so that `floor` measures sled as the node runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fqbench",
    about = "Load generator: RegisterCase over mutual TLS against a real fqnode (default), or the federation's latency and drain rate"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Bench>,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured time per phase.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up per phase.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The fqnode binary (default: next to this one).
    #[arg(long)]
    fqnode: Option<PathBuf>,
    /// Division code of the node under test.
    #[arg(long, default_value = "610116001")]
    code: String,
}

#[derive(Subcommand)]
enum Bench {
    /// RegisterCase against a no-op baseline (what runs without a subcommand).
    Register,
    /// Latency of a case moving village → city over three durable hops, at light load.
    Escalate {
        /// Cases sent, one at a time.
        #[arg(long, default_value_t = 200)]
        cases: usize,
        /// Pause between two cases.
        #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
        pause: Duration,
    },
    /// Drain rate of a village's queue of escalations once its cut link to the township heals.
    Drain {
        /// Escalations queued behind the cut link.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Requests in flight while queueing.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The nodes' `federation.batch_max`: most messages per push (default: the node's own).
        #[arg(long)]
        batch_max: Option<usize>,
    },
    /// The web console's pages at a node holding `--cases` cases, against its static
    /// stylesheet (see `fqbench/console.rs`).
    Console {
        /// Cases registered before measuring.
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        /// Requests per page.
        #[arg(long, default_value_t = 500)]
        samples: usize,
    },
    /// The citizens' channel: Open311 submissions and lookups against its static stylesheet,
    /// and the node's memory under `--idle` idle connections (see `fqbench/public.rs`).
    Public {
        /// Requests per phase.
        #[arg(long, default_value_t = 5_000)]
        requests: usize,
        /// Idle connections held open at the end.
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
    },
    /// County IT's operations at a node of `--cases` cases, on the real Store in this
    /// process: backup, verify and restore against reading the folder; the month's and the
    /// year's report (time, peak memory) against decoding every case (see `fqbench/ops.rs`).
    Ops {
        #[arg(long, default_value_t = 300_000)]
        cases: usize,
    },
    /// sled 0.34 alone in this process: durable cases/s with 1 key per case and with the 8 a
    /// registration writes (the floor under RegisterCase; uses --warmup and --duration).
    Floor {
        /// Cases per group commit.
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
}

struct Stats {
    ops: usize,
    errors: usize,
    elapsed: Duration,
    lat_us: Vec<u32>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.lat_us[i.min(self.lat_us.len() - 1)]) / 1000.0
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<14} {:>10.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   ({} ok, {} errors)",
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
            self.ops,
            self.errors
        )
    }
}

/// Runs `op` from `concurrency` tasks: `warmup` unmeasured, then `duration` measured.
async fn drive<F, Fut>(concurrency: usize, warmup: Duration, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::with_capacity(64 * 1024));
            let mut seq = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                seq += 1;
                let good = op(worker, seq).await;
                if t0 >= measure_from {
                    if good {
                        ok += 1;
                        lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        err += 1;
                    }
                }
            }
            (ok, err, lat)
        }));
    }
    let mut stats = Stats {
        ops: 0,
        errors: 0,
        elapsed: duration,
        lat_us: Vec::new(),
    };
    for t in tasks {
        if let Ok((ok, err, lat)) = t.await {
            stats.ops += ok;
            stats.errors += err;
            stats.lat_us.extend(lat);
        }
    }
    stats.lat_us.sort_unstable();
    stats
}

/// A registration by a person of its own against an employer of its own, so that the bench
/// measures registration and not the early-warning rules (which a run of thousands of cases by
/// one person would trigger on every request).
fn request(worker: usize, seq: u64) -> pb::RegisterCaseRequest {
    let n = (worker as u64) * 100_000_000 + seq;
    pb::RegisterCaseRequest {
        idempotency_key: format!("bench-{worker}-{seq}"),
        category: pb::Category::Labor as i32,
        channel: pb::Channel::WalkIn as i32,
        summary: "讨薪：拖欠工资三个月".into(),
        description: "申请人在建筑工地务工，被拖欠工资 4400 元，多次讨要未果。".into(),
        parties: vec![
            pb::Party {
                role: pb::PartyRole::Applicant as i32,
                name: "张三".into(),
                phone: "13812345678".into(),
                id_number: format!("61010219{n:010}"),
            },
            pb::Party {
                role: pb::PartyRole::Respondent as i32,
                name: format!("某建筑公司{n}"),
                phone: "02988886666".into(),
                id_number: String::new(),
            },
        ],
        amount_fen: 440_000,
        risk: pb::RiskLevel::Blue as i32,
        grid_id: "g-01".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tls::install_crypto_provider();
    let args = Args::parse();
    let fqnode = match args.fqnode {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("fqnode"),
    };
    match args.command {
        Some(Bench::Escalate { cases, pause }) => {
            return federation::escalate(fqnode, cases, pause).await;
        }
        Some(Bench::Drain {
            messages,
            concurrency,
            batch_max,
        }) => return federation::drain(fqnode, messages, concurrency, batch_max).await,
        Some(Bench::Floor { batch }) => return floor::run(batch, args.warmup, args.duration),
        Some(Bench::Ops { cases }) => return ops::run(cases).await,
        Some(Bench::Console { cases, samples }) => {
            return console::run(fqnode, cases, samples, args.concurrency)
                .await
                .map_err(|e| -> Box<dyn std::error::Error> { e });
        }
        Some(Bench::Public { requests, idle }) => {
            return public::run(fqnode, requests, idle, args.concurrency)
                .await
                .map_err(|e| -> Box<dyn std::error::Error> { e });
        }
        Some(Bench::Register) | None => {}
    }
    let node = node::BenchNode::start(&fqnode, &args.code, "", "")
        .map_err(|e| -> Box<dyn std::error::Error> { e })?;
    let listen = node
        .addr("listen")
        .map_err(|e| -> Box<dyn std::error::Error> { e })?;
    let files = node
        .operator(Role::Intake, "bench")
        .map_err(|e| -> Box<dyn std::error::Error> { e })?;
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(tls::connect(&format!("https://{listen}"), &files).await?);
    }
    let channels = Arc::new(channels);

    println!(
        "fqbench: {} in flight over {} connections, {:?} per phase after {:?} warm-up, node {}",
        args.concurrency,
        args.connections,
        args.duration,
        args.warmup,
        fqnode.display()
    );
    let chs = channels.clone();
    let health = drive(args.concurrency, args.warmup, args.duration, move |w, _| {
        let mut c = tonic_health::pb::health_client::HealthClient::new(chs[w % chs.len()].clone());
        async move {
            c.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    println!("{}", health.line("health (no-op)"));
    let chs = channels.clone();
    let register = drive(
        args.concurrency,
        args.warmup,
        args.duration,
        move |w, seq| {
            let mut c = pb::case_service_client::CaseServiceClient::new(chs[w % chs.len()].clone());
            async move { c.register_case(request(w, seq)).await.is_ok() }
        },
    )
    .await;
    println!("{}", register.line("RegisterCase"));
    println!(
        "ratio RegisterCase / no-op: {:.2}",
        register.rate() / health.rate().max(1.0)
    );

    drop(node);
    Ok(())
}
