//! The service client's AMQP side against the real local hub over real sockets:
//! devices publish over MQTT (hubtui's DeviceClient), the telemetry reader reads them
//! back through the redirect or an Event Hubs connection string; C2D with every
//! property and ack mode, feedback, refusals, a hub restart, and the proxy tunnel.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::TestHub;
use common::wait::{assert_nothing_within, eventually};
use hubtui::client::device::{DeviceClient, DeviceClientOptions, DeviceEvent, Trust};
use hubtui::client::events::{AckMode, C2dMessage, LinkState, TelemetryEvent};
use hubtui::client::service::amqp::{FeedbackRecord, FeedbackStatus};
use hubtui::client::service::{
    AmqpOptions, AmqpTransport, C2dSender, MessagingError, Proxy, ReadFrom, ServiceClient,
    StreamUpdate, TelemetryReaderOptions, TelemetrySource, read_telemetry, receive_feedback,
    receive_file_notifications,
};
use hubtui::hub::store::TelemetryRecord;
use hubtui::hub::telemetry::partition_of;
use hubtui::hub::{self, HubOptions, RunningHub};
use hubtui::iothub::connection_string::{
    DeviceConnectionString, EventHubConnectionString, ServiceConnectionString,
};
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

fn service_cs(hub: &RunningHub) -> ServiceConnectionString {
    ServiceConnectionString::parse(&hub.info.service_connection_string).unwrap()
}

fn service_cs_for(hub: &RunningHub, policy: &str) -> ServiceConnectionString {
    let p = hub.state.policy(policy).unwrap();
    ServiceConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName={policy};SharedAccessKey={}",
        hub.info.host_name, p.primary_key
    ))
    .unwrap()
}

fn event_hub_cs(hub: &RunningHub) -> EventHubConnectionString {
    EventHubConnectionString::parse(
        hub.info
            .event_hub_compatible_connection_string
            .as_deref()
            .unwrap(),
    )
    .unwrap()
}

fn amqp(hub: &RunningHub) -> AmqpOptions {
    AmqpOptions {
        trust: Trust::CaPem(hub.ca_pem.clone()),
        port: hub.info.ports.amqp,
        proxy: Proxy::None,
        ..AmqpOptions::default()
    }
}

fn reader_opts(hub: &RunningHub, from: ReadFrom) -> TelemetryReaderOptions {
    TelemetryReaderOptions {
        from,
        amqp: amqp(hub),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..TelemetryReaderOptions::default()
    }
}

type Updates = mpsc::Receiver<StreamUpdate<TelemetryEvent>>;

/// Waits for the reader to report `Connected` (skipping other states).
async fn until_connected<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<StreamUpdate<T>>) {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("connected in time") {
            Some(StreamUpdate::State {
                state: LinkState::Connected,
                ..
            }) => return,
            Some(StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            }) => panic!("reader failed: {detail:?}"),
            Some(_) => {}
            None => panic!("reader ended"),
        }
    }
}

/// Collects `n` events (states are skipped); panics if they do not come in time.
async fn events(rx: &mut Updates, n: usize) -> Vec<TelemetryEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match timeout(WAIT, rx.recv()).await {
            Ok(Some(StreamUpdate::Item(e))) => out.push(e),
            Ok(Some(StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            })) => panic!("reader failed: {detail:?}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("reader ended after {} events", out.len()),
            Err(_) => panic!("only {} of {n} events arrived: {out:?}", out.len()),
        }
    }
    out
}

/// Asserts nothing but states arrive for a while.
async fn no_more_events(rx: &mut Updates) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(u)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(
            matches!(u, StreamUpdate::State { .. }),
            "unexpected event {u:?}"
        );
    }
}

struct Device {
    client: DeviceClient,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
}

async fn device(hub: &RunningHub, id: &str, key: &str) -> Device {
    let cs = DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId={id};SharedAccessKey={key}",
        hub.info.host_name
    ))
    .unwrap();
    let opts = DeviceClientOptions {
        port: hub.info.ports.mqtt,
        trust: Trust::CaPem(hub.ca_pem.clone()),
        connect_host: Some("localhost".into()),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..DeviceClientOptions::default()
    };
    let (client, mut events) = DeviceClient::connect(&cs, opts).unwrap();
    loop {
        match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
            DeviceEvent::Connected => break,
            DeviceEvent::Disconnected { reason, .. } => panic!("{id}: {reason}"),
            _ => {}
        }
    }
    Device { client, events }
}

fn bag(pairs: &[(&str, &str)]) -> PropertyBag {
    let mut b = PropertyBag::default();
    for (k, v) in pairs {
        b.set(k, Some(v.to_string()));
    }
    b
}

fn sys<'a>(e: &'a TelemetryEvent, name: &str) -> Option<&'a str> {
    e.system_properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn app<'a>(e: &'a TelemetryEvent, name: &str) -> Option<&'a str> {
    e.application_properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits until the hub has stored `n` telemetry records in total.
async fn stored(hub: &RunningHub, n: usize) {
    eventually(WAIT, &format!("{n} telemetry records stored"), || async {
        let total: usize = (0..hub.state.settings.partitions)
            .map(|p| hub.state.store.telemetry_read(p, 0, 10_000).unwrap().len())
            .sum();
        (total >= n).then_some(())
    })
    .await
}

#[tokio::test]
async fn telemetry_from_several_devices_arrives_in_order_through_the_redirect() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let ids = ["dev-a", "dev-b", "dev-c"];
    let mut devices = Vec::new();
    for id in ids {
        let key = t.create_device(id).await;
        devices.push(device(hub, id, &key).await);
    }
    let (reader, mut rx) = read_telemetry(
        TelemetrySource::Hub(service_cs(hub)),
        reader_opts(hub, ReadFrom::Now),
    );
    until_connected(&mut rx).await;
    const N: usize = 5;
    for i in 0..N {
        for d in &devices {
            let id = d.client.device_id().to_string();
            let props = bag(&[
                ("$.mid", &format!("{id}-{i}")),
                ("$.cid", "corr"),
                ("$.ct", "application/json"),
                ("$.ce", "utf-8"),
                ("level", "high temp"),
            ]);
            d.client
                .send_telemetry(format!("{{\"i\":{i}}}").into_bytes(), props)
                .unwrap();
        }
    }
    let got = events(&mut rx, N * ids.len()).await;
    no_more_events(&mut rx).await;
    let mut per_device: HashMap<&str, Vec<&TelemetryEvent>> = HashMap::new();
    for e in &got {
        per_device.entry(e.device_id.as_str()).or_default().push(e);
    }
    for id in ids {
        let list = &per_device[id];
        let bodies: Vec<String> = list
            .iter()
            .map(|e| String::from_utf8(e.body.clone()).unwrap())
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("{{\"i\":{i}}}")).collect();
        assert_eq!(bodies, want, "{id} in order");
        for (i, e) in list.iter().enumerate() {
            assert_eq!(sys(e, "message-id"), Some(format!("{id}-{i}").as_str()));
            assert_eq!(sys(e, "correlation-id"), Some("corr"));
            assert_eq!(sys(e, "content-type"), Some("application/json"));
            assert_eq!(sys(e, "content-encoding"), Some("utf-8"));
            assert_eq!(sys(e, "iothub-message-source"), Some("Telemetry"));
            assert!(
                sys(e, "iothub-connection-auth-method")
                    .unwrap()
                    .contains("\"scope\":\"device\"")
            );
            assert!(sys(e, "iothub-connection-auth-generation-id").is_some());
            assert_eq!(app(e, "level"), Some("high temp"));
            assert_eq!(e.module_id, None);
            assert!((chrono::Utc::now() - e.enqueued_time).num_seconds() < 60);
        }
        let seqs: Vec<i64> = list.iter().map(|e| e.sequence_number).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert!(list.iter().all(|e| e.partition == list[0].partition));
    }
    reader.close().await;
}

#[tokio::test]
async fn start_positions_from_a_time_and_from_retention_on_the_event_hubs_string() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let key = t.create_device("dev-t").await;
    let d = device(hub, "dev-t", &key).await;
    for i in 0..3 {
        d.client
            .send_telemetry(format!("early-{i}"), PropertyBag::default())
            .unwrap();
    }
    stored(hub, 3).await;
    let between = common::wait::next_millisecond();
    common::wait::next_millisecond();
    for i in 0..2 {
        d.client
            .send_telemetry(format!("late-{i}"), PropertyBag::default())
            .unwrap();
    }
    stored(hub, 5).await;

    let source = TelemetrySource::EventHub(event_hub_cs(hub));
    let (r1, mut after) = read_telemetry(
        source.clone(),
        reader_opts(hub, ReadFrom::EnqueuedAfter(between)),
    );
    let bodies = |v: Vec<TelemetryEvent>| -> Vec<String> {
        v.into_iter()
            .map(|e| String::from_utf8(e.body).unwrap())
            .collect()
    };
    assert_eq!(bodies(events(&mut after, 2).await), ["late-0", "late-1"]);
    no_more_events(&mut after).await;

    let (r2, mut all) = read_telemetry(source.clone(), reader_opts(hub, ReadFrom::Earliest));
    assert_eq!(
        bodies(events(&mut all, 5).await),
        ["early-0", "early-1", "early-2", "late-0", "late-1"]
    );
    no_more_events(&mut all).await;

    // From now: nothing retained, then what comes next.
    let (r3, mut now) = read_telemetry(source, reader_opts(hub, ReadFrom::Now));
    until_connected(&mut now).await;
    no_more_events(&mut now).await;
    d.client
        .send_telemetry("live", PropertyBag::default())
        .unwrap();
    assert_eq!(bodies(events(&mut now, 1).await), ["live"]);
    assert_eq!(bodies(events(&mut all, 1).await), ["live"]);
    assert_eq!(bodies(events(&mut after, 1).await), ["live"]);

    // Another consumer group reads the same events.
    let mut other = reader_opts(hub, ReadFrom::Earliest);
    other.consumer_group = "explorer".into();
    let (r4, mut grp) = read_telemetry(TelemetrySource::Hub(service_cs(hub)), other);
    assert_eq!(events(&mut grp, 6).await.len(), 6);
    for r in [r1, r2, r3, r4] {
        r.close().await;
    }
}

/// Restarts the hub on the same data dir and ports.
async fn restart(hub: RunningHub, dir: &std::path::Path) -> RunningHub {
    let mut opts = HubOptions::ephemeral(dir.to_path_buf());
    opts.mqtt_port = hub.info.ports.mqtt;
    opts.https_port = hub.info.ports.https;
    opts.amqp_port = hub.info.ports.amqp.unwrap();
    hub.shutdown().await;
    let mut last = None;
    for _ in 0..50 {
        match hub::start(opts.clone()).await {
            Ok(h) => return h,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("hub did not restart: {last:?}");
}

#[tokio::test]
async fn reader_resumes_after_a_hub_restart_with_no_gap_and_no_duplicate() {
    let t = TestHub::start().await;
    let key = t.create_device("dev-r").await;
    let offline_key = t.create_device("dev-off").await;
    let TestHub { dir, hub, .. } = t;
    let d = device(&hub, "dev-r", &key).await;
    let (reader, mut rx) = read_telemetry(
        TelemetrySource::Hub(service_cs(&hub)),
        reader_opts(&hub, ReadFrom::Earliest),
    );
    for i in 0..10 {
        d.client
            .send_telemetry(format!("{i}"), PropertyBag::default())
            .unwrap();
    }
    let first = events(&mut rx, 10).await;

    // C2D queued for a device that is offline across the restart.
    let mut sender = C2dSender::connect(&service_cs(&hub), amqp(&hub))
        .await
        .unwrap();
    sender
        .send(&C2dMessage {
            device_id: "dev-off".into(),
            payload: b"before restart".to_vec(),
            message_id: "c2d-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let hub = restart(hub, dir.path()).await;
    // The device reconnects by itself; more telemetry after the restart.
    let mut sent = 10;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent < 20 {
        if d.client.is_connected()
            && d.client
                .send_telemetry(format!("{sent}"), PropertyBag::default())
                .is_ok()
        {
            sent += 1;
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "device never reconnected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut states = Vec::new();
    let mut second = Vec::new();
    while second.len() < 10 {
        match timeout(WAIT, rx.recv())
            .await
            .expect("events after restart")
        {
            Some(StreamUpdate::Item(e)) => second.push(e),
            Some(StreamUpdate::State { state, .. }) => states.push(state),
            None => panic!("reader ended"),
        }
    }
    no_more_events(&mut rx).await;
    assert!(states.contains(&LinkState::Reconnecting), "{states:?}");
    let all: Vec<_> = first.iter().chain(&second).collect();
    let bodies: Vec<String> = all
        .iter()
        .map(|e| String::from_utf8(e.body.clone()).unwrap())
        .collect();
    let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(bodies, want, "no gap, no duplicate, in order");
    let pairs: HashSet<(u32, i64)> = all
        .iter()
        .map(|e| (e.partition, e.sequence_number))
        .collect();
    assert_eq!(pairs.len(), 20);
    reader.close().await;

    // Events were retained across the restart.
    let (r2, mut again) = read_telemetry(
        TelemetrySource::EventHub(event_hub_cs(&hub)),
        reader_opts(&hub, ReadFrom::Earliest),
    );
    assert_eq!(events(&mut again, 20).await.len(), 20);
    r2.close().await;

    // The sender reconnects by itself; the C2D queued before the restart arrives.
    sender
        .send(&C2dMessage {
            device_id: "dev-off".into(),
            payload: b"after restart".to_vec(),
            message_id: "c2d-2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut off = device(&hub, "dev-off", &offline_key).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        if let DeviceEvent::C2d { body, .. } =
            timeout(WAIT, off.events.recv()).await.unwrap().unwrap()
        {
            got.push(String::from_utf8(body).unwrap());
        }
    }
    assert_eq!(got, ["before restart", "after restart"]);
    sender.close().await;
    drop(dir);
}

fn every_property(device_id: &str, ack: AckMode) -> C2dMessage {
    C2dMessage {
        device_id: device_id.into(),
        payload: format!("{{\"ack\":\"{}\"}}", ack.label()).into_bytes(),
        message_id: format!("mid-{}", ack.label()),
        correlation_id: Some(format!("cid-{}", ack.label())),
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        expiry: Some(Duration::from_secs(600)),
        ack,
        properties: vec![
            ("color".into(), "blue".into()),
            ("with space".into(), "a&b=c".into()),
        ],
    }
}

#[tokio::test]
async fn c2d_with_every_property_and_ack_mode_reaches_the_device() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let key = t.create_device("dev-c2d").await;
    let mut d = device(hub, "dev-c2d", &key).await;
    let mut sender = C2dSender::connect(&service_cs(hub), amqp(hub))
        .await
        .unwrap();
    for ack in AckMode::ALL {
        sender.send(&every_property("dev-c2d", ack)).await.unwrap();
    }
    for ack in AckMode::ALL {
        let (properties, body) = loop {
            match timeout(WAIT, d.events.recv()).await.unwrap().unwrap() {
                DeviceEvent::C2d { properties, body } => break (properties, body),
                _ => continue,
            }
        };
        let l = ack.label();
        assert_eq!(body, format!("{{\"ack\":\"{l}\"}}").into_bytes());
        assert_eq!(properties.get("$.mid"), Some(format!("mid-{l}").as_str()));
        assert_eq!(properties.get("$.cid"), Some(format!("cid-{l}").as_str()));
        assert_eq!(properties.get("$.ct"), Some("application/json"));
        assert_eq!(properties.get("$.ce"), Some("utf-8"));
        assert_eq!(
            properties.get("$.to"),
            Some("/devices/dev-c2d/messages/devicebound")
        );
        let exp = chrono::DateTime::parse_from_rfc3339(properties.get("$.exp").unwrap()).unwrap();
        let left = exp.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!((500..=600).contains(&left.num_seconds()), "{left}");
        assert_eq!(properties.get("iothub-ack"), Some(l));
        assert_eq!(properties.get("color"), Some("blue"));
        assert_eq!(properties.get("with space"), Some("a&b=c"));
    }
    sender.close().await;
    d.client.close().await;
}

#[tokio::test]
async fn feedback_arrives_for_positive_negative_and_full() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let key = t.create_device("dev-fb").await;
    t.create_device("dev-gone").await;
    let (fb, mut feedback) = receive_feedback(&service_cs(hub), amqp(hub));
    until_connected(&mut feedback).await;
    let mut sender = C2dSender::connect(&service_cs(hub), amqp(hub))
        .await
        .unwrap();
    // Delivered and completed: positive and full report Success.
    let mut d = device(hub, "dev-fb", &key).await;
    for ack in AckMode::ALL {
        sender.send(&every_property("dev-fb", ack)).await.unwrap();
    }
    let mut delivered = 0;
    while delivered < 4 {
        if let DeviceEvent::C2d { .. } = timeout(WAIT, d.events.recv()).await.unwrap().unwrap() {
            delivered += 1;
        }
    }
    // Never delivered, purged: negative and full report Purged.
    for ack in AckMode::ALL {
        let mut m = every_property("dev-gone", ack);
        m.message_id = format!("gone-{}", ack.label());
        sender.send(&m).await.unwrap();
    }
    let purged = t
        .call(Method::DELETE, "/devices/dev-gone/commands", None)
        .await;
    assert!(purged.status.is_success(), "{}", purged.body);

    let mut records: Vec<FeedbackRecord> = Vec::new();
    while records.len() < 4 {
        match timeout(WAIT, feedback.recv())
            .await
            .expect("feedback in time")
        {
            Some(StreamUpdate::Item(r)) => records.push(r),
            Some(_) => {}
            None => panic!("feedback receiver ended"),
        }
    }
    assert_nothing_within(
        Duration::from_millis(300),
        "feedback beyond the four records arrived",
        async {
            loop {
                match feedback.recv().await {
                    Some(StreamUpdate::Item(r)) => return r,
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            }
        },
    )
    .await;
    let mut got: Vec<(String, FeedbackStatus, String)> = records
        .iter()
        .map(|r| {
            (
                r.original_message_id.clone(),
                r.status_code,
                r.device_id.clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (
                "gone-full".into(),
                FeedbackStatus::Purged,
                "dev-gone".into()
            ),
            (
                "gone-negative".into(),
                FeedbackStatus::Purged,
                "dev-gone".into()
            ),
            ("mid-full".into(), FeedbackStatus::Success, "dev-fb".into()),
            (
                "mid-positive".into(),
                FeedbackStatus::Success,
                "dev-fb".into()
            ),
        ]
    );
    // Completed feedback is gone from the hub.
    common::feedback_settled(&hub.state).await;
    fb.close().await;
    sender.close().await;
}

#[tokio::test]
async fn refusals_are_one_clear_sentence() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    // A wrong key.
    let mut bad = service_cs(hub);
    bad.key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into();
    let e = C2dSender::connect(&bad, amqp(hub)).await.err().unwrap();
    assert!(matches!(e, MessagingError::Unauthorized(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("the hub refused the credentials"),
        "{text}"
    );
    assert!(text.contains("signature"), "{text}");
    assert!(!text.contains('\n'));

    // The telemetry reader gives up with the same sentence.
    let (_r, mut rx) = read_telemetry(TelemetrySource::Hub(bad), reader_opts(hub, ReadFrom::Now));
    let detail = loop {
        match timeout(WAIT, rx.recv()).await.unwrap().unwrap() {
            StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            } => break detail.unwrap(),
            StreamUpdate::State { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(
        detail.starts_with("the hub refused the credentials"),
        "{detail}"
    );

    // A policy without ServiceConnect.
    let reader_only = service_cs_for(hub, "registryRead");
    let e = match C2dSender::connect(&reader_only, amqp(hub)).await {
        Err(e) => e,
        Ok(mut s) => s
            .send(&every_property("anyone", AckMode::None))
            .await
            .unwrap_err(),
    };
    assert!(matches!(e, MessagingError::Unauthorized(_)), "{e:?}");
    assert!(e.to_string().contains("ServiceConnect"), "{e}");

    // An unknown device is named.
    let mut sender = C2dSender::connect(&service_cs(hub), amqp(hub))
        .await
        .unwrap();
    let e = sender
        .send(&every_property("ghost-device", AckMode::Full))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the device 'ghost-device' does not exist on this hub"
    );
    // The sender still works after a refusal.
    t.create_device("real").await;
    sender
        .send(&every_property("real", AckMode::None))
        .await
        .unwrap();

    // Nothing listens on the port: unreachable, and retried (not fatal).
    let mut closed = amqp(hub);
    closed.port = Some(1);
    let e = C2dSender::connect(&service_cs(hub), closed)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, MessagingError::Unreachable { .. }), "{e:?}");
    assert!(!e.is_fatal());
}

#[tokio::test]
async fn file_notification_receiver_attaches() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let (task, mut rx) = receive_file_notifications(&service_cs(hub), amqp(hub));
    until_connected(&mut rx).await;
    assert!(!task.is_finished());
    task.close().await;
}

/// A one-connection-at-a-time HTTP CONNECT proxy on loopback that records targets.
async fn connect_proxy() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = tx.send(head.lines().next().unwrap_or("").to_string());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, rx)
}

/// AMQP over WebSockets on the hub's HTTPS port, as on Azure's 443.
fn websockets(hub: &RunningHub) -> AmqpOptions {
    AmqpOptions {
        transport: AmqpTransport::WebSockets,
        port: Some(hub.info.ports.https),
        ..amqp(hub)
    }
}

#[tokio::test]
async fn telemetry_and_c2d_work_over_websockets() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let key = t.create_device("dev-ws").await;
    let mut d = device(hub, "dev-ws", &key).await;

    // Redirect on /$iothub/websocket, then the partitions on /$servicebus/websocket.
    let (reader, mut rx) = read_telemetry(
        TelemetrySource::Hub(service_cs(hub)),
        TelemetryReaderOptions {
            amqp: websockets(hub),
            ..reader_opts(hub, ReadFrom::Now)
        },
    );
    until_connected(&mut rx).await;
    for i in 0..3 {
        d.client
            .send_telemetry(
                format!("ws {i}").into_bytes(),
                bag(&[("$.mid", &format!("ws-{i}"))]),
            )
            .unwrap();
    }
    let got = events(&mut rx, 3).await;
    let bodies: Vec<&[u8]> = got.iter().map(|e| e.body.as_slice()).collect();
    assert_eq!(bodies, [&b"ws 0"[..], b"ws 1", b"ws 2"]);
    assert_eq!(sys(&got[2], "message-id"), Some("ws-2"));
    assert!(got.iter().all(|e| e.device_id == "dev-ws"));
    reader.close().await;

    let mut sender = C2dSender::connect(&service_cs(hub), websockets(hub))
        .await
        .unwrap();
    sender
        .send(&every_property("dev-ws", AckMode::None))
        .await
        .unwrap();
    let properties = loop {
        match timeout(WAIT, d.events.recv()).await.unwrap().unwrap() {
            DeviceEvent::C2d { properties, .. } => break properties,
            _ => continue,
        }
    };
    assert_eq!(properties.get("$.mid"), Some("mid-none"));
    assert_eq!(properties.get("color"), Some("blue"));
    sender.close().await;
    d.client.close().await;
}

#[tokio::test]
async fn websockets_go_through_an_http_connect_proxy() {
    let t = TestHub::start().await;
    let hub = &t.hub;
    let (proxy_port, mut seen) = connect_proxy().await;
    let opts = AmqpOptions {
        proxy: Proxy::Url(format!("http://127.0.0.1:{proxy_port}")),
        ..websockets(hub)
    };
    let result = C2dSender::connect(&service_cs(hub), opts).await;
    let line = timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(
        line,
        format!("CONNECT localhost:{} HTTP/1.1", hub.info.ports.https)
    );
    // Tunnel, TLS through it, the AMQPWSB10 upgrade and AMQP: the whole path works.
    let mut sender = result.unwrap();
    t.create_device("via-proxy").await;
    sender
        .send(&every_property("via-proxy", AckMode::None))
        .await
        .unwrap();
    let queued = hub
        .state
        .c2d_deliverable("via-proxy", &Default::default())
        .unwrap();
    assert_eq!(queued.len(), 1);

    // REST goes through the same proxy (a CONNECT tunnel too).
    let rest = ServiceClient::with_proxy(
        &service_cs(hub),
        &Trust::CaPem(hub.ca_pem.clone()),
        Some(hub.info.ports.https),
        &Proxy::Url(format!("http://127.0.0.1:{proxy_port}")),
    )
    .unwrap();
    assert_eq!(
        rest.get_device("via-proxy").await.unwrap().device_id,
        "via-proxy"
    );
    let line = timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(
        line,
        format!("CONNECT localhost:{} HTTP/1.1", hub.info.ports.https)
    );

    // A proxy that refuses is named in one sentence.
    let opts = AmqpOptions {
        transport: AmqpTransport::WebSockets,
        port: Some(9),
        proxy: Proxy::Url(format!("http://127.0.0.1:{proxy_port}")),
        ..amqp(hub)
    };
    let e = C2dSender::connect(&service_cs(hub), opts)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, MessagingError::Proxy { .. }), "{e:?}");
    assert!(e.to_string().contains("502"), "{e}");
}

/// A retained backlog across every partition drains on one connection without stalling:
/// 10,000 events over 4 partitions. (A stall such as the one flow control once caused, a
/// few events a second per partition, would take minutes; how fast it drains is measured
/// in `benches/amqp_backlog.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_over_every_partition_drains_on_one_connection() {
    const N: usize = 10_000;
    let t = TestHub::start().await;
    let hub = &t.hub;
    let partitions = hub.state.settings.partitions;
    assert_eq!(partitions, 4);
    let recs = (0..N).map(|i| {
        let device_id = format!("dev-{}", i % 16);
        TelemetryRecord {
            seq: 0,
            partition: partition_of(&device_id, partitions),
            partition_seq: 0,
            enqueued_ms: chrono::Utc::now().timestamp_millis(),
            device_id,
            module_id: None,
            properties: "{}".into(),
            body: format!("{{\"i\":{i}}}").into_bytes(),
        }
    });
    let recs: Vec<_> = recs.collect();
    for chunk in recs.chunks(1000) {
        hub.state
            .store
            .telemetry_append_batch(chunk.to_vec(), &mut HashMap::new())
            .unwrap();
    }
    let per_partition: Vec<usize> = (0..partitions)
        .map(|p| hub.state.store.telemetry_read(p, 0, N).unwrap().len())
        .collect();
    assert!(per_partition.iter().all(|&n| n > 0), "{per_partition:?}");

    let (reader, mut rx) = read_telemetry(
        TelemetrySource::Hub(service_cs(hub)),
        reader_opts(hub, ReadFrom::Earliest),
    );
    let got = events(&mut rx, N).await;
    let mut bodies: Vec<usize> = got
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            v["i"].as_u64().unwrap() as usize
        })
        .collect();
    bodies.sort_unstable();
    assert_eq!(bodies, (0..N).collect::<Vec<_>>());
    reader.close().await;
}
