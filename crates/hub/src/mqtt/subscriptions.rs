//! What a connection subscribed to, and the persistent sessions of
//! CleanSession=0 clients. The Azure device SDKs subscribe once per feature and
//! never again after a reconnect (the Python SDK even across its SAS-renewal
//! reconnect), so the hub keeps each identity's subscriptions, as MQTT
//! persistent sessions require: in memory, and in the store so that a hub
//! restart keeps them too. A CleanSession=1 connect drops them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rumqttc::mqttbytes::QoS;
use serde::{Deserialize, Serialize};

use crate::sessions::{IdentityKey, Subscribed};
use crate::state::HubState;
use iothub::topic::Subscription;

/// The QoS granted per subscribable feature (0 or 1; None = not subscribed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Granted {
    pub twin_responses: Option<u8>,
    pub desired: Option<u8>,
    pub methods: Option<u8>,
    pub c2d: Option<u8>,
    pub module_inputs: Option<u8>,
}

/// The QoS the hub grants for a requested one: IoT Hub has no QoS 2 and grants 1.
pub fn grant(requested: QoS) -> QoS {
    match requested {
        QoS::AtMostOnce => QoS::AtMostOnce,
        QoS::AtLeastOnce | QoS::ExactlyOnce => QoS::AtLeastOnce,
    }
}

/// QoS of a publish to a subscription granted at `granted`.
pub fn publish_qos(granted: u8) -> QoS {
    if granted == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

impl Granted {
    fn slot(&mut self, sub: &Subscription) -> &mut Option<u8> {
        match sub {
            Subscription::TwinResponses => &mut self.twin_responses,
            Subscription::DesiredPatches => &mut self.desired,
            Subscription::Methods => &mut self.methods,
            Subscription::C2d { .. } => &mut self.c2d,
            Subscription::ModuleInputs { .. } => &mut self.module_inputs,
        }
    }

    pub fn set(&mut self, sub: &Subscription, qos: Option<QoS>) {
        *self.slot(sub) = qos.map(|q| q as u8);
    }

    pub fn is_empty(&self) -> bool {
        *self == Granted::default()
    }

    /// What the service side needs to know (method calls wait for `methods`).
    pub fn subscribed(&self) -> Subscribed {
        Subscribed {
            methods: self.methods.is_some(),
            desired: self.desired.is_some(),
            c2d: self.c2d.is_some(),
        }
    }
}

/// May the connection of `key` subscribe to `sub`? Device and module ids in a
/// filter must be the connection's own; modules get no C2D, devices no inputs.
pub fn allowed(key: &IdentityKey, sub: &Subscription) -> bool {
    match sub {
        Subscription::C2d { device_id } => key.1.is_none() && *device_id == key.0,
        Subscription::ModuleInputs {
            device_id,
            module_id,
        } => *device_id == key.0 && key.1.as_deref() == Some(module_id.as_str()),
        Subscription::TwinResponses | Subscription::DesiredPatches | Subscription::Methods => true,
    }
}

/// A persisted session; tied to the identity's generation id so a deleted and
/// re-created identity starts afresh.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSession {
    generation_id: String,
    granted: Granted,
}

/// The persistent sessions of all identities.
pub struct SessionMemory {
    state: Arc<HubState>,
    live: Mutex<HashMap<IdentityKey, StoredSession>>,
}

fn meta_key(key: &IdentityKey) -> String {
    match &key.1 {
        None => format!("mqtt-session/{}", key.0),
        Some(m) => format!("mqtt-session/{}/{m}", key.0),
    }
}

impl SessionMemory {
    pub fn new(state: Arc<HubState>) -> SessionMemory {
        SessionMemory {
            state,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdentityKey, StoredSession>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subscriptions a connect starts with: the stored ones for CleanSession=0
    /// (if any), none for CleanSession=1, which also forgets the stored ones.
    pub fn resume(&self, key: &IdentityKey, generation_id: &str, clean: bool) -> Granted {
        if clean {
            if self.lock().remove(key).is_some() || self.load(key).is_some() {
                self.write(key, None);
            }
            return Granted::default();
        }
        let cached = self.lock().get(key).cloned();
        match cached.or_else(|| self.load(key)) {
            Some(s) if s.generation_id == generation_id => {
                self.lock().insert(key.clone(), s.clone());
                s.granted
            }
            _ => Granted::default(),
        }
    }

    /// Records a CleanSession=0 connection's subscriptions after a change.
    pub fn save(&self, key: &IdentityKey, generation_id: &str, granted: Granted) {
        let session = StoredSession {
            generation_id: generation_id.to_string(),
            granted,
        };
        self.lock().insert(key.clone(), session.clone());
        self.write(key, Some(&session));
    }

    fn load(&self, key: &IdentityKey) -> Option<StoredSession> {
        match self.state.store.meta_get(&meta_key(key)) {
            Ok(Some(text)) => serde_json::from_str(&text).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a stored MQTT session");
                None
            }
        }
    }

    fn write(&self, key: &IdentityKey, session: Option<&StoredSession>) {
        let text = session
            .and_then(|s| serde_json::to_string(s).ok())
            .unwrap_or_default();
        if let Err(e) = self.state.store.meta_put(&meta_key(key), &text) {
            tracing::warn!(error = %e, "cannot store an MQTT session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::HubSettings;
    use crate::store::Store;

    fn key(d: &str, m: Option<&str>) -> IdentityKey {
        (d.to_string(), m.map(str::to_string))
    }

    #[test]
    fn identity_checks() {
        let c2d = Subscription::C2d {
            device_id: "d".into(),
        };
        let inputs = Subscription::ModuleInputs {
            device_id: "d".into(),
            module_id: "m".into(),
        };
        assert!(allowed(&key("d", None), &c2d));
        assert!(!allowed(&key("e", None), &c2d));
        assert!(!allowed(&key("d", Some("m")), &c2d));
        assert!(allowed(&key("d", Some("m")), &inputs));
        assert!(!allowed(&key("d", Some("n")), &inputs));
        assert!(!allowed(&key("d", None), &inputs));
        assert!(allowed(&key("x", None), &Subscription::Methods));
    }

    #[test]
    fn grants_and_flags() {
        assert_eq!(grant(QoS::ExactlyOnce), QoS::AtLeastOnce);
        assert_eq!(grant(QoS::AtMostOnce), QoS::AtMostOnce);
        let mut g = Granted::default();
        assert!(g.is_empty());
        g.set(&Subscription::Methods, Some(QoS::AtLeastOnce));
        g.set(
            &Subscription::C2d {
                device_id: "d".into(),
            },
            Some(QoS::AtMostOnce),
        );
        assert_eq!(g.methods, Some(1));
        assert_eq!(g.c2d, Some(0));
        assert_eq!(
            g.subscribed(),
            Subscribed {
                methods: true,
                desired: false,
                c2d: true
            }
        );
        g.set(&Subscription::Methods, None);
        assert!(!g.subscribed().methods);
    }

    #[test]
    fn sessions_persist_until_a_clean_connect() {
        let state = HubState::open(
            Store::in_memory().unwrap(),
            "localhost".into(),
            HubSettings::default(),
        )
        .unwrap();
        let k = key("d", None);
        let mut g = Granted::default();
        g.set(&Subscription::DesiredPatches, Some(QoS::AtLeastOnce));
        let memory = SessionMemory::new(state.clone());
        assert_eq!(memory.resume(&k, "gen1", false), Granted::default());
        memory.save(&k, "gen1", g);
        assert_eq!(memory.resume(&k, "gen1", false), g);
        // A new memory over the same store (a hub restart) still has it.
        let restarted = SessionMemory::new(state.clone());
        assert_eq!(restarted.resume(&k, "gen1", false), g);
        // A re-created identity (new generation id) does not inherit it.
        assert_eq!(restarted.resume(&k, "gen2", false), Granted::default());
        // A clean connect forgets it everywhere.
        assert_eq!(restarted.resume(&k, "gen1", true), Granted::default());
        assert_eq!(restarted.resume(&k, "gen1", false), Granted::default());
        assert_eq!(
            SessionMemory::new(state).resume(&k, "gen1", false),
            Granted::default()
        );
    }
}
