//! What every endpoint does before it speaks its protocol: accept a TCP
//! connection (retrying after accept errors such as running out of file
//! descriptors), admit it within the connection limits, and finish the TLS
//! handshake within a deadline, so a slow or broken client never stalls a
//! listener. Failures are logged, at most once every few seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::admission::{ConnectionCounter, ConnectionSlot};
use super::limits::ConnectionLimits;

/// Time a client has for the TLS handshake (MQTT also counts CONNECT in it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves once the hub is shutting down (or its shutdown sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it inside this function.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A bound port and the connections it holds.
pub struct Listener {
    tcp: TcpListener,
    what: &'static str,
    counter: Arc<ConnectionCounter>,
    accept_failures: RareWarning,
    refusals: RareWarning,
}

impl Listener {
    pub fn new(tcp: TcpListener, what: &'static str, limits: &ConnectionLimits) -> Listener {
        Listener {
            tcp,
            what,
            counter: ConnectionCounter::new(
                limits.max_connections,
                limits.max_connections_per_address,
            ),
            accept_failures: RareWarning::default(),
            refusals: RareWarning::default(),
        }
    }

    /// The next admitted connection with the slot it holds, or None once the hub shuts
    /// down. Connections over the limits are closed at once.
    pub async fn next(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, SocketAddr, ConnectionSlot)> {
        let what = self.what;
        loop {
            let accepted = tokio::select! {
                r = self.tcp.accept() => r,
                _ = stopped(shutdown) => return None,
            };
            match accepted {
                Ok((tcp, peer)) => match self.counter.admit(peer) {
                    Ok(slot) => {
                        let _ = tcp.set_nodelay(true);
                        return Some((tcp, peer, slot));
                    }
                    Err(refusal) => self.refusals.warn(|n| {
                        tracing::warn!(%peer, suppressed = n, "{what} refused a connection: {refusal}")
                    }),
                },
                Err(e) => {
                    self.accept_failures.warn(|n| {
                        tracing::warn!(error = %e, suppressed = n, "{what} accept failed")
                    });
                    // Out of descriptors, accept fails at once again: give connections
                    // a moment to end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// A warning logged at most once per [`RareWarning::EVERY`], with how many were held back.
#[derive(Default)]
struct RareWarning {
    last: Option<Instant>,
    suppressed: u64,
}

impl RareWarning {
    const EVERY: Duration = Duration::from_secs(10);

    fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// The TLS handshake, bounded by `deadline`; a failure is logged and gives None.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    what: &str,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "{what} TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "{what} TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rare_warning_counts_what_it_holds_back() {
        let mut w = RareWarning::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            w.warn(|n| logged.push(n));
        }
        assert_eq!(logged, [0]);
        w.last = Some(Instant::now() - RareWarning::EVERY);
        w.warn(|n| logged.push(n));
        assert_eq!(logged, [0, 4]);
    }
}
