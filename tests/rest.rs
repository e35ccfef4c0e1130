//! The service REST API of the local hub, over real HTTPS on loopback.

mod common;

use common::{TestHub, now};
use hubtui::iothub::sas::generate_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn error_name(body: &Value) -> String {
    // Azure's legacy shape: {"Message":"ErrorCode:Name;text","ExceptionMessage":"Tracking ID:..."}
    let m = body["Message"].as_str().unwrap_or_default();
    m.strip_prefix("ErrorCode:")
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn device_identity_lifecycle_with_etags() {
    let hub = TestHub::start().await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/dev-1",
            Some(json!({"deviceId": "dev-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["deviceId"], "dev-1");
    assert_eq!(r.body["status"], "enabled");
    assert_eq!(r.body["connectionState"], "Disconnected");
    assert_eq!(r.body["authentication"]["type"], "sas");
    let key = r.body["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 44, "a 256-bit base64 key");
    let etag = r.body["etag"].as_str().unwrap().to_string();
    assert_eq!(r.headers["etag"], format!("\"{etag}\"").as_str());

    // Creating it again conflicts.
    let r = hub
        .call(
            Method::PUT,
            "/devices/dev-1",
            Some(json!({"deviceId": "dev-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(error_name(&r.body), "DeviceAlreadyExists");
    assert_eq!(r.headers["iothub-errorcode"], "DeviceAlreadyExists");

    // Update with a stale etag fails; with the current one it succeeds and changes the etag.
    let disable = json!({"deviceId": "dev-1", "status": "disabled",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}});
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/dev-1",
            Some(disable.clone()),
            &[("If-Match", "\"bm90LWl0\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_name(&r.body), "PreconditionFailed");
    let quoted = format!("\"{etag}\"");
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/dev-1",
            Some(disable),
            &[("If-Match", &quoted)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "disabled");
    assert_eq!(r.body["authentication"]["symmetricKey"]["primaryKey"], key);
    assert_ne!(r.body["etag"], etag.as_str());

    let r = hub.call(Method::GET, "/devices/dev-1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "disabled");

    hub.create_device("dev-2").await;
    let r = hub.call(Method::GET, "/devices", None).await;
    let ids: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("dev-1"), json!("dev-2")]);
    // azure-iothub (JavaScript) lists with a trailing slash.
    let r = hub.call(Method::GET, "/devices/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().map(Vec::len), Some(2));

    let r = hub
        .call_as(
            "iothubowner",
            Method::DELETE,
            "/devices/dev-1",
            None,
            &[("If-Match", "\"*\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = hub.call(Method::GET, "/devices/dev-1", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_name(&r.body), "DeviceNotFound");
    assert!(
        r.body["ExceptionMessage"]
            .as_str()
            .unwrap()
            .starts_with("Tracking ID:")
    );
    let r = hub.call(Method::DELETE, "/devices/dev-1", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_identity_requests_are_refused_with_a_reason() {
    let hub = TestHub::start().await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/bad%20id",
            Some(json!({"deviceId": "bad id"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_name(&r.body), "ArgumentInvalid");
    let r = hub
        .call(Method::PUT, "/devices/a", Some(json!({"deviceId": "b"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let r = hub
        .call(
            Method::PUT,
            "/devices/a",
            Some(json!({"status": "sleeping"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Nothing was half-created by the refused requests.
    let r = hub.call(Method::GET, "/devices", None).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn modules_are_identities_under_a_device() {
    let hub = TestHub::start().await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/nodev/modules/m1",
            Some(json!({"moduleId": "m1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    hub.create_device("edge").await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/edge/modules/m1",
            Some(json!({"moduleId": "m1", "deviceId": "edge"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["moduleId"], "m1");
    assert_eq!(r.body["deviceId"], "edge");
    let r = hub.call(Method::GET, "/devices/edge/modules", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = hub.call(Method::GET, "/twins/edge/modules/m1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["moduleId"], "m1");
    let r = hub
        .call(
            Method::PATCH,
            "/twins/edge/modules/m1",
            Some(json!({"properties": {"desired": {"x": 1}}})),
        )
        .await;
    assert_eq!(r.body["properties"]["desired"]["x"], 1);
    let r = hub
        .call(Method::DELETE, "/devices/edge/modules/m1", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = hub
        .call(Method::GET, "/devices/edge/modules/m1", None)
        .await;
    assert_eq!(error_name(&r.body), "ModuleNotFound");
}

#[tokio::test]
async fn twin_patch_replace_and_stale_etag() {
    let hub = TestHub::start().await;
    hub.create_device("t1").await;
    let r = hub.call(Method::GET, "/twins/t1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["deviceId"], "t1");
    assert_eq!(r.body["properties"]["desired"]["$version"], 1);
    assert_eq!(r.body["properties"]["reported"]["$version"], 1);
    let etag0 = r.body["etag"].as_str().unwrap().to_string();
    let version0 = r.body["version"].as_u64().unwrap();

    let patch = json!({"tags": {"site": "lab"}, "properties": {"desired": {"interval": 10, "mode": {"a": 1}}}});
    let r = hub
        .call_as(
            "service",
            Method::PATCH,
            "/twins/t1",
            Some(patch.clone()),
            &[("If-Match", &format!("\"{etag0}\""))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["tags"]["site"], "lab");
    assert_eq!(r.body["properties"]["desired"]["interval"], 10);
    assert_eq!(r.body["properties"]["desired"]["$version"], 2);
    assert!(r.body["properties"]["desired"]["$metadata"]["interval"]["$lastUpdated"].is_string());
    assert!(r.body["version"].as_u64().unwrap() > version0);
    let etag1 = r.body["etag"].as_str().unwrap().to_string();
    assert_ne!(etag0, etag1);

    // The old etag is now stale: 412, and nothing changes.
    let r = hub
        .call_as(
            "service",
            Method::PATCH,
            "/twins/t1",
            Some(json!({"properties": {"desired": {"interval": 99}}})),
            &[("If-Match", &format!("\"{etag0}\""))],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = hub.call(Method::GET, "/twins/t1", None).await;
    assert_eq!(r.body["properties"]["desired"]["interval"], 10);

    // null deletes, nested objects merge.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/t1",
            Some(json!({"properties": {"desired": {"interval": null, "mode": {"b": 2}}}})),
        )
        .await;
    assert!(r.body["properties"]["desired"].get("interval").is_none());
    assert_eq!(
        r.body["properties"]["desired"]["mode"],
        json!({"a": 1, "b": 2})
    );

    // PUT replaces tags and desired.
    let r = hub
        .call(
            Method::PUT,
            "/twins/t1",
            Some(json!({"tags": {"only": true}, "properties": {"desired": {"z": "zz"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["tags"], json!({"only": true}));
    assert!(r.body["properties"]["desired"].get("mode").is_none());
    assert_eq!(r.body["properties"]["desired"]["z"], "zz");

    // Services may not write reported properties; limits are enforced.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/t1",
            Some(json!({"properties": {"reported": {"x": 1}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let deep = (0..12).fold(json!(1), |v, _| json!({"k": v}));
    let r = hub
        .call(
            Method::PATCH,
            "/twins/t1",
            Some(json!({"properties": {"desired": {"deep": deep}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_name(&r.body), "ArgumentInvalid");
    let r = hub
        .call(
            Method::PATCH,
            "/twins/t1",
            Some(json!({"properties": {"desired": {"big": "x".repeat(40_000)}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = hub.call(Method::GET, "/twins/missing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn policies_grant_what_azure_grants() {
    let hub = TestHub::start().await;
    hub.create_device("p1").await;
    let body = Some(json!({"deviceId": "p2"}));
    let cases: &[(&str, Method, &str, Option<Value>, StatusCode)] = &[
        (
            "registryRead",
            Method::GET,
            "/devices/p1",
            None,
            StatusCode::OK,
        ),
        (
            "registryRead",
            Method::PUT,
            "/devices/p2",
            body.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "registryReadWrite",
            Method::PUT,
            "/devices/p2",
            body.clone(),
            StatusCode::OK,
        ),
        (
            "service",
            Method::GET,
            "/devices/p1",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        ("service", Method::GET, "/twins/p1", None, StatusCode::OK),
        (
            "service",
            Method::DELETE,
            "/devices/p1/commands",
            None,
            StatusCode::OK,
        ),
        (
            "registryReadWrite",
            Method::PATCH,
            "/twins/p1",
            Some(json!({"tags": {"a": 1}})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "device",
            Method::GET,
            "/twins/p1",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "device",
            Method::GET,
            "/devices/p1",
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (policy, method, path, body, want) in cases {
        let r = hub
            .call_as(policy, method.clone(), path, body.clone(), &[])
            .await;
        assert_eq!(r.status, *want, "{policy} {method} {path}: {}", r.body);
        if *want == StatusCode::UNAUTHORIZED {
            assert_eq!(error_name(&r.body), "IotHubUnauthorizedAccess");
        }
    }
}

#[tokio::test]
async fn bad_credentials_and_missing_api_version_are_refused() {
    let hub = TestHub::start().await;
    let url = format!("{}/devices?api-version=2021-04-12", hub.base());
    let owner = hub.hub.state.policy("iothubowner").unwrap().clone();
    let other_key = hubtui::hub::policies::random_key();
    let tokens = [
        ("no header", None),
        (
            "wrong key",
            Some(
                generate_token("localhost", &other_key, Some("iothubowner"), now() + 600).unwrap(),
            ),
        ),
        (
            "expired",
            Some(
                generate_token(
                    "localhost",
                    &owner.primary_key,
                    Some("iothubowner"),
                    now() - 10,
                )
                .unwrap(),
            ),
        ),
        (
            "other hub",
            Some(
                generate_token(
                    "otherhub.azure-devices.net",
                    &owner.primary_key,
                    Some("iothubowner"),
                    now() + 600,
                )
                .unwrap(),
            ),
        ),
        (
            "no policy",
            Some(generate_token("localhost", &owner.primary_key, None, now() + 600).unwrap()),
        ),
        (
            "unknown policy",
            Some(
                generate_token("localhost", &owner.primary_key, Some("nobody"), now() + 600)
                    .unwrap(),
            ),
        ),
        ("garbage", Some("Bearer xyz".to_string())),
    ];
    for (what, token) in tokens {
        let mut req = hub.http.get(&url);
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_name(&body), "IotHubUnauthorizedAccess", "{what}");
    }
    // The secondary key works too.
    let t = generate_token(
        "localhost",
        &owner.secondary_key,
        Some("iothubowner"),
        now() + 600,
    )
    .unwrap();
    let resp = hub
        .http
        .get(&url)
        .header("Authorization", t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = hub
        .http
        .get(format!("{}/devices", hub.base()))
        .header("Authorization", hub.token("iothubowner"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_name(&body), "InvalidProtocolVersion");
}

async fn query(hub: &TestHub, sql: &str, headers: &[(&str, &str)]) -> common::Reply {
    hub.call_as(
        "service",
        Method::POST,
        "/devices/query",
        Some(json!({"query": sql})),
        headers,
    )
    .await
}

#[tokio::test]
async fn module_twins_are_queried_filtered_and_paged() {
    let hub = TestHub::start().await;
    // "a" sorts before "a-b", though "a/…" sorts after "a-b/…" as text: pages follow ids.
    for (device, modules) in [("a", vec!["m1", "m2"]), ("a-b", vec!["m1"]), ("c", vec![])] {
        hub.create_device(device).await;
        for m in modules {
            hub.create_module(device, m).await;
        }
    }
    let mut seen = Vec::new();
    let mut continuation = String::new();
    loop {
        let mut headers = vec![("x-ms-max-item-count", "2")];
        if !continuation.is_empty() {
            headers.push(("x-ms-continuation", continuation.as_str()));
        }
        let r = query(&hub, "SELECT * FROM devices.modules", &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for t in r.body.as_array().unwrap() {
            seen.push(format!("{}/{}", t["deviceId"], t["moduleId"]).replace('"', ""));
        }
        match r.headers.get("x-ms-continuation") {
            Some(c) => continuation = c.to_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["a/m1", "a/m2", "a-b/m1"]);
    let r = query(
        &hub,
        "SELECT COUNT() AS n FROM devices.modules WHERE moduleId = 'm1'",
        &[],
    )
    .await;
    assert_eq!(r.body, json!([{"n": 2}]));
    let r = query(&hub, "SELECT * FROM devices.jobs", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_filters_counts_and_pages() {
    let hub = TestHub::start().await;
    for i in 0..7 {
        let id = format!("q{i}");
        hub.create_device(&id).await;
        let site = if i % 2 == 0 { "north" } else { "south" };
        hub.call(
            Method::PATCH,
            &format!("/twins/{id}"),
            Some(json!({"tags": {"site": site, "n": i}, "properties": {"desired": {"interval": i * 10}}})),
        )
        .await;
    }
    hub.call(
        Method::PUT,
        "/devices/zz-disabled",
        Some(json!({"status": "disabled"})),
    )
    .await;

    let ids = |r: &common::Reply| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["deviceId"].as_str().unwrap().to_string())
            .collect()
    };
    let r = query(&hub, "SELECT * FROM devices", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-ms-item-type"], "twin");
    assert_eq!(ids(&r).len(), 8);
    assert!(r.headers.get("x-ms-continuation").is_none());

    let r = query(&hub, "SELECT * FROM devices WHERE tags.site = 'north'", &[]).await;
    assert_eq!(ids(&r), ["q0", "q2", "q4", "q6"]);
    let r = query(
        &hub,
        "SELECT * FROM devices WHERE properties.desired.interval >= 40 AND tags.site = 'south'",
        &[],
    )
    .await;
    assert_eq!(ids(&r), ["q5"]);
    let r = query(
        &hub,
        "SELECT * FROM devices WHERE deviceId IN ['q1', 'q3', 'nope']",
        &[],
    )
    .await;
    assert_eq!(ids(&r), ["q1", "q3"]);
    let r = query(&hub, "SELECT * FROM devices WHERE status = 'disabled'", &[]).await;
    assert_eq!(ids(&r), ["zz-disabled"]);
    let r = query(
        &hub,
        "SELECT * FROM devices WHERE connectionState = 'Connected'",
        &[],
    )
    .await;
    assert_eq!(ids(&r).len(), 0);
    let r = query(
        &hub,
        "SELECT * FROM devices WHERE properties.reported.x = 1",
        &[],
    )
    .await;
    assert_eq!(ids(&r).len(), 0);
    let r = query(
        &hub,
        "SELECT COUNT() AS n FROM devices WHERE tags.site = 'south'",
        &[],
    )
    .await;
    assert_eq!(r.body, json!([{"n": 3}]));

    // Pages of 3 with continuation tokens cover every device exactly once, in order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut headers = vec![("x-ms-max-item-count", "3")];
        if let Some(t) = &token {
            headers.push(("x-ms-continuation", t.as_str()));
        }
        let r = query(&hub, "SELECT * FROM devices", &headers).await;
        assert!(ids(&r).len() <= 3);
        seen.extend(ids(&r));
        pages += 1;
        token = r
            .headers
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "zz-disabled"]
    );

    let r = query(&hub, "SELECT * FROM jobs", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = query(
        &hub,
        "SELECT * FROM devices",
        &[("x-ms-continuation", "garbage!")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn purge_empties_the_c2d_queue() {
    let hub = TestHub::start().await;
    hub.create_device("c1").await;
    let state = &hub.hub.state;
    for i in 0..3 {
        let mut bag = hubtui::iothub::property_bag::PropertyBag::default();
        bag.set("$.mid", Some(format!("m{i}")));
        state
            .enqueue_c2d("c1", bag, b"hello".to_vec(), None)
            .unwrap();
    }
    let r = hub.call(Method::GET, "/devices/c1", None).await;
    assert_eq!(r.body["cloudToDeviceMessageCount"], 3);
    let r = hub.call(Method::DELETE, "/devices/c1/commands", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"totalMessagesPurged": 3, "deviceId": "c1", "moduleId": null})
    );
    let r = hub.call(Method::GET, "/devices/c1", None).await;
    assert_eq!(r.body["cloudToDeviceMessageCount"], 0);
    let r = hub
        .call(Method::DELETE, "/devices/none/commands", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn c2d_queue_depth_is_bounded() {
    let hub = TestHub::start_with(|o| o.settings.c2d_max_queue = 2).await;
    hub.create_device("c2").await;
    let state = &hub.hub.state;
    let bag = hubtui::iothub::property_bag::PropertyBag::default;
    state.enqueue_c2d("c2", bag(), vec![1], None).unwrap();
    state.enqueue_c2d("c2", bag(), vec![2], None).unwrap();
    let e = state.enqueue_c2d("c2", bag(), vec![3], None).unwrap_err();
    assert_eq!(
        e.code,
        hubtui::iothub::error::ErrorCode::DeviceMaximumQueueDepthExceeded
    );
    let e = state
        .enqueue_c2d("ghost", bag(), vec![3], None)
        .unwrap_err();
    assert_eq!(e.code, hubtui::iothub::error::ErrorCode::DeviceNotFound);
}

#[tokio::test]
async fn hub_json_describes_the_running_hub() {
    let hub = TestHub::start().await;
    let text = std::fs::read_to_string(hub.dir.path().join("hub.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["hostName"], "localhost");
    assert_eq!(v["caCertificate"], "ca.pem");
    assert_eq!(v["ports"]["mqtt"], hub.hub.info.ports.mqtt);
    assert_eq!(v["ports"]["https"], hub.hub.info.ports.https);
    assert_ne!(v["ports"]["mqtt"], 0);
    let cs = v["serviceConnectionString"].as_str().unwrap();
    let parsed = hubtui::iothub::connection_string::ServiceConnectionString::parse(cs).unwrap();
    assert_eq!(parsed.policy_name, "iothubowner");
    assert_eq!(parsed.host_name, "localhost");
    assert!(hub.dir.path().join("ca.pem").exists());
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    for (method, path) in [
        (Method::GET, "/nothing-here"),
        (Method::POST, "/devices/d1/unknown"),
        (Method::GET, "/statistics/everything"),
        (Method::PUT, "/jobs/v2/job-1"),
    ] {
        let r = hub.call(method.clone(), path, None).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(error_name(&r.body), "GenericNotFound", "{method} {path}");
        assert_eq!(r.headers["iothub-errorcode"], "GenericNotFound");
    }
    for (method, path) in [
        (Method::PATCH, "/devices/d1"),
        (Method::DELETE, "/statistics/devices"),
        (Method::GET, "/devices/keys/regenerate"),
        (Method::PUT, "/devices/query"),
    ] {
        let r = hub.call(method.clone(), path, None).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(
            error_name(&r.body),
            "GenericMethodNotAllowed",
            "{method} {path}"
        );
        // RFC 9110: a 405 names the methods the resource does serve.
        assert!(r.headers.contains_key("allow"), "{method} {path}");
    }
    // The device the refused requests named is untouched.
    let r = hub.call(Method::GET, "/devices/d1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // A device named like the regenerate route's segment is still an ordinary device.
    hub.create_device("keys").await;
    hub.create_module("keys", "m").await;
    let r = hub.call(Method::GET, "/devices/keys/modules", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["moduleId"], "m");
}

#[tokio::test]
async fn statistics_count_devices_and_connections() {
    let hub = TestHub::start().await;
    hub.create_device("on-1").await;
    hub.create_device("on-2").await;
    hub.create_device("host").await;
    hub.create_module("host", "m").await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/off",
            Some(json!({"deviceId": "off", "status": "disabled"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = hub.call(Method::GET, "/statistics/devices", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"totalDeviceCount": 4, "enabledDeviceCount": 3, "disabledDeviceCount": 1})
    );

    let r = hub.call(Method::GET, "/statistics/service", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"connectedDeviceCount": 0}));
    // Connected devices count; a connected module is not a device.
    let sessions = &hub.hub.state.sessions;
    let _d = sessions.attach(("on-1".into(), None));
    let _m = sessions.attach(("host".into(), Some("m".into())));
    let r = hub.call(Method::GET, "/statistics/service", None).await;
    assert_eq!(r.body, json!({"connectedDeviceCount": 1}));

    // Both need an api-version and registry read rights, like every service call.
    let url = format!("{}/statistics/service", hub.base());
    let resp = hub
        .http
        .get(&url)
        .header("Authorization", hub.token("iothubowner"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let r = hub
        .call_as("device", Method::GET, "/statistics/devices", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn bulk(hub: &TestHub, ops: Value) -> common::Reply {
    hub.call(Method::POST, "/devices", Some(ops)).await
}

fn bulk_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["deviceId"].as_str().unwrap().to_string(),
                e["errorCode"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bulk_create_update_delete_and_twin() {
    let hub = TestHub::start().await;
    let r = bulk(
        &hub,
        json!([
            {"id": "b1", "importMode": "create"},
            {"id": "b2", "importMode": "create", "status": "disabled",
             "authentication": {"type": "sas", "symmetricKey": {
                 "primaryKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                 "secondaryKey": "ERERERERERERERERERERERERERERERERERERERERERE="}},
             "tags": {"site": "north"}, "properties": {"desired": {"rate": 5}}},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"isSuccessful": true, "errors": [], "warnings": []})
    );
    let b1 = hub.call(Method::GET, "/devices/b1", None).await.body;
    assert_eq!(b1["status"], "enabled");
    assert_eq!(
        b1["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap()
            .len(),
        44,
        "keys are generated when none are given"
    );
    let b2 = hub.call(Method::GET, "/devices/b2", None).await.body;
    assert_eq!(b2["status"], "disabled");
    assert_eq!(
        b2["authentication"]["symmetricKey"]["primaryKey"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    let twin = hub.call(Method::GET, "/twins/b2", None).await.body;
    assert_eq!(twin["tags"]["site"], "north");
    assert_eq!(twin["properties"]["desired"]["rate"], 5);

    // update (no etag) and updateIfMatchETag with the current etag both apply.
    let etag = b1["etag"].as_str().unwrap();
    let r = bulk(
        &hub,
        json!([
            {"id": "b1", "importMode": "updateIfMatchETag", "eTag": etag, "status": "disabled"},
            {"id": "b2", "importMode": "update", "status": "enabled"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b1_after = hub.call(Method::GET, "/devices/b1", None).await.body;
    assert_eq!(b1_after["status"], "disabled");
    assert_ne!(b1_after["etag"], b1["etag"]);
    assert_eq!(
        hub.call(Method::GET, "/devices/b2", None).await.body["status"],
        "enabled"
    );

    // updateTwin replaces tags; updateTwinIfMatchETag needs the twin's etag.
    let twin_etag = twin["etag"].as_str().unwrap();
    let r = bulk(
        &hub,
        json!([
            {"id": "b2", "importMode": "updateTwinIfMatchETag", "twinETag": twin_etag,
             "tags": {"site": "south"}},
            {"id": "b1", "importMode": "updateTwin", "tags": {"floor": 3}},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let twin = hub.call(Method::GET, "/twins/b2", None).await.body;
    assert_eq!(twin["tags"], json!({"site": "south"}));
    assert_eq!(twin["properties"]["desired"]["rate"], 5, "desired kept");
    assert_eq!(
        hub.call(Method::GET, "/twins/b1", None).await.body["tags"],
        json!({"floor": 3})
    );

    // delete and deleteIfMatchETag with the current etag both delete.
    let etag = hub.call(Method::GET, "/devices/b2", None).await.body["etag"].clone();
    let r = bulk(
        &hub,
        json!([
            {"id": "b1", "importMode": "delete"},
            {"id": "b2", "importMode": "deleteIfMatchETag", "eTag": etag},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for id in ["b1", "b2"] {
        let r = hub.call(Method::GET, &format!("/devices/{id}"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn bulk_failures_are_reported_per_device_with_400() {
    let hub = TestHub::start().await;
    hub.create_device("taken").await;
    let r = bulk(
        &hub,
        json!([
            {"id": "taken", "importMode": "create"},
            {"id": "fresh", "importMode": "create"},
            {"id": "taken-too", "importMode": "update"},
            {"id": "taken", "moduleId": "m", "importMode": "updateIfMatchETag", "eTag": "bm8="},
            {"id": "ghost", "importMode": "delete"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["isSuccessful"], false);
    assert_eq!(r.body["warnings"], json!([]));
    assert_eq!(
        bulk_errors(&r.body),
        vec![
            ("taken".to_string(), "DeviceAlreadyExists".to_string()),
            ("taken-too".to_string(), "DeviceNotFound".to_string()),
            ("taken".to_string(), "ModuleNotFound".to_string()),
            ("ghost".to_string(), "DeviceNotFound".to_string()),
        ]
    );
    assert_eq!(r.body["errors"][2]["moduleId"], "m");
    assert!(
        r.body["errors"][0]["errorStatus"]
            .as_str()
            .unwrap()
            .contains("taken")
    );
    // The entry that could succeed did.
    let r = hub.call(Method::GET, "/devices/fresh", None).await;
    assert_eq!(r.status, StatusCode::OK);

    // A stale etag changes nothing.
    let before = hub.call(Method::GET, "/devices/taken", None).await.body;
    let twin_before = hub.call(Method::GET, "/twins/taken", None).await.body;
    let r = bulk(
        &hub,
        json!([
            {"id": "taken", "importMode": "updateIfMatchETag", "eTag": "\"c3RhbGU=\"", "status": "disabled"},
            {"id": "taken", "moduleId": "nope", "importMode": "deleteIfMatchETag"},
            {"id": "fresh", "importMode": "deleteIfMatchETag", "eTag": "c3RhbGU="},
            {"id": "fresh", "moduleId": "x", "importMode": "create"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        bulk_errors(&r.body),
        vec![
            ("taken".to_string(), "PreconditionFailed".to_string()),
            ("taken".to_string(), "ModuleNotFound".to_string()),
            ("fresh".to_string(), "PreconditionFailed".to_string()),
        ]
    );
    assert_eq!(
        hub.call(Method::GET, "/devices/taken", None).await.body,
        before
    );
    assert_eq!(
        hub.call(Method::GET, "/devices/fresh", None).await.status,
        StatusCode::OK
    );
    let r = bulk(
        &hub,
        json!([{"id": "taken", "importMode": "updateTwinIfMatchETag", "twinETag": "c3RhbGU=",
                "tags": {"x": 1}}]),
    )
    .await;
    assert_eq!(
        bulk_errors(&r.body),
        vec![("taken".to_string(), "PreconditionFailed".to_string())]
    );
    assert_eq!(
        hub.call(Method::GET, "/twins/taken", None).await.body["tags"],
        twin_before["tags"]
    );
}

#[tokio::test]
async fn bulk_requests_azure_refuses_whole() {
    let hub = TestHub::start().await;
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("many-{i}"), "importMode": "create"}))
        .collect();
    let r = bulk(&hub, Value::Array(many)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(error_name(&r.body), "TooManyDevices");
    let exactly: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("many-{i}"), "importMode": "create"}))
        .collect();
    let r = bulk(&hub, Value::Array(exactly)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "100 devices are allowed: {}",
        r.body
    );

    let r = bulk(
        &hub,
        json!([{"id": "twice", "importMode": "create"}, {"id": "twice", "importMode": "delete"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_name(&r.body), "DeviceDefinedMultipleTimes");
    assert_eq!(
        hub.call(Method::GET, "/devices/twice", None).await.status,
        StatusCode::NOT_FOUND,
        "nothing of a refused request is applied"
    );

    for bad in [
        json!({"id": "x"}),
        json!([{"importMode": "create"}]),
        json!([{"id": "x", "importMode": "explode"}]),
        json!([42]),
    ] {
        let r = bulk(&hub, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_name(&r.body), "ArgumentInvalid", "{bad}");
    }
    let r = bulk(&hub, json!([{"id": "bad id!", "importMode": "create"}])).await;
    assert_eq!(
        bulk_errors(&r.body),
        vec![("bad id!".to_string(), "ArgumentInvalid".to_string())]
    );
    let r = hub
        .call_as(
            "registryRead",
            Method::POST,
            "/devices",
            Some(json!([{"id": "ro", "importMode": "create"}])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_regeneration_reports_per_identity() {
    let hub = TestHub::start().await;
    let old = hub.create_device("k1").await;
    hub.create_module("k1", "m").await;
    let before = hub.call(Method::GET, "/devices/k1", None).await.body;
    let r = hub
        .call(
            Method::POST,
            "/devices/keys/regenerate",
            Some(json!({"policyKey": "secondaryKey", "devices": [{"id": "k1"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["policyKey"], "secondaryKey");
    assert_eq!(r.body["errors"], json!([]));
    let rotated = &r.body["rotatedKeys"][0];
    assert_eq!(rotated["id"], "k1");
    assert_eq!(rotated["primaryKey"], old.as_str(), "primary kept");
    let after = hub.call(Method::GET, "/devices/k1", None).await.body;
    let sym = &after["authentication"]["symmetricKey"];
    assert_eq!(sym["secondaryKey"], rotated["secondaryKey"]);
    assert_ne!(
        sym["secondaryKey"],
        before["authentication"]["symmetricKey"]["secondaryKey"]
    );
    assert_eq!(sym["secondaryKey"].as_str().unwrap().len(), 44);
    assert_ne!(after["etag"], before["etag"]);

    // Some succeed, some fail: 207; none succeed: 400.
    let r = hub
        .call(
            Method::POST,
            "/devices/keys/regenerate",
            Some(json!({"policyKey": "both", "devices": [
                {"id": "k1", "moduleId": "m"}, {"id": "ghost"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["rotatedKeys"][0]["moduleId"], "m");
    assert_eq!(r.body["errors"][0]["id"], "ghost");
    assert_eq!(r.body["errors"][0]["errorCode"], "DeviceNotFound");
    let r = hub
        .call(
            Method::POST,
            "/devices/keys/regenerate",
            Some(json!({"policyKey": "primaryKey", "devices": [{"id": "k1", "moduleId": "none"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["errors"][0]["errorCode"], "ModuleNotFound");
    assert_eq!(r.body["rotatedKeys"], json!([]));

    for bad in [
        json!({"policyKey": "tertiaryKey", "devices": [{"id": "k1"}]}),
        json!({"devices": [{"id": "k1"}]}),
        json!({"policyKey": "both"}),
    ] {
        let r = hub
            .call(Method::POST, "/devices/keys/regenerate", Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_name(&r.body), "ArgumentInvalid", "{bad}");
    }
    let many: Vec<Value> = (0..101).map(|i| json!({"id": format!("d{i}")})).collect();
    let r = hub
        .call(
            Method::POST,
            "/devices/keys/regenerate",
            Some(json!({"policyKey": "both", "devices": many})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_name(&r.body), "TooManyDevices");
    let unchanged = hub.call(Method::GET, "/devices/k1", None).await.body;
    assert_eq!(unchanged["authentication"], after["authentication"]);
}

#[tokio::test]
async fn concurrent_bulk_updates_with_one_etag_let_exactly_one_win() {
    let hub = TestHub::start().await;
    hub.create_device("race").await;
    for round in 0..5 {
        let etag = hub.call(Method::GET, "/devices/race", None).await.body["etag"].clone();
        let calls = (0..8).map(|i| {
            bulk(
                &hub,
                json!([{"id": "race", "importMode": "updateIfMatchETag", "eTag": etag,
                        "statusReason": format!("round {round} writer {i}")}]),
            )
        });
        let replies = futures::future::join_all(calls).await;
        let won: Vec<_> = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one writer wins");
        for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert_eq!(
                bulk_errors(&r.body),
                vec![("race".to_string(), "PreconditionFailed".to_string())]
            );
        }
    }
}
