//! `fqbench floor`: what sled 0.34 alone costs per durable case, in this process, on this
//! machine, as the floor under RegisterCase and under the drain rate.
//!
//! Writes cases in group commits the way the store does (one `apply_batch` on one tree, then
//! sled's flush and an `fdatasync` of its log), in two shapes measured in one run:
//! * **1 key per case**: the case record alone (1.2 KB), what "a durable put" costs;
//! * **8 keys per case**: what a registration writes since store format 5 (the record, one
//!   300-byte event, and six short index and map keys, four of them random: idempotency key,
//!   lookup code, person and respondent hashes; two in case id order: facets and deadline).
//!   An installed transfer writes six of them (no idempotency key, no respondent hash).
//!
//! Nothing here goes through fengqiao's storage module: it measures sled itself, with the
//! store's cache size, so that BENCHMARKS.md can say how far the product is from the floor.

use std::fs::OpenOptions;
use std::time::{Duration, Instant};

/// Runs both shapes for `duration` each (after `warmup`) and prints cases/s and µs per key.
pub fn run(
    batch: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "fqbench floor: sled 0.34 alone, {batch} cases per group commit (apply_batch + flush + fdatasync), {} s per shape",
        duration.as_secs_f64()
    );
    let one = shape(1, batch, warmup, duration)?;
    println!(
        "1 key per case      {:>8.0} cases/s   {:>5.1} µs per key",
        one,
        1e6 / one
    );
    let eight = shape(8, batch, warmup, duration)?;
    println!(
        "8 keys per case     {:>8.0} cases/s   {:>5.1} µs per key",
        eight,
        1e6 / (eight * 8.0)
    );
    println!("ratio 8 keys / 1 key: {:.2}", eight / one);
    Ok(())
}

/// Cases per second written with `keys` keys each.
fn shape(
    keys: usize,
    batch: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(tmp.path())
        .cache_capacity(16 * 1024 * 1024)
        .flush_every_ms(Some(1000))
        .open()?;
    let tree = db.open_tree("store")?;
    let log = OpenOptions::new().write(true).open(tmp.path().join("db"))?;
    let record = vec![0x5a_u8; 1200];
    let event = vec![0xe7_u8; 300];
    let mut next = 0_u64;
    let mut commit = |cases: usize| -> Result<(), Box<dyn std::error::Error>> {
        let mut b = sled::Batch::default();
        for _ in 0..cases {
            next += 1;
            let id = format!("610116001-20261122-{next:08}");
            let key = |space: u8, rest: &[u8]| [&[space][..], rest].concat();
            b.insert(key(2, id.as_bytes()), record.as_slice());
            if keys == 8 {
                let mut ev = id.clone().into_bytes();
                ev.push(0);
                ev.extend_from_slice(&1_u64.to_be_bytes());
                b.insert(key(3, &ev), event.as_slice());
                for space in [4_u8, 5, 10, 11] {
                    let random: [u8; 16] = rand::random();
                    b.insert(key(space, &random), id.as_bytes());
                }
                for space in [9_u8, 0x15] {
                    let mut k = vec![(next % 4) as u8];
                    k.extend_from_slice(id.as_bytes());
                    b.insert(key(space, &k), &[][..]);
                }
            }
        }
        tree.apply_batch(b)?;
        db.flush()?;
        log.sync_data()?;
        Ok(())
    };
    let start = Instant::now();
    while start.elapsed() < warmup {
        commit(batch)?;
    }
    let (start, mut cases) = (Instant::now(), 0);
    while start.elapsed() < duration {
        commit(batch)?;
        cases += batch;
    }
    Ok(cases as f64 / start.elapsed().as_secs_f64())
}
