//! IoT Plug and Play digital twins over the stored device twin and model id: the view a
//! service reads and the JSON Patch it writes (`iothub::digital_twin` holds the rules).

use serde_json::Value;

use super::{HubState, bad_request, check_twin_etag};
use iothub::digital_twin::{desired_patch, digital_twin};
use iothub::error::ServiceError;
use iothub::twin::Section;

impl HubState {
    /// The digital twin of a device and the twin etag it was derived from.
    pub fn digital_twin(&self, device_id: &str) -> Result<(Value, String), ServiceError> {
        let id = self.load(device_id, None)?;
        let view = digital_twin(device_id, id.model_id.as_deref(), &id.twin);
        Ok((view, id.twin.etag()))
    }

    /// Applies a digital twin JSON Patch as one desired-properties update, checked against
    /// If-Match and the current twin in the same atomic step; returns the new twin etag.
    pub fn update_digital_twin(
        &self,
        device_id: &str,
        ops: &Value,
        if_match: Option<&str>,
    ) -> Result<String, ServiceError> {
        let key = (device_id.to_string(), None);
        let (id, _) = self.modify(
            device_id,
            None,
            |id| {
                check_twin_etag(&id.twin, if_match)?;
                let twin = &id.twin;
                let patch = desired_patch(ops, &twin.desired.properties, &twin.reported.properties)
                    .map_err(|e| bad_request(e.to_string()))?;
                let before = id.twin.version;
                id.twin
                    .patch(Section::Desired, &patch, HubState::now())
                    .map_err(|e| bad_request(e.to_string()))?;
                Ok((id.twin.version != before).then_some(patch))
            },
            |id, patch| {
                if let Some(patch) = patch {
                    self.notify_desired(&key, &id.twin, patch);
                }
            },
        )?;
        Ok(id.twin.etag())
    }
}
