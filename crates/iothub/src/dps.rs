//! The Device Provisioning Service's device protocol and its enrollment documents: the MQTT
//! topics and username, the registration request and operation status JSON, individual and
//! group enrollments, and the SAS resource a registration signs. Shared by the local hub's DPS
//! endpoints and the device side.

pub mod enrollment;
pub mod registration;
pub mod topic;
pub mod x509_attestation;

/// The key name DPS SAS tokens carry (`skn=registration`); the Node and C SDKs send it for
/// every symmetric-key registration, Python sends none.
pub const REGISTRATION_KEY_NAME: &str = "registration";

/// The resource a registration's SAS token signs: `{idScope}/registrations/{registrationId}`
/// (raw; `sas::generate_token` encodes it).
pub fn registration_resource(id_scope: &str, registration_id: &str) -> String {
    format!("{id_scope}/registrations/{registration_id}")
}

/// Is `id` a registration id DPS accepts: 1..=128 characters of letters, digits and
/// `- . _ :`, ending in a letter, digit or `-` (the DPS enrollment documentation's rule).
pub fn validate_registration_id(id: &str) -> Result<(), String> {
    validate_id(id, "registration id")
}

/// Enrollment group ids follow the registration id rule.
pub fn validate_enrollment_group_id(id: &str) -> Result<(), String> {
    validate_id(id, "enrollment group id")
}

fn validate_id(id: &str, what: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if id.is_empty() || id.len() > 128 {
        return Err(format!(
            "the {what} \"{id}\" must be 1 to 128 characters long"
        ));
    }
    if !id.chars().all(valid_char) || id.ends_with(['.', '_', ':']) {
        return Err(format!(
            "the {what} \"{id}\" may hold only letters, digits and - . _ : and must end in a letter, digit or -"
        ));
    }
    Ok(())
}

/// Is `scope` usable as an ID scope: 1..=64 letters and digits? (Azure's look like
/// `0ne00000A0A`; the scope is the first segment of usernames, paths and SAS resources,
/// so it must hold nothing that would split them.)
pub fn validate_id_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() || scope.len() > 64 || !scope.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the ID scope \"{scope}\" must be 1 to 64 letters and digits, like 0ne00000A0A"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_and_ids() {
        assert_eq!(
            registration_resource("0ne00000A0A", "dev-1"),
            "0ne00000A0A/registrations/dev-1"
        );
        for ok in ["dev-1", "a", "x.y_z:1", "Dev1", "dev-"] {
            assert!(validate_registration_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "dev.", "a b", "a/b", &"a".repeat(129)] {
            assert!(validate_registration_id(bad).is_err(), "{bad}");
        }
        let group = validate_enrollment_group_id("a b").unwrap_err();
        assert!(group.starts_with("the enrollment group id"), "{group}");
        assert!(validate_id_scope("0ne00000A0A").is_ok());
        for bad in ["", "0ne/1", "a-b", &"a".repeat(65)] {
            assert!(validate_id_scope(bad).is_err(), "{bad}");
        }
    }
}
