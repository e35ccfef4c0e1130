//! Device-to-cloud telemetry: stamped with the sender's identity, stored durably
//! before the device is acknowledged, fanned out to live readers, and retained
//! within the configured age and count.

use serde::{Deserialize, Serialize};

use super::registry::AuthMethod;
use super::sessions::IdentityKey;
use super::state::HubState;
use super::store::TelemetryRecord;
use super::telemetry_writer::Committed;
use iothub::error::{ErrorCode, ServiceError};
use iothub::property_bag::PropertyBag;

/// What is kept of a message besides its body: the device's property bag as sent
/// and the hub's stamp of who sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProperties {
    pub bag: Vec<(String, Option<String>)>,
    pub auth_method: String,
    pub generation_id: String,
}

/// The partition a device's messages always land in: FNV-1a of the device id, so the
/// mapping is stable across restarts and builds (std's hasher is neither).
pub fn partition_of(device_id: &str, partitions: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in device_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions.max(1)
}

impl HubState {
    /// Queues one telemetry message for the store, or refuses it at once (too large).
    /// When the returned future resolves Ok, the message is durable and the device may be
    /// acknowledged; live readers have it by then.
    pub fn ingest_telemetry(
        &self,
        key: &IdentityKey,
        auth: &AuthMethod,
        bag: &PropertyBag,
        body: &[u8],
    ) -> Result<Committed, ServiceError> {
        // Azure counts the properties toward the size, not only the body.
        let size = body.len() + bag.counted_bytes();
        if size > self.settings.max_d2c_bytes {
            return Err(ServiceError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "The message is {size} bytes with its properties; the limit is {} bytes.",
                    self.settings.max_d2c_bytes
                ),
            ));
        }
        let props = StoredProperties {
            bag: bag.entries.clone(),
            auth_method: auth.to_annotation(),
            generation_id: auth.generation_id.clone(),
        };
        let rec = TelemetryRecord {
            seq: 0,
            partition: partition_of(&key.0, self.settings.partitions),
            partition_seq: 0,
            enqueued_ms: HubState::now().timestamp_millis(),
            device_id: key.0.clone(),
            module_id: key.1.clone(),
            properties: serde_json::to_string(&props).unwrap_or_default(),
            body: body.to_vec(),
        };
        Ok(self.telemetry_writer.append(rec))
    }

    /// Applies the retention limits in bounded steps; run periodically by the hub, off the
    /// async workers. Other store users get their turn between steps.
    pub fn prune_telemetry(&self) -> Result<u64, ServiceError> {
        let age = chrono::Duration::from_std(self.settings.telemetry_max_age)
            .unwrap_or(chrono::Duration::days(1));
        let floor = (HubState::now() - age).timestamp_millis();
        let mut total = 0;
        loop {
            let n = self.store.telemetry_prune(
                floor,
                self.settings.telemetry_max_count,
                RETENTION_STEP,
            )?;
            total += n;
            if n < RETENTION_STEP as u64 {
                return Ok(total);
            }
        }
    }
}

/// Messages one retention step deletes at most (per limit): a step holds the store for
/// a few milliseconds, not seconds.
const RETENTION_STEP: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("device-1", 4), partition_of("device-1", 4));
        let used: std::collections::HashSet<u32> = (0..64)
            .map(|i| partition_of(&format!("dev{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
        assert_eq!(partition_of("x", 0), 0);
        // Pinned so that a change of the function (which would move retained
        // telemetry between partitions after an upgrade) is noticed.
        assert_eq!(partition_of("device-1", 4), 1);
    }
}
