//! The explorer's backend against the real local hub: HubCommands in, HubEvents out.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::client::backend::{self, BackendConfig};
use hubtui::client::events::{
    AckMode, Backend, C2dMessage, HubCommand, HubEvent, LinkState, NewDeviceAuth, OnScreen,
    StartFrom,
};
use hubtui::client::service::{AmqpTransport, CallLog};
use hubtui::iothub::device::DeviceStatus;
use hubtui::iothub::twin::Section;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

struct Explorer {
    commands: mpsc::UnboundedSender<HubCommand>,
    events: mpsc::Receiver<HubEvent>,
    calls: CallLog,
}

/// The re-read interval of `start`.
const POLL: Duration = Duration::from_millis(200);

fn start(hub: &TestHub) -> Explorer {
    start_with(hub, AmqpTransport::Tcp)
}

fn start_with(hub: &TestHub, transport: AmqpTransport) -> Explorer {
    let client = hub.service_client();
    let calls = client.calls().clone();
    let mut config = BackendConfig::new(client, hub.trust());
    config.page_size = 2;
    config.twin_poll = POLL;
    config.devices_poll = POLL;
    config.amqp_port = hub.hub.info.ports.amqp;
    config.websocket_port = Some(hub.hub.info.ports.https);
    config.amqp_transport = transport;
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(1024);
    backend::spawn(config, commands_rx, events_tx);
    Explorer {
        commands,
        events,
        calls,
    }
}

impl Explorer {
    fn send(&self, cmd: HubCommand) {
        self.commands.send(cmd).unwrap();
    }

    /// The next event `pick` accepts (others are skipped), within 15 s.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&HubEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 15 s"))
                .expect("backend alive");
            if let Some(v) = pick(&ev) {
                return v;
            }
        }
    }

    async fn page(&mut self) -> (Vec<String>, Option<String>, bool) {
        self.expect("devices page", |e| match e {
            HubEvent::DevicesPage {
                items,
                continuation,
                replace,
                ..
            } => Some((
                items.iter().map(|d| d.device_id.clone()).collect(),
                continuation.clone(),
                *replace,
            )),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn devices_come_in_pages_and_the_filter_is_a_where_clause() {
    let hub = TestHub::start().await;
    for id in ["a-1", "a-2", "b-1", "o'x"] {
        hub.create_device(id).await;
    }
    let mut ex = start(&hub);
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: None,
    });
    ex.expect("connected", |e| {
        matches!(
            e,
            HubEvent::ConnectionState {
                backend: Backend::Service,
                state: LinkState::Connected,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let (first, continuation, replace) = ex.page().await;
    assert_eq!(first.len(), 2);
    assert!(replace);
    assert!(continuation.is_some());
    ex.send(HubCommand::LoadDevices {
        continuation: continuation.clone(),
        filter: None,
    });
    let (second, end, replace) = ex.page().await;
    assert!(!replace);
    assert_eq!(end, None);
    let mut all = first;
    all.extend(second);
    assert_eq!(sorted(all), ["a-1", "a-2", "b-1", "o'x"]);

    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: Some("a-".into()),
    });
    let (items, _, replace) = ex.page().await;
    assert!(replace);
    assert_eq!(sorted(items), ["a-1", "a-2"]);
    // A quote in the filter is escaped, not a query syntax error.
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: Some("o'".into()),
    });
    assert_eq!(ex.page().await.0, ["o'x"]);
    // A query condition, with or without WHERE.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/b-1",
            Some(json!({"tags": {"site": "lab"}})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    for filter in ["WHERE tags.site = 'lab'", "tags.site = 'lab'"] {
        ex.send(HubCommand::LoadDevices {
            continuation: None,
            filter: Some(filter.into()),
        });
        assert_eq!(ex.page().await.0, ["b-1"], "{filter}");
    }
    // The list carries each twin's tags (and model id) for its columns.
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: Some("b-".into()),
    });
    let twins = ex
        .expect("devices page", |e| match e {
            HubEvent::DevicesPage { twins, .. } => Some(twins.clone()),
            _ => None,
        })
        .await;
    assert_eq!(twins["b-1"].tags["site"], "lab");
    assert_eq!(twins["b-1"].model_id, "");
}

#[tokio::test]
async fn a_one_page_list_is_read_again_when_it_changes() {
    let hub = TestHub::start().await;
    hub.create_device("r-1").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: None,
    });
    ex.send(HubCommand::Visible(OnScreen {
        device_list: true,
        twin: None,
        module: None,
        rollout: None,
        files: None,
    }));
    assert_eq!(ex.page().await.0, ["r-1"]);
    hub.create_device("r-2").await;
    let (items, continuation, replace) = ex.page().await;
    assert_eq!(sorted(items), ["r-1", "r-2"]);
    assert!(replace && continuation.is_none());
}

#[tokio::test]
async fn registry_changes_and_keys_on_demand() {
    let hub = TestHub::start().await;
    let mut ex = start(&hub);
    ex.send(HubCommand::CreateDevice {
        device_id: "new-1".into(),
        auth: NewDeviceAuth::Sas,
    });
    let created = ex
        .expect("created", |e| match e {
            HubEvent::DeviceChanged(d) => Some(d.clone()),
            _ => None,
        })
        .await;
    assert_eq!(created.device_id, "new-1");
    ex.send(HubCommand::SetDeviceStatus {
        device_id: "new-1".into(),
        status: DeviceStatus::Disabled,
    });
    let changed = ex
        .expect("disabled", |e| match e {
            HubEvent::DeviceChanged(d) => Some(d.clone()),
            _ => None,
        })
        .await;
    assert_eq!(changed.status, DeviceStatus::Disabled);
    ex.send(HubCommand::GetDevice {
        device_id: "new-1".into(),
    });
    let loaded = ex
        .expect("loaded", |e| match e {
            HubEvent::DeviceLoaded(d) => Some(d.clone()),
            _ => None,
        })
        .await;
    assert!(
        loaded
            .authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .is_some()
    );
    ex.send(HubCommand::DeleteDevice {
        device_id: "new-1".into(),
    });
    let deleted = ex
        .expect("deleted", |e| match e {
            HubEvent::DeviceDeleted { device_id } => Some(device_id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(deleted, "new-1");
    ex.send(HubCommand::DeleteDevice {
        device_id: "new-1".into(),
    });
    let error = ex
        .expect("error", |e| match e {
            HubEvent::Error(m) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert!(error.starts_with("cannot delete device new-1: "), "{error}");
}

fn desired(twin: &Value) -> &Value {
    &twin["properties"]["desired"]
}

#[tokio::test]
async fn a_stale_etag_is_a_conflict_carrying_the_current_twin() {
    let hub = TestHub::start().await;
    hub.create_device("t-1").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::GetTwin {
        device_id: "t-1".into(),
        module_id: None,
    });
    let twin = ex
        .expect("twin", |e| match e {
            HubEvent::Twin { twin, .. } => Some(twin.clone()),
            _ => None,
        })
        .await;
    let etag = twin["etag"].as_str().unwrap().to_string();
    let mut patch = Map::new();
    patch.insert("interval".into(), json!(5));
    ex.send(HubCommand::PatchTwin {
        device_id: "t-1".into(),
        module_id: None,
        section: Section::Desired,
        patch: patch.clone(),
        etag: etag.clone(),
    });
    let updated = ex
        .expect("updated", |e| match e {
            HubEvent::TwinUpdated { twin, .. } => Some(twin.clone()),
            _ => None,
        })
        .await;
    assert_eq!(desired(&updated)["interval"], 5);

    // The same etag again: someone else's change came first.
    patch.insert("interval".into(), json!(9));
    ex.send(HubCommand::PatchTwin {
        device_id: "t-1".into(),
        module_id: None,
        section: Section::Desired,
        patch,
        etag,
    });
    let current = ex
        .expect("conflict", |e| match e {
            HubEvent::TwinConflict { current, .. } => Some(current.clone()),
            HubEvent::TwinUpdated { .. } => panic!("a stale etag was accepted"),
            _ => None,
        })
        .await;
    assert_eq!(desired(&current)["interval"], 5);
    assert_ne!(current["etag"], twin["etag"]);
}

#[tokio::test]
async fn the_watched_twin_is_polled_and_changes_are_reported() {
    let hub = TestHub::start().await;
    hub.create_device("p-1").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::GetTwin {
        device_id: "p-1".into(),
        module_id: None,
    });
    ex.send(HubCommand::Visible(OnScreen {
        device_list: false,
        twin: Some("p-1".into()),
        module: None,
        rollout: None,
        files: None,
    }));
    ex.expect("twin", |e| matches!(e, HubEvent::Twin { .. }).then_some(()))
        .await;
    // A change made elsewhere shows up without asking.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/p-1",
            Some(json!({"properties": {"desired": {"fan": "on"}}})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let twin = ex
        .expect("polled twin", |e| match e {
            HubEvent::Twin { twin, .. } => Some(twin.clone()),
            _ => None,
        })
        .await;
    assert_eq!(desired(&twin)["fan"], "on");
}

/// An idle explorer spends the hub's quota only on what is on screen. The window is ten
/// re-read intervals (a scaled-down minute); each tab's count is checked against it.
#[tokio::test]
async fn an_idle_explorer_rereads_only_what_is_on_screen() {
    let hub = TestHub::start().await;
    hub.create_device("i-1").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: None,
    });
    ex.page().await;
    ex.send(HubCommand::GetTwin {
        device_id: "i-1".into(),
        module_id: None,
    });
    ex.expect("twin", |e| matches!(e, HubEvent::Twin { .. }).then_some(()))
        .await;
    let intervals = 10;
    let window = POLL * intervals;
    let tabs = [
        ("Telemetry, Methods, C2D", OnScreen::default(), 0..=0),
        (
            "Devices",
            OnScreen {
                device_list: true,
                twin: None,
                module: None,
                rollout: None,
                files: None,
            },
            // Loaded machines run late; at least a third of the reads must happen. A read
            // is two calls: the device list and the module counts beside it.
            2 * (intervals / 3)..=2 * (intervals + 1),
        ),
        (
            "Twin",
            OnScreen {
                device_list: false,
                twin: Some("i-1".into()),
                module: None,
                rollout: None,
                files: None,
            },
            intervals / 3..=intervals + 1,
        ),
    ];
    for (tab, screen, allowed) in tabs {
        ex.send(HubCommand::Visible(screen));
        let before = ex.calls.total();
        tokio::time::sleep(window).await;
        let calls = ex.calls.total() - before;
        assert!(
            allowed.contains(&(calls as u32)),
            "{tab}: {calls} calls in {window:?} with a {POLL:?} interval, want {allowed:?}"
        );
    }
    // The count of the last minute reaches the app.
    let per_minute = ex
        .expect("call count", |e| match e {
            HubEvent::ServiceCalls { per_minute } => Some(*per_minute),
            _ => None,
        })
        .await;
    assert!(per_minute >= 2, "{per_minute}");
}

#[tokio::test]
async fn the_device_list_counts_each_devices_modules() {
    let hub = TestHub::start().await;
    hub.create_device("mc-1").await;
    hub.create_device("mc-2").await;
    hub.create_module("mc-1", "a").await;
    hub.create_module("mc-1", "b").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::LoadDevices {
        continuation: None,
        filter: None,
    });
    let twins = ex
        .expect("devices page", |e| match e {
            HubEvent::DevicesPage { twins, .. } => Some(twins.clone()),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await;
    assert_eq!(twins["mc-1"].modules, Some(2));
    assert_eq!(twins["mc-2"].modules, Some(0));
}

#[tokio::test]
async fn modules_are_listed_and_their_twins_read_and_patched() {
    let hub = TestHub::start().await;
    hub.create_device("md-1").await;
    hub.create_module("md-1", "edge-a").await;
    let mut ex = start(&hub);
    ex.send(HubCommand::ListModules {
        device_id: "md-1".into(),
    });
    let ids = ex
        .expect("modules", |e| match e {
            HubEvent::Modules { module_ids, .. } => Some(module_ids.clone()),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await;
    assert_eq!(ids, ["edge-a"]);
    ex.send(HubCommand::GetTwin {
        device_id: "md-1".into(),
        module_id: Some("edge-a".into()),
    });
    let twin = ex
        .expect("module twin", |e| match e {
            HubEvent::Twin { twin, .. } => Some(twin.clone()),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await;
    assert_eq!(twin["moduleId"], "edge-a");
    let mut patch = Map::new();
    patch.insert("level".into(), json!(3));
    ex.send(HubCommand::PatchTwin {
        device_id: "md-1".into(),
        module_id: Some("edge-a".into()),
        section: Section::Desired,
        patch,
        etag: twin["etag"].as_str().unwrap().into(),
    });
    let updated = ex
        .expect("patched module twin", |e| match e {
            HubEvent::TwinUpdated { twin, .. } => Some(twin.clone()),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await;
    assert_eq!(desired(&updated)["level"], 3);
    let r = hub.call(Method::GET, "/twins/md-1", None).await;
    assert!(
        r.body["properties"]["desired"].get("level").is_none(),
        "the device twin is untouched"
    );
}

#[tokio::test]
async fn method_calls_on_offline_and_silent_devices_are_clear_results() {
    let hub = TestHub::start().await;
    let key = hub.create_device("m-1").await;
    let mut ex = start(&hub);
    let call = |call_id: u64| HubCommand::InvokeMethod {
        call_id,
        device_id: "m-1".into(),
        module_id: None,
        name: "reboot".into(),
        payload: json!({}),
        response_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(0),
    };
    ex.send(call(1));
    let offline = ex
        .expect("offline result", |e| match e {
            HubEvent::MethodResult { call_id: 1, result } => Some(result.clone()),
            _ => None,
        })
        .await
        .unwrap_err();
    assert_eq!(offline.http_status, Some(404));
    assert_eq!(
        offline.message,
        "m-1 is not connected, so it cannot take a method call"
    );

    // Connected and subscribed to methods, but never answering.
    let (client, mut eventloop) = AsyncClient::new(hub.mqtt_options("m-1", &key), 10);
    client
        .subscribe("$iothub/methods/POST/#", QoS::AtMostOnce)
        .await
        .unwrap();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::SubAck(_)) = ev
                && let Some(tx) = subscribed_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    subscribed.await.unwrap();
    ex.send(call(2));
    let timeout = ex
        .expect("timeout result", |e| match e {
            HubEvent::MethodResult { call_id: 2, result } => Some(result.clone()),
            _ => None,
        })
        .await
        .unwrap_err();
    assert_eq!(timeout.http_status, Some(504));
    assert_eq!(
        timeout.message,
        "m-1 did not answer within the 5 s response timeout"
    );
}

#[tokio::test]
async fn purge_reports_the_count() {
    let hub = TestHub::start().await;
    hub.create_device("c-1").await;
    for _ in 0..2 {
        hub.hub
            .state
            .enqueue_c2d("c-1", Default::default(), b"x".to_vec(), None)
            .unwrap();
    }
    let mut ex = start(&hub);
    ex.send(HubCommand::PurgeC2d {
        device_id: "c-1".into(),
    });
    let count = ex
        .expect("purged", |e| match e {
            HubEvent::Purged { count, .. } => Some(*count),
            _ => None,
        })
        .await;
    assert_eq!(count, 2);
}

/// A device on MQTT (rumqttc), subscribed to its C2D topic; publishes go out through
/// `client`, and the C2D messages it receives arrive on the returned channel as
/// (topic, payload).
async fn mqtt_device(
    hub: &TestHub,
    id: &str,
    key: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let (client, mut eventloop) = AsyncClient::new(hub.mqtt_options(id, key), 10);
    client
        .subscribe(
            format!("devices/{id}/messages/devicebound/#"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let (c2d_tx, c2d) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = c2d_tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                _ => {}
            }
        }
    });
    subscribed.await.unwrap();
    (client, c2d)
}

#[tokio::test]
async fn telemetry_arrives_with_its_properties_once_the_reader_is_connected() {
    telemetry_arrives_over(AmqpTransport::Tcp).await;
}

#[tokio::test]
async fn telemetry_arrives_over_amqp_on_websockets() {
    telemetry_arrives_over(AmqpTransport::WebSockets).await;
}

async fn telemetry_arrives_over(transport: AmqpTransport) {
    let hub = TestHub::start().await;
    let key = hub.create_device("t-1").await;
    let mut ex = start_with(&hub, transport);
    ex.send(HubCommand::StartTelemetry {
        from: StartFrom::Now,
        consumer_group: "$Default".into(),
    });
    ex.expect("telemetry connected", |e| match e {
        HubEvent::ConnectionState {
            backend: Backend::Telemetry,
            state,
            detail,
        } => {
            assert_ne!(*state, LinkState::Failed, "{detail:?}");
            (*state == LinkState::Connected).then_some(())
        }
        _ => None,
    })
    .await;
    let (device, _c2d) = mqtt_device(&hub, "t-1", &key).await;
    device
        .publish(
            "devices/t-1/messages/events/$.mid=m-7&level=high",
            QoS::AtLeastOnce,
            false,
            br#"{"temp":21.5}"#.to_vec(),
        )
        .await
        .unwrap();
    let event = ex
        .expect("telemetry", |e| match e {
            HubEvent::Telemetry(t) => Some(t.clone()),
            _ => None,
        })
        .await;
    assert_eq!(event.device_id, "t-1");
    assert_eq!(event.body, br#"{"temp":21.5}"#);
    assert!(
        event
            .application_properties
            .contains(&("level".into(), "high".into())),
        "{event:?}"
    );
    assert!(
        event
            .system_properties
            .contains(&("message-id".into(), "m-7".into())),
        "{event:?}"
    );
}

#[tokio::test]
async fn c2d_reaches_the_device_and_a_full_ack_brings_feedback() {
    let hub = TestHub::start().await;
    let key = hub.create_device("c-1").await;
    let mut ex = start(&hub);
    let (_device, mut c2d) = mqtt_device(&hub, "c-1", &key).await;
    ex.send(HubCommand::SendC2d(C2dMessage {
        device_id: "c-1".into(),
        payload: b"hi".to_vec(),
        message_id: "m1".into(),
        ack: AckMode::Full,
        properties: vec![("color".into(), "blue".into())],
        ..C2dMessage::default()
    }));
    let sent = ex
        .expect("c2d sent", |e| match e {
            HubEvent::C2dSent { message_id } => Some(message_id.clone()),
            HubEvent::C2dFailed { reason, .. } => panic!("{reason}"),
            _ => None,
        })
        .await;
    assert_eq!(sent, "m1");
    let (topic, payload) = tokio::time::timeout(Duration::from_secs(15), c2d.recv())
        .await
        .expect("the device gets the message in time")
        .unwrap();
    assert_eq!(payload, b"hi");
    assert!(topic.contains("color=blue"), "{topic}");
    let (id, status) = ex
        .expect("feedback", |e| match e {
            HubEvent::C2dFeedback {
                original_message_id,
                status,
            } => Some((original_message_id.clone(), status.clone())),
            _ => None,
        })
        .await;
    assert_eq!((id.as_str(), status.as_str()), ("m1", "Success"));

    ex.send(HubCommand::SendC2d(C2dMessage {
        device_id: "nobody".into(),
        payload: b"x".to_vec(),
        message_id: "m2".into(),
        ..C2dMessage::default()
    }));
    let (id, reason) = ex
        .expect("c2d failure", |e| match e {
            HubEvent::C2dFailed { message_id, reason } => {
                Some((message_id.clone(), reason.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(id, "m2");
    assert!(reason.contains("nobody"), "{reason}");
}
