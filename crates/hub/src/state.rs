//! The hub's shared state: the store, the policies, live sessions and the
//! telemetry feed, plus the settings every endpoint obeys. Endpoints hold an
//! `Arc<HubState>`; domain operations live in `registry`, `telemetry` and `c2d`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::policies::{Policy, default_policies};
use super::sessions::{IdentityKey, Sessions};
use super::store::{Store, StoreError, TelemetryRecord};
use super::telemetry_writer::TelemetryWriter;
use iothub::error::{ErrorCode, ServiceError};

/// Limits and retention; Azure's defaults unless a flag says otherwise.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Event Hubs-compatible partitions; a device always maps to the same one.
    pub partitions: u32,
    /// Messages a device's C2D queue holds before sends are refused (403004).
    pub c2d_max_queue: usize,
    /// Time to live of a C2D message that sets no expiry.
    pub c2d_default_ttl: Duration,
    /// Deliveries without acknowledgement before a C2D message is dead-lettered.
    pub c2d_max_delivery_count: u32,
    /// How long a C2D message received over HTTPS stays invisible to other receives
    /// (Azure: one minute, not configurable; tests shorten it).
    pub c2d_lock_timeout: Duration,
    pub telemetry_max_age: Duration,
    pub telemetry_max_count: u64,
    /// Largest device-to-cloud message accepted, properties included (256 KiB, as Azure).
    pub max_d2c_bytes: usize,
    /// Largest cloud-to-device message accepted (64 KiB, as Azure).
    pub max_c2d_bytes: usize,
    /// Time an AMQP client has to authenticate (SASL PLAIN or a $cbs token)
    /// before its connection is closed.
    pub amqp_auth_window: Duration,
    /// The DPS ID scope to use (`--id-scope`); None keeps the stored one or makes one.
    pub id_scope: Option<String>,
    /// Every commit (a telemetry group commit, a twin write) reaches the disk before it
    /// is acknowledged (`--fsync`): safe against power loss, not only against a crash.
    pub fsync: bool,
    /// The upload container, SAS lifetime and notifications of device file upload.
    pub file_upload: super::file_upload::FileUploadSettings,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            partitions: 4,
            c2d_max_queue: 50,
            c2d_default_ttl: Duration::from_secs(3600),
            c2d_max_delivery_count: 10,
            c2d_lock_timeout: Duration::from_secs(60),
            telemetry_max_age: Duration::from_secs(24 * 3600),
            telemetry_max_count: 100_000,
            max_d2c_bytes: 256 * 1024,
            max_c2d_bytes: 64 * 1024,
            amqp_auth_window: Duration::from_secs(60),
            id_scope: None,
            fsync: false,
            file_upload: Default::default(),
        }
    }
}

pub struct HubState {
    pub store: Arc<Store>,
    /// Host name clients use and tokens are scoped to ("localhost").
    pub host_name: String,
    pub policies: Vec<Policy>,
    /// The Device Provisioning Service's ID scope of this hub (see `dps`).
    pub id_scope: String,
    pub sessions: Sessions,
    pub settings: HubSettings,
    /// C2D feedback and file upload notifications on their way to service receivers.
    pub queues: super::service_queues::ServiceQueues,
    /// C2D messages a device received over HTTPS and has not settled yet.
    pub(crate) c2d_locks: super::c2d_lock::C2dLocks,
    /// Every stored telemetry record, for live readers (AMQP, tests).
    pub telemetry: broadcast::Sender<Arc<TelemetryRecord>>,
    /// Commits telemetry in groups, off the async workers.
    pub(crate) telemetry_writer: TelemetryWriter,
    /// Last activity per identity; kept in memory and written on disconnect, because
    /// a database write per telemetry message would halve throughput for no reader.
    pub(crate) activity: Mutex<HashMap<IdentityKey, DateTime<Utc>>>,
}

const POLICIES_KEY: &str = "policies";

impl HubState {
    /// Opens the hub's state over `store`, creating the default policies on first use.
    pub fn open(
        store: Store,
        host_name: String,
        settings: HubSettings,
    ) -> Result<Arc<HubState>, StoreError> {
        let policies = match store
            .meta_get(POLICIES_KEY)?
            .and_then(|s| serde_json::from_str::<Vec<Policy>>(&s).ok())
        {
            Some(p) => p,
            None => {
                let p = default_policies();
                let json = serde_json::to_string(&p).unwrap_or_default();
                store.meta_put(POLICIES_KEY, &json)?;
                p
            }
        };
        let id_scope = super::dps::load_id_scope(&store, settings.id_scope.as_deref())?;
        if settings.fsync {
            store.sync_every_commit()?;
        }
        let store = Arc::new(store);
        let telemetry = broadcast::channel(4096).0;
        let state = Arc::new(HubState {
            telemetry_writer: TelemetryWriter::start(store.clone(), telemetry.clone()),
            store,
            host_name,
            policies,
            id_scope,
            sessions: Sessions::new(),
            settings,
            queues: Default::default(),
            c2d_locks: Default::default(),
            telemetry,
            activity: Mutex::new(HashMap::new()),
        });
        // Nothing is connected to a hub that just started.
        state.reset_connection_states()?;
        Ok(state)
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The service connection string of a policy, for hub.json and start-up output.
    pub fn service_connection_string(&self, policy: &str) -> Option<String> {
        self.policy(policy).map(|p| {
            format!(
                "HostName={};SharedAccessKeyName={};SharedAccessKey={}",
                self.host_name, p.name, p.primary_key
            )
        })
    }

    /// The hub's name as Azure would show it (first label of the host name).
    pub fn hub_name(&self) -> &str {
        self.host_name.split('.').next().unwrap_or(&self.host_name)
    }

    pub fn now() -> DateTime<Utc> {
        Utc::now()
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ServiceError::new(ErrorCode::ServerError, e.to_string())
    }
}
