//! Seeded no-panic smoke tests: random edits of valid queries and of queries at the
//! limits parse or fail cleanly, and whatever parses evaluates and builds its rows.

use super::tests::twin;
use super::*;
use crate::test_rng::XorShift;
use serde_json::json;

/// Random edits of valid queries (xorshift64: deterministic, no dependency).
#[test]
fn garbage_never_panics() {
    let seeds = [
        "SELECT * FROM devices WHERE tags.a = 'x' AND (NOT properties.reported.b IN [1, 2.5, -3e2])",
        "select count() as n from devices where is_defined(tags.x) or is_null(status)",
        "SELECT * FROM devices WHERE a <> \"q\"\"\" OR b >= -0.5 AND c != true",
        "SELECT TOP 5 deviceId, properties.reported.fw AS fw FROM devices WHERE STARTSWITH(deviceId, 'd\\'') AND tags.a NIN [0x1F, 'b']",
        "SELECT tags.floor AS f, COUNT() AS n, AVG(properties.reported.temp) AS t FROM devices WHERE IS_NUMBER(tags.floor) OR ARRAY_CONTAINS(tags.z, 1) GROUP BY tags.floor",
        "select min(tags.ratio) as lo, max(tags.ratio) as hi, sum(tags.floor) as s from devices where not contains(tags.name, 'x') and is_primitive(status)",
    ];
    let pieces = [
        "(",
        ")",
        "[",
        "]",
        "'",
        "\"",
        "''",
        ".",
        ",",
        "-",
        "e",
        "1",
        "0.",
        "NOT",
        "IN",
        "AND",
        "OR",
        "=",
        "<",
        ">",
        "!",
        "<>",
        "*",
        " ",
        "\u{0}",
        "é",
        "\u{1F600}",
        "WHERE",
        "$",
        "IS_DEFINED(",
        "COUNT()",
        "AS",
        "1e",
        "+",
        "\n",
        "TOP",
        "GROUP BY",
        "ORDER BY",
        "NIN",
        "STARTSWITH(",
        "ARRAY_CONTAINS(",
        "IS_PRIMITIVE(",
        "\\",
        "\\u00",
        "0x",
        "SUM(",
        ", ",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let doc = twin();
    let (mut parsed, mut aggregated) = (0, 0);
    for _ in 0..5000 {
        let mut s: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(s.len() + 1);
            match rng.below(4) {
                0 => s
                    .splice(at..at, pieces[rng.below(pieces.len())].chars())
                    .for_each(drop),
                1 if at < s.len() => {
                    let end = (at + 1 + rng.below(8)).min(s.len());
                    s.drain(at..end);
                }
                2 => s.insert(at, char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')),
                _ => s.truncate(at),
            }
        }
        let text: String = s.into_iter().collect();
        if let Ok(q) = parse_query(&text) {
            parsed += 1;
            exercise(&q, &doc);
            if q.is_aggregate() {
                aggregated += 1;
            }
        }
    }
    // Mutations must not all be rejected, or the evaluator is never exercised.
    assert!(parsed > 50, "only {parsed} mutated queries parsed");
    assert!(
        aggregated > 10,
        "only {aggregated} aggregate queries parsed"
    );
    for _ in 0..2000 {
        let len = rng.below(40);
        let text: String = (0..len)
            .map(|_| char::from_u32(rng.below(0x250) as u32).unwrap_or('?'))
            .collect();
        let _ = parse_query(&text);
    }
}

/// A grouped query with as many aggregates as fit.
pub(super) fn longest_select_list() -> String {
    let tail = "COUNT() AS n FROM devices GROUP BY tags.floor";
    let mut sql = "SELECT ".to_string();
    for i in 0.. {
        let item = format!("SUM(tags.floor) AS s{i}, ");
        if sql.len() + item.len() + tail.len() > MAX_QUERY_CHARS {
            break;
        }
        sql.push_str(&item);
    }
    sql + tail
}

/// Runs a parsed query the way the hub does: WHERE, then the rows it selects.
fn exercise(q: &Query, doc: &Value) {
    let hit = q.matches(doc);
    if q.is_aggregate() {
        let docs = [doc.clone(), json!({}), json!({"tags": {"floor": "x"}})];
        let _ = q.aggregate(&docs);
    } else if hit {
        let _ = q.project(doc);
    }
}

/// Mutations of queries at the edges of the limits (the longest chain, the deepest nesting,
/// one past each): parsing and evaluation never panic or overflow, and the limits hold.
#[test]
fn queries_at_the_limits_never_crash() {
    let prefix = "SELECT * FROM devices WHERE ";
    let chain = |term: &str, tail: &str| {
        let n = (MAX_QUERY_CHARS - prefix.len() - tail.len()) / term.len();
        format!("{prefix}{}{tail}", term.repeat(n))
    };
    let nested = |depth: usize| {
        format!(
            "{prefix}{}tags.floor = 3{}",
            "NOT (tags.a = 1 OR ".repeat(depth / 2),
            ")".repeat(depth / 2)
        )
    };
    let seeds = [
        chain("tags.floor = 9 OR ", "tags.floor = 3"),
        chain("NOT tags.x IN [1, 'a'] AND ", "IS_DEFINED(tags.floor)"),
        nested(MAX_NESTING),
        nested(MAX_NESTING + 2),
        format!("{}{}", "a = 1 OR ".repeat(3), chain("a = 1 OR ", "b = 2")),
        chain(
            "STARTSWITH(deviceId, 'd') AND tags.x NIN [1] OR ",
            "IS_NULL(tags.nothing)",
        ),
        longest_select_list(),
    ];
    let alphabet: Vec<char> = "()[]' NOTANDOR=<>1a.,\u{e9}\\".chars().collect();
    let doc = twin();
    let mut rng = XorShift(0x5851_f42d_4c95_7f2d);
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..1000 {
        let s = rng.mutate(&seeds, &alphabet, 4);
        match parse_query(&s) {
            Ok(q) => {
                parsed += 1;
                assert!(s.chars().count() <= MAX_QUERY_CHARS);
                exercise(&q, &doc);
            }
            Err(e) if matches!(e.kind, QueryErrorKind::TooDeep | QueryErrorKind::TooLong) => {
                refused += 1
            }
            Err(_) => {}
        }
    }
    assert!(
        parsed > 50 && refused > 50,
        "parsed {parsed}, refused {refused}"
    );
}
