//! Numeric fields of a JSON body (for the chart of one field over time), read in one pass
//! without building a `Value`: telemetry arrives too fast to keep a parsed body per message.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// At most this many numeric fields are taken from one message.
const MAX_FIELDS_PER_MESSAGE: usize = 32;
/// Nesting depth searched for numbers.
const MAX_DEPTH: usize = 4;

/// The numeric leaves of one JSON body as (dotted path, value), in document order. Arrays
/// are skipped: their indices are not stable field names. The buffers are reused from
/// message to message, so reading allocates nothing once they have grown.
#[derive(Clone, Debug, Default)]
pub struct Numbers {
    path: String,
    /// The paths found, one after the other.
    names: String,
    /// End of each path in `names`, and its value.
    found: Vec<(usize, f64)>,
}

impl Numbers {
    /// Reads `body`; false (and no numbers) when it is not JSON.
    pub fn read(&mut self, body: &[u8]) -> bool {
        self.names.clear();
        self.found.clear();
        let (names, found) = (&mut self.names, &mut self.found);
        let ok = scan_numbers(body, &mut self.path, |path, v| {
            names.push_str(path);
            found.push((names.len(), v));
        });
        if !ok {
            self.names.clear();
            self.found.clear();
        }
        ok
    }

    /// True when `other` read the same paths in the same order.
    pub fn same_paths(&self, other: &Numbers) -> bool {
        self.names == other.names
            && self
                .found
                .iter()
                .map(|f| f.0)
                .eq(other.found.iter().map(|f| f.0))
    }

    /// Becomes a copy of `other`, in its own buffers.
    pub fn copy_from(&mut self, other: &Numbers) {
        self.names.clone_from(&other.names);
        self.found.clone_from(&other.found);
    }

    /// (path, value) of each numeric leaf read, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        let starts = std::iter::once(0).chain(self.found.iter().map(|f| f.0));
        starts
            .zip(&self.found)
            .map(|(start, &(end, v))| (&self.names[start..end], v))
    }
}

/// Reads `body` as JSON in one pass, calling `found(path, value)` for each numeric leaf;
/// false when it is not JSON (after reporting what came before the error). Every value
/// goes through `deserialize_any`, as for a `Value`, so the same bodies are accepted. A key
/// repeated in one object is reported each time (a `Value` keeps its last value).
fn scan_numbers(body: &[u8], path: &mut String, mut found: impl FnMut(&str, f64)) -> bool {
    path.clear();
    let mut count = 0;
    let walk = Walk {
        path,
        depth: 0,
        count: &mut count,
        found: &mut found,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    walk.deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// One value at `depth`, whose path is `path`.
struct Walk<'a, F> {
    path: &'a mut String,
    depth: usize,
    count: &'a mut usize,
    found: &'a mut F,
}

impl<F: FnMut(&str, f64)> Walk<'_, F> {
    fn number(self, v: f64) {
        if !self.path.is_empty() && *self.count < MAX_FIELDS_PER_MESSAGE && v.is_finite() {
            *self.count += 1;
            (self.found)(self.path, v);
        }
    }
}

impl<'de, F: FnMut(&str, f64)> DeserializeSeed<'de> for Walk<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&str, f64)> Visitor<'de> for Walk<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.number(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.number(v as f64);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.number(v);
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Objects as deep as the limit are read but not searched.
        let search = self.depth < MAX_DEPTH && *self.count < MAX_FIELDS_PER_MESSAGE;
        let base = self.path.len();
        while map.next_key_seed(Key(&mut *self.path))?.is_some() {
            if search {
                map.next_value_seed(Walk {
                    path: &mut *self.path,
                    depth: self.depth + 1,
                    count: &mut *self.count,
                    found: &mut *self.found,
                })?;
            } else {
                map.next_value_seed(Skip)?;
            }
            self.path.truncate(base);
        }
        Ok(())
    }
}

/// A key, appended to the path (after a dot unless the path is empty).
struct Key<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<(), E> {
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(key);
        Ok(())
    }
}

/// Any value, read and checked as for a `Value`, then forgotten.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_fields(body: &[u8]) -> Vec<(String, f64)> {
        let mut n = Numbers::default();
        n.read(body);
        n.iter().map(|(f, v)| (f.to_string(), v)).collect()
    }

    #[test]
    fn finds_numeric_leaves_by_path() {
        let v = br#"{"t": 21.5, "s": "x", "n": {"h": 40, "deep": {"a": {"b": {"c": 1}}}},
                     "arr": [1, {"x": 2}], "b": true, "z": null, "": 3, "e": {"": {"f": 4}}}"#;
        assert_eq!(
            numeric_fields(v),
            vec![
                ("t".to_string(), 21.5),
                ("n.h".to_string(), 40.0),
                ("e..f".to_string(), 4.0)
            ]
        );
        assert!(numeric_fields(b"5").is_empty());
        let many = format!(
            "{{{}}}",
            (0..40)
                .map(|i| format!("\"k{i}\": {i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(
            numeric_fields(many.as_bytes()).len(),
            MAX_FIELDS_PER_MESSAGE
        );
    }

    #[test]
    fn accepts_what_a_value_parse_accepts() {
        let bodies: [&[u8]; 10] = [
            br#"{"a": [1, {"b": "\u00e9"}], "c": -0.5e3}"#,
            b"[1, 2",
            b"{\"a\": 1} x",
            br#"{"a": "\ud800"}"#,
            b"{\"a\": \"\xff\"}",
            b"1e400",
            br#"{"a": 1,}"#,
            b" \"text\" ",
            b"nul",
            br#"{"k": {"k": {"k": {"k": {"k": [{"k": "\ud800"}]}}}}}"#,
        ];
        for b in bodies {
            let value = serde_json::from_slice::<serde_json::Value>(b).is_ok();
            assert_eq!(Numbers::default().read(b), value, "{b:?}");
        }
        let mut n = Numbers::default();
        assert!(!n.read(br#"{"t": 1, "u": }"#));
        assert_eq!(n.iter().count(), 0, "nothing from a body that is not JSON");
    }
}
