//! Scale: N devices (default 10,000) on MQTT/TLS with SAS against one `hubtui hub`
//! process. Measures the connect storm (all N connecting at once, up to
//! HUB_SCALE_CONCURRENCY handshakes in flight), the hub's RSS, and REST `GET /twins/{id}`
//! latency during the storm, while every device sends one message a minute, and during a
//! flood of about 10,000 msg/s from the first 100 devices.
//!
//! `cargo bench --bench hub_scale`; HUB_SCALE_DEVICES (10000), HUB_SCALE_CONCURRENCY (500),
//! HUB_SCALE_SECONDS (20, each of the steady and flood phases). The hub runs as its own
//! process, so each side has the descriptors for its half of the sockets.

#[path = "common/mqtt_load.rs"]
mod mqtt_load;
#[path = "common/stats.rs"]
mod stats;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hubtui::client::device::Trust;
use hubtui::client::service::ServiceClient;
use hubtui::iothub::connection_string::ServiceConnectionString;
use mqtt_load::{Device, HubAccess, Target, connect_with, options, topic};
use rumqttc::QoS;
use stats::summary;

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const FLOODERS: usize = 100;
const FLOOD_RATE: u64 = 10_000;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// Raises this process's descriptor limit to its hard limit; the limit in force.
fn raise_descriptors() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

struct HubProcess {
    child: Child,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HubProcess {
    fn start(dir: &Path, devices: usize) -> (HubProcess, serde_json::Value) {
        let child = Command::new(BIN)
            .args(["hub", "--data-dir"])
            .arg(dir)
            .args(["--mqtt-port", "0", "--https-port", "0", "--amqp-port", "0"])
            .args(["--max-connections", &(devices + 100).to_string()])
            .args([
                "--max-connections-per-address",
                &(devices + 100).to_string(),
            ])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the hub starts");
        let hub = HubProcess { child };
        let info_path = dir.join("hub.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(info) = std::fs::read(&info_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                return (hub, info);
            }
            assert!(Instant::now() < deadline, "no hub.json within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

const STORM: u8 = 0;
const STEADY: u8 = 1;
const FLOOD: u8 = 2;
const DONE: u8 = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_num("HUB_SCALE_DEVICES", 10_000) as usize;
    let concurrency = env_num("HUB_SCALE_CONCURRENCY", 500) as usize;
    let seconds = env_num("HUB_SCALE_SECONDS", 20);
    let descriptors = raise_descriptors();
    if descriptors < n as u64 + 1000 {
        println!(
            "hub_scale: this process may hold {descriptors} descriptors, fewer than {n} devices need; lower HUB_SCALE_DEVICES or raise the hard limit"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hub, info) = HubProcess::start(dir.path(), n);
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let cs =
        ServiceConnectionString::parse(info["serviceConnectionString"].as_str().unwrap()).unwrap();
    let https = info["ports"]["https"].as_u64().unwrap() as u16;
    let rest =
        Arc::new(ServiceClient::new(&cs, &Trust::CaPem(ca_pem.clone()), Some(https)).unwrap());
    let target = Target {
        name: "hubtui hub",
        port: info["ports"]["mqtt"].as_u64().unwrap() as u16,
        ca_pem,
        hub: Some(HubAccess {
            host_name: cs.host_name.clone(),
            rest: rest.clone(),
        }),
    };
    let generator = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "hub_scale: {n} devices, connect concurrency {concurrency}, descriptors {descriptors}"
    );

    let started = Instant::now();
    let opts: Vec<_> = generator.block_on(
        futures::stream::iter(0..n)
            .map(|i| {
                let target = target.clone();
                async move { options(&target, &format!("scale-{i:05}")).await }
            })
            .buffer_unordered(64)
            .collect(),
    );
    println!(
        "hub_scale: {n} devices registered over REST in {:.1} s; hub RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        hub.rss_mib()
    );

    // The probe reads one twin every 10 ms for the whole run, labelling each sample with
    // the phase it fell in.
    let phase = Arc::new(AtomicU8::new(STORM));
    let probe = {
        let phase = phase.clone();
        let rest = rest.clone();
        probe_rt.spawn(async move {
            let mut samples: [Vec<Duration>; 3] = Default::default();
            loop {
                let p = phase.load(Ordering::SeqCst);
                if p == DONE {
                    return samples;
                }
                let t = Instant::now();
                rest.get_twin("scale-00000", None).await.expect("twin read");
                samples[p as usize].push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let storm = Instant::now();
    let results: Vec<Result<Device, String>> = generator.block_on(
        futures::stream::iter(opts)
            .map(|o| async move {
                match tokio::time::timeout(Duration::from_secs(60), connect_with(o)).await {
                    Ok(r) => r,
                    Err(_) => Err("no CONNACK within 60 s".into()),
                }
            })
            .buffer_unordered(concurrency)
            .collect(),
    );
    let storm_took = storm.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        println!("hub_scale: first connect failure: {e}");
    }
    let devices: Vec<Device> = results.into_iter().filter_map(Result::ok).collect();
    println!(
        "hub_scale: connect storm: {} of {n} connected in {:.1} s ({failed} failed); hub RSS {:.0} MiB",
        devices.len(),
        storm_took.as_secs_f64(),
        hub.rss_mib()
    );

    // Steady: each device sends one message a minute, spread evenly.
    phase.store(STEADY, Ordering::SeqCst);
    let interval = Duration::from_secs(60).div_f64(devices.len().max(1) as f64);
    let until = Instant::now() + Duration::from_secs(seconds);
    let sent = generator.block_on(async {
        let mut tick = tokio::time::interval(interval);
        let mut sent = 0usize;
        for d in devices.iter().cycle() {
            if Instant::now() >= until {
                break;
            }
            tick.tick().await;
            let _ = d
                .client
                .try_publish(topic(&d.id), QoS::AtLeastOnce, false, vec![b'x'; 200]);
            sent += 1;
        }
        sent
    });
    println!(
        "hub_scale: steady ({seconds} s, one message per device a minute): {sent} sent; hub RSS {:.0} MiB",
        hub.rss_mib()
    );

    // Flood: the first 100 devices send about 10,000 msg/s together.
    phase.store(FLOOD, Ordering::SeqCst);
    let acked_before: usize = devices
        .iter()
        .map(|d| d.acked.load(Ordering::Relaxed))
        .sum();
    let flood_started = Instant::now();
    let until = flood_started + Duration::from_secs(seconds);
    generator.block_on(async {
        let per_device = Duration::from_secs(1).div_f64((FLOOD_RATE / FLOODERS as u64) as f64);
        let tasks: Vec<_> = devices
            .iter()
            .take(FLOODERS)
            .map(|d| {
                let client = d.client.clone();
                let topic = topic(&d.id);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(per_device);
                    while Instant::now() < until {
                        tick.tick().await;
                        let _ =
                            client.try_publish(&topic, QoS::AtLeastOnce, false, vec![b'x'; 200]);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let acked: usize = devices
        .iter()
        .map(|d| d.acked.load(Ordering::Relaxed))
        .sum::<usize>()
        - acked_before;
    println!(
        "hub_scale: flood: {:.0} msg/s acknowledged from {FLOODERS} devices; hub RSS {:.0} MiB",
        acked as f64 / flood_started.elapsed().as_secs_f64(),
        hub.rss_mib()
    );
    phase.store(DONE, Ordering::SeqCst);
    let [mut during_storm, mut steady, mut flood] = probe_rt.block_on(probe).unwrap();
    println!(
        "hub_scale: REST GET /twins/{{id}} during the storm: {}",
        summary(&mut during_storm)
    );
    println!(
        "hub_scale: REST GET /twins/{{id}} while steady: {}",
        summary(&mut steady)
    );
    println!(
        "hub_scale: REST GET /twins/{{id}} during the flood: {}",
        summary(&mut flood)
    );
    drop(devices);
    drop(hub);
}
