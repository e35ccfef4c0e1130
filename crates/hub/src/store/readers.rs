//! Read-only SQLite connections beside the store's one writer. In WAL mode a reader sees
//! the last committed state without waiting for a write in progress, so REST reads, queries
//! and telemetry readers do not queue behind a telemetry commit or a long registry write.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Read connections open at once; a read beyond them uses the writer's connection, so a
/// burst of requests cannot open connections (each with its own page cache) without bound.
const MAX_OPEN: usize = 16;
/// How long a reader waits on SQLite's rare reader locks (WAL recovery, a checkpoint
/// resetting the log) before the read fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    open: AtomicUsize,
}

impl Readers {
    pub(super) fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle reader, a new one, or None when `MAX_OPEN` are in use (or one cannot be
    /// opened: the caller then reads through the writer, which always works).
    pub(super) fn take(&self) -> Option<ReadConn<'_>> {
        if let Some(conn) = self.idle().pop() {
            return Some(ReadConn::Pooled {
                conn: Some(conn),
                pool: self,
            });
        }
        if self.open.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        match self.connect() {
            Ok(conn) => Some(ReadConn::Pooled {
                conn: Some(conn),
                pool: self,
            }),
            Err(e) => {
                self.open.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(error = %e, "cannot open a read connection; reading through the writer");
                None
            }
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }
}

/// A connection to read through: a pooled reader (given back when dropped) or the writer.
pub(super) enum ReadConn<'a> {
    Pooled {
        conn: Option<Connection>,
        pool: &'a Readers,
    },
    Writer(MutexGuard<'a, Connection>),
}

impl Deref for ReadConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ReadConn::Pooled { conn, .. } => conn.as_ref().expect("held until dropped"),
            ReadConn::Writer(guard) => guard,
        }
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        if let ReadConn::Pooled { conn, pool } = self
            && let Some(conn) = conn.take()
        {
            pool.idle().push(conn);
        }
    }
}
