//! Unit tests for query.rs: parsing, evaluation and errors of the WHERE language.

use super::*;
use serde_json::json;

pub(super) fn twin() -> Value {
    json!({
        "deviceId": "dev-1",
        "status": "enabled",
        "connectionState": "Connected",
        "tags": {"floor": 3, "building": "B1", "name": "it's", "quote": "say \"hi\"",
                 "nothing": null, "1stFloor": true, "ratio": 2.5},
        "properties": {
            "desired": {"rate": 5, "$version": 4},
            "reported": {"rate": 5, "fw": "1.2.0", "online": true, "temp": 21.5}
        }
    })
}

pub(super) fn m(sql: &str) -> bool {
    match parse_query(sql) {
        Ok(q) => q.matches(&twin()),
        Err(e) => panic!("{sql}: {e}"),
    }
}

pub(super) fn w(cond: &str) -> bool {
    m(&format!("SELECT * FROM devices WHERE {cond}"))
}

pub(super) fn err(sql: &str) -> QueryError {
    match parse_query(sql) {
        Ok(q) => panic!("{sql} parsed as {q:?}"),
        Err(e) => e,
    }
}

pub(super) fn path(p: &str) -> Vec<String> {
    p.split('.').map(String::from).collect()
}

#[test]
fn parses_select_all_and_count() {
    assert_eq!(
        parse_query("SELECT * FROM devices").unwrap(),
        Query {
            top: None,
            projection: Projection::All,
            source: Source::Devices,
            condition: None,
            group_by: None,
        }
    );
    assert_eq!(
        parse_query("SELECT * FROM devices.modules WHERE moduleId = 'm'")
            .unwrap()
            .source,
        Source::Modules
    );
    assert_eq!(
        parse_query("select count() as numberOfDevices from DEVICES where tags.floor >= 2")
            .unwrap(),
        Query {
            top: None,
            projection: Projection::Items(vec![SelectItem {
                value: Selected::Aggregate(Aggregate::Count),
                alias: Some("numberOfDevices".into())
            }]),
            source: Source::Devices,
            condition: Some(Condition::Compare {
                path: path("tags.floor"),
                op: CompareOp::Ge,
                value: json!(2)
            }),
            group_by: None,
        }
    );
    assert!(m("SELECT * FROM devices"));
}

#[test]
fn parses_in_not_in_and_flipped_comparison() {
    let q = parse_query("SELECT * FROM devices WHERE tags.b NOT IN ['a', 1, true, null]").unwrap();
    assert_eq!(
        q.condition,
        Some(Condition::In {
            path: path("tags.b"),
            values: vec![json!("a"), json!(1), json!(true), json!(null)],
            negated: true
        })
    );
    let q = parse_query("SELECT * FROM devices WHERE 3 < tags.floor").unwrap();
    assert_eq!(
        q.condition,
        Some(Condition::Compare {
            path: path("tags.floor"),
            op: CompareOp::Gt,
            value: json!(3)
        })
    );
}

#[test]
fn every_operator() {
    assert!(w("tags.floor = 3"));
    assert!(!w("tags.floor = 4"));
    assert!(w("tags.floor != 4"));
    assert!(!w("tags.floor != 3"));
    assert!(w("tags.floor <> 4"));
    assert!(!w("tags.floor <> 3"));
    assert!(w("tags.floor < 4"));
    assert!(!w("tags.floor < 3"));
    assert!(w("tags.floor > 2"));
    assert!(!w("tags.floor > 3"));
    assert!(w("tags.floor <= 3"));
    assert!(!w("tags.floor <= 2"));
    assert!(w("tags.floor >= 3"));
    assert!(!w("tags.floor >= 4"));
    assert!(w(
        "tags.ratio > 2.25 AND tags.ratio < 2.75 AND tags.floor = 3.0"
    ));
    assert!(w("properties.reported.temp >= -1e1"));
    assert!(w("properties.reported.fw < '1.3'"));
    assert!(w(
        "properties.reported.online = true AND tags.nothing = null"
    ));
}

#[test]
fn in_and_not_in() {
    assert!(w("tags.building IN ['B0', 'B1']"));
    assert!(!w("tags.building IN ['B0', 'B2']"));
    assert!(w("tags.building NOT IN ['B0', 'B2']"));
    assert!(!w("tags.building NOT IN ['B1']"));
    assert!(w("tags.floor IN (1, 3)"));
    assert!(!w("tags.floor IN []"));
    // Undefined path: neither IN nor NOT IN holds.
    assert!(!w("tags.missing IN ['x']"));
    assert!(!w("tags.missing NOT IN ['x']"));
}

#[test]
fn precedence_and_parentheses() {
    // AND binds tighter than OR: true OR (false AND false).
    assert!(w("tags.floor = 3 OR tags.floor = 9 AND tags.floor = 8"));
    // Parentheses change it: (true OR false) AND false.
    assert!(!w("(tags.floor = 3 OR tags.floor = 9) AND tags.floor = 8"));
    // NOT binds tighter than AND: (NOT false) AND true.
    assert!(w("NOT tags.floor = 9 AND tags.floor = 3"));
    assert!(!w("NOT (tags.floor = 3 AND tags.floor = 3)"));
    assert!(w("NOT NOT tags.floor = 3"));
    assert_eq!(
        parse_query("SELECT * FROM devices WHERE a = 1 OR b = 2 AND NOT c = 3")
            .unwrap()
            .condition,
        Some(Condition::Or(vec![
            Condition::Compare {
                path: path("a"),
                op: CompareOp::Eq,
                value: json!(1)
            },
            Condition::And(vec![
                Condition::Compare {
                    path: path("b"),
                    op: CompareOp::Eq,
                    value: json!(2)
                },
                Condition::Not(Box::new(Condition::Compare {
                    path: path("c"),
                    op: CompareOp::Eq,
                    value: json!(3)
                }))
            ])
        ]))
    );
}

#[test]
fn and_or_chains_are_flat() {
    let q = parse_query("SELECT * FROM devices WHERE a = 1 OR b = 2 OR c = 3 OR d = 4").unwrap();
    let Some(Condition::Or(terms)) = q.condition else {
        panic!("not an OR chain: {:?}", q.condition);
    };
    assert_eq!(terms.len(), 4);
    assert!(terms.iter().all(|t| matches!(t, Condition::Compare { .. })));
    // Three-valued over the chain: a false term decides AND, an undefined one leaves it
    // undefined (so NOT of it is no match either).
    assert!(!w("tags.floor = 3 AND tags.missing = 1 AND tags.floor = 3"));
    assert!(!w("NOT (tags.floor = 3 AND tags.missing = 1)"));
    assert!(w(
        "NOT (tags.floor = 3 AND tags.missing = 1 AND tags.floor = 4)"
    ));
    assert!(w("tags.missing = 1 OR tags.floor = 9 OR tags.floor = 3"));
    assert!(!w("NOT (tags.missing = 1 OR tags.floor = 9)"));
}

#[test]
fn the_longest_chain_that_fits_evaluates_and_a_longer_query_is_refused() {
    let prefix = "SELECT * FROM devices WHERE ";
    let tail = "tags.floor = 3";
    // As many copies of `term` as fit before `tail`.
    let longest = |term: &str| {
        let n = (MAX_QUERY_CHARS - prefix.len() - tail.len()) / term.len();
        let sql = format!("{prefix}{}{tail}", term.repeat(n));
        assert!(sql.len() <= MAX_QUERY_CHARS && n > 200);
        sql
    };
    assert!(m(&longest("tags.floor = 9 OR ")));
    assert!(!m(&longest("tags.floor = 3 AND tags.floor = 9 AND ")));
    assert!(m(&longest("tags.floor = 3 AND ")));
    // The 20,000-term chain that once overflowed the stack, and one character too many.
    let huge = format!("{prefix}{}{tail}", "tags.floor = 9 OR ".repeat(20_000));
    let e = err(&huge);
    assert_eq!(e.kind, QueryErrorKind::TooLong);
    assert_eq!(
        e.to_string(),
        "the query is longer than the 8192 characters allowed; shorten it at position 8193"
    );
    let just_over = format!("{prefix}{}", "a".repeat(MAX_QUERY_CHARS + 1 - prefix.len()));
    assert_eq!(err(&just_over).kind, QueryErrorKind::TooLong);
    // Characters, not bytes: 8192 two-byte characters still fit.
    let wide = format!(
        "{prefix}tags.floor = '{}'",
        "é".repeat(8192 - prefix.len() - 15)
    );
    assert_eq!(wide.chars().count(), MAX_QUERY_CHARS);
    assert!(parse_query(&wide).is_ok());
}

#[test]
fn is_defined_and_is_null() {
    assert!(w("IS_DEFINED(properties.reported.fw)"));
    assert!(!w("IS_DEFINED(properties.reported.nope)"));
    assert!(w("NOT is_defined(properties.reported.nope)"));
    assert!(w("IS_DEFINED(tags.nothing)"));
    assert!(w("IS_NULL(tags.nothing)"));
    assert!(!w("IS_NULL(tags.floor)"));
    assert!(!w("IS_NULL(tags.missing)"));
}

#[test]
fn string_escapes() {
    assert!(w("tags.name = 'it''s'"));
    assert!(w("tags.name = \"it's\""));
    assert!(w("tags.quote = \"say \"\"hi\"\"\""));
    assert!(w("tags.quote = 'say \"hi\"'"));
    assert_eq!(
        parse_query("SELECT * FROM devices WHERE a = ''''")
            .unwrap()
            .condition,
        Some(Condition::Compare {
            path: path("a"),
            op: CompareOp::Eq,
            value: json!("'")
        })
    );
}

#[test]
fn numbers_and_strings_do_not_mix() {
    assert!(!w("tags.floor = '3'"));
    assert!(w("tags.floor != '3'"));
    assert!(!w("tags.building = 1"));
    // Ordering across types is undefined: neither side nor its negation holds.
    assert!(!w("tags.floor < 'z'"));
    assert!(!w("NOT tags.floor < 'z'"));
}

#[test]
fn undefined_paths_are_false() {
    assert!(!w("tags.missing = 1"));
    assert!(!w("tags.missing != 1"));
    assert!(!w("NOT tags.missing = 1"));
    assert!(!w("tags.floor.deeper = 1"));
    // Undefined OR true is true; undefined AND false is false, so NOT of it is true.
    assert!(w("tags.missing = 1 OR tags.floor = 3"));
    assert!(w("NOT (tags.missing = 1 AND tags.floor = 9)"));
}

#[test]
fn top_level_names_and_keywords_are_case_insensitive() {
    assert!(w("deviceId = 'dev-1'"));
    assert!(w(
        "DeviceId = 'dev-1' aNd STATUS = 'enabled' oR connectionState = 'x'"
    ));
    assert!(w("connectionState = 'Connected'"));
    // Below the top level names are case-sensitive, and so are string values.
    assert!(!w("tags.Floor = 3"));
    assert!(!w("status = 'Enabled'"));
    assert!(m(
        "SeLeCt * FrOm DeViCeS wHeRe TRUE = properties.reported.online"
    ));
}

#[test]
fn path_segments_may_start_with_digits_or_dollar() {
    assert!(w("tags.1stFloor = true"));
    assert!(w("properties.desired.$version = 4"));
}

#[test]
fn error_positions_and_messages() {
    let cases: [(&str, usize, &str); 14] = [
        ("", 1, "the query is empty at position 1"),
        ("   ", 1, "the query is empty at position 1"),
        (
            "DELETE * FROM devices",
            1,
            "expected SELECT but found 'DELETE' at position 1",
        ),
        (
            "SELECT FROM devices",
            8,
            "expected '*', a property path or COUNT() after SELECT but found 'FROM' at position 8",
        ),
        (
            "SELECT * FROM devices.jobs",
            15,
            "only FROM devices and FROM devices.modules are supported, not devices.jobs at position 15",
        ),
        (
            "SELECT * FROM jobs",
            15,
            "only FROM devices and FROM devices.modules are supported, not jobs at position 15",
        ),
        (
            "SELECT * devices",
            10,
            "expected FROM but found 'devices' at position 10",
        ),
        (
            "SELECT * FROM devices WHERE",
            28,
            "expected a property path or a constant but found the end of the query at position 28",
        ),
        (
            "SELECT * FROM devices WHERE a = 'x",
            33,
            "a string is not closed at position 33",
        ),
        (
            "SELECT * FROM devices WHERE a = 12ab",
            33,
            "12ab is not a valid number at position 33",
        ),
        (
            "SELECT * FROM devices WHERE a # 1",
            31,
            "the character '#' is not allowed here at position 31",
        ),
        (
            "SELECT * FROM devices WHERE a = b",
            29,
            "a comparison needs a property path on one side and a constant on the other at position 29",
        ),
        (
            "SELECT * FROM devices WHERE (a = 1",
            35,
            "expected ')' but found the end of the query at position 35",
        ),
        (
            "SELECT COUNT() FROM devices",
            16,
            "expected AS and a name after the aggregate but found 'FROM' at position 16",
        ),
    ];
    for (sql, position, message) in cases {
        let e = err(sql);
        assert_eq!(
            (e.position, e.to_string().as_str()),
            (position, message),
            "{sql}"
        );
    }
    assert_eq!(
        err("SELECT * FROM devices WHERE a IN ['x' 'y']").kind,
        QueryErrorKind::Expected {
            expected: "',' or the end of the IN list",
            found: "a string".into()
        }
    );
    assert_eq!(
        err("SELECT * FROM devices WHERE a = 1 LIMIT 3").kind,
        QueryErrorKind::Expected {
            expected: "WHERE, GROUP BY or the end of the query",
            found: "'LIMIT'".into()
        }
    );
    assert_eq!(
        err("SELECT * FROM devices WHERE 'a' IN [1]").kind,
        QueryErrorKind::BadComparison
    );
    assert_eq!(
        err("SELECT * FROM devices WHERE a = 1e999").kind,
        QueryErrorKind::BadNumber("1e999".into())
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // As deep as fits in a query: refused at the limit, long before the stack is at risk.
    for depth in [MAX_NESTING + 1, 1900] {
        let sql = format!(
            "SELECT * FROM devices WHERE {}a = 1{}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        assert_eq!(err(&sql).kind, QueryErrorKind::TooDeep, "depth {depth}");
        let sql = format!("SELECT * FROM devices WHERE {}a = 1", "NOT ".repeat(depth));
        assert_eq!(err(&sql).kind, QueryErrorKind::TooDeep, "depth {depth}");
    }
    // At the limit it parses and evaluates: chains inside every level, parentheses and NOT
    // alternating, 32 of each (an even number of NOTs: the innermost truth survives).
    let mut cond = "tags.floor = 3".to_string();
    for level in 0..MAX_NESTING {
        cond = if level % 2 == 0 {
            format!("(tags.floor = 9 OR {cond} OR tags.floor = 8)")
        } else {
            format!("NOT {cond}")
        };
    }
    assert!(w(&cond));
}
