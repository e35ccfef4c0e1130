//! Packet ids of the hub's QoS 1 publishes awaiting the device's PUBACK.

use std::collections::HashMap;

/// What a QoS 1 publish from the hub was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A C2D message (its queue sequence number): PUBACK completes it.
    C2d(i64),
    /// A twin response or desired-properties notification.
    Other,
}

/// Packet ids cycle 1..=65535, skipping those still in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    last: u16,
    waiting: HashMap<u16, Outbound>,
}

impl InFlight {
    /// Takes the next free packet id for `what`; None if all 65535 are in flight.
    pub fn start(&mut self, what: Outbound) -> Option<u16> {
        if self.waiting.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            self.last = if self.last == u16::MAX {
                1
            } else {
                self.last + 1
            };
            if !self.waiting.contains_key(&self.last) {
                self.waiting.insert(self.last, what);
                return Some(self.last);
            }
        }
    }

    /// The device acknowledged `pkid`; what it was, if anything was waiting.
    pub fn finish(&mut self, pkid: u16) -> Option<Outbound> {
        self.waiting.remove(&pkid)
    }

    /// Sequence numbers of C2D messages awaiting acknowledgement.
    pub fn c2d(&self) -> impl Iterator<Item = i64> + '_ {
        self.waiting.values().filter_map(|o| match o {
            Outbound::C2d(seq) => Some(*seq),
            Outbound::Other => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cycle_and_skip_those_in_use() {
        let mut f = InFlight::default();
        assert_eq!(f.start(Outbound::C2d(7)), Some(1));
        assert_eq!(f.start(Outbound::Other), Some(2));
        assert_eq!(f.c2d().collect::<Vec<_>>(), vec![7]);
        f.last = u16::MAX - 1;
        assert_eq!(f.start(Outbound::Other), Some(u16::MAX));
        // Wraps to 1, which is in use, so 2... also in use, then 3.
        assert_eq!(f.start(Outbound::Other), Some(3));
        assert_eq!(f.finish(1), Some(Outbound::C2d(7)));
        assert_eq!(f.finish(1), None);
        assert_eq!(f.c2d().count(), 0);
        f.last = u16::MAX;
        assert_eq!(f.start(Outbound::Other), Some(1));
    }

    #[test]
    fn exhausted() {
        let mut f = InFlight::default();
        for _ in 0..u16::MAX {
            assert!(f.start(Outbound::Other).is_some());
        }
        assert_eq!(f.start(Outbound::Other), None);
        f.finish(500);
        assert_eq!(f.start(Outbound::Other), Some(500));
    }
}
