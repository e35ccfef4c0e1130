//! IoT Edge in the registry over the real hub's REST API, as `az iot hub device-identity`
//! (create --edge-enabled, parent set/show, children add/list/remove) and `az iot edge
//! set-modules` use it: edge device scopes, parent/child relations, the system modules,
//! and deployment manifests written into module twins.

mod common;

use common::TestHub;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(hub: &TestHub, path: &str, body: Value, if_match: Option<&str>) -> common::Reply {
    let headers: Vec<(&str, &str)> = if_match.map(|e| ("If-Match", e)).into_iter().collect();
    hub.call_as("iothubowner", Method::PUT, path, Some(body), &headers)
        .await
}

async fn get(hub: &TestHub, path: &str) -> Value {
    let r = hub.call(Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
    r.body
}

async fn edge_device(hub: &TestHub, id: &str, parent: Option<&str>) -> Value {
    let mut body = json!({"deviceId": id, "capabilities": {"iotEdge": true}});
    if let Some(p) = parent {
        body["parentScopes"] = json!([p]);
    }
    let r = put(hub, &format!("/devices/{id}"), body, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// What `az iot hub device-identity parent set` does: GET the child, set its scope,
/// PUT it back with its etag.
async fn set_parent(hub: &TestHub, child: &str, scope: &str) -> common::Reply {
    let mut device = get(hub, &format!("/devices/{child}")).await;
    let etag = format!("\"{}\"", device["etag"].as_str().unwrap());
    if device["capabilities"]["iotEdge"] == true {
        device["parentScopes"] = json!(if scope.is_empty() {
            vec![]
        } else {
            vec![scope]
        });
    } else {
        device["deviceScope"] = json!(scope);
    }
    put(hub, &format!("/devices/{child}"), device, Some(&etag)).await
}

async fn children(hub: &TestHub, scope: &str) -> Vec<String> {
    let q = format!("select deviceId from devices where array_contains(parentScopes, '{scope}')");
    let r = hub
        .call(Method::POST, "/devices/query", Some(json!({"query": q})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut ids: Vec<String> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["deviceId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_edge_device_has_its_scope_and_system_modules() {
    let hub = TestHub::start().await;
    let edge = edge_device(&hub, "gw-1", None).await;
    let scope = edge["deviceScope"].as_str().unwrap();
    assert_eq!(
        scope,
        format!(
            "ms-azure-iot-edge://gw-1-{}",
            edge["generationId"].as_str().unwrap()
        )
    );
    assert_eq!(edge["parentScopes"], json!([]));
    let modules = get(&hub, "/devices/gw-1/modules").await;
    let mut names: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["moduleId"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["$edgeAgent", "$edgeHub"]);
    // The twin carries the scopes too, as queries see it.
    let twin = get(&hub, "/twins/gw-1").await;
    assert_eq!(twin["deviceScope"], scope);
    assert_eq!(twin["capabilities"]["iotEdge"], true);
}

#[tokio::test]
async fn leaf_and_nested_edge_children_are_set_listed_and_removed() {
    let hub = TestHub::start().await;
    let parent = edge_device(&hub, "gw-1", None).await;
    let scope = parent["deviceScope"].as_str().unwrap().to_string();

    // A leaf device created under the edge device, one made a child later, and an edge
    // device nested below it.
    let r = put(
        &hub,
        "/devices/leaf-1",
        json!({"deviceId": "leaf-1", "deviceScope": scope}),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["deviceScope"], &r.body["parentScopes"]),
        (&json!(scope), &json!([scope]))
    );
    hub.create_device("leaf-2").await;
    let r = set_parent(&hub, "leaf-2", &scope).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let nested = edge_device(&hub, "gw-2", Some(&scope)).await;
    assert_ne!(
        nested["deviceScope"],
        json!(scope),
        "an edge device keeps its own scope"
    );
    assert_eq!(nested["parentScopes"], json!([scope]));
    assert_eq!(children(&hub, &scope).await, ["gw-2", "leaf-1", "leaf-2"]);

    // A PUT that leaves deviceScope out keeps the parent; an empty scope removes it.
    let r = put(
        &hub,
        "/devices/leaf-1",
        json!({"deviceId": "leaf-1", "status": "disabled"}),
        Some("*"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parentScopes"], json!([scope]));
    let r = set_parent(&hub, "leaf-1", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["deviceScope"], &r.body["parentScopes"]),
        (&json!(null), &json!([]))
    );
    let r = set_parent(&hub, "gw-2", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parentScopes"], json!([]));
    assert_eq!(children(&hub, &scope).await, ["leaf-2"]);
}

#[tokio::test]
async fn a_parent_must_be_an_edge_device_of_this_hub() {
    let hub = TestHub::start().await;
    let edge = edge_device(&hub, "gw-1", None).await;
    let scope = edge["deviceScope"].as_str().unwrap().to_string();
    hub.create_device("plain").await;
    let plain_scope = "ms-azure-iot-edge://plain-000000000000000001";
    for (body, why) in [
        (
            json!({"deviceId": "c", "deviceScope": plain_scope}),
            "is not the deviceScope of an IoT Edge device",
        ),
        (
            json!({"deviceId": "c", "deviceScope": "ms-azure-iot-edge://gw-1-1"}),
            "is not the deviceScope of an IoT Edge device",
        ),
        (
            json!({"deviceId": "c", "deviceScope": "somewhere"}),
            "is not the deviceScope of an IoT Edge device",
        ),
        (
            json!({"deviceId": "c", "deviceScope": 7}),
            "The deviceScope must be a string.",
        ),
        (
            json!({"deviceId": "c", "capabilities": {"iotEdge": true}, "parentScopes": [scope, scope]}),
            "at most one parent",
        ),
    ] {
        let r = put(&hub, "/devices/c", body.clone(), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(
            r.body["Message"].as_str().unwrap().contains(why),
            "{body}: {}",
            r.body
        );
    }
    let r = set_parent(&hub, "gw-1", &scope).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap()
            .contains("cannot be its own parent")
    );
    assert_eq!(
        hub.call(Method::GET, "/devices/c", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_deployment_manifest_goes_into_the_module_twins() {
    let hub = TestHub::start().await;
    edge_device(&hub, "gw-1", None).await;
    let manifest = json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {"sensor": {"type": "docker"}}}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"}}},
        "sensor": {"properties.desired": {"interval": 5}}
    }});
    let path = "/devices/gw-1/applyConfigurationContent";
    let r = hub.call(Method::POST, path, Some(manifest.clone())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let agent = get(&hub, "/twins/gw-1/modules/$edgeAgent").await;
    assert_eq!(
        agent["properties"]["desired"]["modules"]["sensor"]["type"],
        "docker"
    );
    let sensor = get(&hub, "/twins/gw-1/modules/sensor").await;
    assert_eq!(sensor["properties"]["desired"]["interval"], 5);

    // A second manifest replaces what the first set.
    let mut second = manifest.clone();
    second["modulesContent"]["sensor"] = json!({"properties.desired": {"unit": "C"}});
    let r = hub.call(Method::POST, path, Some(second)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let sensor = get(&hub, "/twins/gw-1/modules/sensor").await;
    assert_eq!(sensor["properties"]["desired"]["unit"], "C");
    assert!(
        sensor["properties"]["desired"].get("interval").is_none(),
        "{sensor}"
    );

    // Refused whole: not an edge device, an unknown device, a manifest without $edgeHub.
    hub.create_device("plain").await;
    let r = hub
        .call(
            Method::POST,
            "/devices/plain/applyConfigurationContent",
            Some(manifest.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap()
            .contains("is not an IoT Edge device")
    );
    let r = hub
        .call(
            Method::POST,
            "/devices/nobody/applyConfigurationContent",
            Some(manifest),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let partial = json!({"modulesContent": {"$edgeAgent": {"properties.desired": {}}, "other": {"properties.desired": {}}}});
    let r = hub.call(Method::POST, path, Some(partial)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        hub.call(Method::GET, "/devices/gw-1/modules/other", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
