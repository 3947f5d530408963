//! `fqbench ops`: what county IT's operations cost at a node holding `--cases` cases, in this
//! process on the real Store (no network):
//!
//! * **backup**: `Store::backup` while nothing else runs, its size, and `fqnode restore`'s work
//!   (`storage::backup::restore`), against reading the data folder's files once (the baseline:
//!   the least any copy of the store costs);
//! * **report**: `report::make` for the last month and the last year, time and peak memory,
//!   against one pass that decodes every case (the baseline: what reports cost before the
//!   activity index).
//!
//! The cases are registered over a year of simulated time (one registration every
//! 365 d / cases), a fifth of them accepted and resolved a day later, one in fifty red; each
//! registration is one `Store::register` (as RegisterCase writes it), many in flight so that
//! group commit works.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fengqiao_node::code::NodeCode;
use fengqiao_node::domain::{
    Category, Channel, Command, Ctx, Deadlines, MediationMethod, MediationResult, MediationType,
    NewCase, Party, PartyRole, RiskLevel, Timestamp, machine,
};
use fengqiao_node::storage::{StorageError, Store, StoreOptions};

const NODE: &str = "610116001001";
/// 2026-01-01 00:00 China time.
const START: i64 = 1_767_196_800_000;
const YEAR_MS: i64 = 365 * 86_400_000;

/// Peak resident memory since the last reset (kB), and a reset of it (Linux).
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += dir_bytes(&p);
            } else if let Ok(m) = e.metadata() {
                n += m.len();
            }
        }
    }
    n
}

/// Reads every file of `dir` once (the baseline of a copy).
fn read_all(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += read_all(&p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                n += bytes.len() as u64;
            }
        }
    }
    n
}

fn new_case(i: usize) -> NewCase {
    NewCase {
        idempotency_key: format!("ops-{i}"),
        category: Category::ALL[i % Category::ALL.len()],
        channel: Channel::WalkIn,
        summary: format!("讨薪：拖欠工资{}个月，第{i}件", i % 12 + 1),
        description: String::new(),
        parties: vec![Party {
            role: PartyRole::Applicant,
            name: "张三".into(),
            phone: format!("138{:08}", i % 100_000_000),
            id_number: String::new(),
        }],
        amount_fen: 100_000 + (i as i64 % 1000) * 100,
        risk: if i % 50 == 0 {
            RiskLevel::Red
        } else {
            RiskLevel::Blue
        },
        grid_id: String::new(),
    }
}

async fn load(store: &Store, cases: usize) -> Result<(), Box<dyn std::error::Error>> {
    let step = YEAR_MS / cases.max(1) as i64;
    let deadlines = Arc::new(Deadlines::default());
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for i in 0..cases {
        if running.len() >= 256 {
            if let Some(r) = running.join_next().await {
                r??;
            }
        }
        let (store, deadlines) = (store.clone(), deadlines.clone());
        running.spawn(async move {
            let now = Timestamp(START + step * i as i64);
            let day = machine::china_day(now);
            let new = new_case(i);
            let d = deadlines.clone();
            let build_day = day.clone();
            let reg = store
                .register(new.idempotency_key.clone(), day, move |seq| {
                    let ctx = Ctx {
                        now,
                        node: NODE,
                        actor: "spiffe://fengqiao/op/610116001001/intake/bench",
                        deadlines: &d,
                    };
                    let id = machine::case_id(NODE, &build_day, seq);
                    machine::register(&ctx, &new, id, format!("{i:012}"))
                })
                .await
                .map_err(|e| StorageError::InvalidRecord(e.to_string()))?;
            if i % 5 == 0 {
                let later = now.plus(Duration::from_secs(86_400));
                for cmd in [
                    Command::Review {
                        accept: true,
                        reason: String::new(),
                        guidance: String::new(),
                    },
                    Command::RecordMediation {
                        method: MediationMethod::FaceToFace,
                        mediation_type: MediationType::Peoples,
                        mediator: "王调解".into(),
                        notes: "双方同意分期支付".into(),
                        result: MediationResult::Agreed,
                    },
                ] {
                    let d = deadlines.clone();
                    store
                        .update(reg.case.id.clone(), move |case| {
                            let ctx = Ctx {
                                now: later,
                                node: NODE,
                                actor: "spiffe://fengqiao/op/610116001001/director/bench",
                                deadlines: &d,
                            };
                            machine::apply(case, &ctx, &cmd)
                        })
                        .await
                        .map_err(|e| StorageError::InvalidRecord(e.to_string()))?;
                }
            }
            Ok::<(), StorageError>(())
        });
    }
    while let Some(r) = running.join_next().await {
        r??;
    }
    println!(
        "loaded {cases} cases in {:.1} s ({:.0} cases/s, a fifth of them accepted and mediated)",
        started.elapsed().as_secs_f64(),
        cases as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run(cases: usize) -> Result<(), Box<dyn std::error::Error>> {
    fengqiao_node::tls::install_crypto_provider();
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let end = Timestamp(START + YEAR_MS);
    let opts = StoreOptions::new(NodeCode::parse(NODE)?, Timestamp(START));
    let store = Store::open(&data, &opts)?;
    load(&store, cases).await?;
    let size = dir_bytes(&data);
    println!(
        "store: {:.1} MiB on disk ({:.0} bytes per case)",
        size as f64 / 1048576.0,
        size as f64 / cases as f64
    );

    // Backup, against reading the folder once.
    let t = Instant::now();
    let read = read_all(&data);
    let baseline = t.elapsed();
    let file = tmp.path().join("ops.fqbackup");
    let t = Instant::now();
    let summary = store.backup(file.clone(), end).await?;
    let backup = t.elapsed();
    println!(
        "backup  {:>7.2} s  {:>8.1} MiB  {} records   (baseline: reading the {:.1} MiB folder {:.2} s; ratio {:.2})",
        backup.as_secs_f64(),
        summary.bytes as f64 / 1048576.0,
        summary.records,
        read as f64 / 1048576.0,
        baseline.as_secs_f64(),
        backup.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
    let t = Instant::now();
    let checked = fengqiao_node::storage::backup::verify(&file)?;
    println!("verify  {:>7.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    fengqiao_node::storage::backup::restore(&file, &tmp.path().join("restored"))?;
    println!(
        "restore {:>7.2} s  ({} records; ratio to the baseline {:.2})",
        t.elapsed().as_secs_f64(),
        checked.records,
        t.elapsed().as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );

    // Reports, against one pass decoding every case.
    let t = Instant::now();
    let mut n = 0u64;
    store.visit_cases(|_c| -> Result<(), StorageError> {
        n += 1;
        Ok(())
    })?;
    let scan = t.elapsed();
    println!(
        "baseline: decoding every case once {:.2} s ({n} cases)",
        scan.as_secs_f64()
    );
    for (label, period) in [
        (
            "month",
            fengqiao_node::report::period::parse(
                "2026-12-01..2026-12-31",
                fengqiao_node::report::Cadence::Month,
                end,
            )?,
        ),
        (
            "year",
            fengqiao_node::report::period::parse(
                "2026-01-01..2026-12-31",
                fengqiao_node::report::Cadence::Month,
                end,
            )?,
        ),
    ] {
        reset_peak();
        let before = rss_kb();
        let t = Instant::now();
        let r = fengqiao_node::report::make(&store, NODE, &period, end)?;
        let took = t.elapsed();
        let peak = peak_kb().saturating_sub(before);
        let csv = fengqiao_node::report::render::to_csv(&r);
        println!(
            "report {label:<5} {:>7.3} s  peak +{:>7.1} MiB  csv {:>7.1} KiB  received {} accepted {} open {} overdue {} (listed {})   ratio to the baseline {:.3}",
            took.as_secs_f64(),
            peak as f64 / 1024.0,
            csv.len() as f64 / 1024.0,
            r.figures.received,
            r.figures.accepted,
            r.figures.open,
            r.figures.overdue,
            r.overdue.len(),
            took.as_secs_f64() / scan.as_secs_f64().max(1e-9)
        );
    }
    store.shutdown().await;
    Ok(())
}
