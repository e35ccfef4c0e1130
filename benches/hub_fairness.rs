//! Fairness under load: while N devices flood the local hub with QoS 1 telemetry over
//! MQTT/TLS as fast as it acknowledges, a probe measures REST `GET /twins/{id}` latency
//! and the time new devices take to connect (CONNACK), counting those that time out.
//!
//! `cargo bench --bench hub_fairness`; HUB_FAIRNESS_DEVICES flooding devices (default
//! 100), HUB_FAIRNESS_SECONDS of flood (default 10). The probes run on a runtime of
//! their own, so their numbers are the hub's, not the load generator's queueing.

#[path = "common/mqtt_load.rs"]
mod mqtt_load;
#[path = "common/stats.rs"]
mod stats;

use std::time::{Duration, Instant};

use mqtt_load::{BenchHub, connect_all, connect_with, flood_until, options};
use stats::summary;

const PAYLOAD: usize = 200;
/// A device whose CONNACK takes longer than this counts as timed out (the Azure SDKs'
/// connect timeouts are in this range or shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a whole number"))
        })
        .unwrap_or(default)
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .unwrap()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let devices = env_num("HUB_FAIRNESS_DEVICES", 100) as usize;
    let seconds = env_num("HUB_FAIRNESS_SECONDS", 10);
    let hub = BenchHub::start();
    let target = hub.runtime.block_on(async { hub.target() });
    let generator = runtime("load");
    let probe = runtime("probe");

    let flooders = generator.block_on(connect_all(&target, "flood", devices));
    // The devices that will connect during the flood are registered before it.
    let newcomers: Vec<_> = probe.block_on(async {
        let mut v = Vec::new();
        for i in 0..(seconds * 5) {
            v.push(options(&target, &format!("newcomer-{i:04}")).await);
        }
        v
    });
    let rest = target.hub.clone().expect("the hub's REST access").rest;

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let flood = generator.spawn(async move {
        let n = flood_until(&flooders, PAYLOAD, until).await;
        (n, flooders)
    });
    // Two probes side by side, so a slow connect never delays a twin read's sample.
    let reads = probe.spawn(async move {
        let mut twin_gets = Vec::new();
        while Instant::now() < until {
            let t = Instant::now();
            rest.get_twin("flood-00000", None).await.expect("twin read");
            twin_gets.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        twin_gets
    });
    let (mut connects, timeouts) = probe.block_on(async {
        let mut connects = Vec::new();
        let mut timeouts = 0;
        let mut joined = Vec::new();
        let mut next_connect = Instant::now() + Duration::from_millis(200);
        for opts in newcomers {
            tokio::time::sleep_until(next_connect.into()).await;
            if Instant::now() >= until {
                break;
            }
            next_connect += Duration::from_millis(200);
            let t = Instant::now();
            match tokio::time::timeout(CONNECT_TIMEOUT, connect_with(opts)).await {
                Ok(Ok(d)) => {
                    connects.push(t.elapsed());
                    joined.push(d);
                }
                Ok(Err(e)) => panic!("a device could not connect during the flood: {e}"),
                Err(_) => timeouts += 1,
            }
        }
        (connects, timeouts)
    });
    let mut twin_gets = probe.block_on(reads).unwrap();
    let (acked, _flooders) = generator.block_on(flood).unwrap();
    let took = started.elapsed().as_secs_f64();
    println!(
        "hub_fairness: {devices} devices flooding for {seconds} s: {:.0} msg/s acknowledged",
        acked as f64 / took
    );
    println!(
        "hub_fairness: REST GET /twins/{{id}}: {}",
        summary(&mut twin_gets)
    );
    println!(
        "hub_fairness: new device connects: {}; timed out (> {:?}): {timeouts}",
        summary(&mut connects),
        CONNECT_TIMEOUT
    );
}
