//! Cloud-to-device queues: one per device, bounded, with expiry and a maximum
//! delivery count. A message leaves the queue only when the device acknowledges
//! it (MQTT PUBACK), when it expires, or when it was delivered too often.

use std::collections::HashSet;

use chrono::Utc;

use super::sessions::SessionCommand;
use super::state::HubState;
use super::store::{C2dRecord, ServiceQueue};
use iothub::amqp_model::{AckMode, FeedbackRecord, FeedbackStatus};
use iothub::error::{ErrorCode, ServiceError};
use iothub::property_bag::{IOTHUB_ACK, MESSAGE_ID, PropertyBag};

/// A message ready to go to a device.
#[derive(Clone, Debug, PartialEq)]
pub struct C2dDelivery {
    pub seq: i64,
    pub properties: PropertyBag,
    pub body: Vec<u8>,
    pub enqueued_ms: i64,
    pub expiry_ms: i64,
    /// Explicit abandons so far (over HTTPS), or sends (MQTT, AMQP).
    pub delivery_count: u32,
}

/// Why a message left the queue without being completed (feedback status codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retired {
    Expired,
    DeliveryCountExceeded,
}

impl From<Retired> for FeedbackStatus {
    fn from(r: Retired) -> Self {
        match r {
            Retired::Expired => FeedbackStatus::Expired,
            Retired::DeliveryCountExceeded => FeedbackStatus::DeliveryCountExceeded,
        }
    }
}

fn bag_of(rec: &C2dRecord) -> PropertyBag {
    PropertyBag {
        entries: serde_json::from_str(&rec.properties).unwrap_or_default(),
    }
}

impl HubState {
    /// Queues a message for a device. `properties` holds system properties ("$.mid",
    /// "$.to", ...) and application properties as they will be delivered; `expiry_ms`
    /// None means the hub's default time to live.
    pub fn enqueue_c2d(
        &self,
        device_id: &str,
        mut properties: PropertyBag,
        body: Vec<u8>,
        expiry_ms: Option<i64>,
    ) -> Result<i64, ServiceError> {
        // The device must exist; unknown devices are refused, never queued.
        self.identity(device_id, None)?;
        let now = Utc::now().timestamp_millis();
        let ttl = self.settings.c2d_default_ttl.as_millis() as i64;
        if properties.get("$.to").is_none() {
            properties.set(
                "$.to",
                Some(format!("/devices/{device_id}/messages/devicebound")),
            );
        }
        let rec = C2dRecord {
            seq: 0,
            device_id: device_id.to_string(),
            properties: serde_json::to_string(&properties.entries).unwrap_or_default(),
            body,
            enqueued_ms: now,
            expiry_ms: expiry_ms.unwrap_or(now + ttl),
            delivery_count: 0,
        };
        let seq = self
            .store
            .c2d_push(&rec, self.settings.c2d_max_queue)?
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::DeviceMaximumQueueDepthExceeded,
                    format!(
                        "The queue of device {device_id} already holds {} messages.",
                        self.settings.c2d_max_queue
                    ),
                )
            })?;
        self.sessions
            .send(&(device_id.to_string(), None), SessionCommand::C2dWaiting);
        Ok(seq)
    }

    /// Messages that may be delivered now, in order, skipping those in flight and those
    /// locked by an HTTPS receive. Expired and over-delivered messages are retired on the way.
    pub fn c2d_deliverable(
        &self,
        device_id: &str,
        in_flight: &HashSet<i64>,
    ) -> Result<Vec<C2dDelivery>, ServiceError> {
        let locked = self.c2d_locks.locked();
        self.c2d_deliverable_except(device_id, |seq| {
            in_flight.contains(&seq) || locked.contains(&seq)
        })
    }

    /// `c2d_deliverable` with the caller deciding what is taken.
    pub(crate) fn c2d_deliverable_except(
        &self,
        device_id: &str,
        taken: impl Fn(i64) -> bool,
    ) -> Result<Vec<C2dDelivery>, ServiceError> {
        let now = Utc::now().timestamp_millis();
        let mut out = Vec::new();
        for rec in self.store.c2d_queue(device_id)? {
            if taken(rec.seq) {
                continue;
            }
            let retired = if rec.expiry_ms <= now {
                Some(Retired::Expired)
            } else if rec.delivery_count >= self.settings.c2d_max_delivery_count {
                Some(Retired::DeliveryCountExceeded)
            } else {
                None
            };
            if let Some(why) = retired {
                if self.store.c2d_remove(rec.seq)? {
                    self.record_feedback(&rec, why.into())?;
                }
                tracing::info!(
                    device = device_id,
                    seq = rec.seq,
                    ?why,
                    "c2d message retired"
                );
                continue;
            }
            let entries: Vec<(String, Option<String>)> =
                serde_json::from_str(&rec.properties).unwrap_or_default();
            out.push(C2dDelivery {
                seq: rec.seq,
                properties: PropertyBag { entries },
                body: rec.body,
                enqueued_ms: rec.enqueued_ms,
                expiry_ms: rec.expiry_ms,
                delivery_count: rec.delivery_count,
            });
        }
        Ok(out)
    }

    /// Counts a delivery attempt (call when the message is put on the wire).
    pub fn c2d_sent(&self, seq: i64) -> Result<(), ServiceError> {
        self.store.c2d_delivered(seq)?;
        Ok(())
    }

    /// The device acknowledged the message: it leaves the queue (and positive or
    /// full acknowledgement produces a feedback record).
    pub fn c2d_complete(&self, seq: i64) -> Result<bool, ServiceError> {
        self.c2d_settle(seq, FeedbackStatus::Success)
    }

    /// The device rejected the message: it is dead-lettered (negative or full
    /// acknowledgement produces a `Rejected` feedback record).
    pub fn c2d_reject(&self, seq: i64) -> Result<bool, ServiceError> {
        self.c2d_settle(seq, FeedbackStatus::Rejected)
    }

    /// The message leaves the queue with `outcome`; false if it had left already.
    fn c2d_settle(&self, seq: i64, outcome: FeedbackStatus) -> Result<bool, ServiceError> {
        let rec = self.store.c2d_get(seq)?;
        let removed = self.store.c2d_remove(seq)?;
        if let (true, Some(rec)) = (removed, rec) {
            self.record_feedback(&rec, outcome)?;
        }
        Ok(removed)
    }

    /// The device abandoned the message: it is counted as delivered once more and
    /// offered again, or dead-lettered once it reached the maximum delivery count
    /// (Azure counts explicit abandons only).
    pub fn c2d_abandon(&self, seq: i64) -> Result<(), ServiceError> {
        let Some(count) = self.store.c2d_delivered(seq)? else {
            return Ok(());
        };
        if count >= self.settings.c2d_max_delivery_count {
            self.c2d_settle(seq, Retired::DeliveryCountExceeded.into())?;
        } else if let Some(rec) = self.store.c2d_get(seq)? {
            self.sessions
                .send(&(rec.device_id, None), SessionCommand::C2dWaiting);
        }
        Ok(())
    }

    /// Empties a device's queue (DELETE /devices/{id}/commands); messages that asked
    /// for negative or full acknowledgement get a `Purged` feedback record.
    pub fn c2d_purge(&self, device_id: &str) -> Result<u64, ServiceError> {
        self.identity(device_id, None)?;
        let queued = self.store.c2d_queue(device_id)?;
        let n = self.store.c2d_purge(device_id)?;
        for rec in &queued {
            self.record_feedback(rec, FeedbackStatus::Purged)?;
        }
        Ok(n)
    }

    /// Stores a feedback record if the message's `iothub-ack` asks for this outcome.
    fn record_feedback(&self, rec: &C2dRecord, status: FeedbackStatus) -> Result<(), ServiceError> {
        let bag = bag_of(rec);
        if !AckMode::parse(bag.get(IOTHUB_ACK)).wants(status) {
            return Ok(());
        }
        let generation = self
            .identity(&rec.device_id, None)
            .map(|id| id.device.generation_id)
            .unwrap_or_default();
        let record = FeedbackRecord::new(
            bag.get(MESSAGE_ID).unwrap_or_default(),
            Utc::now(),
            status,
            &rec.device_id,
            &generation,
        );
        let json = serde_json::to_string(&record).unwrap_or_default();
        self.queue_push(ServiceQueue::Feedback, &json)
    }
}
