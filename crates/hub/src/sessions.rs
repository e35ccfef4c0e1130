//! Live device connections: who is connected, what they subscribed to, and the
//! direct-method calls waiting for their answers. Protocol servers attach a
//! session per connection and receive `SessionCommand`s; the service side sends
//! commands through here and never talks to a connection directly.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

/// Identity of a connected device or module: (device id, module id).
pub type IdentityKey = (String, Option<String>);

/// Work the hub hands to a device's connection.
#[derive(Debug)]
pub enum SessionCommand {
    /// Another connection took over this identity, or the identity was disabled or deleted.
    Close { reason: String },
    /// A desired-properties patch to forward if the device subscribed to them.
    DesiredPatch { version: u64, body: Vec<u8> },
    /// A direct method call; answer with `Sessions::complete_method(rid, ..)`.
    MethodRequest {
        method_name: String,
        rid: String,
        payload: Vec<u8>,
    },
    /// New cloud-to-device messages are queued for this device.
    C2dWaiting,
}

/// The secret a connection proved itself with. A change of an identity's keys ends the
/// connections whose key is gone and leaves the others (a policy token, the key that was
/// kept) alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credential {
    /// A shared access policy's token, or nothing the registry can revoke.
    #[default]
    Policy,
    /// A token signed with one of the identity's own keys: the key's SHA-256, so that the
    /// key itself is never kept (nor printed by a Debug) outside the registry.
    IdentityKey([u8; 32]),
    /// A self-signed certificate accepted by this registered thumbprint (its SHA-256,
    /// lowercase).
    Thumbprint([u8; 32]),
    /// A certificate issued by a registered CA: valid while the identity takes CA-signed
    /// certificates.
    CertificateAuthority,
}

impl Credential {
    pub fn identity_key(key: &str) -> Credential {
        use sha2::Digest;
        Credential::IdentityKey(sha2::Sha256::digest(key.as_bytes()).into())
    }

    pub fn thumbprint(thumbprint: &str) -> Credential {
        use sha2::Digest;
        let normal = thumbprint.trim().to_ascii_lowercase();
        Credential::Thumbprint(sha2::Sha256::digest(normal.as_bytes()).into())
    }
}

/// What a session has subscribed to, as far as the service side cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subscribed {
    pub methods: bool,
    pub desired: bool,
    pub c2d: bool,
}

/// The answer of a device to a direct method.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodAnswer {
    pub status: i32,
    pub payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MethodCallError {
    /// The device was not connected (and subscribed to methods) within the connect timeout.
    NotOnline,
    /// The device did not answer within the response timeout.
    Timeout,
    /// The device's connection closed while the call was in flight.
    ConnectionClosed,
}

struct Entry {
    session_id: u64,
    tx: mpsc::Sender<SessionCommand>,
    subscribed: Subscribed,
    credential: Credential,
}

struct Inner {
    next_id: u64,
    live: HashMap<IdentityKey, Entry>,
    /// Sessions ended because their connection fell behind (see `send`), until they detach.
    overflowed: HashSet<u64>,
    methods: HashMap<String, (IdentityKey, oneshot::Sender<MethodAnswer>)>,
}

pub struct Sessions {
    inner: Mutex<Inner>,
    /// Bumped on every attach or subscription change, so callers waiting for a device
    /// to come online (method connect timeout) wake up and look again.
    changed: watch::Sender<u64>,
}

/// A connection's handle on its session; detach it when the connection ends.
pub struct SessionTicket {
    pub session_id: u64,
    pub rx: mpsc::Receiver<SessionCommand>,
}

const QUEUE: usize = 256;

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions {
            inner: Mutex::new(Inner {
                next_id: 1,
                live: HashMap::new(),
                overflowed: HashSet::new(),
                methods: HashMap::new(),
            }),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Attaches a connection that proved nothing the registry can revoke (see `attach_with`).
    pub fn attach(&self, key: IdentityKey) -> SessionTicket {
        self.attach_with(key, Credential::Policy)
    }

    /// Attaches a new connection for `key`, authenticated with `credential`; an older
    /// connection of the same identity is told to close, as Azure allows one connection
    /// per identity.
    pub fn attach_with(&self, key: IdentityKey, credential: Credential) -> SessionTicket {
        let (tx, rx) = mpsc::channel(QUEUE);
        let session_id;
        {
            let mut inner = self.lock();
            session_id = inner.next_id;
            inner.next_id += 1;
            let old = inner.live.insert(
                key,
                Entry {
                    session_id,
                    tx,
                    subscribed: Subscribed::default(),
                    credential,
                },
            );
            if let Some(old) = old {
                let _ = old.tx.try_send(SessionCommand::Close {
                    reason: "another connection opened for this identity".into(),
                });
            }
        }
        self.bump();
        SessionTicket { session_id, rx }
    }

    /// Detaches a connection; a newer session of the same identity is left alone.
    /// Returns true if this was the identity's current session (or one that `send` ended
    /// and that no newer connection has replaced yet).
    pub fn detach(&self, key: &IdentityKey, session_id: u64) -> bool {
        let current = {
            let mut inner = self.lock();
            let overflowed = inner.overflowed.remove(&session_id);
            match inner.live.get(key) {
                Some(e) if e.session_id == session_id => {
                    Self::end(&mut inner, key);
                    true
                }
                Some(_) => false,
                None => overflowed,
            }
        };
        if current {
            self.bump();
        }
        current
    }

    fn end(inner: &mut Inner, key: &IdentityKey) {
        inner.live.remove(key);
        // Calls in flight to this identity can no longer be answered.
        inner.methods.retain(|_, (k, _)| k != key);
    }

    pub fn set_subscribed(&self, key: &IdentityKey, session_id: u64, subscribed: Subscribed) {
        {
            let mut inner = self.lock();
            match inner.live.get_mut(key) {
                Some(e) if e.session_id == session_id => e.subscribed = subscribed,
                _ => return,
            }
        }
        self.bump();
    }

    pub fn is_connected(&self, key: &IdentityKey) -> bool {
        self.lock().live.contains_key(key)
    }

    /// How many devices (not modules) have a live connection.
    pub fn connected_devices(&self) -> usize {
        self.lock().live.keys().filter(|(_, m)| m.is_none()).count()
    }

    pub fn subscribed(&self, key: &IdentityKey) -> Option<Subscribed> {
        self.lock().live.get(key).map(|e| e.subscribed)
    }

    /// Sends a command to the identity's live connection; false if none.
    /// A connection whose queue is full has fallen behind and would miss what it must not
    /// (a desired patch, a close): its session ends instead. The connection closes once it
    /// has drained the queue, and the device reconnects and reads its twin again, as the
    /// Azure SDKs do after a reconnect.
    pub fn send(&self, key: &IdentityKey, cmd: SessionCommand) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.live.get(key) else {
            return false;
        };
        match entry.tx.try_send(cmd) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(device = %key.0, module = ?key.1, "a connection fell behind its commands; ending its session");
                let id = entry.session_id;
                inner.overflowed.insert(id);
                Self::end(&mut inner, key);
                drop(inner);
                self.bump();
                false
            }
        }
    }

    /// Tells every connection of the identity to close (device disabled or deleted).
    pub fn close(&self, key: &IdentityKey, reason: &str) {
        self.send(
            key,
            SessionCommand::Close {
                reason: reason.to_string(),
            },
        );
    }

    /// Tells the identity's connection to close if the credential it connected with is no
    /// longer accepted (`still_valid` says no): its key was regenerated or replaced.
    pub fn close_unless(
        &self,
        key: &IdentityKey,
        still_valid: impl Fn(&Credential) -> bool,
        reason: &str,
    ) -> bool {
        let revoked = self
            .lock()
            .live
            .get(key)
            .is_some_and(|e| !still_valid(&e.credential));
        if revoked {
            self.close(key, reason);
        }
        revoked
    }

    /// Calls a direct method: waits up to `connect_timeout` for the identity to be
    /// connected and subscribed to methods, then up to `response_timeout` for its answer.
    pub async fn call_method(
        &self,
        key: &IdentityKey,
        method_name: &str,
        payload: Vec<u8>,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<MethodAnswer, MethodCallError> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + connect_timeout;
        loop {
            if self.subscribed(key).is_some_and(|s| s.methods) {
                break;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(MethodCallError::NotOnline);
            }
        }
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.lock().methods.insert(rid.clone(), (key.clone(), tx));
        let sent = self.send(
            key,
            SessionCommand::MethodRequest {
                method_name: method_name.to_string(),
                rid: rid.clone(),
                payload,
            },
        );
        if !sent {
            self.lock().methods.remove(&rid);
            return Err(MethodCallError::NotOnline);
        }
        let result = tokio::time::timeout(response_timeout, rx).await;
        self.lock().methods.remove(&rid);
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(MethodCallError::ConnectionClosed),
            Err(_) => Err(MethodCallError::Timeout),
        }
    }

    /// Delivers a device's answer to a method call. Only the identity the request was
    /// sent to may answer it; false if no such call is waiting.
    pub fn complete_method(&self, key: &IdentityKey, rid: &str, answer: MethodAnswer) -> bool {
        let mut inner = self.lock();
        match inner.methods.get(rid) {
            Some((k, _)) if k == key => {}
            _ => return false,
        }
        match inner.methods.remove(rid) {
            Some((_, tx)) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(d: &str) -> IdentityKey {
        (d.to_string(), None)
    }

    #[tokio::test]
    async fn a_key_change_closes_only_the_connection_whose_key_is_gone() {
        let s = Sessions::new();
        let old = Credential::identity_key("old");
        let mut by_key = s.attach_with(key("d"), old.clone());
        let mut by_policy = s.attach_with(key("p"), Credential::Policy);
        let kept = Credential::identity_key("kept");
        let valid = |c: &Credential| *c == Credential::Policy || *c == kept;
        assert!(!s.close_unless(&key("p"), valid, "key changed"));
        assert!(by_policy.rx.try_recv().is_err());
        assert!(s.close_unless(&key("d"), valid, "key changed"));
        assert!(matches!(
            by_key.rx.try_recv(),
            Ok(SessionCommand::Close { .. })
        ));
        let mut by_kept = s.attach_with(key("d"), Credential::identity_key("kept"));
        assert!(!s.close_unless(&key("d"), valid, "key changed"));
        assert!(by_kept.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_new_connection_closes_the_old_one() {
        let s = Sessions::new();
        let mut first = s.attach(key("d"));
        let second = s.attach(key("d"));
        assert!(matches!(
            first.rx.recv().await,
            Some(SessionCommand::Close { .. })
        ));
        assert!(!s.detach(&key("d"), first.session_id));
        assert!(s.is_connected(&key("d")));
        assert!(s.detach(&key("d"), second.session_id));
        assert!(!s.is_connected(&key("d")));
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_ended_not_silently_skipped() {
        let s = Sessions::new();
        let mut t = s.attach(key("d"));
        let patch = |version| SessionCommand::DesiredPatch {
            version,
            body: Vec::new(),
        };
        for v in 0..QUEUE as u64 {
            assert!(s.send(&key("d"), patch(v)));
        }
        assert!(
            !s.send(&key("d"), patch(999)),
            "a full queue is not a delivery"
        );
        assert!(!s.is_connected(&key("d")));
        // The connection drains what was queued, in order, then sees its session end.
        for v in 0..QUEUE as u64 {
            match t.rx.recv().await {
                Some(SessionCommand::DesiredPatch { version, .. }) => assert_eq!(version, v),
                _ => panic!("expected desired patch {v}"),
            }
        }
        assert!(t.rx.recv().await.is_none());
        // Its detach still records the disconnect...
        assert!(s.detach(&key("d"), t.session_id));
        // ...unless the device has reconnected meanwhile.
        let t1 = s.attach(key("e"));
        for _ in 0..=QUEUE {
            s.send(&key("e"), patch(0));
        }
        let _t2 = s.attach(key("e"));
        assert!(!s.detach(&key("e"), t1.session_id));
        assert!(s.is_connected(&key("e")));
    }

    #[tokio::test]
    async fn method_call_round_trip() {
        let s = std::sync::Arc::new(Sessions::new());
        let mut t = s.attach(key("d"));
        s.set_subscribed(
            &key("d"),
            t.session_id,
            Subscribed {
                methods: true,
                ..Default::default()
            },
        );
        let s2 = s.clone();
        let device = tokio::spawn(async move {
            match t.rx.recv().await {
                Some(SessionCommand::MethodRequest {
                    method_name, rid, ..
                }) => {
                    assert_eq!(method_name, "reboot");
                    assert!(!s2.complete_method(
                        &key("other"),
                        &rid,
                        MethodAnswer {
                            status: 1,
                            payload: vec![]
                        }
                    ));
                    assert!(s2.complete_method(
                        &key("d"),
                        &rid,
                        MethodAnswer {
                            status: 200,
                            payload: b"{}".to_vec()
                        }
                    ));
                }
                other => panic!("unexpected {other:?}"),
            }
            t
        });
        let answer = s
            .call_method(
                &key("d"),
                "reboot",
                vec![],
                Duration::ZERO,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        device.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn method_call_errors() {
        let s = std::sync::Arc::new(Sessions::new());
        let r = s
            .call_method(
                &key("d"),
                "m",
                vec![],
                Duration::ZERO,
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(r, Err(MethodCallError::NotOnline));
        // Connected but never subscribed to methods: still not online for methods.
        let _t = s.attach(key("d"));
        let r = s
            .call_method(
                &key("d"),
                "m",
                vec![],
                Duration::from_secs(2),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(r, Err(MethodCallError::NotOnline));
        // Subscribes later, within the connect timeout, and never answers.
        let s2 = s.clone();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t = s2.attach(key("e"));
            s2.set_subscribed(
                &key("e"),
                t.session_id,
                Subscribed {
                    methods: true,
                    ..Default::default()
                },
            );
            t
        });
        let r = s
            .call_method(
                &key("e"),
                "m",
                vec![],
                Duration::from_secs(3),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(r, Err(MethodCallError::Timeout));
        drop(late.await.unwrap());
    }
}
