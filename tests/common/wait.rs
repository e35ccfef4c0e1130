//! Waiting in tests: on a condition with a deadline, never a sleep that hopes the hub was
//! fast enough. A fixed wait is used only to prove a negative, and then says so.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Checks `check` until it yields a value; fails naming `what` once `within` has passed.
pub fn wait_until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// `wait_until` for a check that is async.
pub async fn eventually<T, F>(within: Duration, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Proves a negative: `happens`, a future that completes when the unwanted thing happens,
/// does not complete within `within`.
pub async fn assert_nothing_within<T: Debug>(
    within: Duration,
    what: &str,
    happens: impl Future<Output = T>,
) {
    if let Ok(seen) = tokio::time::timeout(within, happens).await {
        panic!("{what} within {within:?}: {seen:?}");
    }
}

/// Waits for the wall clock to enter a new millisecond and returns it, so that what was
/// stamped before the call is strictly older than what is stamped after it.
pub fn next_millisecond() -> chrono::DateTime<chrono::Utc> {
    let start = chrono::Utc::now().timestamp_millis();
    wait_until(Duration::from_secs(1), "the clock to move on", || {
        let now = chrono::Utc::now();
        (now.timestamp_millis() > start).then_some(now)
    })
}
