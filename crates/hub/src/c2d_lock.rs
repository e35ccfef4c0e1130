//! Cloud-to-device messages a device received over HTTPS: each is locked (invisible to
//! other receives) until the device completes, rejects or abandons it with the lock token, or
//! the lock times out and the message is offered again (without counting a delivery, as
//! Azure does: iot-hub-devguide-messages-c2d, "The cloud-to-device message life cycle").
//! Locks live in memory: after a restart every message is visible again, as after a timeout.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use super::c2d::C2dDelivery;
use super::state::HubState;
use iothub::error::{ErrorCode, ServiceError};

/// A held lock: which message, whose, and until when.
struct Lock {
    seq: i64,
    device_id: String,
    until: Instant,
}

/// The locks by token.
#[derive(Default)]
pub struct C2dLocks(Mutex<HashMap<String, Lock>>);

impl C2dLocks {
    /// The table without its expired locks.
    fn live(&self) -> MutexGuard<'_, HashMap<String, Lock>> {
        let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        locks.retain(|_, l| l.until > now);
        locks
    }

    /// The messages locked right now.
    pub(crate) fn locked(&self) -> HashSet<i64> {
        self.live().values().map(|l| l.seq).collect()
    }
}

/// A message received over HTTPS with the token that settles it.
#[derive(Debug)]
pub struct LockedC2d {
    pub lock_token: String,
    pub message: C2dDelivery,
}

/// How a device settles a message it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    Complete,
    Reject,
    Abandon,
}

impl HubState {
    /// Locks and returns the device's next message, or None when every queued message is
    /// locked or the queue is empty. Choosing and locking happen under one lock, so two
    /// receives never get the same message.
    pub fn c2d_receive(&self, device_id: &str) -> Result<Option<LockedC2d>, ServiceError> {
        let mut locks = self.c2d_locks.live();
        let taken: HashSet<i64> = locks.values().map(|l| l.seq).collect();
        let next = self
            .c2d_deliverable_except(device_id, |seq| taken.contains(&seq))?
            .into_iter()
            .next();
        let Some(message) = next else {
            return Ok(None);
        };
        let lock_token = uuid::Uuid::new_v4().to_string();
        locks.insert(
            lock_token.clone(),
            Lock {
                seq: message.seq,
                device_id: device_id.to_string(),
                until: Instant::now() + self.settings.c2d_lock_timeout,
            },
        );
        Ok(Some(LockedC2d {
            lock_token,
            message,
        }))
    }

    /// Settles the message `lock_token` locks. The token must be one of this device's,
    /// still held: a settled or expired one is 412 DeviceMessageLockLost.
    pub fn c2d_settle_locked(
        &self,
        device_id: &str,
        lock_token: &str,
        how: Settlement,
    ) -> Result<(), ServiceError> {
        // The lock table stays held until the message is settled, so no receive can
        // lock it again in between.
        let mut locks = self.c2d_locks.live();
        let seq = match locks.get(lock_token) {
            Some(l) if l.device_id == device_id => l.seq,
            _ => {
                return Err(ServiceError::new(
                    ErrorCode::DeviceMessageLockLost,
                    format!(
                        "The lock token '{}' holds no message of device {device_id}: the message was settled already or its lock expired; receive it again.",
                        lock_token.escape_debug()
                    ),
                ));
            }
        };
        locks.remove(lock_token);
        match how {
            Settlement::Complete => self.c2d_complete(seq).map(|_| ()),
            Settlement::Reject => self.c2d_reject(seq).map(|_| ()),
            Settlement::Abandon => self.c2d_abandon(seq),
        }
    }
}
