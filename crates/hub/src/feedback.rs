//! The hub's C2D feedback queue: records are stored durably (in the store) and
//! handed out in batches to service receivers on `/messages/servicebound/feedback`.
//! This type only tracks what is in flight and wakes waiting receivers.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::state::HubState;
use super::store::FeedbackRow;
use iothub::error::ServiceError;

/// Most records in one feedback message (Azure batches up to 64).
pub const FEEDBACK_BATCH: usize = 64;

#[derive(Default)]
pub struct FeedbackQueue {
    pub(crate) arrived: Notify,
    in_flight: Mutex<HashSet<i64>>,
}

impl FeedbackQueue {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HubState {
    /// Takes the next batch of feedback records not already out with another
    /// receiver; they stay stored until `feedback_settled`.
    pub fn feedback_take(&self) -> Result<Vec<FeedbackRow>, ServiceError> {
        let mut in_flight = self.feedback.in_flight();
        let rows = self.store.feedback_pending(FEEDBACK_BATCH, &in_flight)?;
        in_flight.extend(rows.iter().map(|r| r.seq));
        Ok(rows)
    }

    /// A batch was settled: `delivered` removes it, otherwise it is offered again.
    pub fn feedback_settled(&self, seqs: &[i64], delivered: bool) -> Result<(), ServiceError> {
        let result = if delivered {
            self.store.feedback_remove(seqs)
        } else {
            Ok(())
        };
        let mut in_flight = self.feedback.in_flight();
        for s in seqs {
            in_flight.remove(s);
        }
        drop(in_flight);
        if !delivered {
            self.feedback.arrived.notify_waiters();
        }
        Ok(result?)
    }

    /// Waits until a feedback record may be available.
    pub async fn feedback_wait(&self) {
        self.feedback.arrived.notified().await
    }
}
