//! CA certificate rows: the certificates registered on the hub for X.509 CA device
//! authentication, by name, as the PEM they were registered with.

use rusqlite::params;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ca_certificates (
    name TEXT PRIMARY KEY,
    pem TEXT NOT NULL,
    added_ms INTEGER NOT NULL
);
";

/// A registered CA certificate as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CaCertificateRow {
    pub name: String,
    /// One certificate, PEM; checked by the hub's x509 module before it is stored.
    pub pem: String,
    pub added_ms: i64,
}

impl Store {
    /// Registers a CA certificate under `name`, replacing one of the same name.
    pub fn ca_certificate_put(&self, row: &CaCertificateRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO ca_certificates (name, pem, added_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET pem = excluded.pem, added_ms = excluded.added_ms",
            params![row.name, row.pem, row.added_ms],
        )?;
        Ok(())
    }

    /// Every registered CA certificate, by name.
    pub fn ca_certificates(&self) -> Result<Vec<CaCertificateRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT name, pem, added_ms FROM ca_certificates ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(CaCertificateRow {
                name: r.get(0)?,
                pem: r.get(1)?,
                added_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a CA certificate; false if none had that name.
    pub fn ca_certificate_delete(&self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM ca_certificates WHERE name = ?1", [name])?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_certificates_are_put_listed_replaced_and_deleted() {
        let s = Store::in_memory().unwrap();
        let row = |name: &str, pem: &str| CaCertificateRow {
            name: name.into(),
            pem: pem.into(),
            added_ms: 1,
        };
        s.ca_certificate_put(&row("b", "pem-b")).unwrap();
        s.ca_certificate_put(&row("a", "pem-a")).unwrap();
        s.ca_certificate_put(&row("b", "pem-b2")).unwrap();
        let all = s.ca_certificates().unwrap();
        assert_eq!(all, vec![row("a", "pem-a"), row("b", "pem-b2")]);
        assert!(s.ca_certificate_delete("a").unwrap());
        assert!(!s.ca_certificate_delete("a").unwrap());
        assert_eq!(s.ca_certificates().unwrap().len(), 1);
    }
}
