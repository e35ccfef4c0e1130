//! Unit tests for SELECT lists, TOP, GROUP BY and aggregates, and the refusals around them.

use super::tests::{err, path, twin};
use super::*;
use serde_json::json;

fn q(sql: &str) -> Query {
    parse_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn fleet() -> Vec<Value> {
    [
        ("d1", Some("Success"), json!(10)),
        ("d2", Some("Pending"), json!(20)),
        ("d3", Some("Success"), json!(2.5)),
        ("d4", None, json!("n/a")),
        ("d5", Some("Success"), json!(-1)),
    ]
    .into_iter()
    .map(|(id, status, rate)| {
        let mut reported = json!({"rate": rate});
        if let Some(s) = status {
            reported["telemetryConfig"] = json!({"status": s});
        }
        json!({"deviceId": id, "properties": {"reported": reported}})
    })
    .collect()
}

#[test]
fn projections_name_each_value_by_alias_or_last_segment() {
    let query = q("SELECT deviceId, properties.reported.fw, tags.floor AS level FROM devices");
    assert_eq!(
        query.projection,
        Projection::Items(vec![
            SelectItem {
                value: Selected::Path(path("deviceId")),
                alias: None
            },
            SelectItem {
                value: Selected::Path(path("properties.reported.fw")),
                alias: None
            },
            SelectItem {
                value: Selected::Path(path("tags.floor")),
                alias: Some("level".into())
            },
        ])
    );
    assert!(!query.is_aggregate());
    assert_eq!(
        query.project(&twin()),
        json!({"deviceId": "dev-1", "fw": "1.2.0", "level": 3})
    );
    // The key is the twin's spelling of the property, as Azure answers
    // `SELECT DeviceId, LastActivityTime` with deviceId and lastActivityTime.
    assert_eq!(
        q("SELECT DeviceId, STATUS FROM devices").project(&twin()),
        json!({"deviceId": "dev-1", "status": "enabled"})
    );
    // An undefined property is left out; objects and null come whole.
    assert_eq!(
        q("SELECT tags.missing, tags.nothing, properties.desired FROM devices").project(&twin()),
        json!({"nothing": null, "desired": {"rate": 5, "$version": 4}})
    );
    assert_eq!(q("SELECT * FROM devices").project(&twin()), twin());
}

#[test]
fn top_limits_any_select() {
    assert_eq!(q("SELECT TOP 3 * FROM devices").top, Some(3));
    assert_eq!(q("select top 0 deviceId from devices").top, Some(0));
    assert_eq!(q("SELECT * FROM devices").top, None);
    for (sql, found) in [
        ("SELECT TOP -1 * FROM devices", "-1"),
        ("SELECT TOP 2.5 * FROM devices", "2.5"),
        ("SELECT TOP * FROM devices", "'*'"),
        ("SELECT TOP 'x' * FROM devices", "a string"),
    ] {
        let e = err(sql);
        assert_eq!(e.kind, QueryErrorKind::BadTop(found.into()), "{sql}");
        assert_eq!(e.position, 12, "{sql}");
    }
}

#[test]
fn count_without_group_by_is_one_row() {
    let query = q("SELECT COUNT() AS numberOfDevices FROM devices");
    assert!(query.is_aggregate());
    assert_eq!(query.aggregate(&fleet()), [json!({"numberOfDevices": 5})]);
    assert_eq!(query.aggregate(&[]), [json!({"numberOfDevices": 0})]);
    let query = q(
        "SELECT COUNT() AS n, SUM(properties.reported.rate) AS total, \
         AVG(properties.reported.rate) AS mean, MIN(properties.reported.rate) AS low, \
         MAX(properties.reported.rate) AS high FROM devices",
    );
    assert_eq!(
        query.aggregate(&fleet()),
        [json!({"n": 5, "total": 31.5, "mean": 7.875, "low": -1, "high": 20})]
    );
    // No numbers: SUM is 0, the others are undefined and left out.
    let none = vec![json!({"deviceId": "x"})];
    assert_eq!(query.aggregate(&none), [json!({"n": 1, "total": 0})]);
    // Whole numbers sum exactly.
    let big = vec![
        json!({"properties": {"reported": {"rate": 9_007_199_254_740_993_i64}}}),
        json!({"properties": {"reported": {"rate": 1}}}),
    ];
    assert_eq!(
        q("SELECT SUM(properties.reported.rate) AS s FROM devices").aggregate(&big),
        [json!({"s": 9_007_199_254_740_994_i64})]
    );
}

#[test]
fn group_by_counts_each_value_in_first_seen_order() {
    // Azure's documented example and result shape.
    let query = q(
        "SELECT properties.reported.telemetryConfig.status AS status, \
         COUNT() AS numberOfDevices FROM devices \
         GROUP BY properties.reported.telemetryConfig.status",
    );
    assert_eq!(
        query.group_by,
        Some(path("properties.reported.telemetryConfig.status"))
    );
    assert!(query.is_aggregate());
    assert_eq!(
        query.aggregate(&fleet()),
        [
            json!({"status": "Success", "numberOfDevices": 3}),
            json!({"status": "Pending", "numberOfDevices": 1}),
            json!({"numberOfDevices": 1}),
        ]
    );
    // Without AS the grouped value is named by its last segment; the first segment of the
    // grouped path ignores case like any lookup.
    let query =
        q("SELECT Tags.site, COUNT() AS n, MAX(tags.n) AS top FROM devices GROUP BY tags.site");
    let twins = [
        json!({"tags": {"site": "north", "n": 1}}),
        json!({"tags": {"site": 7, "n": 2}}),
        json!({"tags": {"site": "north", "n": 3}}),
        json!({"tags": {"site": 7.0, "n": 4}}),
    ];
    assert_eq!(
        query.aggregate(&twins),
        [
            json!({"site": "north", "n": 2, "top": 3}),
            json!({"site": 7, "n": 1, "top": 2}),
            json!({"site": 7.0, "n": 1, "top": 4}),
        ]
    );
    assert!(
        q("SELECT COUNT() AS n FROM devices GROUP BY tags.x")
            .aggregate(&[])
            .is_empty()
    );
    // The twins' spelling names an unaliased grouped property, as in a projection.
    assert_eq!(
        q("SELECT STATUS, COUNT() AS n FROM devices GROUP BY status").aggregate(&[twin()]),
        [json!({"status": "enabled", "n": 1})]
    );
}

#[test]
fn the_longest_select_list_that_fits_parses_and_aggregates() {
    let sql = super::tests_smoke::longest_select_list();
    assert!(sql.len() <= MAX_QUERY_CHARS);
    let query = q(&sql);
    let Projection::Items(items) = &query.projection else {
        panic!("not a list");
    };
    assert!(items.len() > 300, "{} items", items.len());
    let rows = query.aggregate(&[twin(), twin()]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["s0"], 6);
    assert_eq!(rows[0]["n"], 2);
}

#[test]
fn select_errors_name_what_is_wrong() {
    let cases: [(&str, QueryErrorKind); 11] = [
        (
            "SELECT * FROM devices GROUP BY tags.a",
            QueryErrorKind::GroupBySelectAll,
        ),
        (
            "SELECT tags.a, COUNT() AS n FROM devices.modules GROUP BY tags.a",
            QueryErrorKind::GroupByModules,
        ),
        (
            "SELECT tags.b, COUNT() AS n FROM devices GROUP BY tags.a",
            QueryErrorKind::NotGrouped("tags.b".into()),
        ),
        (
            "SELECT deviceId, COUNT() AS n FROM devices",
            QueryErrorKind::MixedAggregates,
        ),
        (
            "SELECT tags.a, properties.reported.a FROM devices",
            QueryErrorKind::DuplicateName("a".into()),
        ),
        (
            "SELECT tags.x AS n, COUNT() AS n FROM devices GROUP BY tags.x",
            QueryErrorKind::DuplicateName("n".into()),
        ),
        (
            "SELECT * FROM devices ORDER BY deviceId",
            QueryErrorKind::Unsupported("ORDER BY"),
        ),
        (
            "SELECT LOWER(deviceId) AS d FROM devices",
            QueryErrorKind::UnknownFunction("LOWER".into()),
        ),
        (
            "SELECT deviceId, * FROM devices",
            QueryErrorKind::Expected {
                expected: "'*', a property path or COUNT() after SELECT",
                found: "'*'".into(),
            },
        ),
        (
            "SELECT SUM() AS s FROM devices",
            QueryErrorKind::Expected {
                expected: "a property path in the aggregate",
                found: "')'".into(),
            },
        ),
        (
            "SELECT deviceId AS FROM devices",
            QueryErrorKind::Expected {
                expected: "a name after AS",
                found: "'FROM'".into(),
            },
        ),
    ];
    for (sql, kind) in cases {
        assert_eq!(err(sql).kind, kind, "{sql}");
    }
    let e = err("SELECT * FROM devices WHERE a = 1 ORDER BY a");
    assert_eq!(
        e.to_string(),
        "ORDER BY is not part of the IoT Hub query language at position 35"
    );
    assert_eq!(
        err("SELECT tags.a AS x, COUNT() AS n FROM devices.modules GROUP BY tags.a").position,
        55
    );
}
