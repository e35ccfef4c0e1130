//! The chart of one numeric field of telemetry over time.

use std::collections::VecDeque;

/// Points kept for the chart.
pub const MAX_POINTS: usize = 2_000;

/// The series drawn by the chart: (seconds since the first point, value), bounded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartSeries {
    pub field: Option<String>,
    /// Epoch milliseconds and value.
    pub points: VecDeque<(i64, f64)>,
}

impl ChartSeries {
    pub fn push(&mut self, time_ms: i64, value: f64) {
        if self.points.len() == MAX_POINTS {
            self.points.pop_front();
        }
        self.points.push_back((time_ms, value));
    }

    /// (min, max) of the values, widened when flat so the axis has a span.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        let mut it = self.points.iter().map(|p| p.1);
        let first = it.next()?;
        let (lo, hi) = it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo == hi {
            Some((lo - 1.0, hi + 1.0))
        } else {
            Some((lo, hi))
        }
    }

    pub fn latest(&self) -> Option<f64> {
        self.points.back().map(|p| p.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_is_bounded_with_bounds() {
        let mut s = ChartSeries::default();
        assert_eq!(s.bounds(), None);
        s.push(0, 3.0);
        assert_eq!(s.bounds(), Some((2.0, 4.0)));
        for i in 0..MAX_POINTS as i64 {
            s.push(i, i as f64);
        }
        assert_eq!(s.points.len(), MAX_POINTS);
        assert_eq!(s.bounds(), Some((0.0, (MAX_POINTS - 1) as f64)));
        assert_eq!(s.latest(), Some((MAX_POINTS - 1) as f64));
    }
}
