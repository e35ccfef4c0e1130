//! Draining a retained backlog: 10,000 events over the hub's 4 partitions, read from the
//! start by hubtui's AMQP telemetry reader on one connection (one link per partition).
//! Times from the reader's start to its 10,000th event, over a few runs.
//!
//! `cargo bench --bench amqp_backlog`. Target: ≤ 2 s.

#[path = "common/mqtt_load.rs"]
mod mqtt_load;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hubtui::client::device::Trust;
use hubtui::client::service::{
    AmqpOptions, Proxy, ReadFrom, StreamUpdate, TelemetryReaderOptions, TelemetrySource,
    read_telemetry,
};
use hubtui::hub::store::TelemetryRecord;
use hubtui::hub::telemetry::partition_of;
use hubtui::iothub::connection_string::ServiceConnectionString;
use mqtt_load::BenchHub;

const EVENTS: usize = 10_000;
const RUNS: usize = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bench = BenchHub::start();
    let hub = &bench.hub;
    let partitions = hub.state.settings.partitions;
    let now = chrono::Utc::now().timestamp_millis();
    let recs: Vec<_> = (0..EVENTS)
        .map(|i| {
            let device_id = format!("dev-{}", i % 16);
            TelemetryRecord {
                seq: 0,
                partition: partition_of(&device_id, partitions),
                partition_seq: 0,
                enqueued_ms: now,
                device_id,
                module_id: None,
                properties: "{}".into(),
                body: vec![b'x'; 200],
            }
        })
        .collect();
    for chunk in recs.chunks(1000) {
        (hub.state.store)
            .telemetry_append_batch(chunk.to_vec(), &mut HashMap::new())
            .expect("backlog stored");
    }
    let source = TelemetrySource::Hub(
        ServiceConnectionString::parse(&hub.info.service_connection_string).unwrap(),
    );
    let opts = TelemetryReaderOptions {
        from: ReadFrom::Earliest,
        amqp: AmqpOptions {
            trust: Trust::CaPem(hub.ca_pem.clone()),
            port: hub.info.ports.amqp,
            proxy: Proxy::None,
            ..AmqpOptions::default()
        },
        ..TelemetryReaderOptions::default()
    };
    let reader_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for run in 1..=RUNS {
        let took = reader_rt.block_on(async {
            let started = Instant::now();
            let (reader, mut rx) = read_telemetry(source.clone(), opts.clone());
            let mut n = 0;
            while n < EVENTS {
                match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
                    Ok(Some(StreamUpdate::Item(_))) => n += 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => panic!("the backlog stopped after {n} events"),
                }
            }
            let took = started.elapsed();
            reader.close().await;
            took
        });
        println!(
            "amqp_backlog: run {run}: {EVENTS} events over {partitions} partitions on one connection in {:.2} s ({:.0} events/s)",
            took.as_secs_f64(),
            EVENTS as f64 / took.as_secs_f64()
        );
    }
}
