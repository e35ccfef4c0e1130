//! Admission of new connections: a count per listener and per client address, each
//! connection holding a [`ConnectionSlot`] that gives its place back when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the listener already holds its limit of {0} connections")]
    ListenerFull(usize),
    #[error("this address already holds its limit of {0} connections")]
    AddressFull(usize),
}

/// The connections one listener holds, in total and per client address.
#[derive(Debug)]
pub struct ConnectionCounter {
    max_total: usize,
    max_per_address: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ConnectionCounter {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<ConnectionCounter> {
        Arc::new(ConnectionCounter {
            max_total,
            max_per_address,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection from `peer`, or why there is none.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<ConnectionSlot, Refusal> {
        let ip = peer.ip().to_canonical();
        let mut held = self.held();
        if held.total >= self.max_total {
            return Err(Refusal::ListenerFull(self.max_total));
        }
        let from_ip = held.per_address.entry(ip).or_default();
        if *from_ip >= self.max_per_address {
            return Err(Refusal::AddressFull(self.max_per_address));
        }
        *from_ip += 1;
        held.total += 1;
        Ok(ConnectionSlot {
            counter: self.clone(),
            ip,
        })
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.held().total
    }
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// Runs `connection`, keeping this slot until it ends.
    pub async fn hold<F: Future>(self, connection: F) -> F::Output {
        let _slot = self;
        connection.await
    }
}

/// A slot shared by the tasks serving one connection (an HTTPS connection and the
/// WebSocket it upgrades to): freed when the last of them ends.
pub type SharedSlot = Arc<ConnectionSlot>;

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut held = self.counter.held();
        held.total -= 1;
        if let Some(n) = held.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_per_listener_and_frees_on_drop() {
        let counter = ConnectionCounter::new(3, 2);
        let a1 = counter.admit(addr("10.0.0.1:1000")).unwrap();
        let a2 = counter.admit(addr("10.0.0.1:1001")).unwrap();
        assert_eq!(
            counter.admit(addr("10.0.0.1:1002")).unwrap_err(),
            Refusal::AddressFull(2)
        );
        // The same address seen as IPv4-mapped IPv6 is still the same client.
        assert_eq!(
            counter.admit(addr("[::ffff:10.0.0.1]:1003")).unwrap_err(),
            Refusal::AddressFull(2)
        );
        let b1 = counter.admit(addr("10.0.0.2:1000")).unwrap();
        assert_eq!(
            counter.admit(addr("10.0.0.3:1000")).unwrap_err(),
            Refusal::ListenerFull(3)
        );
        drop(a1);
        assert_eq!(counter.total(), 2);
        let a3 = counter.admit(addr("10.0.0.1:1004")).unwrap();
        drop((a2, a3, b1));
        assert_eq!(counter.total(), 0);
        assert!(counter.held().per_address.is_empty());
    }
}
