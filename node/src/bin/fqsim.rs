//! `fqsim`: a whole federation in one process, run from a seed, with every fault injected,
//! against the invariants the federation promises.
//!
//! Each node is the real thing — its store on its own folder, its application layer, its
//! clock — and its link to its parent is the real link code (`federation::link`'s child side,
//! `federation::service`'s parent side) with the network replaced by a seeded scheduler
//! (`world`). One thread runs everything and every step is awaited before the next, so a run
//! depends on its seed only: the digest of its trace repeats on any machine.
//!
//! ```text
//! fqsim --seed 7          one run
//! fqsim --seeds 300       seeds 1..=300 (or from --from)
//! fqsim --self-test       plants each fault the checker must catch, and a clean control
//! ```
//!
//! The last line is `fqsim: N seeds, V violations, digest HEX`; a violation prints its seed,
//! the step that broke an invariant and the command that replays it. Exit status 0 only
//! without a violation (and, for `--self-test`, with every planted fault caught).

#[path = "fqsim/check.rs"]
mod check;
#[path = "fqsim/ops.rs"]
mod ops;
#[path = "fqsim/trace.rs"]
mod trace;
#[path = "fqsim/world.rs"]
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;
use fengqiao_node::code::NodeCode;
use fengqiao_node::faults::{self, Fault};
use rand::Rng;

use ops::Truth;
use trace::hex;
use world::{Knobs, Shape, World};

#[derive(Parser, Debug)]
#[command(
    name = "fqsim",
    about = "Deterministic simulation of a fengqiao federation: seeded faults against the federation's invariants"
)]
struct Args {
    /// Run this one seed.
    #[arg(long, conflicts_with_all = ["seeds", "self_test"])]
    seed: Option<u64>,
    /// Run this many seeds, from --from.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Plant each fault the checker must catch; passes only if every one is caught and a
    /// clean control run finds nothing.
    #[arg(long)]
    self_test: bool,
    /// Steps of each run before the faults heal and the federation settles.
    #[arg(long, default_value_t = 400)]
    steps: u64,
    /// The federation: COUNTIESxTOWNSHIPSxVILLAGES under one city.
    #[arg(long, default_value = "2x3x3")]
    shape: String,
    /// Where the nodes' folders go (default: /dev/shm when it exists, else the temp folder).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Print every step of the trace.
    #[arg(long)]
    verbose: bool,
    /// Plant this fault for the run (as --self-test does): to replay what the self-test
    /// caught. One of ack-before-durable, skip-idempotency-check, drop-watermark,
    /// trust-forged-order.
    #[arg(long, value_name = "FAULT")]
    plant: Option<String>,
    /// After the run, print what every node holds of this case (record, history, copy).
    #[arg(long, value_name = "CASE_ID")]
    show: Option<String>,
}

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
static SHOW: OnceLock<String> = OnceLock::new();

/// The folder the runs' stores go in.
pub fn scratch() -> PathBuf {
    SCRATCH.get().cloned().unwrap_or_else(std::env::temp_dir)
}

/// What one seed gave.
struct Outcome {
    digest: [u8; 32],
    violation: Option<(u64, String)>,
    days: f64,
    steps: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let shape = match Shape::parse(&args.shape) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fqsim: {e}");
            return ExitCode::from(2);
        }
    };
    let scratch = args.scratch.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let _ = SCRATCH.set(scratch);
    if let Some(id) = &args.show {
        let _ = SHOW.set(id.clone());
    }
    if args.verbose {
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fqsim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let knobs = Knobs {
        steps: args.steps,
        ..Knobs::default()
    };
    runtime.block_on(async {
        if args.self_test {
            return self_test(&args, shape, knobs).await;
        }
        let knobs = match &args.plant {
            None => knobs,
            Some(name) => match Fault::ALL.into_iter().find(|f| f.name() == name) {
                Some(f) => {
                    faults::plant(Some(f));
                    fault_knobs(f, &knobs)
                }
                None => {
                    eprintln!("fqsim: no fault {name:?}");
                    return ExitCode::from(2);
                }
            },
        };
        let seeds: Vec<u64> = match (args.seed, args.seeds) {
            (Some(s), _) => vec![s],
            (None, Some(n)) => (args.from..args.from.saturating_add(n)).collect(),
            (None, None) => (args.from..args.from + 1).collect(),
        };
        let (digest, violations, _) = run_seeds(&args, shape, &knobs, &seeds, true).await;
        println!(
            "fqsim: {} seeds, {violations} violations, digest {}",
            seeds.len(),
            hex(&digest)
        );
        if violations == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// Runs `seeds`, printing each violation; returns the digest of all, the violations, and
/// the first violating seed.
async fn run_seeds(
    args: &Args,
    shape: Shape,
    knobs: &Knobs,
    seeds: &[u64],
    report: bool,
) -> ([u8; 32], u64, Option<(u64, u64, String)>) {
    let mut all = ring::digest::Context::new(&ring::digest::SHA256);
    let mut violations = 0;
    let mut first = None;
    let started = Instant::now();
    let (mut steps, mut days) = (0, 0.0);
    for &seed in seeds {
        let out = run(seed, shape, knobs.clone(), args.verbose).await;
        all.update(&out.digest);
        steps += out.steps;
        days += out.days;
        if let Some((step, what)) = out.violation {
            violations += 1;
            if report {
                println!("seed {seed}: step {step}: {what}");
                println!(
                    "  replay: fqsim --seed {seed} --steps {} --shape {} --verbose",
                    knobs.steps, args.shape
                );
            }
            if first.is_none() {
                first = Some((seed, step, what));
            }
        } else if args.verbose || seeds.len() == 1 {
            println!("seed {seed}: ok, digest {}", hex(&out.digest));
        }
    }
    let took = started.elapsed();
    if report {
        eprintln!(
            "fqsim: {} steps, {:.1} simulated days in {:.1} s ({:.1} seeds/minute)",
            steps,
            days,
            took.as_secs_f64(),
            seeds.len() as f64 * 60.0 / took.as_secs_f64().max(1e-9)
        );
    }
    let d = all.finish();
    let mut digest = [0u8; 32];
    digest.copy_from_slice(d.as_ref());
    (digest, violations, first)
}

/// The planted-fault check: each fault alone, over seeds until one is caught.
async fn self_test(args: &Args, shape: Shape, knobs: Knobs) -> ExitCode {
    const TRIES: u64 = 40;
    let mut missed = 0;
    let mut ran = 0;
    for fault in Fault::ALL {
        faults::plant(Some(fault));
        let mut caught = None;
        for seed in args.from..args.from + TRIES {
            ran += 1;
            let out = run(seed, shape, fault_knobs(fault, &knobs), false).await;
            if let Some((step, what)) = out.violation {
                caught = Some((seed, step, what));
                break;
            }
        }
        faults::plant(None);
        match caught {
            Some((seed, step, what)) => {
                println!("caught {}: seed {seed}, step {step}: {what}", fault.name());
                println!(
                    "  replay: fqsim --seed {seed} --plant {} --steps {} --shape {}",
                    fault.name(),
                    knobs.steps,
                    args.shape
                );
            }
            None => {
                missed += 1;
                println!("MISSED {}: no violation in {TRIES} seeds", fault.name());
            }
        }
    }
    // The control: the same kind of runs with nothing planted find nothing.
    let control: Vec<u64> = (args.from..args.from + 10).collect();
    let (digest, violations, _) = run_seeds(args, shape, &knobs, &control, true).await;
    ran += control.len() as u64;
    println!(
        "fqsim self-test: {} of {} planted faults caught; control run of {} seeds: {violations} violations",
        Fault::ALL.len() - missed,
        Fault::ALL.len(),
        control.len()
    );
    println!(
        "fqsim: {ran} seeds, {violations} violations, digest {}",
        hex(&digest)
    );
    if missed == 0 && violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The faults that exercise `fault` come more often while it is planted.
fn fault_knobs(fault: Fault, knobs: &Knobs) -> Knobs {
    let mut k = knobs.clone();
    match fault {
        Fault::AckBeforeDurable => k.kill = 150,
        Fault::SkipIdempotency | Fault::DropWatermark => k.duplicate = 200,
        Fault::TrustForgedOrder => k.forge = 120,
    }
    k
}

/// One seed.
async fn run(seed: u64, shape: Shape, knobs: Knobs, verbose: bool) -> Outcome {
    fengqiao_node::random::seed(Some(seed));
    let mut w = match World::new(seed, shape, knobs).await {
        Ok(w) => w,
        Err(e) => {
            return Outcome {
                digest: [0; 32],
                violation: Some((0, format!("the simulation could not start: {e}"))),
                days: 0.0,
                steps: 0,
            };
        }
    };
    w.trace.echo = verbose;
    let mut t = Truth::default();
    if w.chance(700) {
        let candidates: Vec<NodeCode> = w.order[2..].to_vec();
        t.forger = w.pick(&candidates).cloned();
    }
    if let Some(f) = &t.forger {
        w.trace.note(&format!("compromised: {f}"));
    }
    let start = w.now;
    let mut violation = None;
    for step in 1..=w.knobs.steps {
        w.step = step;
        w.advance(Duration::from_secs(3 * 3600));
        let line = match one_step(&mut w, &mut t).await {
            Ok(l) => l,
            Err(e) => format!("VIOLATION {e}"),
        };
        w.trace.note(&format!("{step}: {line}"));
        if let Some(v) = line.strip_prefix("VIOLATION ") {
            violation = Some((step, v.to_owned()));
            break;
        }
        let mut result = check::always(&w, &t);
        if result.is_ok() && step % 25 == 0 {
            result = check::forged_nowhere(&w, &t)
                .and_then(|()| check::at_most_once(&w, &t))
                .and_then(|()| check::nothing_lost(&w));
        }
        if let Err(v) = result {
            violation = Some((step, v));
            break;
        }
    }
    let steps = w.step;
    if violation.is_none() {
        let step = w.step + 1;
        let result = match quiesce(&mut w).await {
            Ok(()) => match check::settled(&w, &t) {
                Ok(()) => check::subtree_figures(&w).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(v) = result {
            violation = Some((step, format!("at quiescence: {v}")));
        }
    }
    if violation.is_some() && verbose {
        println!("last lines of the trace:");
        for l in w.trace.recent() {
            println!("  {l}");
        }
    }
    if let Some(id) = SHOW.get() {
        show(&w, id);
    }
    if let Err(e) = check::fold_state(&mut w) {
        violation.get_or_insert((w.step, format!("reading the final state: {e}")));
    }
    let days = (w.now.0 - start.0) as f64 / 86_400_000.0;
    fengqiao_node::random::seed(None);
    Outcome {
        digest: w.trace.finish(),
        violation,
        days,
        steps,
    }
}

/// One step, chosen by the seed. Returns its line of the trace.
async fn one_step(w: &mut World, t: &mut Truth) -> Result<String, String> {
    let children: Vec<NodeCode> = w.order[1..].to_vec();
    let roll = w.rng.random_range(0..100);
    Ok(match roll {
        0..=29 => {
            w.count("act");
            ops::act(w, t).await
        }
        30..=44 => {
            let child = w.pick(&children).cloned().expect("children");
            if w.cut.contains(&child) {
                return Ok(format!("push {child}: link cut"));
            }
            let sent = w.send_push(&child).await?;
            w.count("push");
            format!("push {child} {sent}")
        }
        45..=54 => {
            let child = w.pick(&children).cloned().expect("children");
            if w.cut.contains(&child) {
                return Ok(format!("pull {child}: link cut"));
            }
            let sent = w.send_pull(&child).await?;
            w.count("pull");
            format!("pull {child} {sent}")
        }
        55..=89 => {
            if w.net.is_empty() {
                // Nothing in flight: someone at a center does something instead.
                w.count("act");
                return Ok(ops::act(w, t).await);
            }
            let i = w.rng.random_range(0..w.net.len());
            if w.cut.contains(w.net[i].child()) {
                return Ok("held: link cut".into());
            }
            if w.chance(w.knobs.drop) {
                let p = w.net.remove(i);
                w.count("drop");
                format!("drop {:?}", p.child())
            } else if w.chance(w.knobs.duplicate) {
                w.count("duplicate");
                w.deliver(i, true).await?;
                "delivered a duplicate".into()
            } else {
                w.count("deliver");
                w.deliver(i, false).await?;
                "delivered".into()
            }
        }
        _ => fault(w, t).await?,
    })
}

/// A fault, or something else that happens now and then.
async fn fault(w: &mut World, t: &mut Truth) -> Result<String, String> {
    let children: Vec<NodeCode> = w.order[1..].to_vec();
    let all = w.order.clone();
    let k = w.knobs.clone();
    let code = w.pick(&all).cloned().expect("nodes");
    let child = w.pick(&children).cloned().expect("children");
    let roll = w.rng.random_range(0..1000u32);
    let mut at = 0;
    let mut hit = |n: u32| {
        let h = roll >= at && roll < at + n;
        at += n;
        h
    };
    if hit(k.timeout * 5) {
        w.time_out(&child);
        w.count("timeout");
        return Ok(format!("timeout {child}"));
    }
    if hit(k.partition * 5) {
        w.count("partition");
        if w.cut.remove(&child) {
            return Ok(format!("heal {child}"));
        }
        w.cut.insert(child.clone());
        return Ok(format!("cut {child}"));
    }
    if hit(k.kill * 5) {
        w.count("kill");
        w.restart(&code).await?;
        return Ok(format!("kill and restart {code}"));
    }
    if hit(k.restore * 5) {
        let before: Vec<String> = held_ids(w, &code);
        match w.restore(&code).await? {
            Some(at) => {
                w.count("restore");
                t.set_back.extend(before);
                t.set_back.extend(held_ids(w, &code));
                let later: Vec<String> = t
                    .acked
                    .iter()
                    .filter(|a| a.node == code && a.at >= at)
                    .map(|a| a.case_id.clone())
                    .collect();
                t.set_back.extend(later);
                return Ok(format!("restore {code} from its copy of {}", at.0));
            }
            None => return Ok(format!("restore {code}: no copy yet")),
        }
    }
    if hit(k.restore * 10) {
        w.count("backup");
        w.backup(&code).await?;
        return Ok(format!("backup {code}"));
    }
    if hit(k.clock * 5) {
        w.count("clock");
        w.skew_clock(&code);
        return Ok(format!("clock jump {code}"));
    }
    if hit(k.forge * 5) {
        w.count("forge");
        return Ok(ops::forge(w, t).await);
    }
    // Otherwise the node's time-driven rules run (deadlines, early warning).
    w.count("sweep");
    let state = w.node(&code).state().clone();
    let now = state.clock.now();
    w.settle(&code).await;
    match fengqiao_node::sweep::run_once(&state, now).await {
        Ok(r) => Ok(format!("sweep {code}: {r:?}")),
        Err(e) => Ok(format!("sweep {code} failed: {e}")),
    }
}

/// Prints what every node holds of case `id`.
fn show(w: &World, id: &str) {
    for code in &w.order {
        let store = &w.node(code).state().store;
        if let Ok(Some(c)) = store.get_case(id) {
            println!(
                "{code}: {:?} owner {} epoch {} moved_to {:?} summary {:?} supervisors {:?}",
                c.status, c.owner_node, c.epoch, c.moved_to, c.summary, c.supervising_nodes
            );
            for e in store.history(id).unwrap_or_default() {
                println!(
                    "    {} {:?} at {} by {}: {}",
                    e.seq, e.kind, e.node, e.actor, e.detail
                );
            }
        }
        if let Ok(Some(copy)) = store.supervised_copy(id) {
            println!(
                "{code}: copy of {} events, summary {:?}",
                copy.case.history_len, copy.case.summary
            );
        }
    }
}

fn held_ids(w: &World, code: &NodeCode) -> Vec<String> {
    w.node(code)
        .state()
        .store
        .cases_after("", None, usize::MAX)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Heals every fault and lets traffic settle: links whole, clocks in line, every call
/// answered, until no queue holds anything (or the links are blocked).
async fn quiesce(w: &mut World) -> Result<(), String> {
    w.cut.clear();
    w.align_clocks();
    w.trace.note("quiesce");
    let children: Vec<NodeCode> = w.order[1..].to_vec();
    // Each round every child pushes and polls and every packet is delivered. Forty rounds
    // without fewer messages queued than ever before mean the links are blocked.
    let mut least = usize::MAX;
    let mut stalled = 0;
    for round in 0..200 {
        w.forget_unanswered();
        for code in &w.order.clone() {
            w.settle(code).await;
        }
        for child in &children {
            w.send_push(child).await?;
            w.send_pull(child).await?;
        }
        while !w.net.is_empty() {
            w.deliver(0, false).await?;
        }
        let queued = w.queued()?;
        if round >= 2 && queued == 0 {
            return Ok(());
        }
        if queued < least {
            least = queued;
            stalled = 0;
        } else {
            stalled += 1;
            if stalled >= 40 {
                break;
            }
        }
    }
    Err(format!(
        "links blocked: queues still hold messages once every fault healed: {}",
        w.queues()?.join(", ")
    ))
}
