//! Pretty JSON as display lines that remember which leaf they show, so a view can highlight
//! the leaves that just changed. Keys and strings go through serde_json's escaping and then
//! `body::escape`, so device-supplied names cannot drive the terminal.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::body::escape;

/// One display line of pretty JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonLine {
    pub text: String,
    /// Dotted path of the leaf on this line, when the line holds a leaf.
    pub path: Option<String>,
}

/// Pretty-prints `map` with two-space indent; leaf lines carry `prefix.key.key` paths.
pub fn lines(map: &Map<String, Value>, prefix: &str) -> Vec<JsonLine> {
    let mut out = Vec::new();
    if map.is_empty() {
        out.push(plain("{}".into()));
        return out;
    }
    out.push(plain("{".into()));
    object_body(map, prefix, 1, &mut out);
    out.push(plain("}".into()));
    out
}

fn plain(text: String) -> JsonLine {
    JsonLine { text, path: None }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn quoted(key: &str) -> String {
    escape(&Value::String(key.to_string()).to_string()).into_owned()
}

fn object_body(map: &Map<String, Value>, prefix: &str, depth: usize, out: &mut Vec<JsonLine>) {
    let indent = "  ".repeat(depth);
    let last = map.len().saturating_sub(1);
    for (i, (key, value)) in map.iter().enumerate() {
        let comma = if i == last { "" } else { "," };
        let path = join(prefix, key);
        let head = format!("{indent}{}: ", quoted(key));
        match value {
            Value::Object(child) if !child.is_empty() => {
                out.push(plain(format!("{head}{{")));
                object_body(child, &path, depth + 1, out);
                out.push(plain(format!("{indent}}}{comma}")));
            }
            other => out.push(JsonLine {
                text: format!("{head}{}{comma}", escape(&other.to_string())),
                path: Some(path),
            }),
        }
    }
}

/// Every leaf (non-object or empty object value) by dotted path, compact JSON text.
pub fn leaves(map: &Map<String, Value>, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    collect(map, prefix, &mut out);
    out
}

fn collect(map: &Map<String, Value>, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (key, value) in map {
        let path = join(prefix, key);
        match value {
            Value::Object(child) if !child.is_empty() => collect(child, &path, out),
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_carry_leaf_paths() {
        let v = json!({"a": 1, "b": {"c": "x", "e": {}}, "d": [1, 2]});
        let got = lines(v.as_object().unwrap(), "desired");
        let text: Vec<_> = got.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            text,
            [
                "{",
                "  \"a\": 1,",
                "  \"b\": {",
                "    \"c\": \"x\",",
                "    \"e\": {}",
                "  },",
                "  \"d\": [1,2]",
                "}"
            ]
        );
        assert_eq!(got[1].path.as_deref(), Some("desired.a"));
        assert_eq!(got[3].path.as_deref(), Some("desired.b.c"));
        assert_eq!(got[2].path, None);
        assert_eq!(lines(&Map::new(), "")[0].text, "{}");
    }

    #[test]
    fn hostile_keys_are_escaped() {
        let v = json!({"\u{1b}[2J": "\u{7}", "\u{202e}x": 1});
        for l in lines(v.as_object().unwrap(), "") {
            assert!(
                !l.text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{:?}",
                l.text
            );
        }
    }

    #[test]
    fn leaves_flatten() {
        let v = json!({"a": {"b": 1, "c": {}}, "d": "x"});
        let got = leaves(v.as_object().unwrap(), "p");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                ("p.a.b".to_string(), "1".to_string()),
                ("p.a.c".to_string(), "{}".to_string()),
                ("p.d".to_string(), "\"x\"".to_string())
            ]
        );
    }
}
