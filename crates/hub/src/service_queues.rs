//! The queues the hub keeps for services: C2D feedback and file upload notifications.
//! Records are stored durably (in the store) and handed out to service receivers on
//! `/messages/serviceBound/feedback` and `/messages/serviceBound/filenotifications`;
//! this type only tracks what is in flight and wakes waiting receivers.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::state::HubState;
use super::store::{QueuedRecord, ServiceQueue};
use iothub::error::ServiceError;

/// Most records in one feedback message (Azure batches up to 64).
pub const FEEDBACK_BATCH: usize = 64;

#[derive(Default)]
pub struct QueueState {
    pub(crate) arrived: Notify,
    in_flight: Mutex<HashSet<i64>>,
}

impl QueueState {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Both queues' in-flight state.
#[derive(Default)]
pub struct ServiceQueues {
    feedback: QueueState,
    file_notifications: QueueState,
}

impl ServiceQueues {
    pub fn get(&self, queue: ServiceQueue) -> &QueueState {
        match queue {
            ServiceQueue::Feedback => &self.feedback,
            ServiceQueue::FileNotifications => &self.file_notifications,
        }
    }
}

impl HubState {
    /// Stores a record and wakes the receivers waiting on its queue.
    pub fn queue_push(&self, queue: ServiceQueue, record: &str) -> Result<(), ServiceError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.store.queue_push(queue, record, now)?;
        self.queues.get(queue).arrived.notify_waiters();
        Ok(())
    }

    /// Takes the next `batch` records not already out with another receiver; they stay
    /// stored until `queue_settled`.
    pub fn queue_take(
        &self,
        queue: ServiceQueue,
        batch: usize,
    ) -> Result<Vec<QueuedRecord>, ServiceError> {
        let mut in_flight = self.queues.get(queue).in_flight();
        let rows = self.store.queue_pending(queue, batch, &in_flight)?;
        in_flight.extend(rows.iter().map(|r| r.seq));
        Ok(rows)
    }

    /// Records were settled: `delivered` removes them, otherwise they are offered again.
    pub fn queue_settled(
        &self,
        queue: ServiceQueue,
        seqs: &[i64],
        delivered: bool,
    ) -> Result<(), ServiceError> {
        let result = if delivered {
            self.store.queue_remove(queue, seqs)
        } else {
            Ok(())
        };
        let state = self.queues.get(queue);
        let mut in_flight = state.in_flight();
        for s in seqs {
            in_flight.remove(s);
        }
        drop(in_flight);
        if !delivered {
            state.arrived.notify_waiters();
        }
        Ok(result?)
    }
}
