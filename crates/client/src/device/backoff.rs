//! Reconnect backoff: exponential from 1 s, capped at 30 s, with ±20 % jitter so that many
//! devices dropped by one hub restart do not all come back in the same instant. rumqttc retries
//! immediately on a failed poll; this is what keeps a dead hub from being hammered.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Exponential backoff with jitter. `next_delay` grows the delay; `reset` after a CONNACK.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failed attempts since the last reset.
    attempt: u32,
    rng: StdRng,
}

/// The jitter applied to each delay, as a fraction of it (0.2 = ±20 %).
const JITTER: f64 = 0.2;

impl Backoff {
    pub const DEFAULT_INITIAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff::with_rng(initial, max, StdRng::from_os_rng())
    }

    /// Deterministic jitter, for tests.
    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff::with_rng(initial, max, StdRng::seed_from_u64(seed))
    }

    fn with_rng(initial: Duration, max: Duration, rng: StdRng) -> Backoff {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
            rng,
        }
    }

    /// The un-jittered delay for the current attempt: initial · 2^attempt, at most `max`.
    pub fn base_delay(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay().as_secs_f64();
        let jitter = self.rng.random_range(-JITTER..=JITTER);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_secs_f64(base * (1.0 + jitter)).min(self.max)
    }

    /// After a successful connection: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn schedule_doubles_from_one_second_to_a_thirty_second_cap() {
        let mut b = Backoff::seeded(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX, 7);
        let bases: Vec<u64> = (0..8)
            .map(|_| {
                let base = b.base_delay().as_secs();
                b.next_delay();
                base
            })
            .collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_the_cap() {
        let mut b = Backoff::seeded(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX, 42);
        let mut seen_different = false;
        for _ in 0..200 {
            let base = secs(b.base_delay());
            let d = secs(b.next_delay());
            assert!(d >= base * 0.8 - 1e-9, "{d} < 0.8 · {base}");
            assert!(d <= (base * 1.2).min(30.0) + 1e-9, "{d} > 1.2 · {base}");
            seen_different |= (d - base).abs() > 1e-6;
            if b.attempts() > 10 {
                b.reset();
            }
        }
        assert!(seen_different, "jitter never moved a delay");
    }

    #[test]
    fn same_seed_same_schedule_and_reset_starts_over() {
        let mut a = Backoff::seeded(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX, 1);
        let mut b = Backoff::seeded(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX, 1);
        let xa: Vec<Duration> = (0..6).map(|_| a.next_delay()).collect();
        let xb: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(xa, xb);
        a.reset();
        assert_eq!(a.attempts(), 0);
        let d = secs(a.next_delay());
        assert!((0.8..=1.2).contains(&d), "{d}");
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(30), 3);
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
