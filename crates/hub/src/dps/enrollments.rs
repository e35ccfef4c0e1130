//! Enrollment management over the store: create or replace (with If-Match, timestamps,
//! etags and keys generated when none are given), read, list and delete. Used by the
//! service REST API and by `hubtui hub enrollment`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::x509_enrollment;
use crate::policies::random_key;
use crate::registry::etag_matches;
use crate::store::{EnrollmentKind, Store};
use iothub::device::format_time;
use iothub::dps::enrollment::{EnrollmentGroup, EnrollmentSettings, IndividualEnrollment};
use iothub::error::{ErrorCode, ServiceError};

/// An enrollment document kind: individual or group.
pub trait EnrollmentDocument: Serialize + DeserializeOwned {
    const KIND: EnrollmentKind;
    /// "enrollment" or "enrollment group", for messages.
    const NAME: &'static str;
    fn from_request(id: &str, body: &Value) -> Result<Self, ServiceError>;
    fn settings_mut(&mut self) -> &mut EnrollmentSettings;
    /// The registration id an individual enrollment's certificate must name; none for a group.
    fn registration_id(&self) -> Option<&str>;
}

fn bad_request(e: impl ToString) -> ServiceError {
    ServiceError::new(ErrorCode::ArgumentInvalid, e.to_string())
}

impl EnrollmentDocument for IndividualEnrollment {
    const KIND: EnrollmentKind = EnrollmentKind::Individual;
    const NAME: &'static str = "enrollment";
    fn from_request(id: &str, body: &Value) -> Result<Self, ServiceError> {
        iothub::dps::validate_registration_id(id).map_err(bad_request)?;
        IndividualEnrollment::from_request(id, body).map_err(bad_request)
    }
    fn settings_mut(&mut self) -> &mut EnrollmentSettings {
        &mut self.settings
    }
    fn registration_id(&self) -> Option<&str> {
        Some(&self.registration_id)
    }
}

impl EnrollmentDocument for EnrollmentGroup {
    const KIND: EnrollmentKind = EnrollmentKind::Group;
    const NAME: &'static str = "enrollment group";
    fn from_request(id: &str, body: &Value) -> Result<Self, ServiceError> {
        iothub::dps::validate_enrollment_group_id(id).map_err(bad_request)?;
        EnrollmentGroup::from_request(id, body).map_err(bad_request)
    }
    fn settings_mut(&mut self) -> &mut EnrollmentSettings {
        &mut self.settings
    }
    fn registration_id(&self) -> Option<&str> {
        None
    }
}

fn not_found<T: EnrollmentDocument>(id: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::DeviceNotFound,
        format!("The {} '{id}' does not exist.", T::NAME),
    )
}

fn decode<T: EnrollmentDocument>(doc: &str) -> Result<T, ServiceError> {
    serde_json::from_str(doc).map_err(|e| {
        ServiceError::new(
            ErrorCode::ServerError,
            format!("A stored {} is unreadable: {e}.", T::NAME),
        )
    })
}

/// Creates or replaces an enrollment. If-Match (other than `*`) must name the stored etag.
/// Missing keys are generated; the creation time is kept across replacements.
pub fn put<T: EnrollmentDocument>(
    store: &Store,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<T, ServiceError> {
    let mut doc = T::from_request(id, body)?;
    let registration_id = doc.registration_id().map(str::to_owned);
    if let Some(x509) = &mut doc.settings_mut().attestation.x509 {
        x509_enrollment::complete(store, x509, registration_id.as_deref())?;
    }
    let now = format_time(chrono::Utc::now());
    let stored = store.enrollment_modify(T::KIND, id, |current| {
        let previous = current.as_deref().map(decode::<T>).transpose()?;
        let mut previous = previous;
        let old = previous.as_mut().map(|p| p.settings_mut().clone());
        if let Some(old) = &old {
            check_etag::<T>(id, if_match, old.etag.as_deref())?;
        }
        let settings = doc.settings_mut();
        if settings.attestation.is_symmetric_key() {
            let keys = &mut settings.attestation.symmetric_key;
            for k in [&mut keys.primary_key, &mut keys.secondary_key] {
                if k.as_deref().is_none_or(str::is_empty) {
                    *k = Some(random_key());
                }
            }
        } else {
            settings.attestation.symmetric_key = Default::default();
        }
        settings.created_date_time_utc = old
            .and_then(|o| o.created_date_time_utc)
            .or_else(|| Some(now.clone()));
        settings.last_updated_date_time_utc = Some(now.clone());
        settings.etag = Some(uuid::Uuid::new_v4().simple().to_string());
        serde_json::to_string(&doc).map_err(bad_request)
    })?;
    decode(&stored)
}

pub fn get<T: EnrollmentDocument>(store: &Store, id: &str) -> Result<T, ServiceError> {
    let doc = store
        .enrollment_get(T::KIND, id)?
        .ok_or_else(|| not_found::<T>(id))?;
    decode(&doc)
}

pub fn list<T: EnrollmentDocument>(store: &Store) -> Result<Vec<T>, ServiceError> {
    store
        .enrollments(T::KIND)?
        .iter()
        .map(|d| decode(d))
        .collect()
}

/// If-Match (other than `*`) must name the stored etag.
fn check_etag<T: EnrollmentDocument>(
    id: &str,
    if_match: Option<&str>,
    stored: Option<&str>,
) -> Result<(), ServiceError> {
    match if_match {
        Some(tag) if !etag_matches(Some(tag), stored.unwrap_or("")) => Err(ServiceError::new(
            ErrorCode::PreconditionFailed,
            format!(
                "Precondition failed: the etag {tag} does not match the {} '{id}'.",
                T::NAME
            ),
        )),
        _ => Ok(()),
    }
}

/// Deletes an enrollment; If-Match (other than `*`) must name the stored etag, checked
/// in the same transaction as the delete.
pub fn delete<T: EnrollmentDocument>(
    store: &Store,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ServiceError> {
    let deleted = store.enrollment_delete(T::KIND, id, |current| {
        let mut doc = decode::<T>(current)?;
        check_etag::<T>(id, if_match, doc.settings_mut().etag.as_deref())
    })?;
    if deleted {
        Ok(())
    } else {
        Err(not_found::<T>(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_generates_keys_keeps_creation_and_checks_if_match() {
        let store = Store::in_memory().unwrap();
        let first: IndividualEnrollment = put(&store, "dev-1", &json!({}), None).unwrap();
        let keys = &first.settings.attestation.symmetric_key;
        assert_eq!(keys.present().count(), 2);
        let etag = first.settings.etag.clone().unwrap();
        let stale = put::<IndividualEnrollment>(&store, "dev-1", &json!({}), Some("\"nope\""));
        assert_eq!(stale.unwrap_err().code, ErrorCode::PreconditionFailed);
        let second: IndividualEnrollment = put(
            &store,
            "dev-1",
            &json!({"provisioningStatus": "disabled"}),
            Some(&format!("\"{etag}\"")),
        )
        .unwrap();
        assert!(!second.settings.enabled());
        assert_eq!(
            second.settings.created_date_time_utc,
            first.settings.created_date_time_utc
        );
        assert_ne!(second.settings.etag, first.settings.etag);
        assert_eq!(list::<IndividualEnrollment>(&store).unwrap().len(), 1);
        assert!(list::<EnrollmentGroup>(&store).unwrap().is_empty());
        let stale = delete::<IndividualEnrollment>(&store, "dev-1", Some("\"nope\""));
        assert_eq!(stale.unwrap_err().code, ErrorCode::PreconditionFailed);
        assert!(get::<IndividualEnrollment>(&store, "dev-1").is_ok(), "kept");
        let etag = second.settings.etag.clone().unwrap();
        delete::<IndividualEnrollment>(&store, "dev-1", Some(&format!("\"{etag}\""))).unwrap();
        let gone = get::<IndividualEnrollment>(&store, "dev-1").unwrap_err();
        assert_eq!(gone.code.http_status(), 404);
        let bad = put::<EnrollmentGroup>(&store, "bad id", &json!({}), None).unwrap_err();
        assert_eq!(bad.code, ErrorCode::ArgumentInvalid);
    }
}
