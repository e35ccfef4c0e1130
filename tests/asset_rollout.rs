//! "Attach asset" from the explorer against the real local hub: one upload to the hub's
//! blob store, a desired reference on each of 50 simulated devices (one PATCH each, with
//! If-Match), and the rollout view showing all 50 received; a reference whose SAS has
//! already expired is reported failed, with the reason, in the same view.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::app::{Action, App, Config, Tab, update};
use hubtui::client::backend::{self, BackendConfig};
use hubtui::client::events::{AssetAttach, AssetTarget, HubCommand, HubEvent};
use hubtui::client::rollout::Progress;
use hubtui::client::service::ServiceClient;
use hubtui::client::storage::BlobAccount;
use hubtui::client::tls::Trust;
use hubtui::iothub::connection_string::ServiceConnectionString;
use hubtui::iothub::storage::connection_string::StorageConnectionString;
use hubtui::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

const DEVICES: usize = 50;

/// Devices of the rollout on screen at `p` (0 without a rollout).
fn count(app: &App, p: Progress) -> usize {
    app.assets.rollout.as_ref().map_or(0, |r| {
        r.counts
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0, |(_, n)| *n)
    })
}

struct Explorer {
    app: App,
    commands: mpsc::UnboundedSender<HubCommand>,
    events: mpsc::Receiver<HubEvent>,
}

impl Explorer {
    fn start(hub: &TestHub) -> Explorer {
        let cs = hub
            .hub
            .state
            .service_connection_string("iothubowner")
            .unwrap();
        let cs = ServiceConnectionString::parse(&cs).unwrap();
        let trust = Trust::CaPem(hub.hub.ca_pem.clone());
        let client = ServiceClient::new(&cs, &trust, Some(hub.hub.info.ports.https)).unwrap();
        let mut config = BackendConfig::new(client, trust.clone());
        config.twin_poll = Duration::from_millis(300);
        let storage = hub
            .hub
            .info
            .storage
            .as_ref()
            .expect("the hub has a blob store");
        let account = StorageConnectionString::parse(&storage.connection_string).unwrap();
        config.storage = Some(BlobAccount::new(account, &trust).unwrap());
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::channel(1024);
        backend::spawn(config, commands_rx, events_tx);
        let mut app = App::new(Config::default());
        update(&mut app, Action::SelectTab(Tab::Twin));
        Explorer {
            app,
            commands,
            events,
        }
    }

    /// Applies an action as the terminal loop does: commands go to the backend.
    fn act(&mut self, action: Action) {
        let (_, cmds) = update(&mut self.app, action);
        for c in cmds {
            // The app asks for twins of no device here; only what matters is sent.
            if matches!(c, HubCommand::AttachAsset(_) | HubCommand::Visible(_)) {
                self.commands.send(c).unwrap();
            }
        }
    }

    /// Sends the attach and waits until its rollout is on screen.
    async fn attach(&mut self, request: AssetAttach) {
        let name = request.name.clone();
        self.commands
            .send(HubCommand::AttachAsset(request))
            .unwrap();
        self.until("the attach", Duration::from_secs(60), |app| {
            app.assets.rollout.as_ref().is_some_and(|r| r.name == name)
        })
        .await;
    }

    /// Feeds backend events to the app until `done` holds, within `within`.
    async fn until(&mut self, what: &str, within: Duration, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.app) {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no {what} within {within:?}: {:?}", self.app.assets.rollout)
                })
                .expect("backend alive");
            if let HubEvent::AssetAttachFailed { reason, .. } = &event {
                panic!("{reason}");
            }
            self.act(Action::Hub(event));
        }
    }

    fn screen(&self) -> String {
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal
            .draw(|f| render(f, &self.app, &Theme::default_dark()))
            .unwrap();
        let buf = terminal.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_attached_to_50_simulated_devices_is_received_by_all() {
    let hub = TestHub::start().await;
    let mut sims = Vec::new();
    for i in 0..DEVICES {
        let id = format!("fleet-{i:02}");
        let key = hub.create_device(&id).await;
        sims.push(hub.simulate(&id, &key, i as u64));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firmware-2.1.bin");
    std::fs::write(&file, vec![0x5a; 64 * 1024]).unwrap();
    let mut explorer = Explorer::start(&hub);

    explorer
        .attach(AssetAttach {
            path: file.clone(),
            name: "firmware".into(),
            lifetime: Duration::from_secs(3600),
            target: AssetTarget::Matching("STARTSWITH(deviceId, 'fleet-')".into()),
        })
        .await;
    let r = explorer.app.assets.rollout.as_ref().unwrap();
    assert_eq!(r.rows.len(), DEVICES, "{:?}", r.failed);
    assert!(r.failed.is_empty());
    assert_eq!(
        explorer.app.on_screen().rollout.as_deref(),
        Some("firmware")
    );
    // The app told the backend the rollout is on screen: it is read until all report.
    explorer
        .until("50 received", Duration::from_secs(90), |app| {
            count(app, Progress::Received) == DEVICES
        })
        .await;
    let screen = explorer.screen();
    assert!(
        screen.contains("50 devices: 50 received  0 failed"),
        "{screen}"
    );
    assert!(
        screen.contains("fleet-00") && screen.contains("received"),
        "{screen}"
    );
    // One upload for all of them.
    let blobs = hub
        .hub
        .state
        .store
        .blobs_from("assets", "firmware/", "", 100)
        .unwrap();
    assert_eq!(blobs.len(), 1);

    // A reference whose SAS has already expired: the device says failed, and why.
    explorer
        .attach(AssetAttach {
            path: file,
            name: "stale".into(),
            lifetime: Duration::ZERO,
            target: AssetTarget::Device("fleet-07".into()),
        })
        .await;
    explorer
        .until("failed", Duration::from_secs(60), |app| {
            count(app, Progress::Failed) == 1
        })
        .await;
    let screen = explorer.screen();
    assert!(
        screen.contains("1 device: 0 received  1 failed"),
        "{screen}"
    );
    assert!(screen.contains("fleet-07"), "{screen}");
    let row = &explorer.app.assets.rollout.as_ref().unwrap().rows[0];
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|r| r.contains("403") || r.contains("expired")),
        "{row:?}"
    );
    for s in sims {
        s.stop().await;
    }
}

/// Attaching while another service keeps patching the same twins: every PATCH is made
/// against the etag just read, a 412 reads again, and in the end every twin holds both
/// the reference and the other writer's latest value (nothing overwritten, nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_races_with_another_writer_and_loses_nothing() {
    let hub = TestHub::start().await;
    let ids: Vec<String> = (0..10).map(|i| format!("busy-{i}")).collect();
    for id in &ids {
        hub.create_device(id).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cal.json");
    std::fs::write(&file, br#"{"gain": 1.5}"#).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (hub_base, token, http, ids, stop) = (
            hub.base(),
            hub.token("iothubowner"),
            common::https_client(&hub.hub.ca_pem),
            ids.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                for id in &ids {
                    let r = http
                        .patch(format!("{hub_base}/twins/{id}?api-version=2021-04-12"))
                        .header("authorization", &token)
                        .header("if-match", "*")
                        .json(&serde_json::json!({"properties": {"desired": {"round": round}}}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                }
            }
            round
        })
    };
    let mut explorer = Explorer::start(&hub);
    // A directory is no file to upload: one sentence, nothing patched.
    let request = AssetAttach {
        path: dir.path().to_path_buf(),
        name: "nothing".into(),
        lifetime: Duration::from_secs(3600),
        target: AssetTarget::Device("busy-0".into()),
    };
    explorer
        .commands
        .send(HubCommand::AttachAsset(request))
        .unwrap();
    let refusal = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(HubEvent::AssetAttachFailed { reason, .. }) = explorer.events.recv().await {
                break reason;
            }
        }
    })
    .await
    .unwrap();
    assert!(refusal.contains("is not a file"), "{refusal}");
    for attempt in 0..5 {
        explorer
            .attach(AssetAttach {
                path: file.clone(),
                name: format!("cal{attempt}"),
                lifetime: Duration::from_secs(3600),
                target: AssetTarget::Matching("STARTSWITH(deviceId, 'busy-')".into()),
            })
            .await;
        let r = explorer.app.assets.rollout.as_ref().unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.rows.len(), ids.len());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.await.unwrap();
    assert!(rounds > 1, "the writer ran alongside");
    for id in &ids {
        let twin = hub
            .call(reqwest::Method::GET, &format!("/twins/{id}"), None)
            .await
            .body;
        let desired = &twin["properties"]["desired"];
        assert_eq!(desired["round"], rounds, "{id}: {desired}");
        for attempt in 0..5 {
            assert!(desired["nothing"].is_null(), "{id}: {desired}");
            assert!(
                desired[format!("cal{attempt}")]["uri"].is_string(),
                "{id}: {desired}"
            );
        }
    }
}
