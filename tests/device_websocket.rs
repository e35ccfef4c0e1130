//! DeviceClient over MQTT on WebSockets (the hub's HTTPS port, `/$iothub/websocket`),
//! directly and through an HTTP CONNECT proxy, and `hubtui device --websockets` honouring
//! HTTPS_PROXY: what firewalled sites use when only HTTPS goes out.

mod common;

use std::time::Duration;

use common::TestHub;
use common::device_process::DeviceProcess;
use common::proxy::TestProxy;
use hubtui::client::device::{
    DeviceClient, DeviceClientOptions, DeviceEvent, MqttTransport, Proxy, ProxyChoice, Trust,
};
use hubtui::iothub::connection_string::DeviceConnectionString;
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn connection_string(hub: &TestHub, id: &str, key: &str) -> DeviceConnectionString {
    DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId={id};SharedAccessKey={key}",
        hub.host()
    ))
    .unwrap()
}

fn websocket_options(hub: &TestHub, proxy: ProxyChoice) -> DeviceClientOptions {
    DeviceClientOptions {
        port: hub.hub.info.ports.https,
        transport: MqttTransport::WebSockets { proxy },
        trust: Trust::CaPem(hub.hub.ca_pem.clone()),
        connect_host: Some("localhost".into()),
        request_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(100),
        ..DeviceClientOptions::default()
    }
}

fn proxy_at(port: u16, credentials: Option<(&str, &str)>) -> Proxy {
    Proxy {
        host: "127.0.0.1".into(),
        port,
        tls: false,
        credentials: credentials.map(|(u, p)| (u.into(), p.into())),
    }
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<DeviceEvent>) -> DeviceEvent {
    timeout(WAIT, rx.recv())
        .await
        .expect("a device event in time")
        .expect("the client is running")
}

/// Telemetry, a twin read and a method answer over one WebSocket connection: the
/// whole device protocol rides on it.
async fn exercise(hub: &TestHub, id: &str, opts: DeviceClientOptions) {
    let key = hub.create_device(id).await;
    let (client, mut events) =
        DeviceClient::connect(&connection_string(hub, id, &key), opts).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);

    let mut props = PropertyBag::default();
    props.set("via", Some("websocket".into()));
    client.send_telemetry(b"{\"t\":1}".to_vec(), props).unwrap();
    common::wait::eventually(WAIT, "the message stored", || async {
        let stored = hub.stored_telemetry(id);
        stored.iter().any(|r| r.body == b"{\"t\":1}").then_some(())
    })
    .await;
    let twin = client.get_twin().await.unwrap();
    assert!(twin["desired"]["$version"].is_u64(), "{twin}");

    let path = format!("/twins/{id}/methods");
    let call = hub.call(
        Method::POST,
        &path,
        Some(json!({"methodName": "ping", "payload": {}, "responseTimeoutInSeconds": 10})),
    );
    let answer = async {
        loop {
            if let DeviceEvent::MethodRequest { rid, .. } = next_event(&mut events).await {
                client
                    .respond_method(&rid, 200, &json!("pong"))
                    .await
                    .unwrap();
                break;
            }
        }
    };
    let (r, ()) = tokio::join!(call, answer);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": 200, "payload": "pong"}));
    client.close().await;
}

#[tokio::test]
async fn the_device_protocol_runs_over_websockets() {
    let hub = TestHub::start().await;
    exercise(
        &hub,
        "ws-direct",
        websocket_options(&hub, ProxyChoice::Direct),
    )
    .await;
}

#[tokio::test]
async fn websockets_go_through_an_http_proxy_with_basic_credentials() {
    let hub = TestHub::start().await;
    let proxy = TestProxy::start(Some(("alice", "s3cret"))).await;
    let opts = websocket_options(
        &hub,
        ProxyChoice::Use(proxy_at(proxy.port, Some(("alice", "s3cret")))),
    );
    exercise(&hub, "ws-proxied", opts).await;
    let https = hub.hub.info.ports.https;
    assert_eq!(
        proxy.requests(),
        vec![(format!("CONNECT localhost:{https} HTTP/1.1"), true)]
    );
}

#[tokio::test]
async fn a_proxy_refusing_the_credentials_is_reported() {
    let hub = TestHub::start().await;
    let key = hub.create_device("ws-refused").await;
    let proxy = TestProxy::start(Some(("alice", "s3cret"))).await;
    let opts = websocket_options(
        &hub,
        ProxyChoice::Use(proxy_at(proxy.port, Some(("alice", "wrong")))),
    );
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "ws-refused", &key), opts).unwrap();
    let DeviceEvent::Disconnected { reason, refused } = next_event(&mut events).await else {
        panic!("expected a disconnect")
    };
    let https = hub.hub.info.ports.https;
    assert!(
        reason.starts_with(&format!(
            "the proxy failed to connect to wss://localhost:{https}/$iothub/websocket through the proxy 127.0.0.1:{}:",
            proxy.port
        )),
        "{reason}"
    );
    assert!(!refused, "the hub did not refuse anything");
    assert!(!proxy.requests()[0].1, "the proxy let the tunnel through");
    client.close().await;
}

/// The device face honours HTTPS_PROXY with --websockets, and NO_PROXY.
#[tokio::test]
async fn hubtui_device_websockets_honours_https_proxy_and_no_proxy() {
    let hub = TestHub::start().await;
    let key = hub.create_device("ws-cli").await;
    let cs = format!(
        "HostName={};DeviceId=ws-cli;SharedAccessKey={key}",
        hub.host()
    );
    let ca = hub.dir.path().join("ca.pem");
    std::fs::write(&ca, &hub.hub.ca_pem).unwrap();
    let https = hub.hub.info.ports.https.to_string();
    let args = [
        "device",
        "--headless",
        "--websockets",
        "--connection-string",
        cs.as_str(),
        "--ca",
        ca.to_str().unwrap(),
        "--https-port",
        https.as_str(),
        "--mqtt-port",
        "1",
    ];
    let proxy = TestProxy::start(None).await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);

    let mut device = DeviceProcess::start_with(
        &args,
        &[("HTTPS_PROXY", proxy_url.as_str()), ("NO_PROXY", "")],
    );
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    common::wait::eventually(WAIT, "telemetry from the device", || async {
        (!hub.stored_telemetry("ws-cli").is_empty()).then_some(())
    })
    .await;
    drop(device);
    assert_eq!(
        proxy.requests(),
        vec![(format!("CONNECT localhost:{https} HTTP/1.1"), true)]
    );

    // NO_PROXY naming the hub: straight to it, the proxy is not asked.
    let mut device = DeviceProcess::start_with(
        &args,
        &[
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "localhost"),
        ],
    );
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    drop(device);
    assert_eq!(proxy.requests().len(), 1);
}
