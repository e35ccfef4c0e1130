//! When an HTTPS connection is idle: no request in progress (a request lasts until its
//! response body is written), for longer than the connection may wait before its first
//! request, or between requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct InFlight {
    requests: usize,
    /// When `requests` last fell to zero (or the connection started).
    since: Instant,
    served_any: bool,
}

/// The requests one connection has in progress.
pub struct Requests(watch::Sender<InFlight>);

/// One request in progress; dropping it ends the request.
pub struct RequestGuard(Arc<Requests>);

impl Requests {
    pub fn new() -> Arc<Requests> {
        Arc::new(Requests(watch::Sender::new(InFlight {
            requests: 0,
            since: Instant::now(),
            served_any: false,
        })))
    }

    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.0.send_modify(|s| s.requests += 1);
        RequestGuard(self.clone())
    }

    /// Resolves once no request has been in progress for `first` before the first
    /// request, or for `between` after one.
    pub async fn idle(&self, first: Duration, between: Duration) {
        let mut changes = self.0.subscribe();
        loop {
            let now = *changes.borrow_and_update();
            if now.requests > 0 {
                let _ = changes.changed().await;
                continue;
            }
            let limit = if now.served_any { between } else { first };
            // A change that came with the deadline is looked at first: a request that
            // started meanwhile means the connection is not idle.
            tokio::select! {
                biased;
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(now.since + limit) => return,
            }
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|s| {
            s.requests -= 1;
            s.served_any = true;
            if s.requests == 0 {
                s.since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(30);
    const BETWEEN: Duration = Duration::from_secs(130);

    /// Whether `idle` has resolved after the clock moves on by `by`.
    async fn idle_after(
        idle: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        by: Duration,
    ) -> bool {
        tokio::time::advance(by).await;
        futures::poll!(idle.as_mut()).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_start_then_from_the_last_request() {
        let requests = Requests::new();
        let idle = requests.idle(FIRST, BETWEEN);
        tokio::pin!(idle);
        assert!(!idle_after(&mut idle, FIRST - Duration::from_secs(1)).await);
        let guard = requests.start();
        // A request in progress is never idle, however long it takes.
        assert!(!idle_after(&mut idle, BETWEEN * 2).await);
        drop(guard);
        assert!(!idle_after(&mut idle, BETWEEN - Duration::from_secs(1)).await);
        assert!(idle_after(&mut idle, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_idle_after_the_first_limit() {
        let requests = Requests::new();
        let idle = requests.idle(FIRST, BETWEEN);
        tokio::pin!(idle);
        assert!(idle_after(&mut idle, FIRST + Duration::from_millis(1)).await);
    }
}
