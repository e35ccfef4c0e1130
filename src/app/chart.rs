//! Numeric fields of JSON telemetry, for the chart of one field over time.

use std::collections::VecDeque;

use serde_json::Value;

/// At most this many numeric fields are taken from one message.
const MAX_FIELDS_PER_MESSAGE: usize = 32;
/// Nesting depth searched for numbers.
const MAX_DEPTH: usize = 4;
/// Points kept for the chart.
pub const MAX_POINTS: usize = 2_000;

/// Numeric leaves of a JSON body as (dotted path, value), in document order. Arrays are
/// skipped: their indices are not stable field names.
pub fn numeric_fields(value: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    collect(value, "", 0, &mut out);
    out
}

fn collect(value: &Value, prefix: &str, depth: usize, out: &mut Vec<(String, f64)>) {
    if out.len() >= MAX_FIELDS_PER_MESSAGE {
        return;
    }
    match value {
        Value::Number(n) if !prefix.is_empty() => {
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                out.push((prefix.to_string(), f));
            }
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect(v, &path, depth + 1, out);
            }
        }
        _ => {}
    }
}

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
    use serde_json::json;

    #[test]
    fn finds_numeric_leaves_by_path() {
        let v = json!({"t": 21.5, "s": "x", "n": {"h": 40, "deep": {"a": {"b": {"c": 1}}}},
                       "arr": [1, 2], "b": true});
        assert_eq!(
            numeric_fields(&v),
            vec![("t".to_string(), 21.5), ("n.h".to_string(), 40.0)]
        );
        assert!(numeric_fields(&json!(5)).is_empty());
    }

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
