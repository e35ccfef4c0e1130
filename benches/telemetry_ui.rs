//! The explorer's telemetry path without the network: synthetic JSON telemetry from 10
//! devices goes through `update` (as `Action::Hub(HubEvent::Telemetry(..))`) and the
//! Telemetry tab is drawn with `ui::render` on a 120x40 `TestBackend`.
//!
//! Like the event loop, events are applied in batches, one batch per ~33 ms frame (all that
//! arrived since the last frame), then one render when `needs_redraw`. For each target rate
//! the bench reports the events/s actually processed, the frame time (update batch + render),
//! the share of wall time spent working, and VmRSS. The ring buffer (default capacity) is
//! filled before the first phase, so every phase runs with a full ring.
//!
//! `cargo bench --bench telemetry_ui` (TELEMETRY_UI_SECS=N seconds per rate, default 3).
//! Results go in BENCHMARKS.md.

use std::time::{Duration, Instant};

use chrono::Utc;
use hubtui::app::{Action, App, Config, Tab, update};
use hubtui::client::events::{HubEvent, TelemetryEvent};
use hubtui::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const DEVICES: u64 = 10;
const FRAME: Duration = Duration::from_millis(33);
const RATES: [u64; 4] = [1_000, 10_000, 50_000, 100_000];

/// Resident set size in MiB, from /proc/self/status.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The `n`-th synthetic message: device `sim-(n % 10)`, a small JSON body.
fn event(n: u64, now: chrono::DateTime<Utc>) -> HubEvent {
    let device = n % DEVICES;
    let seq = n / DEVICES;
    let body = format!(
        "{{\"temperature\":{:.2},\"humidity\":{:.1},\"pressure\":{},\"status\":\"ok\",\"seq\":{seq}}}",
        20.0 + (n % 97) as f64 / 10.0,
        40.0 + (n % 31) as f64,
        1000 + n % 50,
    );
    HubEvent::Telemetry(TelemetryEvent {
        enqueued_time: now,
        device_id: format!("sim-{device}"),
        module_id: None,
        partition: (device % 4) as u32,
        sequence_number: seq as i64,
        system_properties: vec![
            ("message-id".into(), format!("m-{n}")),
            ("content-type".into(), "application/json".into()),
        ],
        application_properties: vec![("source".into(), "bench".into())],
        body: body.into_bytes(),
    })
}

/// Applies a batch and draws once if needed; returns how long that took.
fn frame(
    app: &mut App,
    term: &mut Terminal<TestBackend>,
    theme: &Theme,
    batch: Vec<HubEvent>,
) -> Duration {
    let start = Instant::now();
    for e in batch {
        update(app, Action::Hub(e));
    }
    if app.needs_redraw() {
        term.draw(|f| render(f, app, theme)).expect("draw");
        app.mark_drawn();
    }
    start.elapsed()
}

struct Phase {
    rate: u64,
    events: u64,
    wall: Duration,
    busy: Duration,
    frames: Vec<Duration>,
    rss: f64,
}

fn run_phase(
    app: &mut App,
    term: &mut Terminal<TestBackend>,
    theme: &Theme,
    rate: u64,
    secs: f64,
    next: &mut u64,
) -> Phase {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    let mut frames = Vec::new();
    let mut busy = Duration::ZERO;
    let mut tick = start;
    loop {
        tick += FRAME;
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        }
        let now = Instant::now().min(end);
        // Everything that "arrived" since the last frame, at the target rate.
        let due = (rate as f64 * (now - start).as_secs_f64()) as u64;
        let stamp = Utc::now();
        let batch: Vec<HubEvent> = (sent..due).map(|i| event(*next + i, stamp)).collect();
        let took = frame(app, term, theme, batch);
        sent = due;
        busy += took;
        frames.push(took);
        if now >= end {
            break;
        }
    }
    *next += sent;
    Phase {
        rate,
        events: sent,
        wall: start.elapsed(),
        busy,
        frames,
        rss: rss_mib(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run when benching.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: f64 = std::env::var("TELEMETRY_UI_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let rss_start = rss_mib();
    let config = Config::default();
    let capacity = config.telemetry_capacity;
    let mut app = App::new(config);
    let theme = Theme::no_color();
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    update(&mut app, Action::SelectTab(Tab::Telemetry));
    assert_eq!(app.tab, Tab::Telemetry);
    term.draw(|f| render(f, &app, &theme)).expect("draw");
    app.mark_drawn();
    let rss_empty = rss_mib();

    // Fill the ring so every phase measures the steady state (evicting as it appends).
    let mut next = 0u64;
    let stamp = Utc::now();
    let fill: Vec<HubEvent> = (0..capacity as u64).map(|i| event(i, stamp)).collect();
    next += capacity as u64;
    frame(&mut app, &mut term, &theme, fill);
    assert_eq!(app.telemetry.ring.len(), capacity);
    let rss_full = rss_mib();

    let phases: Vec<Phase> = RATES
        .iter()
        .map(|&rate| run_phase(&mut app, &mut term, &theme, rate, secs, &mut next))
        .collect();
    assert_eq!(app.telemetry.ring.len(), capacity);

    println!(
        "telemetry UI: 120x40 TestBackend, Telemetry tab, {DEVICES} devices, ring {capacity}, \
         ~{} ms frames, {secs} s per rate",
        FRAME.as_millis()
    );
    println!(
        "VmRSS: {rss_start:.1} MiB at start, {rss_empty:.1} MiB with the app drawn, \
         {rss_full:.1} MiB with the ring full"
    );
    println!(
        "{:>10} {:>12} {:>7} {:>8} {:>8} {:>8} {:>6} {:>10}",
        "target/s", "processed/s", "frames", "p50 ms", "p99 ms", "max ms", "busy", "RSS MiB"
    );
    for mut p in phases {
        p.frames.sort();
        let at = |q: f64| p.frames[((p.frames.len() - 1) as f64 * q).round() as usize];
        println!(
            "{:>10} {:>12.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>5.0}% {:>10.1}",
            p.rate,
            p.events as f64 / p.wall.as_secs_f64(),
            p.frames.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(p.frames[p.frames.len() - 1]),
            100.0 * p.busy.as_secs_f64() / p.wall.as_secs_f64(),
            p.rss,
        );
    }
}
