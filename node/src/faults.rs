//! Faults planted on purpose in the mechanisms the simulation (`fqsim --self-test`) checks,
//! to prove its checker catches each: test-only switches, all off unless a test turns one
//! on. Nothing in the product turns them on, and a node never reads them from its
//! configuration or environment.

use std::sync::atomic::{AtomicU8, Ordering};

/// A fault that can be planted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The parent answers a push as applied before its apply is durable (the apply waits for
    /// the node's next step, see `Federation::apply_deferred`, and a stop loses it).
    AckBeforeDurable,
    /// A receiver applies a message at or below its link watermark again (a repeat).
    SkipIdempotency,
    /// A receiver applies a message without moving the link's watermark.
    DropWatermark,
    /// A parent takes an order from a child, whatever it claims (the trust checks skip it).
    TrustForgedOrder,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::AckBeforeDurable,
        Fault::SkipIdempotency,
        Fault::DropWatermark,
        Fault::TrustForgedOrder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::AckBeforeDurable => "ack-before-durable",
            Fault::SkipIdempotency => "skip-idempotency-check",
            Fault::DropWatermark => "drop-watermark",
            Fault::TrustForgedOrder => "trust-forged-order",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

static PLANTED: AtomicU8 = AtomicU8::new(0);

/// Plants `fault` (or, with `None`, removes every planted fault). For tests only.
pub fn plant(fault: Option<Fault>) {
    PLANTED.store(fault.map_or(0, Fault::bit), Ordering::SeqCst);
}

/// Whether `fault` is planted.
#[inline]
pub fn planted(fault: Fault) -> bool {
    PLANTED.load(Ordering::Relaxed) & fault.bit() != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_planted_unless_a_test_plants_it() {
        for f in Fault::ALL {
            assert!(!planted(f), "{}", f.name());
        }
    }
}
