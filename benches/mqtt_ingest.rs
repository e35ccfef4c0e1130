//! MQTT ingest rate: N devices publish QoS 1 telemetry (200-byte payloads) over TLS as
//! fast as a window of 100 unacknowledged messages each allows; the rate counts
//! PUBACKed messages. Against the local hub (SAS auth, in-process on its own runtime)
//! and, when MQTT_BROKER_PORT and MQTT_BROKER_CA are set, a plain broker on 127.0.0.1
//! with the same generator in the same run (benches/mosquitto_compare.sh sets them).
//!
//! `cargo bench --bench mqtt_ingest`; MQTT_INGEST_DEVICES (default "10,100"),
//! MQTT_INGEST_TOTAL messages per measurement (default 40000), MQTT_INGEST_ROUNDS
//! (default 3; the best round is reported).

#[path = "common/mqtt_load.rs"]
mod mqtt_load;

use mqtt_load::{BenchHub, Target, broker_from_env, connect_all, flood};

const PAYLOAD: usize = 200;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_num(name: &str, default: usize) -> usize {
    let v = env_or(name, &default.to_string());
    v.parse()
        .unwrap_or_else(|_| panic!("{name}={v} is not a whole number"))
}

/// The best of `rounds` floods of `total` messages by `devices` devices, in msg/s.
fn measure(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    devices: usize,
    total: usize,
    rounds: usize,
) -> f64 {
    rt.block_on(async {
        let prefix = format!("ingest{devices}");
        let connected = connect_all(target, &prefix, devices).await;
        let per_device = total.div_ceil(devices);
        // Warm-up: TLS sessions, allocations, the store's first pages.
        flood(&connected, per_device / 10 + 1, PAYLOAD).await;
        let mut best: f64 = 0.0;
        for _ in 0..rounds {
            let took = flood(&connected, per_device, PAYLOAD).await;
            let rate = (per_device * devices) as f64 / took.as_secs_f64();
            println!(
                "  {}: {devices} devices x {per_device} = {} messages in {:.2} s: {rate:.0} msg/s",
                target.name,
                per_device * devices,
                took.as_secs_f64()
            );
            best = best.max(rate);
        }
        for d in connected {
            let _ = d.client.disconnect().await;
        }
        best
    })
}

fn main() {
    // `cargo test --benches` runs this binary too: only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = env_or("MQTT_INGEST_DEVICES", "10,100")
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MQTT_INGEST_DEVICES: {s} is not a number of devices"))
        })
        .collect();
    let total = env_num("MQTT_INGEST_TOTAL", 40_000);
    let rounds = env_num("MQTT_INGEST_ROUNDS", 3).max(1);
    let hub = BenchHub::start();
    let hub_target = hub.runtime.block_on(async { hub.target() });
    let broker = broker_from_env();
    let generator = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("load")
        .build()
        .unwrap();
    for devices in sizes {
        let on_hub = measure(&generator, &hub_target, devices, total, rounds);
        println!("mqtt_ingest hub: {devices} devices: {on_hub:.0} msg/s (best of {rounds})");
        if let Some(b) = &broker {
            let on_broker = measure(&generator, b, devices, total, rounds);
            println!(
                "mqtt_ingest broker: {devices} devices: {on_broker:.0} msg/s (best of {rounds}); hub/broker = {:.2}",
                on_hub / on_broker
            );
        }
    }
}
