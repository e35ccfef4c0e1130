//! What one AMQP connection may hold. The frame limits are announced in Open and
//! Begin and checked on every frame ([`FrameGuard`](super::frame_guard::FrameGuard));
//! the counts below them are the hub's own, so that a client without credentials
//! cannot make the hub keep thousands of sessions and links (each link costs
//! the AMQP engine kilobytes of buffers).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fe2o3_amqp::types::definitions::Error as AmqpError;

use super::convert::error;
use iothub::amqp_frame::Limits;
use iothub::amqp_model::condition;

/// Largest frame (fe2o3's default; a 256 KiB telemetry message fits in two).
pub const MAX_FRAME_SIZE: u32 = 256 * 1024;
/// Highest channel number: 256 sessions, enough for a reader that opens one
/// session per partition on a hub with many partitions.
pub const CHANNEL_MAX: u16 = 255;
/// Highest link handle per session: the SDKs put one or two links on a session
/// (a partition receiver; the $cbs pair) and at most a handful more.
pub const HANDLE_MAX: u32 = 63;
/// Links open at once on one authenticated connection.
pub const LINKS_PER_CONNECTION: usize = 256;
/// Before a token is accepted a client needs the $cbs pair, perhaps $management:
/// this many links, and a few sessions to put them on (some SDKs begin a link's
/// session before authorizing it).
pub const UNAUTHENTICATED_LINKS: usize = 4;
pub const UNAUTHENTICATED_SESSIONS: usize = 16;

/// The limits the hub announces, for the frame checks.
pub fn announced() -> Limits {
    Limits {
        max_frame: MAX_FRAME_SIZE,
        channel_max: CHANNEL_MAX,
        handle_max: HANDLE_MAX,
    }
}

/// Sessions and links open on one connection.
#[derive(Debug, Default)]
pub struct Occupancy {
    sessions: Arc<AtomicUsize>,
    links: Arc<AtomicUsize>,
}

/// One counted session or link; released when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(count.clone()))
}

impl Occupancy {
    /// A slot for a new session, or the error to end it with.
    pub fn session(&self, authenticated: bool) -> Result<Slot, AmqpError> {
        if authenticated {
            // The channel-max check on frames already bounds sessions.
            self.sessions.fetch_add(1, Ordering::Relaxed);
            return Ok(Slot(self.sessions.clone()));
        }
        take(&self.sessions, UNAUTHENTICATED_SESSIONS).ok_or_else(|| {
            error(
                condition::RESOURCE_LIMIT,
                format!(
                    "At most {UNAUTHENTICATED_SESSIONS} sessions may be open before a token is put on $cbs."
                ),
            )
        })
    }

    /// A slot for a new link, or the error to close it with.
    pub fn link(&self, authenticated: bool) -> Result<Slot, AmqpError> {
        let (max, what) = if authenticated {
            (LINKS_PER_CONNECTION, "on one connection")
        } else {
            (UNAUTHENTICATED_LINKS, "before a token is put on $cbs")
        };
        take(&self.links, max).ok_or_else(|| {
            error(
                condition::RESOURCE_LIMIT,
                format!("At most {max} links may be open {what}."),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_until_dropped() {
        let o = Occupancy::default();
        let held: Vec<Slot> = (0..UNAUTHENTICATED_LINKS)
            .map(|_| o.link(false).unwrap())
            .collect();
        let refused = o.link(false).unwrap_err();
        assert!(refused.description.unwrap().contains("before a token"));
        assert!(o.link(true).is_ok());
        drop(held);
        assert!(o.link(false).is_ok());
    }
}
