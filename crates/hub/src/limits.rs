//! The time and connection limits every listener applies, so that no client, nor many
//! idle ones, can hold the hub's descriptors or stall it. The defaults are those of
//! ASP.NET Kestrel, the server behind Azure's own HTTPS front ends; tests shorten them.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// HTTPS: a request's headers must be complete this long after the connection is
    /// ready, or after the previous response on a kept-alive HTTP/1.1 connection.
    pub header_read_timeout: Duration,
    /// HTTPS: a connection with no request in progress is closed after this long
    /// (HTTP/1.1 connections reach `header_read_timeout` first).
    pub keep_alive_timeout: Duration,
    /// HTTPS: after `body_grace`, a request body must keep arriving at this many bytes
    /// a second on average, or the request is answered 400 and the connection closed.
    pub min_body_bytes_per_second: u64,
    pub body_grace: Duration,
    /// Connections one listener (MQTT, AMQP or HTTPS) holds at once; the hub lowers it to
    /// the listener's share of the process's descriptor limit (see [`Listener::share`]).
    pub max_connections: usize,
    /// Connections one client address holds at once on one listener.
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(130),
            min_body_bytes_per_second: 240,
            body_grace: Duration::from_secs(5),
            max_connections: 10_000,
            max_connections_per_address: 2_000,
        }
    }
}

impl ConnectionLimits {
    /// These limits with the per-listener cap lowered to `listener`'s share of `descriptors`.
    pub fn within_descriptors(mut self, descriptors: u64, listener: Listener) -> Self {
        let share = usize::try_from(listener.share(descriptors)).unwrap_or(usize::MAX);
        self.max_connections = self.max_connections.min(share.max(1));
        self
    }
}

/// The hub's listeners, for their share of the descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Mqtt,
    Https,
    Amqp,
}

impl Listener {
    /// Devices connect over MQTT, so it may hold half of the descriptors; HTTPS and AMQP
    /// (service clients, WebSockets) an eighth each. A quarter always stays free for the
    /// store, the logs and outgoing connections, whatever the clients do.
    pub fn share(self, descriptors: u64) -> u64 {
        match self {
            Listener::Mqtt => descriptors / 2,
            Listener::Https | Listener::Amqp => descriptors / 8,
        }
    }
}

/// Raises the soft limit on open descriptors to the hard limit (the common soft limit of
/// 1,024 is far below what a hub with many devices needs) and returns the soft limit now
/// in force, or None where it cannot be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            } else {
                tracing::debug!(
                    soft = lim.rlim_cur,
                    hard = lim.rlim_max,
                    "cannot raise the descriptor limit"
                );
            }
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_share_the_descriptors_and_leave_a_quarter_free() {
        let limits = ConnectionLimits::default();
        let cap = |d, l| limits.clone().within_descriptors(d, l).max_connections;
        assert_eq!(cap(1024, Listener::Mqtt), 512);
        assert_eq!(cap(1024, Listener::Https), 128);
        assert_eq!(cap(1024, Listener::Amqp), 128);
        assert_eq!(cap(1 << 20, Listener::Mqtt), limits.max_connections);
        assert_eq!(cap(2, Listener::Amqp), 1, "never below one");
        // 20,000 descriptors (a common hard limit) hold 10,000 devices.
        assert_eq!(cap(20_000, Listener::Mqtt), 10_000);
    }
}
