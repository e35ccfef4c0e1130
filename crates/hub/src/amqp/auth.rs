//! Who may do what on one AMQP connection: the service tokens it presented (SASL
//! PLAIN or CBS put-token), each with the policy that signed it and its expiry.
//! Links ask for a resource and a permission, and are closed when the token that
//! allowed them expires without a newer one.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::policies::Permission;
use crate::state::HubState;
use iothub::sas::{SasError, SasToken, resource_covers, verify_event_hubs_token, verify_token};

/// A verified service token.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// The token's decoded `sr`.
    pub resource: String,
    pub policy: String,
    /// Unix seconds.
    pub expiry: u64,
}

pub fn unix_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Checks a service token against the hub's policies: it must name a policy (`skn`),
/// be scoped to this hub, be signed with one of the policy's keys (as IoT Hub signs,
/// with the decoded key, or as Event Hubs signs, with the key text) and not be expired.
pub fn verify_service_token(state: &HubState, token: &str) -> Result<Grant, String> {
    let token = SasToken::parse(token).map_err(|e| format!("The SAS token is invalid: {e}."))?;
    let name = token
        .key_name
        .as_deref()
        .ok_or("The SAS token names no shared access policy (skn).")?;
    let policy = state
        .policy(name)
        .ok_or_else(|| format!("The shared access policy '{name}' does not exist on this hub."))?;
    if !resource_covers(&state.host_name, &token.resource) {
        return Err(format!(
            "The SAS token is scoped to '{}', not to this hub '{}'.",
            token.resource, state.host_name
        ));
    }
    let now = unix_now();
    let mut expired = false;
    for key in [&policy.primary_key, &policy.secondary_key] {
        for result in [
            verify_token(&token, key, now),
            verify_event_hubs_token(&token, key, now),
        ] {
            match result {
                Ok(()) => {
                    return Ok(Grant {
                        resource: token.resource.clone(),
                        policy: name.to_string(),
                        expiry: token.expiry,
                    });
                }
                Err(SasError::Expired) => expired = true,
                Err(_) => {}
            }
        }
    }
    Err(if expired {
        "The SAS token has expired; mint a new one.".to_string()
    } else {
        "The SAS token's signature does not match the policy's keys.".to_string()
    })
}

/// Service resources are compared without regard to case: Event Hubs paths are
/// case-insensitive, and azure-eventhub scopes receiver tokens to
/// `.../consumergroups/{group}` in lower case.
fn covers(granted: &str, requested: &str) -> bool {
    resource_covers(&granted.to_lowercase(), &requested.to_lowercase())
}

pub struct ConnAuth {
    grants: Mutex<Vec<Grant>>,
    changed: watch::Sender<u64>,
}

impl Default for ConnAuth {
    fn default() -> Self {
        ConnAuth {
            grants: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl ConnAuth {
    fn grants(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a token was ever accepted on this connection.
    pub fn authenticated(&self) -> bool {
        !self.grants().is_empty()
    }

    /// Records a token; a newer token for the same scope and policy replaces the old one.
    pub fn add(&self, grant: Grant) {
        let mut grants = self.grants();
        grants.retain(|g| !(g.resource == grant.resource && g.policy == grant.policy));
        grants.push(grant);
        drop(grants);
        self.changed.send_modify(|n| *n += 1);
    }

    /// The latest expiry among tokens that cover `resource` with `permission`.
    fn best_expiry(&self, state: &HubState, resource: &str, permission: Permission) -> Option<u64> {
        self.grants()
            .iter()
            .filter(|g| covers(&g.resource, resource))
            .filter(|g| {
                state
                    .policy(&g.policy)
                    .is_some_and(|p| p.allows(permission))
            })
            .map(|g| g.expiry)
            .max()
    }

    /// Ok(expiry) if a live token allows `permission` on `resource`, else a sentence why not.
    pub fn check(
        &self,
        state: &HubState,
        resource: &str,
        permission: Permission,
    ) -> Result<u64, String> {
        let any_scope = self.grants().iter().any(|g| covers(&g.resource, resource));
        match self.best_expiry(state, resource, permission) {
            Some(exp) if exp > unix_now() => Ok(exp),
            Some(_) => Err(format!(
                "The token for '{resource}' has expired; put a new token on $cbs."
            )),
            None if any_scope => Err(format!(
                "The token's shared access policy does not grant {permission:?} on '{resource}'."
            )),
            None => Err(format!(
                "No token authorizes '{resource}'; put a token on $cbs or use SASL PLAIN first."
            )),
        }
    }

    /// Completes when no live token allows `permission` on `resource` any more.
    pub async fn lapsed(&self, state: &HubState, resource: &str, permission: Permission) {
        let mut rx = self.changed.subscribe();
        loop {
            let now = unix_now();
            match self.best_expiry(state, resource, permission) {
                Some(exp) if exp > now => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(exp - now)) => {}
                        r = rx.changed() => if r.is_err() { return },
                    }
                }
                _ => return,
            }
        }
    }
}
