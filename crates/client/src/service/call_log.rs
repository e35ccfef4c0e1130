//! When the service REST client made its calls, so the explorer can show how much of a hub's
//! quota it spends (calls in the last minute) and tests can count calls exactly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window `per_minute` counts over.
const MINUTE: Duration = Duration::from_secs(60);

/// Shared by every clone of a client: all of them spend the same hub's quota.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Calls>>);

#[derive(Debug, Default)]
struct Calls {
    total: u64,
    /// Times of the calls in the last minute, oldest first.
    recent: VecDeque<Instant>,
}

impl Calls {
    fn forget_before(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.recent.pop_front();
        }
    }
}

impl CallLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self) {
        self.record_at(Instant::now());
    }

    fn record_at(&self, now: Instant) {
        let mut calls = self.lock();
        calls.total += 1;
        calls.forget_before(now);
        calls.recent.push_back(now);
    }

    /// Calls since the client was made.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Calls in the last 60 s.
    pub fn per_minute(&self) -> usize {
        self.per_minute_at(Instant::now())
    }

    fn per_minute_at(&self, now: Instant) -> usize {
        let mut calls = self.lock();
        calls.forget_before(now);
        calls.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_and_the_total() {
        let log = CallLog::default();
        let start = Instant::now();
        for s in [0, 10, 59] {
            log.record_at(start + Duration::from_secs(s));
        }
        assert_eq!(log.per_minute_at(start + Duration::from_secs(59)), 3);
        assert_eq!(log.per_minute_at(start + Duration::from_secs(60)), 2);
        assert_eq!(log.per_minute_at(start + Duration::from_secs(118)), 1);
        assert_eq!(log.per_minute_at(start + Duration::from_secs(119)), 0);
        assert_eq!(log.total(), 3);
        assert_eq!(log.clone().total(), 3, "clones share the log");
    }
}
