//! Where a node's case-level random values come from (citizens' lookup codes, order ids):
//! the thread's cryptographically secure generator, unless a seeded one is installed for the
//! whole process — only the simulation (`fqsim`) does, so that a run repeats exactly from its
//! seed. Secrets (keys, sessions, salts) never come from here.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

static SEEDED: Mutex<Option<StdRng>> = Mutex::new(None);

/// Installs a generator seeded with `seed` for the whole process (`None`: back to the
/// secure generator). For the simulation.
pub fn seed(seed: Option<u64>) {
    let mut slot = SEEDED.lock().unwrap_or_else(|p| p.into_inner());
    *slot = seed.map(StdRng::seed_from_u64);
}

/// Calls `f` with the generator in force.
pub fn with<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
    let mut slot = SEEDED.lock().unwrap_or_else(|p| p.into_inner());
    match slot.as_mut() {
        Some(rng) => f(rng),
        None => {
            drop(slot);
            f(&mut rand::rng())
        }
    }
}

/// A number in `1..=u64::MAX`.
pub fn nonzero_u64() -> u64 {
    with(|rng| rng.random_range(1..=u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_generator_repeats_and_the_default_does_not() {
        seed(Some(7));
        let a: Vec<u64> = (0..4).map(|_| nonzero_u64()).collect();
        seed(Some(7));
        let b: Vec<u64> = (0..4).map(|_| nonzero_u64()).collect();
        seed(None);
        assert_eq!(a, b);
        assert_ne!(nonzero_u64(), nonzero_u64());
    }
}
