//! The hub's blob store: the Azure Blob service REST subset the official storage
//! SDKs use (containers; block blobs by Put Blob or Put Block + Put Block List; Get
//! Blob with ranges; properties; listing with prefix, delimiter and paging; delete),
//! path-style on the HTTPS port: `https://localhost:PORT/{account}/{container}/{blob}`.
//!
//! Bodies stream to and from files in DIR/blobs; a blob's row in the hub's SQLite
//! store is its commit point (data file written, synced and renamed first), so a
//! blob is visible only once complete and survives a kill -9.

pub mod auth;
pub mod conditions;
pub mod error;
pub mod files;
pub mod props;
pub mod routes;
pub mod sas;
pub use iothub::storage::shared_key;
pub mod xml;

mod blob_ops;
mod blocks;
mod container_ops;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use tokio::sync::watch;

use super::store::{Store, StoreError};

/// The storage account the hub serves.
pub const ACCOUNT: &str = "hubtuistore";
/// The service version the hub answers with when a request names none.
pub const SERVICE_VERSION: &str = "2025-11-05";
const KEY_META: &str = "blob_account_key";

/// What a peer may send the blob store: Azure's own limits where they fit a local hub.
#[derive(Clone, Debug)]
pub struct BlobLimits {
    /// Largest Put Blob body (Azure: 5000 MiB).
    pub max_put_blob: u64,
    /// Largest Put Block body (Azure: 4000 MiB).
    pub max_block: u64,
    /// Uncommitted blocks a blob may hold (Azure: 100,000).
    pub max_uncommitted_blocks: usize,
    /// Blocks in one committed list (Azure: 50,000).
    pub max_committed_blocks: usize,
    /// Largest Put Block List body.
    pub max_block_list_bytes: usize,
    /// How long an uncommitted block is kept (Azure: one week).
    pub block_ttl: Duration,
}

impl Default for BlobLimits {
    fn default() -> Self {
        BlobLimits {
            max_put_blob: 5000 * 1024 * 1024,
            max_block: 4000 * 1024 * 1024,
            max_uncommitted_blocks: 100_000,
            max_committed_blocks: 50_000,
            max_block_list_bytes: 8 * 1024 * 1024,
            block_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Longest blob name in characters (Azure: 1,024).
pub const MAX_BLOB_NAME: usize = 1024;

pub struct BlobService {
    pub account: String,
    /// The account key, base64 (64 random bytes, made on first start and kept).
    pub key: String,
    store: Arc<Store>,
    /// Committed blobs and uncommitted blocks, one file each.
    data: PathBuf,
    /// Bodies being received.
    tmp: PathBuf,
    pub limits: BlobLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the blob directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BlobService {
    /// Opens the blob store under `dir` (DIR/blobs), making the account key on first
    /// start, and removes files a crash left behind (bodies in flight, data files no
    /// row refers to).
    pub fn open(
        store: Arc<Store>,
        dir: &Path,
        limits: BlobLimits,
    ) -> Result<BlobService, BlobStoreError> {
        let data = dir.join("blobs").join("data");
        let tmp = dir.join("blobs").join("tmp");
        for d in [&data, &tmp] {
            std::fs::create_dir_all(d).map_err(|source| BlobStoreError::Dir {
                path: d.clone(),
                source,
            })?;
        }
        let key = match store.meta_get(KEY_META)? {
            Some(k) => k,
            None => {
                let mut bytes = [0u8; 64];
                rand::rng().fill_bytes(&mut bytes);
                let k = B64.encode(bytes);
                store.meta_put(KEY_META, &k)?;
                k
            }
        };
        files::clear_dir(&tmp);
        let referenced = store.blob_files()?;
        files::sweep(&data, &referenced);
        Ok(BlobService {
            account: ACCOUNT.to_string(),
            key,
            store,
            data,
            tmp,
            limits,
        })
    }

    /// `https://{host}:{port}/{account}`.
    pub fn endpoint(&self, host: &str, port: u16) -> String {
        format!("https://{host}:{port}/{}", self.account)
    }

    /// The storage connection string the official SDKs take.
    pub fn connection_string(&self, host: &str, port: u16) -> String {
        format!(
            "DefaultEndpointsProtocol=https;AccountName={};AccountKey={};BlobEndpoint={}",
            self.account,
            self.key,
            self.endpoint(host, port)
        )
    }

    fn remove_files(&self, files: &[String]) {
        for f in files {
            files::remove_quietly(&self.data.join(f));
        }
    }
}

/// Discards uncommitted blocks past their time, hourly.
pub async fn prune_blocks(svc: Arc<BlobService>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let svc = svc.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let floor = chrono::Utc::now().timestamp_millis()
                        - svc.limits.block_ttl.as_millis() as i64;
                    match svc.store.blocks_prune(floor) {
                        Ok(files) => svc.remove_files(&files),
                        Err(e) => tracing::warn!(error = %e, "pruning uncommitted blocks failed"),
                    }
                })
                .await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
