//! Difference between a telemetry message and the previous one from the same device: leaf by
//! leaf for JSON, line by line for text. Computed when the detail view opens, never per frame.

use serde_json::Value;

use super::body::{DecodedBody, escape};
use super::jsonview::leaves;

/// Lines compared at most, per side, for text bodies.
const MAX_DIFF_LINES: usize = 400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Same,
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    pub change: Change,
    pub text: String,
}

fn line(change: Change, text: String) -> DiffLine {
    DiffLine { change, text }
}

/// `previous` → `current`.
pub fn diff(previous: &DecodedBody, current: &DecodedBody) -> Vec<DiffLine> {
    match (previous.json(), current.json()) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let (old, new) = (leaves(&a, ""), leaves(&b, ""));
            let mut out = Vec::new();
            for (path, value) in &new {
                let path = escape(path);
                match old.get(path.as_ref()) {
                    None => out.push(line(Change::Added, format!("{path}: {value}"))),
                    Some(was) if was == value => {
                        out.push(line(Change::Same, format!("{path}: {value}")))
                    }
                    Some(was) => {
                        out.push(line(Change::Changed, format!("{path}: {was} → {value}")))
                    }
                }
            }
            for (path, value) in &old {
                if !new.contains_key(path) {
                    out.push(line(Change::Removed, format!("{}: {value}", escape(path))));
                }
            }
            out
        }
        _ => text_diff(previous.lines(), current.lines()),
    }
}

/// Longest-common-subsequence line diff, for bodies up to `MAX_DIFF_LINES` lines.
fn text_diff(a: &[String], b: &[String]) -> Vec<DiffLine> {
    if a.len() > MAX_DIFF_LINES || b.len() > MAX_DIFF_LINES {
        return vec![line(
            Change::Same,
            format!("too long to compare (more than {MAX_DIFF_LINES} lines)"),
        )];
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(line(Change::Same, a[i].clone()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(line(Change::Added, b[j].clone()));
            j += 1;
        } else {
            out.push(line(Change::Removed, a[i].clone()));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::body::decode;

    fn changes(a: &[u8], b: &[u8]) -> Vec<(Change, String)> {
        diff(&decode(a.to_vec(), 0), &decode(b.to_vec(), 0))
            .into_iter()
            .map(|l| (l.change, l.text))
            .collect()
    }

    #[test]
    fn json_leaf_diff() {
        assert_eq!(
            changes(
                br#"{"t": 1, "h": 2, "gone": true}"#,
                br#"{"t": 1, "h": 3, "new": "x"}"#
            ),
            vec![
                (Change::Changed, "h: 2 → 3".into()),
                (Change::Added, "new: \"x\"".into()),
                (Change::Same, "t: 1".into()),
                (Change::Removed, "gone: true".into()),
            ]
        );
    }

    #[test]
    fn text_line_diff() {
        assert_eq!(
            changes(b"a\nb\nc", b"a\nx\nc"),
            vec![
                (Change::Same, "a".into()),
                (Change::Added, "x".into()),
                (Change::Removed, "b".into()),
                (Change::Same, "c".into()),
            ]
        );
    }
}
