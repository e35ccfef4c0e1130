//! Start-up time of the explorer on the embedded local hub, in a pseudo-terminal at 80x24:
//!
//! - first frame: `hubtui --bench-first-frame` draws one frame, exits and prints the time from
//!   `main` to that frame (in-process), and the harness times spawn → exit (an upper bound
//!   that includes exec, dynamic loading and tear-down);
//! - demo devices listed: spawn → `sim-3` on the screen (local hub started, simulators
//!   registered, first devices page drawn).
//!
//! `cargo bench --bench first_frame` (BENCH_RUNS=N, default 20). Results go in BENCHMARKS.md.

use std::io::{Read, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");

/// The screen and the raw output, the child, its input, and the pty (kept open).
type Running = (
    Arc<Mutex<(vt100::Parser, String)>>,
    Box<dyn portable_pty::Child + Send + Sync>,
    Box<dyn std::io::Write + Send>,
    Box<dyn portable_pty::MasterPty + Send>,
);

/// Runs hubtui in a fresh 80x24 pty.
fn spawn(home: &Path, args: &[&str]) -> Running {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(BIN);
    cmd.args(args);
    cmd.env_clear();
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env("HOME", home);
    cmd.env("XDG_CONFIG_HOME", home.join("config"));
    cmd.env("XDG_DATA_HOME", home.join("data"));
    cmd.env("XDG_STATE_HOME", home.join("state"));
    let child = pair.slave.spawn_command(cmd).expect("spawn");
    drop(pair.slave);
    let out = Arc::new(Mutex::new((vt100::Parser::new(24, 80, 0), String::new())));
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut o = sink.lock().unwrap();
            o.0.process(&buf[..n]);
            o.1.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let writer = pair.master.take_writer().expect("writer");
    (out, child, writer, pair.master)
}

fn first_frame(home: &Path) -> (f64, f64) {
    let start = Instant::now();
    let (out, mut child, _w, _m) = spawn(home, &["--bench-first-frame"]);
    child.wait().expect("wait");
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_millis(20));
    let raw = out.lock().unwrap().1.clone();
    let inner = raw
        .split("first frame drawn ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no measurement in the output: {raw:?}"));
    (inner, wall)
}

fn devices_listed(home: &Path) -> f64 {
    let start = Instant::now();
    let (out, mut child, mut w, _m) = spawn(home, &[]);
    let deadline = start + Duration::from_secs(30);
    let ms = loop {
        if out.lock().unwrap().0.screen().contents().contains("sim-3") {
            break start.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(Instant::now() < deadline, "sim-3 never showed");
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = w.write_all(b"q");
    let _ = w.flush();
    let _ = child.wait();
    ms
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<40} median {:7.1} ms   p90 {:7.1} ms   max {:7.1} ms   (n={})",
        at(0.5),
        at(0.9),
        v[v.len() - 1],
        v.len()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run when benching.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let home = tempfile::tempdir().expect("temp dir");
    // One run to create the hub's CA and database, as a user's first start does.
    devices_listed(home.path());
    let (mut inner, mut wall, mut listed) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let (i, w) = first_frame(home.path());
        inner.push(i);
        wall.push(w);
        listed.push(devices_listed(home.path()));
    }
    summary("first frame (main -> frame, in-process)", inner);
    summary("first frame (spawn -> exit)", wall);
    summary("demo devices listed (spawn -> sim-3)", listed);
}
