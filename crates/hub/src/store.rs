//! The local hub's persistent state in SQLite: identities with their twins, C2D
//! queues, retained telemetry and hub settings. Every method is one transaction;
//! when it returns Ok the change is in the write-ahead log and survives a kill -9
//! of the hub (WAL with synchronous=NORMAL loses nothing on a process crash, only
//! on a power loss, which is the trade Azure's SDK users expect of a dev hub).
//!
//! The store knows rows, not rules: the registry module decides what goes in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

mod blobs;
mod certificates;
mod enrollments;
mod readers;
pub use blobs::{BlobRow, BlobWriteError, BlockRow, ContainerRow};
pub use certificates::CaCertificateRow;
pub use enrollments::{EnrollmentKind, RegistrationRecord};
use readers::{ReadConn, Readers};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the hub's database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the hub's database in {0} is locked by another process; is another `hubtui hub` using the same --data-dir?"
    )]
    Locked(String),
    #[error("cannot open the hub's lock file {path}: {source}")]
    LockFile {
        path: String,
        source: std::io::Error,
    },
}

/// A device or module identity as stored: its registry JSON and its twin JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredIdentity {
    pub device_id: String,
    /// None for a device, Some for one of its modules.
    pub module_id: Option<String>,
    pub identity: String,
    pub twin: String,
}

/// A cloud-to-device message waiting in a device's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct C2dRecord {
    /// Queue position, unique across the hub; 0 before it is stored.
    pub seq: i64,
    pub device_id: String,
    /// JSON of the message's properties (system and application), owned by the registry.
    pub properties: String,
    pub body: Vec<u8>,
    pub enqueued_ms: i64,
    pub expiry_ms: i64,
    pub delivery_count: u32,
}

/// A device-to-cloud message as retained for the service side.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryRecord {
    /// Global order of arrival; 0 before it is stored.
    pub seq: i64,
    pub partition: u32,
    /// Sequence number within the partition (Event Hubs semantics), from 0.
    pub partition_seq: i64,
    pub enqueued_ms: i64,
    pub device_id: String,
    pub module_id: Option<String>,
    /// JSON of the message's properties, owned by the telemetry module.
    pub properties: String,
    pub body: Vec<u8>,
}

pub struct Store {
    /// The one connection that writes (and reads inside its transactions).
    conn: Mutex<Connection>,
    /// Connections for reads outside a write; None for an in-memory store.
    readers: Option<Readers>,
    /// `hub.db.lock`, locked for the life of the store: one hub per data dir.
    _lock: Option<std::fs::File>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL DEFAULT '',
    identity TEXT NOT NULL,
    twin TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
CREATE TABLE IF NOT EXISTS c2d (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    properties TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    expiry_ms INTEGER NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS c2d_by_device ON c2d (device_id, seq);
CREATE TABLE IF NOT EXISTS telemetry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    partition INTEGER NOT NULL,
    partition_seq INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    module_id TEXT,
    properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_by_partition ON telemetry (partition, partition_seq);
CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (enqueued_ms);
CREATE TABLE IF NOT EXISTS c2d_feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS file_notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL
);
";

/// A queue of records the hub keeps for services until one receives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceQueue {
    /// C2D delivery feedback (`/messages/serviceBound/feedback`).
    Feedback,
    /// File upload notifications (`/messages/serviceBound/filenotifications`).
    FileNotifications,
}

impl ServiceQueue {
    fn table(self) -> &'static str {
        match self {
            ServiceQueue::Feedback => "c2d_feedback",
            ServiceQueue::FileNotifications => "file_notifications",
        }
    }
}

/// A record waiting in a service queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedRecord {
    pub seq: i64,
    /// JSON of one record, owned by the module that queued it.
    pub record: String,
    pub enqueued_ms: i64,
}

/// What the Event Hubs management READ reports about a partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionStats {
    /// First retained sequence number (the next one when the partition is empty).
    pub begin_seq: i64,
    /// Last sequence number given out, -1 if none ever was.
    pub last_seq: i64,
    pub last_enqueued_ms: Option<i64>,
    pub is_empty: bool,
}

/// The columns `c2d_row` reads, in its order.
const C2D_COLUMNS: &str =
    "seq, device_id, properties, body, enqueued_ms, expiry_ms, delivery_count";

fn c2d_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<C2dRecord> {
    Ok(C2dRecord {
        seq: r.get(0)?,
        device_id: r.get(1)?,
        properties: r.get(2)?,
        body: r.get(3)?,
        enqueued_ms: r.get(4)?,
        expiry_ms: r.get(5)?,
        delivery_count: r.get(6)?,
    })
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // One hub per data dir: a second hub on the same files gets a clear error instead
        // of two writers racing. (SQLite's exclusive locking mode would also do it, but
        // would shut out the read connections.)
        let lock = lock_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_millis(200))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| locked_or(e, path))?;
        debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(enrollments::SCHEMA)?;
        conn.execute_batch(certificates::SCHEMA)?;
        conn.execute_batch(blobs::SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
            readers: Some(Readers::new(path.to_path_buf())),
            _lock: Some(lock),
        })
    }

    /// An in-memory store for unit tests of the layers above.
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(enrollments::SCHEMA)?;
        conn.execute_batch(certificates::SCHEMA)?;
        conn.execute_batch(blobs::SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
            readers: None,
            _lock: None,
        })
    }

    /// Makes every commit wait for the disk (SQLite's synchronous=FULL): in WAL mode a
    /// commit is then durable across a power loss, not only across a crash of the hub,
    /// which synchronous=NORMAL already guarantees.
    pub fn sync_every_commit(&self) -> Result<(), StoreError> {
        self.conn().execute_batch("PRAGMA synchronous=FULL")?;
        Ok(())
    }

    /// A connection for a read outside any write: a reader when one is free, else the
    /// writer's. Each read call sees the last committed state.
    fn read(&self) -> ReadConn<'_> {
        self.readers
            .as_ref()
            .and_then(Readers::take)
            .unwrap_or_else(|| ReadConn::Writer(self.conn()))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each call is
        // one transaction), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .read()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    pub fn identity_get(
        &self,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<Option<StoredIdentity>, StoreError> {
        select_identity(&self.read(), device_id, module_id)
    }

    /// Inserts a new identity; Ok(false) if it exists already (nothing changed).
    pub fn identity_insert(&self, rec: &StoredIdentity) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO identities (device_id, module_id, identity, twin)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                rec.device_id,
                rec.module_id.as_deref().unwrap_or(""),
                rec.identity,
                rec.twin
            ],
        )?;
        Ok(n == 1)
    }

    /// Replaces an existing identity; Ok(false) if there is none (nothing changed).
    pub fn identity_update(&self, rec: &StoredIdentity) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE identities SET identity = ?3, twin = ?4 WHERE device_id = ?1 AND module_id = ?2",
            params![
                rec.device_id,
                rec.module_id.as_deref().unwrap_or(""),
                rec.identity,
                rec.twin
            ],
        )?;
        Ok(n == 1)
    }

    /// Reads, changes and writes one identity as a single step: `change` sees the stored
    /// record and returns the record to write (None writes nothing) and a result; no other
    /// store call runs in between, so concurrent writers cannot interleave. `committed`
    /// runs after the commit and before the next writer, so what it sends (a desired-patch
    /// notification) goes out in the order the writes were stored. Ok(None) if there is
    /// no such identity.
    pub fn identity_modify<T, E: From<StoreError>>(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        change: impl FnOnce(StoredIdentity) -> Result<(Option<StoredIdentity>, T), E>,
        committed: impl FnOnce(&T),
    ) -> Result<Option<T>, E> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let current = select_identity(&tx, device_id, module_id)?;
        let Some(current) = current else {
            return Ok(None);
        };
        let (write, out) = change(current)?;
        if let Some(rec) = write {
            tx.execute(
                "UPDATE identities SET identity = ?3, twin = ?4
                 WHERE device_id = ?1 AND module_id = ?2",
                params![device_id, module_id.unwrap_or(""), rec.identity, rec.twin],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        committed(&out);
        Ok(Some(out))
    }

    /// Deletes an identity if `check` accepts the stored record (an If-Match test), in one
    /// step with the check; deleting a device also deletes its modules and C2D queue.
    /// Ok(false) if there is no such identity.
    pub fn identity_delete<E: From<StoreError>>(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        check: impl FnOnce(&StoredIdentity) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let current = select_identity(&tx, device_id, module_id)?;
        let Some(current) = current else {
            return Ok(false);
        };
        check(&current)?;
        Self::delete_rows(&tx, device_id, module_id)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(true)
    }

    fn delete_rows(
        tx: &rusqlite::Transaction<'_>,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<(), StoreError> {
        match module_id {
            Some(m) => tx.execute(
                "DELETE FROM identities WHERE device_id = ?1 AND module_id = ?2",
                [device_id, m],
            )?,
            None => {
                tx.execute("DELETE FROM c2d WHERE device_id = ?1", [device_id])?;
                tx.execute(
                    "DELETE FROM identities WHERE device_id = ?1 AND module_id <> ''",
                    [device_id],
                )?;
                tx.execute(
                    "DELETE FROM identities WHERE device_id = ?1 AND module_id = ''",
                    [device_id],
                )?
            }
        };
        Ok(())
    }

    /// All devices (not modules), ordered by id.
    pub fn devices(&self) -> Result<Vec<StoredIdentity>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, module_id, identity, twin FROM identities
             WHERE module_id = '' ORDER BY device_id",
        )?;
        let rows = stmt.query_map([], row_to_identity)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` devices (or, with `modules`, module identities) after `after` in
    /// (device id, module id) order: a query walks the registry a chunk at a time.
    pub fn identities_after(
        &self,
        modules: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredIdentity>, StoreError> {
        let conn = self.read();
        let kind = if modules {
            "module_id <> ''"
        } else {
            "module_id = ''"
        };
        let (device, module) = after.unwrap_or(("", ""));
        // (device_id, module_id) > (?1, ?2), written out so the primary key's index serves it.
        let sql = format!(
            "SELECT device_id, module_id, identity, twin FROM identities
             WHERE {kind} AND (device_id > ?1 OR (device_id = ?1 AND module_id > ?2))
             ORDER BY device_id, module_id LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        // With no `after`, `> ('', '')` passes every identity: ids are never empty.
        let rows = stmt.query_map(params![device, module, limit as i64], row_to_identity)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queued C2D messages per device for the devices from `first` to `last` (ids with
    /// none are absent): one query for a chunk of a registry walk.
    pub fn c2d_counts(&self, first: &str, last: &str) -> Result<HashMap<String, u64>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, COUNT(*) FROM c2d WHERE device_id BETWEEN ?1 AND ?2 GROUP BY device_id",
        )?;
        let rows = stmt.query_map([first, last], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The modules of one device, ordered by id.
    pub fn modules(&self, device_id: &str) -> Result<Vec<StoredIdentity>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, module_id, identity, twin FROM identities
             WHERE device_id = ?1 AND module_id <> '' ORDER BY module_id",
        )?;
        let rows = stmt.query_map([device_id], row_to_identity)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends to a device's queue unless it already holds `max_depth` messages.
    /// Returns the message's seq, or None when the queue is full.
    pub fn c2d_push(&self, rec: &C2dRecord, max_depth: usize) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let depth: i64 = tx.query_row(
            "SELECT COUNT(*) FROM c2d WHERE device_id = ?1",
            [&rec.device_id],
            |r| r.get(0),
        )?;
        if depth as usize >= max_depth {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO c2d (device_id, properties, body, enqueued_ms, expiry_ms, delivery_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rec.device_id,
                rec.properties,
                rec.body,
                rec.enqueued_ms,
                rec.expiry_ms,
                rec.delivery_count
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(seq))
    }

    /// The device's queue in order (expired messages included; the caller retires them).
    pub fn c2d_queue(&self, device_id: &str) -> Result<Vec<C2dRecord>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {C2D_COLUMNS} FROM c2d WHERE device_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([device_id], c2d_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn c2d_count(&self, device_id: &str) -> Result<u64, StoreError> {
        let n: i64 = self.read().query_row(
            "SELECT COUNT(*) FROM c2d WHERE device_id = ?1",
            [device_id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Records one more delivery attempt; returns the new count.
    pub fn c2d_delivered(&self, seq: i64) -> Result<Option<u32>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE c2d SET delivery_count = delivery_count + 1 WHERE seq = ?1
                 RETURNING delivery_count",
                [seq],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes one message (completed, expired or dead-lettered); false if it was gone.
    pub fn c2d_remove(&self, seq: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM c2d WHERE seq = ?1", [seq])?
            == 1)
    }

    pub fn c2d_get(&self, seq: i64) -> Result<Option<C2dRecord>, StoreError> {
        Ok(self
            .read()
            .query_row(
                &format!("SELECT {C2D_COLUMNS} FROM c2d WHERE seq = ?1"),
                [seq],
                c2d_row,
            )
            .optional()?)
    }

    pub fn queue_push(
        &self,
        queue: ServiceQueue,
        record: &str,
        enqueued_ms: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            &format!(
                "INSERT INTO {} (record, enqueued_ms) VALUES (?1, ?2)",
                queue.table()
            ),
            params![record, enqueued_ms],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Up to `limit` records of `queue` in order, skipping `exclude` (in flight).
    pub fn queue_pending(
        &self,
        queue: ServiceQueue,
        limit: usize,
        exclude: &std::collections::HashSet<i64>,
    ) -> Result<Vec<QueuedRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT seq, record, enqueued_ms FROM {} ORDER BY seq",
            queue.table()
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(QueuedRecord {
                seq: r.get(0)?,
                record: r.get(1)?,
                enqueued_ms: r.get(2)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if !exclude.contains(&row.seq) {
                out.push(row);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Removes delivered (or expired) records.
    pub fn queue_remove(&self, queue: ServiceQueue, seqs: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!("DELETE FROM {} WHERE seq = ?1", queue.table());
        for s in seqs {
            tx.execute(&sql, [s])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops records enqueued before `min_enqueued_ms` (the queue's time to live).
    pub fn queue_prune(
        &self,
        queue: ServiceQueue,
        min_enqueued_ms: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.conn().execute(
            &format!("DELETE FROM {} WHERE enqueued_ms < ?1", queue.table()),
            [min_enqueued_ms],
        )? as u64)
    }

    /// Empties a device's queue; returns how many messages were removed.
    pub fn c2d_purge(&self, device_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM c2d WHERE device_id = ?1", [device_id])? as u64)
    }

    /// Appends `recs` in one transaction, in order, each with the next sequence number of
    /// its partition. `next` holds those numbers; a partition missing from it is read
    /// from the store (its highest sequence so far or its floor after pruning, plus one),
    /// and `next` advances only when the transaction commits.
    pub fn telemetry_append_batch(
        &self,
        recs: Vec<TelemetryRecord>,
        next: &mut HashMap<u32, i64>,
    ) -> Result<Vec<TelemetryRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut staged = next.clone();
        let mut stored = Vec::with_capacity(recs.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO telemetry (partition, partition_seq, enqueued_ms, device_id, module_id, properties, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for rec in recs {
                let seq = match staged.get(&rec.partition) {
                    Some(&n) => n,
                    None => next_partition_seq(&tx, rec.partition)?,
                };
                insert.execute(params![
                    rec.partition,
                    seq,
                    rec.enqueued_ms,
                    rec.device_id,
                    rec.module_id,
                    rec.properties,
                    rec.body
                ])?;
                staged.insert(rec.partition, seq + 1);
                stored.push(TelemetryRecord {
                    seq: tx.last_insert_rowid(),
                    partition_seq: seq,
                    ..rec
                });
            }
        }
        tx.commit()?;
        *next = staged;
        Ok(stored)
    }

    /// Makes every telemetry write fail, for tests of how failures are reported.
    #[cfg(test)]
    pub(crate) fn break_telemetry_for_test(&self) {
        self.conn().execute_batch("DROP TABLE telemetry").unwrap();
    }

    /// Up to `limit` records of a partition with partition_seq >= `from`, in order.
    pub fn telemetry_read(
        &self,
        partition: u32,
        from: i64,
        limit: usize,
    ) -> Result<Vec<TelemetryRecord>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, partition, partition_seq, enqueued_ms, device_id, module_id, properties, body
             FROM telemetry WHERE partition = ?1 AND partition_seq >= ?2
             ORDER BY partition_seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![partition, from, limit as i64], |r| {
            Ok(TelemetryRecord {
                seq: r.get(0)?,
                partition: r.get(1)?,
                partition_seq: r.get(2)?,
                enqueued_ms: r.get(3)?,
                device_id: r.get(4)?,
                module_id: r.get(5)?,
                properties: r.get(6)?,
                body: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Retention window and last event of a partition.
    pub fn telemetry_stats(&self, partition: u32) -> Result<PartitionStats, StoreError> {
        let reader = self.read();
        // One snapshot for the three reads, whatever commits meanwhile.
        let conn = reader.unchecked_transaction()?;
        let (min, max): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT MIN(partition_seq), MAX(partition_seq) FROM telemetry WHERE partition = ?1",
            [partition],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let floor: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [format!("telemetry_floor_{partition}")],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let last_enqueued_ms: Option<i64> = match max {
            Some(m) => conn
                .query_row(
                    "SELECT enqueued_ms FROM telemetry WHERE partition = ?1 AND partition_seq = ?2",
                    params![partition, m],
                    |r| r.get(0),
                )
                .optional()?,
            None => None,
        };
        Ok(match (min, max) {
            (Some(min), Some(max)) => PartitionStats {
                begin_seq: min,
                last_seq: max,
                last_enqueued_ms,
                is_empty: false,
            },
            _ => PartitionStats {
                begin_seq: floor,
                last_seq: floor - 1,
                last_enqueued_ms: None,
                is_empty: true,
            },
        })
    }

    /// The first sequence number of a partition enqueued after (or at, if `inclusive`)
    /// `millis`; None when there is none yet.
    pub fn telemetry_seq_after_time(
        &self,
        partition: u32,
        millis: i64,
        inclusive: bool,
    ) -> Result<Option<i64>, StoreError> {
        let sql = if inclusive {
            "SELECT MIN(partition_seq) FROM telemetry WHERE partition = ?1 AND enqueued_ms >= ?2"
        } else {
            "SELECT MIN(partition_seq) FROM telemetry WHERE partition = ?1 AND enqueued_ms > ?2"
        };
        Ok(self
            .read()
            .query_row(sql, params![partition, millis], |r| r.get(0))?)
    }

    /// One step of retention: deletes at most `batch` retained messages older than
    /// `min_enqueued_ms` and at most `batch` beyond the newest `max_count`, oldest first,
    /// and returns how many went. A pass calls it until it returns less than a full step,
    /// so the store is never held for one long delete while devices and REST wait.
    pub fn telemetry_prune(
        &self,
        min_enqueued_ms: i64,
        max_count: u64,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Each partition's floor (next sequence number once it is empty) is its highest
        // sequence so far plus one. The partitions are walked through the index, one
        // lookup each, rather than grouping the whole table.
        tx.execute(
            "WITH RECURSIVE parts(p) AS (
                 SELECT MIN(partition) FROM telemetry
                 UNION ALL
                 SELECT (SELECT MIN(partition) FROM telemetry WHERE partition > p)
                 FROM parts WHERE p IS NOT NULL)
             INSERT INTO meta (key, value)
             SELECT 'telemetry_floor_' || p,
                    (SELECT MAX(partition_seq) FROM telemetry WHERE partition = p) + 1
             FROM parts WHERE p IS NOT NULL
             ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            [],
        )?;
        let batch = batch as i64;
        let by_age = tx.execute(
            "DELETE FROM telemetry WHERE seq IN
                 (SELECT seq FROM telemetry WHERE enqueued_ms < ?1 ORDER BY enqueued_ms LIMIT ?2)",
            params![min_enqueued_ms, batch],
        )?;
        let by_count = tx.execute(
            "DELETE FROM telemetry WHERE seq IN
                 (SELECT seq FROM telemetry
                  WHERE seq <= (SELECT MAX(seq) FROM telemetry) - ?1 ORDER BY seq LIMIT ?2)",
            params![max_count as i64, batch],
        )?;
        tx.commit()?;
        Ok((by_age + by_count) as u64)
    }
}

/// The next sequence number of a partition as stored: after its highest, and never
/// below its floor (after pruning emptied it, numbering continues from there).
fn next_partition_seq(tx: &rusqlite::Transaction<'_>, partition: u32) -> Result<i64, StoreError> {
    let after_max: i64 = tx.query_row(
        "SELECT COALESCE(MAX(partition_seq) + 1, 0) FROM telemetry WHERE partition = ?1",
        [partition],
        |r| r.get(0),
    )?;
    let floor: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [format!("telemetry_floor_{partition}")],
            |r| r.get(0),
        )
        .optional()?;
    Ok(after_max.max(floor.and_then(|s| s.parse().ok()).unwrap_or(0)))
}

fn select_identity(
    conn: &Connection,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<Option<StoredIdentity>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT device_id, module_id, identity, twin FROM identities
             WHERE device_id = ?1 AND module_id = ?2",
        )?
        .query_row([device_id, module_id.unwrap_or("")], row_to_identity)
        .optional()?)
}

fn row_to_identity(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredIdentity> {
    let module: String = r.get(1)?;
    Ok(StoredIdentity {
        device_id: r.get(0)?,
        module_id: (!module.is_empty()).then_some(module),
        identity: r.get(2)?,
        twin: r.get(3)?,
    })
}

/// Opens and locks `{db}.lock` beside the database; Locked when another process holds it.
fn lock_file(db: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let failed = |source| StoreError::LockFile {
        path: Path::new(&name).display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(db.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

fn locked_or(e: rusqlite::Error, path: &Path) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Locked(path.display().to_string())
        }
        _ => StoreError::Sqlite(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One append as its own batch, with the sequence numbers read from the store.
    fn append(s: &Store, rec: TelemetryRecord) -> TelemetryRecord {
        s.telemetry_append_batch(vec![rec], &mut HashMap::new())
            .unwrap()
            .remove(0)
    }

    fn dev(id: &str) -> StoredIdentity {
        StoredIdentity {
            device_id: id.into(),
            module_id: None,
            identity: format!("{{\"deviceId\":\"{id}\"}}"),
            twin: "{}".into(),
        }
    }

    fn c2d(device: &str, body: &[u8]) -> C2dRecord {
        C2dRecord {
            seq: 0,
            device_id: device.into(),
            properties: "[]".into(),
            body: body.to_vec(),
            enqueued_ms: 1,
            expiry_ms: 10,
            delivery_count: 0,
        }
    }

    #[test]
    fn identities_insert_update_delete() {
        let s = Store::in_memory().unwrap();
        assert!(s.identity_insert(&dev("a")).unwrap());
        assert!(!s.identity_insert(&dev("a")).unwrap());
        let mut m = dev("a");
        m.module_id = Some("m1".into());
        assert!(s.identity_insert(&m).unwrap());
        assert_eq!(s.devices().unwrap().len(), 1);
        assert_eq!(s.modules("a").unwrap(), vec![m.clone()]);
        let mut changed = dev("a");
        changed.twin = "{\"x\":1}".into();
        assert!(s.identity_update(&changed).unwrap());
        assert_eq!(s.identity_get("a", None).unwrap(), Some(changed));
        assert!(!s.identity_update(&dev("b")).unwrap());
        s.c2d_push(&c2d("a", b"x"), 50).unwrap();
        let refuse = |_: &StoredIdentity| Err(StoreError::Locked("no".into()));
        assert!(s.identity_delete("a", None, refuse).is_err());
        assert!(s.identity_get("a", None).unwrap().is_some());
        let accept = |_: &StoredIdentity| Ok::<(), StoreError>(());
        assert!(s.identity_delete("a", None, accept).unwrap());
        assert!(s.identity_get("a", Some("m1")).unwrap().is_none());
        assert_eq!(s.c2d_count("a").unwrap(), 0);
        assert!(!s.identity_delete("a", None, accept).unwrap());
    }

    /// A read while a write transaction is open sees the last commit at once, rather
    /// than waiting for the writer: REST reads do not queue behind a telemetry commit.
    #[test]
    fn reads_do_not_wait_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Store::open(&dir.path().join("hub.db")).unwrap());
        assert!(s.identity_insert(&dev("a")).unwrap());
        let reader = s.clone();
        let seen = s
            .identity_modify(
                "a",
                None,
                |mut rec| {
                    rec.twin = "{\"x\":1}".into();
                    // Inside the write: another thread reads, and must not block on it.
                    let (tx, rx) = std::sync::mpsc::channel();
                    std::thread::spawn(move || {
                        let _ = tx.send(reader.identity_get("a", None).unwrap());
                    });
                    let seen = rx
                        .recv_timeout(std::time::Duration::from_secs(5))
                        .expect("the read finished while the write was open");
                    Ok::<_, StoreError>((Some(rec), seen))
                },
                |_| {},
            )
            .unwrap()
            .unwrap();
        assert_eq!(seen, Some(dev("a")), "the read saw the last commit");
        assert_eq!(
            s.identity_get("a", None).unwrap().unwrap().twin,
            "{\"x\":1}"
        );
    }

    #[test]
    fn fsync_makes_every_commit_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("hub.db")).unwrap();
        let level = |s: &Store| -> i64 {
            s.conn()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(level(&s), 1, "NORMAL by default");
        s.sync_every_commit().unwrap();
        assert_eq!(level(&s), 2, "FULL");
    }

    #[test]
    fn c2d_queue_is_bounded_and_ordered() {
        let s = Store::in_memory().unwrap();
        let a = s.c2d_push(&c2d("d", b"1"), 2).unwrap().unwrap();
        let b = s.c2d_push(&c2d("d", b"2"), 2).unwrap().unwrap();
        assert!(a < b);
        assert_eq!(s.c2d_push(&c2d("d", b"3"), 2).unwrap(), None);
        assert!(s.c2d_push(&c2d("e", b"3"), 2).unwrap().is_some());
        let q = s.c2d_queue("d").unwrap();
        assert_eq!(
            q.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(s.c2d_delivered(a).unwrap(), Some(1));
        assert_eq!(s.c2d_delivered(a).unwrap(), Some(2));
        assert!(s.c2d_remove(a).unwrap());
        assert!(!s.c2d_remove(a).unwrap());
        assert_eq!(s.c2d_delivered(a).unwrap(), None);
        assert_eq!(s.c2d_purge("d").unwrap(), 1);
        assert_eq!(s.c2d_count("d").unwrap(), 0);
    }

    #[test]
    fn telemetry_sequences_per_partition_survive_pruning() {
        let s = Store::in_memory().unwrap();
        let rec = |p: u32, t: i64| TelemetryRecord {
            seq: 0,
            partition: p,
            partition_seq: 0,
            enqueued_ms: t,
            device_id: "d".into(),
            module_id: None,
            properties: "{}".into(),
            body: vec![1, 2],
        };
        assert_eq!(append(&s, rec(0, 1)).partition_seq, 0);
        assert_eq!(append(&s, rec(0, 2)).partition_seq, 1);
        assert_eq!(append(&s, rec(1, 3)).partition_seq, 0);
        assert_eq!(s.telemetry_read(0, 1, 10).unwrap().len(), 1);
        assert_eq!(s.telemetry_prune(100, 1000, 1000).unwrap(), 3);
        assert!(s.telemetry_read(0, 0, 10).unwrap().is_empty());
        assert_eq!(append(&s, rec(0, 200)).partition_seq, 2);
        append(&s, rec(0, 201));
        append(&s, rec(0, 202));
        assert_eq!(s.telemetry_prune(0, 2, 1000).unwrap(), 1);
        let left = s.telemetry_read(0, 0, 10).unwrap();
        assert_eq!(
            left.iter().map(|r| r.partition_seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn retention_deletes_in_bounded_steps() {
        let s = Store::in_memory().unwrap();
        for i in 0..250 {
            append(
                &s,
                TelemetryRecord {
                    seq: 0,
                    partition: (i % 3) as u32,
                    partition_seq: 0,
                    enqueued_ms: i,
                    device_id: "d".into(),
                    module_id: None,
                    properties: "{}".into(),
                    body: vec![],
                },
            );
        }
        // 200 are too old: each step takes at most 64 of them, oldest first.
        let steps: Vec<u64> = std::iter::from_fn(|| {
            let n = s.telemetry_prune(200, 1000, 64).unwrap();
            (n > 0).then_some(n)
        })
        .collect();
        assert_eq!(steps, vec![64, 64, 64, 8]);
        let left: Vec<i64> = (0..3)
            .flat_map(|p| s.telemetry_read(p, 0, 100).unwrap())
            .map(|r| r.enqueued_ms)
            .collect();
        assert_eq!(left.len(), 50);
        assert!(left.iter().all(|&t| t >= 200));
        // By count, likewise: keep the newest 10.
        let steps: Vec<u64> = std::iter::from_fn(|| {
            let n = s.telemetry_prune(0, 10, 16).unwrap();
            (n > 0).then_some(n)
        })
        .collect();
        assert_eq!(steps, vec![16, 16, 8]);
        // Every partition's floor was kept: a new message continues its sequence.
        for p in 0..3 {
            let stats = s.telemetry_stats(p).unwrap();
            assert!(stats.last_seq >= 80, "partition {p}: {stats:?}");
        }
    }

    #[test]
    fn partition_stats_and_time_lookup() {
        let s = Store::in_memory().unwrap();
        let rec = |t: i64| TelemetryRecord {
            seq: 0,
            partition: 2,
            partition_seq: 0,
            enqueued_ms: t,
            device_id: "d".into(),
            module_id: None,
            properties: "{}".into(),
            body: vec![],
        };
        let empty = s.telemetry_stats(2).unwrap();
        assert!(empty.is_empty);
        assert_eq!((empty.begin_seq, empty.last_seq), (0, -1));
        append(&s, rec(10));
        append(&s, rec(20));
        let st = s.telemetry_stats(2).unwrap();
        assert_eq!(
            (st.begin_seq, st.last_seq, st.last_enqueued_ms),
            (0, 1, Some(20))
        );
        assert_eq!(s.telemetry_seq_after_time(2, 10, false).unwrap(), Some(1));
        assert_eq!(s.telemetry_seq_after_time(2, 10, true).unwrap(), Some(0));
        assert_eq!(s.telemetry_seq_after_time(2, 20, false).unwrap(), None);
        s.telemetry_prune(100, 1000, 1000).unwrap();
        let pruned = s.telemetry_stats(2).unwrap();
        assert!(pruned.is_empty);
        assert_eq!((pruned.begin_seq, pruned.last_seq), (2, 1));
    }

    #[test]
    fn queued_records_skip_in_flight_and_are_removed() {
        let s = Store::in_memory().unwrap();
        let q = ServiceQueue::Feedback;
        let a = s.queue_push(q, "a", 1).unwrap();
        let b = s.queue_push(q, "b", 5).unwrap();
        // The queues are apart.
        s.queue_push(ServiceQueue::FileNotifications, "f", 1)
            .unwrap();
        let none = std::collections::HashSet::new();
        assert_eq!(s.queue_pending(q, 10, &none).unwrap().len(), 2);
        let skip_a: std::collections::HashSet<i64> = [a].into();
        assert_eq!(s.queue_pending(q, 10, &skip_a).unwrap()[0].seq, b);
        s.queue_remove(q, &[a]).unwrap();
        assert_eq!(s.queue_prune(q, 6).unwrap(), 1);
        assert!(s.queue_pending(q, 10, &none).unwrap().is_empty());
        let files = s.queue_pending(ServiceQueue::FileNotifications, 10, &none);
        assert_eq!(files.unwrap()[0].record, "f");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let first = Store::open(&path).unwrap();
        first.meta_put("k", "v").unwrap();
        let second = Store::open(&path);
        assert!(
            matches!(second, Err(StoreError::Locked(_))),
            "{:?}",
            second.err()
        );
        drop(first);
        let again = Store::open(&path).unwrap();
        assert_eq!(again.meta_get("k").unwrap().as_deref(), Some("v"));
    }
}
