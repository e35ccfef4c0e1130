//! Blob store rows: containers, committed blobs (each pointing at its own data
//! file, written and synced before the row is), and uncommitted blocks. A blob is
//! visible exactly when its row is: the row is the commit point.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blob_containers (
    name TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    props TEXT NOT NULL,
    PRIMARY KEY (container, name)
);
CREATE TABLE IF NOT EXISTS blob_blocks (
    container TEXT NOT NULL,
    blob TEXT NOT NULL,
    block_id TEXT NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (container, blob, block_id)
);
";

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRow {
    pub name: String,
    pub etag: String,
    pub modified_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlobRow {
    pub container: String,
    pub name: String,
    /// The data file's name in the blob data directory.
    pub file: String,
    pub size: u64,
    pub etag: String,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// JSON of the blob's HTTP properties and metadata, owned by the blob module.
    pub props: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockRow {
    pub block_id: String,
    pub file: String,
    pub size: u64,
}

/// Why a blob write was not applied.
#[derive(Debug)]
pub enum BlobWriteError<E> {
    NoContainer,
    /// The caller's check of the current row refused.
    Refused(E),
    Store(StoreError),
}

impl<E> From<rusqlite::Error> for BlobWriteError<E> {
    fn from(e: rusqlite::Error) -> Self {
        BlobWriteError::Store(e.into())
    }
}

const BLOB_COLUMNS: &str = "container, name, file, size, etag, created_ms, modified_ms, props";

fn blob_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlobRow> {
    Ok(BlobRow {
        container: r.get(0)?,
        name: r.get(1)?,
        file: r.get(2)?,
        size: r.get::<_, i64>(3)?.max(0) as u64,
        etag: r.get(4)?,
        created_ms: r.get(5)?,
        modified_ms: r.get(6)?,
        props: r.get(7)?,
    })
}

impl Store {
    /// Creates a container; false if it exists.
    pub fn container_create(&self, row: &ContainerRow) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT INTO blob_containers (name, etag, modified_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![row.name, row.etag, row.modified_ms],
        )?;
        Ok(n > 0)
    }

    pub fn container_get(&self, name: &str) -> Result<Option<ContainerRow>, StoreError> {
        Ok(self
            .read()
            .query_row(
                "SELECT name, etag, modified_ms FROM blob_containers WHERE name = ?1",
                [name],
                |r| {
                    Ok(ContainerRow {
                        name: r.get(0)?,
                        etag: r.get(1)?,
                        modified_ms: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Containers from `start` (inclusive) whose names begin with `prefix`, by name.
    pub fn containers_from(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<Vec<ContainerRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT name, etag, modified_ms FROM blob_containers
             WHERE name >= ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![start.max(prefix), prefix, limit as i64], |r| {
            Ok(ContainerRow {
                name: r.get(0)?,
                etag: r.get(1)?,
                modified_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a container with its blobs and blocks; the data files to remove, or
    /// None if there was no such container.
    pub fn container_delete(&self, name: &str) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if tx.execute("DELETE FROM blob_containers WHERE name = ?1", [name])? == 0 {
            return Ok(None);
        }
        let mut files = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT file FROM blobs WHERE container = ?1
                 UNION ALL SELECT file FROM blob_blocks WHERE container = ?1",
            )?;
            for f in stmt.query_map([name], |r| r.get::<_, String>(0))? {
                files.push(f?);
            }
        }
        tx.execute("DELETE FROM blobs WHERE container = ?1", [name])?;
        tx.execute("DELETE FROM blob_blocks WHERE container = ?1", [name])?;
        tx.commit()?;
        Ok(Some(files))
    }

    pub fn blob_get(&self, container: &str, name: &str) -> Result<Option<BlobRow>, StoreError> {
        Ok(self
            .read()
            .query_row(
                &format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE container = ?1 AND name = ?2"),
                [container, name],
                blob_row,
            )
            .optional()?)
    }

    /// Blobs of `container` from `start` (inclusive) whose names begin with `prefix`.
    pub fn blobs_from(
        &self,
        container: &str,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<Vec<BlobRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {BLOB_COLUMNS} FROM blobs WHERE container = ?1 AND name >= ?2
             AND substr(name, 1, length(?3)) = ?3 ORDER BY name LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![container, start.max(prefix), prefix, limit as i64],
            blob_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records `row` as the blob's committed state in one transaction, after `check`
    /// accepted the current row (the compare-and-set of conditional requests).
    /// Removes the blob's uncommitted blocks. Returns the files no longer referenced.
    pub fn blob_commit<E>(
        &self,
        row: &BlobRow,
        check: impl FnOnce(Option<&BlobRow>) -> Result<(), E>,
    ) -> Result<Vec<String>, BlobWriteError<E>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM blob_containers WHERE name = ?1",
                [&row.container],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(BlobWriteError::NoContainer);
        }
        let current = tx
            .query_row(
                &format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE container = ?1 AND name = ?2"),
                [&row.container, &row.name],
                blob_row,
            )
            .optional()?;
        check(current.as_ref()).map_err(BlobWriteError::Refused)?;
        let mut stale: Vec<String> = current.iter().map(|c| c.file.clone()).collect();
        {
            let mut stmt =
                tx.prepare("SELECT file FROM blob_blocks WHERE container = ?1 AND blob = ?2")?;
            for f in stmt.query_map([&row.container, &row.name], |r| r.get::<_, String>(0))? {
                stale.push(f?);
            }
        }
        tx.execute(
            "DELETE FROM blob_blocks WHERE container = ?1 AND blob = ?2",
            [&row.container, &row.name],
        )?;
        let created = current.as_ref().map_or(row.created_ms, |c| c.created_ms);
        tx.execute(
            &format!(
                "INSERT INTO blobs ({BLOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (container, name) DO UPDATE SET file = excluded.file,
                 size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms,
                 props = excluded.props"
            ),
            params![
                row.container,
                row.name,
                row.file,
                row.size as i64,
                row.etag,
                created,
                row.modified_ms,
                row.props
            ],
        )?;
        tx.commit()?;
        stale.retain(|f| f != &row.file);
        Ok(stale)
    }

    /// Deletes a blob after `check` accepted it; its data file, for removal.
    pub fn blob_delete<E>(
        &self,
        container: &str,
        name: &str,
        check: impl FnOnce(&BlobRow) -> Result<(), E>,
    ) -> Result<Option<String>, BlobWriteError<E>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(current) = tx
            .query_row(
                &format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE container = ?1 AND name = ?2"),
                [container, name],
                blob_row,
            )
            .optional()?
        else {
            return Ok(None);
        };
        check(&current).map_err(BlobWriteError::Refused)?;
        tx.execute(
            "DELETE FROM blobs WHERE container = ?1 AND name = ?2",
            [container, name],
        )?;
        tx.commit()?;
        Ok(Some(current.file))
    }

    /// Records an uncommitted block (replacing one of the same id), if the blob has
    /// fewer than `max_blocks`. Returns the replaced block's file, or Err(None) when the
    /// container is missing, Err(Some(n)) when the blob already has `n` blocks.
    pub fn block_put(
        &self,
        container: &str,
        blob: &str,
        block: &BlockRow,
        now_ms: i64,
        max_blocks: usize,
    ) -> Result<Option<String>, BlobWriteError<usize>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM blob_containers WHERE name = ?1",
                [container],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Err(BlobWriteError::NoContainer);
        }
        let old: Option<String> = tx
            .query_row(
                "SELECT file FROM blob_blocks WHERE container = ?1 AND blob = ?2 AND block_id = ?3",
                [container, blob, &block.block_id],
                |r| r.get(0),
            )
            .optional()?;
        if old.is_none() {
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM blob_blocks WHERE container = ?1 AND blob = ?2",
                [container, blob],
                |r| r.get(0),
            )?;
            if n as usize >= max_blocks {
                return Err(BlobWriteError::Refused(n as usize));
            }
        }
        tx.execute(
            "INSERT INTO blob_blocks (container, blob, block_id, file, size, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (container, blob, block_id) DO UPDATE SET file = excluded.file,
             size = excluded.size, created_ms = excluded.created_ms",
            params![
                container,
                blob,
                block.block_id,
                block.file,
                block.size as i64,
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// The uncommitted blocks of a blob.
    pub fn blocks(&self, container: &str, blob: &str) -> Result<Vec<BlockRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT block_id, file, size FROM blob_blocks WHERE container = ?1 AND blob = ?2",
        )?;
        let rows = stmt.query_map([container, blob], |r| {
            Ok(BlockRow {
                block_id: r.get(0)?,
                file: r.get(1)?,
                size: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops uncommitted blocks older than `floor_ms`; their files, for removal.
    pub fn blocks_prune(&self, floor_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut files = Vec::new();
        {
            let mut stmt = tx.prepare("SELECT file FROM blob_blocks WHERE created_ms < ?1")?;
            for f in stmt.query_map([floor_ms], |r| r.get::<_, String>(0))? {
                files.push(f?);
            }
        }
        tx.execute("DELETE FROM blob_blocks WHERE created_ms < ?1", [floor_ms])?;
        tx.commit()?;
        Ok(files)
    }

    /// Every data file a row refers to (blobs and blocks), to sweep files left by a crash.
    pub fn blob_files(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare("SELECT file FROM blobs UNION ALL SELECT file FROM blob_blocks")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(name: &str, file: &str) -> BlobRow {
        BlobRow {
            container: "c".into(),
            name: name.into(),
            file: file.into(),
            size: 1,
            etag: "e".into(),
            created_ms: 1,
            modified_ms: 1,
            props: "{}".into(),
        }
    }

    #[test]
    fn commit_replaces_and_reports_stale_files() {
        let s = Store::in_memory().unwrap();
        let c = ContainerRow {
            name: "c".into(),
            etag: "e".into(),
            modified_ms: 0,
        };
        assert!(matches!(
            s.blob_commit(&blob("a", "f1"), |_| Ok::<_, ()>(())),
            Err(BlobWriteError::NoContainer)
        ));
        assert!(s.container_create(&c).unwrap());
        assert!(!s.container_create(&c).unwrap());
        assert!(
            s.blob_commit(&blob("a", "f1"), |_| Ok::<_, ()>(()))
                .unwrap()
                .is_empty()
        );
        let block = BlockRow {
            block_id: "b1".into(),
            file: "k1".into(),
            size: 1,
        };
        assert_eq!(s.block_put("c", "a", &block, 0, 1).unwrap(), None);
        let other = BlockRow {
            block_id: "b2".into(),
            file: "k2".into(),
            size: 1,
        };
        assert!(matches!(
            s.block_put("c", "a", &other, 0, 1),
            Err(BlobWriteError::Refused(1))
        ));
        let stale = s
            .blob_commit(&blob("a", "f2"), |cur| {
                if cur.is_some() { Ok(()) } else { Err(()) }
            })
            .unwrap();
        assert_eq!(stale, vec!["f1".to_string(), "k1".to_string()]);
        assert!(matches!(
            s.blob_commit(&blob("a", "f3"), |_| Err("no")),
            Err(BlobWriteError::Refused("no"))
        ));
        assert_eq!(s.blob_get("c", "a").unwrap().unwrap().file, "f2");
        s.blob_commit(&blob("b/1", "f4"), |_| Ok::<_, ()>(()))
            .unwrap();
        let names: Vec<_> = s
            .blobs_from("c", "b", "", 10)
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, vec!["b/1"]);
        assert_eq!(
            s.blob_delete("c", "a", |_| Ok::<_, ()>(())).unwrap(),
            Some("f2".to_string())
        );
        assert_eq!(
            s.container_delete("c").unwrap(),
            Some(vec!["f4".to_string()])
        );
        assert_eq!(s.container_delete("c").unwrap(), None);
    }
}
