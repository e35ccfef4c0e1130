//! `TelemetryRing`: the bounded buffer of received telemetry. Each row gets a sequence id that
//! keeps growing, so views can refer to rows by id while old rows fall out of the front.

use std::collections::VecDeque;

/// Default number of rows kept.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A bounded ring of `T` with monotonically increasing ids and a count of rows dropped.
#[derive(Clone, Debug)]
pub struct TelemetryRing<T> {
    rows: VecDeque<T>,
    capacity: usize,
    /// Id of `rows[0]`.
    first_id: u64,
    dropped: u64,
}

impl<T> TelemetryRing<T> {
    /// A ring that keeps at most `capacity` rows (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            rows: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            capacity,
            first_id: 0,
            dropped: 0,
        }
    }

    /// Appends a row and returns its id; the oldest row is dropped when full.
    pub fn push(&mut self, row: T) -> u64 {
        self.push_with(|_| row)
    }

    /// Appends the row `make` returns, given the oldest row when the ring is full (which
    /// then leaves), so that its allocations can be reused.
    pub fn push_with(&mut self, make: impl FnOnce(Option<T>) -> T) -> u64 {
        let oldest = if self.rows.len() == self.capacity {
            self.first_id += 1;
            self.dropped += 1;
            self.rows.pop_front()
        } else {
            None
        };
        self.rows.push_back(make(oldest));
        self.next_id() - 1
    }

    /// The row with this id, if it is still in the ring.
    pub fn get(&self, id: u64) -> Option<&T> {
        let offset = id.checked_sub(self.first_id)?;
        self.rows.get(usize::try_from(offset).ok()?)
    }

    /// Id of the oldest row still kept (equal to `next_id` when empty).
    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// Id the next pushed row will get.
    pub fn next_id(&self) -> u64 {
        self.first_id + self.rows.len() as u64
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows pushed out of the front since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Rows with their ids, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        let first = self.first_id;
        self.rows
            .iter()
            .enumerate()
            .map(move |(i, r)| (first + i as u64, r))
    }

    /// Forgets every row (ids keep counting; the dropped count is kept).
    pub fn clear(&mut self) {
        self.first_id = self.next_id();
        self.rows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_dropped_count_and_stable_ids() {
        let mut r = TelemetryRing::new(3);
        for i in 0..5 {
            assert_eq!(r.push(i * 10), i as u64);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.first_id(), 2);
        assert_eq!(r.next_id(), 5);
        assert_eq!(r.get(1), None);
        assert_eq!(r.get(2), Some(&20));
        assert_eq!(r.get(4), Some(&40));
        assert_eq!(r.get(5), None);
        let all: Vec<_> = r.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(all, [(2, 20), (3, 30), (4, 40)]);
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.push(7), 5);
        assert_eq!(r.dropped(), 2);
        assert_eq!(TelemetryRing::<u8>::new(0).capacity(), 1);
    }
}
