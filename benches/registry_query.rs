//! A large registry: 100,000 devices created through the bulk registry API (`POST /devices`,
//! 100 a request, as a service would import them), half reporting firmware 1.2 (written
//! as the device's reported patch would be, in-process), then REST queries through the hub
//! as a service client sends them: the first page and a later page of
//! `SELECT * FROM devices WHERE properties.reported.fw = '1.2'`, a query that matches one
//! device (the whole registry walked), and `SELECT COUNT()`.
//!
//! `cargo bench --bench registry_query`; REGISTRY_DEVICES (100000). Target: a page of the
//! firmware query in ≤ 100 ms.

#[path = "common/mqtt_load.rs"]
mod mqtt_load;
#[path = "common/stats.rs"]
mod stats;

use std::time::Instant;

use mqtt_load::BenchHub;
use serde_json::json;
use stats::summary;

const RUNS: usize = 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("REGISTRY_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let bench = BenchHub::start();
    let state = bench.hub.state.clone();
    let target = bench.runtime.block_on(async { bench.target() });
    let rest = target.hub.unwrap().rest;
    let id = |i: usize| format!("reg-{i:06}");
    let started = Instant::now();
    bench.runtime.block_on(async {
        let ids: Vec<usize> = (0..n).collect();
        for chunk in ids.chunks(100) {
            let entries: Vec<_> = chunk
                .iter()
                .map(|&i| json!({"id": id(i), "importMode": "create", "status": "enabled"}))
                .collect();
            let result = rest.bulk_devices(&entries).await.expect("bulk create");
            assert_eq!(result["isSuccessful"], true, "{result}");
        }
    });
    let created = started.elapsed();
    println!(
        "registry_query: {n} devices created through POST /devices in {:.1} s ({:.0} devices/s)",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64()
    );
    let started = Instant::now();
    for i in 0..n {
        let fw = if i % 2 == 0 { "1.2" } else { "1.1" };
        let patch = json!({"fw": fw, "serial": i}).to_string();
        state
            .patch_reported(&(id(i), None), patch.as_bytes())
            .expect("reported set");
    }
    println!(
        "registry_query: reported firmware stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let time = |sql: &'static str, continuation: bool| {
        let rest = rest.clone();
        bench.runtime.block_on(async move {
            let mut token = None;
            if continuation {
                // Start from a page in the middle of the registry.
                let mut next = None;
                for _ in 0..100 {
                    let page = rest.query(sql, next.as_deref(), Some(100)).await.unwrap();
                    next = page.continuation;
                }
                token = next;
            }
            let mut samples = Vec::new();
            let mut rows = 0;
            for _ in 0..RUNS {
                let t = Instant::now();
                let page = rest.query(sql, token.as_deref(), Some(100)).await.unwrap();
                samples.push(t.elapsed());
                rows = page.items.len();
            }
            (summary(&mut samples), rows)
        })
    };
    let fw = "SELECT * FROM devices WHERE properties.reported.fw = '1.2'";
    let (first, rows) = time(fw, false);
    println!("registry_query: first page of the firmware query ({rows} twins): {first}");
    let (later, rows) = time(fw, true);
    println!("registry_query: 101st page of the firmware query ({rows} twins): {later}");
    let (one, rows) = time(
        "SELECT * FROM devices WHERE properties.reported.serial = 99999",
        false,
    );
    println!("registry_query: a query matching one device ({rows} twin, every twin read): {one}");
    let (count, _) = time("SELECT COUNT() AS n FROM devices", false);
    println!("registry_query: SELECT COUNT() over the registry: {count}");
}
