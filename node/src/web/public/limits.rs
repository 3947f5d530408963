//! How often the citizens' channel may be asked (`[public]` in the node's config): lookups per
//! client address and per case id, submissions per client address and per API key. GCRA
//! limiters (governor) keyed by address, case or key; a refusal carries how long to wait
//! (HTTP 429 with Retry-After). Keys not seen for a while are forgotten by [`Limits::sweep`],
//! so memory follows the clients of the last hour, not of all time.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::PublicConfig;

/// Longest case id or key name a limiter keys on (longer ones are cut: they name no case).
const KEY_MAX_CHARS: usize = 64;

pub struct Limits {
    lookups_by_addr: DefaultKeyedRateLimiter<IpAddr>,
    lookups_by_case: DefaultKeyedRateLimiter<String>,
    submissions_by_addr: DefaultKeyedRateLimiter<IpAddr>,
    submissions_by_key: DefaultKeyedRateLimiter<String>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn bounded(key: &str) -> String {
    key.chars().take(KEY_MAX_CHARS).collect()
}

/// Seconds to wait before trying again (at least 1).
fn wait(
    r: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
) -> Result<(), Duration> {
    r.map_err(|nu| {
        let d = nu.wait_time_from(DefaultClock::default().now());
        d.max(Duration::from_secs(1))
    })
}

impl Limits {
    pub fn new(cfg: &PublicConfig) -> Limits {
        Limits {
            lookups_by_addr: RateLimiter::keyed(Quota::per_minute(nonzero(cfg.lookups_per_minute))),
            lookups_by_case: RateLimiter::keyed(Quota::per_hour(nonzero(
                cfg.case_lookups_per_hour,
            ))),
            submissions_by_addr: RateLimiter::keyed(Quota::per_hour(nonzero(
                cfg.submissions_per_hour,
            ))),
            submissions_by_key: RateLimiter::keyed(Quota::per_minute(nonzero(
                cfg.api_submissions_per_minute,
            ))),
        }
    }

    /// One lookup of `case_id` from `addr`: `Err(wait)` when either is over its limit.
    pub fn lookup(&self, addr: IpAddr, case_id: &str) -> Result<(), Duration> {
        wait(self.lookups_by_addr.check_key(&addr))?;
        wait(self.lookups_by_case.check_key(&bounded(case_id.trim())))
    }

    /// One lookup from `addr` that names no case (a list of several is counted per case).
    pub fn lookup_from(&self, addr: IpAddr) -> Result<(), Duration> {
        wait(self.lookups_by_addr.check_key(&addr))
    }

    /// One lookup of `case_id`, the address counted already.
    pub fn lookup_of(&self, case_id: &str) -> Result<(), Duration> {
        wait(self.lookups_by_case.check_key(&bounded(case_id.trim())))
    }

    /// One application through the form from `addr`.
    pub fn submission_from(&self, addr: IpAddr) -> Result<(), Duration> {
        wait(self.submissions_by_addr.check_key(&addr))
    }

    /// One submission with API key `name`.
    pub fn submission_with(&self, name: &str) -> Result<(), Duration> {
        wait(self.submissions_by_key.check_key(&bounded(name)))
    }

    /// Forgets the keys whose limits have fully recovered.
    pub fn sweep(&self) {
        self.lookups_by_addr.retain_recent();
        self.lookups_by_case.retain_recent();
        self.submissions_by_addr.retain_recent();
        self.submissions_by_key.retain_recent();
        self.lookups_by_addr.shrink_to_fit();
        self.lookups_by_case.shrink_to_fit();
        self.submissions_by_addr.shrink_to_fit();
        self.submissions_by_key.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_and_each_case_has_its_own_budget() {
        let cfg = PublicConfig {
            lookups_per_minute: 3,
            case_lookups_per_hour: 4,
            ..PublicConfig::default()
        };
        let l = Limits::new(&cfg);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.lookup(a, "case-1").is_ok());
        }
        let wait = l.lookup(a, "case-2").unwrap_err();
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
        // Another address may still ask, but case-1 has one lookup left in its hour.
        assert!(l.lookup(b, "case-1").is_ok());
        assert!(l.lookup(b, "case-1").is_err());
        assert!(l.lookup(b, "case-3").is_ok());
        l.sweep();
    }
}
