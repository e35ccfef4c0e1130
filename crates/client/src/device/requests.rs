//! Twin request/response correlation. A twin GET or reported PATCH carries a `$rid`; the hub
//! answers on `$iothub/twin/res/{status}/?$rid=..`. Each request registers a one-shot waiter
//! under a fresh rid; the connection task completes it when the answer arrives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

/// The hub's answer to one twin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinReply {
    pub status: u16,
    /// `$version` from the response topic (the new reported version after a PATCH).
    pub version: Option<u64>,
    pub body: Vec<u8>,
}

/// Waiters for twin responses, by rid. Rids are decimal counters, never reused by one client.
#[derive(Debug, Default)]
pub struct PendingRequests {
    next: AtomicU64,
    waiters: Mutex<HashMap<String, oneshot::Sender<TwinReply>>>,
}

impl PendingRequests {
    pub fn new() -> PendingRequests {
        PendingRequests::default()
    }

    /// A fresh rid and the receiver its answer will arrive on.
    pub fn register(&self) -> (String, oneshot::Receiver<TwinReply>) {
        let rid = (self.next.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(rid.clone(), tx);
        (rid, rx)
    }

    /// Hands a response to its waiter; false if nobody waits for `rid` (late or foreign answer).
    pub fn complete(&self, rid: &str, reply: TwinReply) -> bool {
        match self.lock().remove(rid) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Ends every waiting request: the connection they were sent on dropped. (The hub may
    /// still answer a request the client re-sends after reconnecting; nobody waits then.)
    pub fn fail_all(&self) {
        self.lock().clear();
    }

    /// Forgets a waiter whose caller gave up (timeout or cancellation).
    pub fn cancel(&self, rid: &str) {
        self.lock().remove(rid);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<TwinReply>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the waiter when the request future is dropped, whether it finished, timed out or was
/// cancelled, so abandoned rids do not accumulate.
pub struct WaiterGuard<'a> {
    pub pending: &'a PendingRequests,
    pub rid: String,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.pending.cancel(&self.rid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> TwinReply {
        TwinReply {
            status,
            version: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rids_are_unique_and_simple() {
        let p = PendingRequests::new();
        let (a, _ra) = p.register();
        let (b, _rb) = p.register();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_digit()), "{a}");
        assert_eq!(p.len(), 2);
    }

    #[tokio::test]
    async fn responses_reach_the_waiter_with_the_same_rid_even_out_of_order() {
        let p = PendingRequests::new();
        let (r1, rx1) = p.register();
        let (r2, rx2) = p.register();
        assert!(p.complete(&r2, reply(204, "")));
        assert!(p.complete(&r1, reply(200, "{\"desired\":{}}")));
        assert_eq!(rx1.await.unwrap(), reply(200, "{\"desired\":{}}"));
        assert_eq!(rx2.await.unwrap().status, 204);
        assert!(p.is_empty());
    }

    #[test]
    fn unknown_duplicate_and_cancelled_rids_are_ignored() {
        let p = PendingRequests::new();
        assert!(!p.complete("99", reply(200, "")));
        let (rid, rx) = p.register();
        assert!(p.complete(&rid, reply(200, "")));
        assert!(!p.complete(&rid, reply(200, "")), "second answer ignored");
        drop(rx);
        let (rid, _rx) = p.register();
        p.cancel(&rid);
        assert!(!p.complete(&rid, reply(200, "")));
        assert!(p.is_empty());
    }

    #[test]
    fn guard_forgets_the_waiter_on_drop() {
        let p = PendingRequests::new();
        let (rid, _rx) = p.register();
        {
            let _g = WaiterGuard {
                pending: &p,
                rid: rid.clone(),
            };
        }
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn a_lost_connection_ends_every_waiter_at_once() {
        let pending = PendingRequests::new();
        let (a, rx_a) = pending.register();
        let (_, rx_b) = pending.register();
        pending.fail_all();
        assert!(pending.is_empty());
        assert!(rx_a.await.is_err());
        assert!(rx_b.await.is_err());
        assert!(
            !pending.complete(&a, reply(200, "{}")),
            "a late answer finds nobody"
        );
    }
}
