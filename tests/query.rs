//! `POST /devices/query` over loopback REST: SELECT lists, the twin functions, TOP,
//! GROUP BY with aggregates, Azure's refusals, and paging with each form.

mod common;

use std::sync::Arc;

use common::{Reply, TestHub};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn query(hub: &TestHub, sql: &str, headers: &[(&str, &str)]) -> Reply {
    hub.call_as(
        "service",
        Method::POST,
        "/devices/query",
        Some(json!({"query": sql})),
        headers,
    )
    .await
}

/// Every page of a query, following x-ms-continuation, each page at most `page` items.
async fn all_pages(hub: &TestHub, sql: &str, page: usize) -> (Vec<Value>, usize) {
    let size = page.to_string();
    let (mut items, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let mut headers = vec![("x-ms-max-item-count", size.as_str())];
        if let Some(t) = &token {
            headers.push(("x-ms-continuation", t.as_str()));
        }
        let r = query(hub, sql, &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{sql}: {}", r.body);
        let got = r.body.as_array().unwrap();
        assert!(got.len() <= page, "{sql}: page of {}", got.len());
        items.extend(got.iter().cloned());
        pages += 1;
        token = r
            .headers
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        if token.is_none() {
            return (items, pages);
        }
    }
}

fn error_name(body: &Value) -> String {
    let m = body["Message"].as_str().unwrap_or_default();
    m.strip_prefix("ErrorCode:")
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// Devices d0..d5: tags.site north/south, tags.zones, and a reported firmware and
/// telemetryConfig.status (Success x3, Pending x2, none for d5), as the device would report.
async fn fleet() -> TestHub {
    let hub = TestHub::start().await;
    let statuses = [
        Some("Success"),
        Some("Pending"),
        Some("Success"),
        Some("Pending"),
        Some("Success"),
        None,
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let id = format!("d{i}");
        hub.create_device(&id).await;
        let site = if i % 2 == 0 { "north" } else { "south" };
        let r = hub
            .call(
                Method::PATCH,
                &format!("/twins/{id}"),
                Some(json!({"tags": {"site": site, "zones": [i, "z"]}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut reported = json!({"fw": format!("1.{i}.0"), "temp": i * 10});
        if let Some(s) = status {
            reported["telemetryConfig"] = json!({"status": s});
        }
        let state = Arc::clone(&hub.hub.state);
        tokio::task::spawn_blocking(move || {
            state.patch_reported(&(id, None), reported.to_string().as_bytes())
        })
        .await
        .unwrap()
        .expect("reported patch stored");
    }
    hub
}

fn ids(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|t| t["deviceId"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn projections_are_flat_rows_named_by_alias_or_last_segment() {
    let hub = fleet().await;
    let r = query(
        &hub,
        "SELECT deviceId, properties.reported.fw FROM devices WHERE tags.site = 'south'",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-ms-item-type"], "raw");
    assert_eq!(
        r.body,
        json!([
            {"deviceId": "d1", "fw": "1.1.0"},
            {"deviceId": "d3", "fw": "1.3.0"},
            {"deviceId": "d5", "fw": "1.5.0"},
        ])
    );
    // Aliases rename; the twin's own spelling names an unaliased top-level property; an
    // undefined property is left out of the row.
    let r = query(
        &hub,
        "SELECT DeviceId, properties.reported.telemetryConfig.status AS cfg FROM devices \
         WHERE deviceId IN ['d0', 'd5']",
        &[],
    )
    .await;
    assert_eq!(
        r.body,
        json!([{"deviceId": "d0", "cfg": "Success"}, {"deviceId": "d5"}])
    );
    // Pages of a projection follow the twins it came from.
    let (rows, pages) = all_pages(&hub, "SELECT deviceId AS id FROM devices", 4).await;
    assert_eq!(pages, 2);
    assert_eq!(
        rows,
        ["d0", "d1", "d2", "d3", "d4", "d5"].map(|d| json!({"id": d}))
    );
    // SELECT * still answers whole twins.
    let r = query(&hub, "SELECT * FROM devices WHERE deviceId = 'd2'", &[]).await;
    assert_eq!(r.headers["x-ms-item-type"], "twin");
    assert_eq!(r.body[0]["properties"]["reported"]["fw"], "1.2.0");
}

#[tokio::test]
async fn where_functions_lists_not_and_parentheses_filter() {
    let hub = fleet().await;
    let cases = [
        ("STARTSWITH(properties.reported.fw, '1.2')", vec!["d2"]),
        (
            "ENDSWITH(deviceId, '3') OR CONTAINS(deviceId, '4')",
            vec!["d3", "d4"],
        ),
        ("ARRAY_CONTAINS(tags.zones, 1)", vec!["d1"]),
        (
            "NOT IS_DEFINED(properties.reported.telemetryConfig)",
            vec!["d5"],
        ),
        (
            "IS_OBJECT(properties.reported.telemetryConfig) AND IS_NUMBER(properties.reported.temp) AND properties.reported.temp >= 30",
            vec!["d3", "d4"],
        ),
        (
            "IS_ARRAY(tags.zones) AND IS_STRING(tags.site) AND IS_PRIMITIVE(deviceId) AND NOT IS_BOOL(tags.site) AND NOT IS_NULL(tags.site) AND deviceId NIN ['d0', 'd1', 'd2']",
            vec!["d3", "d4", "d5"],
        ),
        (
            "NOT (tags.site = 'north' OR properties.reported.fw IN ['1.1.0'])",
            vec!["d3", "d5"],
        ),
        // Undefined OR false is undefined, and NOT keeps it so: d5 has no status.
        (
            "NOT (tags.site = 'north' OR properties.reported.telemetryConfig.status IN ['Pending'])",
            vec![],
        ),
        // A missing property satisfies no comparison, not even !=.
        (
            "properties.reported.telemetryConfig.status != 'Success'",
            vec!["d1", "d3"],
        ),
    ];
    for (condition, want) in cases {
        let r = query(
            &hub,
            &format!("SELECT * FROM devices WHERE {condition}"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{condition}: {}", r.body);
        assert_eq!(ids(r.body.as_array().unwrap()), want, "{condition}");
    }
}

#[tokio::test]
async fn top_limits_the_results_across_pages() {
    let hub = fleet().await;
    let (rows, pages) = all_pages(&hub, "SELECT TOP 5 * FROM devices", 2).await;
    assert_eq!((ids(&rows), pages), (vec!["d0", "d1", "d2", "d3", "d4"], 3));
    let (rows, pages) = all_pages(
        &hub,
        "SELECT TOP 2 deviceId FROM devices WHERE tags.site = 'south'",
        5,
    )
    .await;
    assert_eq!((ids(&rows), pages), (vec!["d1", "d3"], 1));
    let r = query(&hub, "SELECT TOP 0 * FROM devices", &[]).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn group_by_and_count_answer_azures_documented_shape() {
    let hub = fleet().await;
    let sql = "SELECT properties.reported.telemetryConfig.status AS status, \
               COUNT() AS numberOfDevices FROM devices \
               GROUP BY properties.reported.telemetryConfig.status";
    let r = query(&hub, sql, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-ms-item-type"], "raw");
    assert_eq!(
        r.body,
        json!([
            {"status": "Success", "numberOfDevices": 3},
            {"status": "Pending", "numberOfDevices": 2},
            {"numberOfDevices": 1},
        ])
    );
    // Groups page like any result: by offset, one per page here.
    let (rows, pages) = all_pages(&hub, sql, 1).await;
    assert_eq!(
        (rows.as_slice(), pages),
        (r.body.as_array().unwrap().as_slice(), 3)
    );
    let r = query(&hub, "SELECT COUNT() AS numberOfDevices FROM devices", &[]).await;
    assert_eq!(r.body, json!([{"numberOfDevices": 6}]));
    let r = query(
        &hub,
        "SELECT tags.site, COUNT() AS n, SUM(properties.reported.temp) AS total, \
         MAX(properties.reported.temp) AS hottest FROM devices GROUP BY tags.site",
        &[],
    )
    .await;
    assert_eq!(
        r.body,
        json!([
            {"site": "north", "n": 3, "total": 60, "hottest": 40},
            {"site": "south", "n": 3, "total": 90, "hottest": 50},
        ])
    );
    let r = query(
        &hub,
        "SELECT TOP 1 tags.site, COUNT() AS n FROM devices GROUP BY tags.site",
        &[],
    )
    .await;
    assert_eq!(r.body, json!([{"site": "north", "n": 3}]));
    // A token from one kind of query does not continue the other.
    let r = query(&hub, sql, &[("x-ms-max-item-count", "1")]).await;
    let group_token = r.headers["x-ms-continuation"].to_str().unwrap().to_string();
    let r = query(
        &hub,
        "SELECT * FROM devices",
        &[("x-ms-continuation", group_token.as_str())],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_name(&r.body), "ArgumentInvalid");
}

#[tokio::test]
async fn refused_constructs_answer_argument_invalid_naming_the_problem() {
    let hub = fleet().await;
    hub.create_module("d0", "m").await;
    let cases = [
        (
            "SELECT * FROM devices ORDER BY deviceId",
            "ORDER BY is not part of the IoT Hub query language",
        ),
        (
            "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'd')",
            "STARTS_WITH is not a function",
        ),
        (
            "SELECT tags.site, COUNT() AS n FROM devices.modules GROUP BY tags.site",
            "GROUP BY is supported only FROM devices",
        ),
        (
            "SELECT deviceId, COUNT() AS n FROM devices",
            "cannot select both aggregates and properties",
        ),
        ("SELECT * FROM devices GROUP BY tags.site", "not SELECT *"),
        ("SELECT TOP -3 * FROM devices", "TOP needs a whole number"),
        (
            "SELECT * FROM devices WHERE tags.site = 'C:\\temp'",
            "not a valid escape",
        ),
    ];
    for (sql, says) in cases {
        let r = query(&hub, sql, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{sql}");
        assert_eq!(error_name(&r.body), "ArgumentInvalid", "{sql}");
        let message = r.body["Message"].as_str().unwrap();
        assert!(message.contains(says), "{sql}: {message}");
    }
    // Module twins take projections and functions (and answer one row per module).
    let r = query(
        &hub,
        "SELECT deviceId, moduleId FROM devices.modules WHERE STARTSWITH(moduleId, 'm')",
        &[],
    )
    .await;
    assert_eq!(r.body, json!([{"deviceId": "d0", "moduleId": "m"}]));
}
