//! DPS rows: enrollments (individual and group, as their JSON documents) and the last
//! registration of each registration id (its operation id and result), so that a status
//! poll and a re-registration survive a restart of the hub.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dps_enrollments (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS dps_registrations (
    registration_id TEXT PRIMARY KEY,
    operation_id TEXT NOT NULL,
    result TEXT NOT NULL
);
";

/// Which table of enrollments a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollmentKind {
    Individual,
    Group,
}

impl EnrollmentKind {
    fn as_str(self) -> &'static str {
        match self {
            EnrollmentKind::Individual => "individual",
            EnrollmentKind::Group => "group",
        }
    }
}

/// The stored result of a registration id's last registration.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrationRecord {
    pub operation_id: String,
    /// RegistrationOperationStatus JSON, owned by the hub's DPS module.
    pub result: String,
}

impl Store {
    /// Creates or replaces an enrollment document in one transaction: `change` sees the
    /// stored document (if any) and returns the new one; its error writes nothing.
    pub fn enrollment_modify<E: From<StoreError>>(
        &self,
        kind: EnrollmentKind,
        id: &str,
        change: impl FnOnce(Option<String>) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let current = tx
            .query_row(
                "SELECT document FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)?;
        let document = change(current)?;
        tx.execute(
            "INSERT INTO dps_enrollments (kind, id, document) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document",
            params![kind.as_str(), id, document],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(document)
    }

    pub fn enrollment_get(
        &self,
        kind: EnrollmentKind,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .read()
            .query_row(
                "SELECT document FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every enrollment document of a kind, by id.
    pub fn enrollments(&self, kind: EnrollmentKind) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached("SELECT document FROM dps_enrollments WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![kind.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes an enrollment if `check` accepts the stored document (an If-Match test), in
    /// one transaction with the check. False if there was no such enrollment.
    pub fn enrollment_delete<E: From<StoreError>>(
        &self,
        kind: EnrollmentKind,
        id: &str,
        check: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let current: Option<String> = tx
            .query_row(
                "SELECT document FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some(current) = current else {
            return Ok(false);
        };
        check(&current)?;
        tx.execute(
            "DELETE FROM dps_enrollments WHERE kind = ?1 AND id = ?2",
            params![kind.as_str(), id],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(true)
    }

    pub fn registration_put(
        &self,
        registration_id: &str,
        rec: &RegistrationRecord,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO dps_registrations (registration_id, operation_id, result) VALUES (?1, ?2, ?3)
             ON CONFLICT (registration_id) DO UPDATE SET operation_id = excluded.operation_id, result = excluded.result",
            params![registration_id, rec.operation_id, rec.result],
        )?;
        Ok(())
    }

    pub fn registration_get(
        &self,
        registration_id: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        Ok(self
            .read()
            .query_row(
                "SELECT operation_id, result FROM dps_registrations WHERE registration_id = ?1",
                params![registration_id],
                |r| {
                    Ok(RegistrationRecord {
                        operation_id: r.get(0)?,
                        result: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollments_by_kind_and_registrations() {
        let s = Store::in_memory().unwrap();
        let put = |kind, doc: &str| {
            s.enrollment_modify::<StoreError>(kind, "a", |_| Ok(doc.to_string()))
                .unwrap()
        };
        put(EnrollmentKind::Individual, "{\"v\":1}");
        put(EnrollmentKind::Group, "{\"g\":1}");
        let refused = s.enrollment_modify(EnrollmentKind::Individual, "a", |old| {
            assert_eq!(old.as_deref(), Some("{\"v\":1}"));
            Err(StoreError::Locked("x".into()))
        });
        assert!(refused.is_err());
        put(EnrollmentKind::Individual, "{\"v\":2}");
        assert_eq!(
            s.enrollment_get(EnrollmentKind::Individual, "a").unwrap(),
            Some("{\"v\":2}".into())
        );
        assert_eq!(s.enrollments(EnrollmentKind::Group).unwrap(), ["{\"g\":1}"]);
        let refuse = |_: &str| Err(StoreError::Locked("no".into()));
        assert!(
            s.enrollment_delete(EnrollmentKind::Group, "a", refuse)
                .is_err()
        );
        let accept = |_: &str| Ok::<(), StoreError>(());
        assert!(
            s.enrollment_delete(EnrollmentKind::Group, "a", accept)
                .unwrap()
        );
        assert!(
            !s.enrollment_delete(EnrollmentKind::Group, "a", accept)
                .unwrap()
        );
        assert_eq!(s.enrollments(EnrollmentKind::Individual).unwrap().len(), 1);

        assert_eq!(s.registration_get("r").unwrap(), None);
        let rec = RegistrationRecord {
            operation_id: "op".into(),
            result: "{}".into(),
        };
        s.registration_put("r", &rec).unwrap();
        assert_eq!(s.registration_get("r").unwrap(), Some(rec));
    }
}
