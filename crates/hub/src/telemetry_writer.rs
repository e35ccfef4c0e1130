//! Group commit of telemetry: one thread owns every telemetry append. It takes all the
//! appends waiting, writes them in one transaction, and only then completes each caller
//! and hands the records to live readers, in commit order. One commit per batch rather
//! than per message is what lets ingest keep pace with a broker: the cost of a commit
//! is shared by everything that arrived while the previous one was written.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll};

use tokio::sync::{broadcast, oneshot};

use crate::store::{Store, TelemetryRecord};
use iothub::error::{ErrorCode, ServiceError};

/// Appends one transaction takes at most, so that the store's other users (REST, twin
/// updates) wait for one bounded commit at a time, never for a whole flood.
const MAX_BATCH: usize = 512;

type Outcome = Result<Arc<TelemetryRecord>, ServiceError>;

struct Append {
    rec: TelemetryRecord,
    done: oneshot::Sender<Outcome>,
}

/// The handle callers append through. Dropping it lets the thread commit what is
/// queued and waits for it to end, so the store is closed when the hub's state is.
pub struct TelemetryWriter {
    queue: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An append on its way to the store: resolves once the record is committed (durable,
/// the device may be acknowledged) or the write failed.
pub struct Committed(oneshot::Receiver<Outcome>);

impl Future for Committed {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ServiceError::new(
                    ErrorCode::ServerError,
                    "the hub's telemetry writer stopped",
                ))
            })
        })
    }
}

impl TelemetryWriter {
    /// Starts the writer thread over `store`; committed records go to `live`.
    pub fn start(store: Arc<Store>, live: broadcast::Sender<Arc<TelemetryRecord>>) -> Self {
        let (queue, pending) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("telemetry-writer".into())
            .spawn(move || run(&store, &pending, &live))
            .expect("the telemetry writer thread starts");
        TelemetryWriter {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Queues `rec` (its seq and partition_seq are given on commit).
    pub fn append(&self, rec: TelemetryRecord) -> Committed {
        let (done, rx) = oneshot::channel();
        // A send fails only when the thread is gone; `Committed` then reports it.
        if let Some(q) = &self.queue {
            let _ = q.send(Append { rec, done });
        }
        Committed(rx)
    }
}

impl Drop for TelemetryWriter {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    store: &Store,
    pending: &mpsc::Receiver<Append>,
    live: &broadcast::Sender<Arc<TelemetryRecord>>,
) {
    // Each partition's next sequence number, read from the store on first use.
    let mut next = HashMap::new();
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        batch.extend(pending.try_iter().take(MAX_BATCH - 1));
        let (recs, waiting): (Vec<_>, Vec<_>) = batch.into_iter().map(|a| (a.rec, a.done)).unzip();
        match store.telemetry_append_batch(recs, &mut next) {
            Ok(stored) => {
                for (rec, done) in stored.into_iter().zip(waiting) {
                    let rec = Arc::new(rec);
                    // No live reader is fine: the record is retained for later ones.
                    let _ = live.send(rec.clone());
                    let _ = done.send(Ok(rec));
                }
            }
            Err(e) => {
                let e = ServiceError::from(e);
                for done in waiting {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: u32, n: usize) -> TelemetryRecord {
        TelemetryRecord {
            seq: 0,
            partition,
            partition_seq: 0,
            enqueued_ms: 1,
            device_id: format!("d{partition}"),
            module_id: None,
            properties: "{}".into(),
            body: n.to_string().into_bytes(),
        }
    }

    fn writer(store: &Arc<Store>) -> (TelemetryWriter, broadcast::Receiver<Arc<TelemetryRecord>>) {
        let (live, rx) = broadcast::channel(10_000);
        (TelemetryWriter::start(store.clone(), live), rx)
    }

    #[tokio::test]
    async fn every_caller_is_completed_in_order_with_its_own_record() {
        let store = Arc::new(Store::in_memory().unwrap());
        let (w, mut live) = writer(&store);
        // Many appends queued at once, so that they are committed in several batches.
        let pending: Vec<(u32, usize, Committed)> = (0..2000)
            .map(|n| {
                let p = (n % 3) as u32;
                (p, n, w.append(rec(p, n)))
            })
            .collect();
        let mut expected_seq = [0i64; 3];
        let mut last_global = 0;
        for (p, n, c) in pending {
            let r = c.await.unwrap();
            assert_eq!(
                r.body,
                n.to_string().into_bytes(),
                "each caller gets its record"
            );
            assert_eq!(r.partition_seq, expected_seq[p as usize]);
            expected_seq[p as usize] += 1;
            assert!(r.seq > last_global, "commit order is append order");
            last_global = r.seq;
            // Live readers see the records in the same order.
            assert_eq!(live.recv().await.unwrap().seq, r.seq);
        }
        assert_eq!(store.telemetry_read(1, 0, 10_000).unwrap().len(), 667);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_caller_of_its_batch_and_the_writer_goes_on() {
        let store = Arc::new(Store::in_memory().unwrap());
        let (w, _live) = writer(&store);
        store.break_telemetry_for_test();
        let failed: Vec<Committed> = (0..10).map(|n| w.append(rec(0, n))).collect();
        for c in failed {
            let e = c.await.unwrap_err();
            assert_eq!(e.code, ErrorCode::ServerError, "{}", e.message);
        }
        // Still serving: the next append is answered (with the same failure).
        assert!(w.append(rec(0, 10)).await.is_err());
    }

    #[tokio::test]
    async fn sequence_numbers_continue_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let store = Arc::new(Store::open(&path).unwrap());
            let (w, _live) = writer(&store);
            for n in 0..3 {
                w.append(rec(0, n)).await.unwrap();
            }
            w.append(rec(2, 0)).await.unwrap();
        }
        // Dropping the writer closed the store: it opens again.
        let store = Arc::new(Store::open(&path).unwrap());
        let (w, _live) = writer(&store);
        assert_eq!(w.append(rec(0, 3)).await.unwrap().partition_seq, 3);
        assert_eq!(w.append(rec(2, 1)).await.unwrap().partition_seq, 1);
        assert_eq!(w.append(rec(1, 0)).await.unwrap().partition_seq, 0);
        // After retention emptied a partition, numbering continues past what it held.
        drop(w);
        store.telemetry_prune(i64::MAX, u64::MAX, 100).unwrap();
        let (w, _live) = writer(&store);
        assert_eq!(w.append(rec(0, 4)).await.unwrap().partition_seq, 4);
    }
}
