//! Backing off when the hub throttles: a 429, a `ThrottlingException` or a spent daily quota
//! (403002) pauses polling for at least the hub's `Retry-After`, doubling with each throttled
//! answer in a row, and the status bar says for how long.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::events::HubEvent;
use crate::service::ServiceClientError;

/// The pause after the first throttled answer, when the hub names none longer.
const FIRST_PAUSE: Duration = Duration::from_secs(2);
/// The longest pause; a quota that resets at midnight is not worth waiting for silently.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// How long to pause after the `strike`-th throttled answer in a row (1 for the first):
/// doubling from `FIRST_PAUSE` up to `MAX_PAUSE`, and never shorter than the hub asked.
pub(super) fn pause_for(strike: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = strike.saturating_sub(1).min(16);
    let backoff = FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE);
    retry_after.map_or(backoff, |asked| asked.max(backoff))
}

#[derive(Default)]
struct State {
    /// Throttled answers in a row.
    strikes: u32,
    until: Option<Instant>,
}

#[derive(Default)]
pub(super) struct Throttle(Mutex<State>);

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes how a request ended; returns the event for the status bar when throttling began,
    /// grew, or ended.
    pub(super) fn note<T>(&self, result: &Result<T, ServiceClientError>) -> Option<HubEvent> {
        let mut state = self.lock();
        match result {
            Err(ServiceClientError::Throttled { retry_after, .. }) => {
                state.strikes += 1;
                let pause = pause_for(state.strikes, *retry_after);
                state.until = Some(Instant::now() + pause);
                Some(HubEvent::Throttled {
                    retry_in: Some(pause),
                })
            }
            // No answer says nothing about throttling.
            Err(ServiceClientError::Unreachable { .. }) => None,
            _ if state.strikes > 0 => {
                *state = State::default();
                Some(HubEvent::Throttled { retry_in: None })
            }
            _ => None,
        }
    }

    /// Notes how a storage request ended, as `note` does for the service: a busy answer
    /// (429, 503) pauses polling like a throttled one.
    pub(super) fn note_storage<T>(
        &self,
        result: &Result<T, crate::storage::BlobError>,
    ) -> Option<HubEvent> {
        let mut state = self.lock();
        match result {
            Err(e) if e.busy => {
                state.strikes += 1;
                let pause = pause_for(state.strikes, None);
                state.until = Some(Instant::now() + pause);
                Some(HubEvent::Throttled {
                    retry_in: Some(pause),
                })
            }
            Ok(_) if state.strikes > 0 => {
                *state = State::default();
                Some(HubEvent::Throttled { retry_in: None })
            }
            _ => None,
        }
    }

    /// How long polling still waits, if it does.
    pub(super) fn remaining(&self) -> Option<Duration> {
        let until = self.lock().until?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub::error::{ErrorCode, ServiceError};

    #[test]
    fn pauses_double_and_honour_retry_after() {
        let s = Duration::from_secs;
        let cases = [
            (1, None, s(2)),
            (2, None, s(4)),
            (3, None, s(8)),
            (1, Some(s(20)), s(20)),
            (4, Some(s(20)), s(20)),
            (5, Some(s(20)), s(32)),
            (9, None, s(300)),
            (u32::MAX, Some(s(1)), s(300)),
            (1, Some(s(900)), s(900)),
        ];
        for (strike, retry_after, want) in cases {
            assert_eq!(
                pause_for(strike, retry_after),
                want,
                "{strike} {retry_after:?}"
            );
        }
    }

    fn throttled(retry_after: u64) -> Result<(), ServiceClientError> {
        Err(ServiceClientError::Throttled {
            error: ServiceError::new(ErrorCode::ThrottlingException, "slow down"),
            retry_after: Some(Duration::from_secs(retry_after)),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_pauses_until_an_answer_goes_through() {
        let t = Throttle::default();
        assert_eq!(t.note(&Ok(())), None);
        assert_eq!(t.remaining(), None);
        assert_eq!(
            t.note(&throttled(20)),
            Some(HubEvent::Throttled {
                retry_in: Some(Duration::from_secs(20))
            })
        );
        assert_eq!(t.remaining(), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(t.remaining(), Some(Duration::from_secs(15)));
        let unreachable: Result<(), _> = Err(ServiceClientError::Unreachable {
            url: "x".into(),
            reason: "y".into(),
        });
        assert_eq!(t.note(&unreachable), None);
        assert_eq!(
            t.note(&Ok(())),
            Some(HubEvent::Throttled { retry_in: None })
        );
        assert_eq!(t.remaining(), None);
        assert_eq!(t.note(&Ok(())), None);
    }
}
