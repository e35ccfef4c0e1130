//! Re-reading what is on screen, and nothing else: the device list while the Devices tab
//! shows it, the twin (or an asset's rollout) while the Twin tab shows it. Each is read at most once per interval
//! (counting reads the app asked for), nothing is read while the hub throttles, and when
//! nothing is shown and the hub was unreachable, a one-item query probes it so the status bar
//! recovers without a key press.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::events::OnScreen;

use super::{Ctx, Target, assets, files, registry, twin};

/// Intervals for a hub on this machine: reads cost nothing but a little CPU.
const LOCAL: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(5));
/// Intervals for a hub in Azure, whose twin reads and queries count against a throttle
/// shared with production traffic.
const REMOTE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(60));

/// (twin, device list) re-read intervals for a hub at `host`.
pub(super) fn intervals_for(host: &str) -> (Duration, Duration) {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback { LOCAL } else { REMOTE }
}

/// One read the poller makes.
enum Read {
    Twin(Target),
    Rollout(String),
    Devices,
    /// The blobs of the container the Files tab shows.
    Files(String),
    Probe,
}

#[derive(Default)]
struct State {
    screen: OnScreen,
    /// The twin the app has, and its etag (a re-read is reported only when it moved).
    twin_seen: Option<(Target, Option<String>)>,
    /// A shown twin that no longer exists is not read again until the screen changes.
    twin_gone: Option<Target>,
    next_twin: Option<Instant>,
    next_rollout: Option<Instant>,
    next_devices: Option<Instant>,
    next_files: Option<Instant>,
    next_probe: Option<Instant>,
}

fn due(next: Option<Instant>, now: Instant) -> bool {
    next.is_none_or(|t| t <= now)
}

pub(super) struct Poller {
    state: Mutex<State>,
    wake: Notify,
    twin_every: Duration,
    devices_every: Duration,
}

impl Poller {
    pub(super) fn new(twin_every: Duration, devices_every: Duration) -> Poller {
        Poller {
            state: Mutex::default(),
            wake: Notify::new(),
            twin_every,
            devices_every,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app shows this now.
    pub(super) fn show(&self, screen: OnScreen) {
        let mut s = self.lock();
        if s.twin_gone != shown_twin(&screen) {
            s.twin_gone = None;
        }
        // Another container (or the tab coming back) is read at once.
        if s.screen.files != screen.files {
            s.next_files = None;
        }
        s.screen = screen;
        drop(s);
        self.wake.notify_one();
    }

    /// The app asked for a twin: the re-read of it waits an interval.
    pub(super) fn twin_asked(&self) {
        self.lock().next_twin = Some(Instant::now() + self.twin_every);
    }

    /// The app got this version of the twin (a read it asked for, a PATCH): the next
    /// re-read is an interval from now.
    pub(super) fn twin_read(&self, target: &Target, etag: Option<String>) {
        let mut s = self.lock();
        s.twin_seen = Some((target.clone(), etag));
        s.twin_gone = None;
        s.next_twin = Some(Instant::now() + self.twin_every);
    }

    /// A re-read of `target` found this etag: true when the app should get the twin.
    pub(super) fn twin_moved(&self, target: &Target, etag: Option<String>) -> bool {
        let mut s = self.lock();
        if shown_twin(&s.screen).as_ref() != Some(target) {
            return false;
        }
        let fresh = match &s.twin_seen {
            Some((seen_target, seen)) => seen_target != target || *seen != etag,
            None => true,
        };
        if fresh {
            s.twin_seen = Some((target.clone(), etag));
        }
        fresh
    }

    pub(super) fn twin_gone(&self, target: &Target) {
        self.lock().twin_gone = Some(target.clone());
    }

    /// The app asked for the first page of the device list, or got it: the re-read of it
    /// waits an interval.
    pub(super) fn devices_read(&self) {
        self.lock().next_devices = Some(Instant::now() + self.devices_every);
    }

    /// The app asked for the blob listing, or got it: the re-read waits an interval (the
    /// device list's, as modest).
    pub(super) fn files_read(&self) {
        self.lock().next_files = Some(Instant::now() + self.devices_every);
    }

    /// The reads due now; each is scheduled an interval ahead.
    fn take_due(&self, connected: bool) -> Vec<Read> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut reads = Vec::new();
        if let Some(target) = shown_twin(&s.screen)
            && s.twin_gone.as_ref() != Some(&target)
            && due(s.next_twin, now)
        {
            s.next_twin = Some(now + self.twin_every);
            reads.push(Read::Twin(target));
        }
        if let Some(name) = s.screen.rollout.clone()
            && due(s.next_rollout, now)
        {
            s.next_rollout = Some(now + self.twin_every);
            reads.push(Read::Rollout(name));
        }
        if s.screen.device_list && due(s.next_devices, now) {
            s.next_devices = Some(now + self.devices_every);
            reads.push(Read::Devices);
        }
        if let Some(container) = s.screen.files.clone()
            && due(s.next_files, now)
        {
            s.next_files = Some(now + self.devices_every);
            reads.push(Read::Files(container));
        }
        let nothing_shown =
            !s.screen.device_list && s.screen.twin.is_none() && s.screen.rollout.is_none();
        if nothing_shown && !connected && due(s.next_probe, now) {
            s.next_probe = Some(now + self.twin_every);
            reads.push(Read::Probe);
        }
        reads
    }

    /// Time until the next read could be due; None when nothing is shown and the link is up.
    fn until_next(&self, connected: bool) -> Option<Duration> {
        let now = Instant::now();
        let s = self.lock();
        let twin = shown_twin(&s.screen)
            .filter(|target| s.twin_gone.as_ref() != Some(target))
            .map(|_| s.next_twin);
        let devices = s.screen.device_list.then_some(s.next_devices);
        let rollout = s.screen.rollout.is_some().then_some(s.next_rollout);
        let files = s.screen.files.is_some().then_some(s.next_files);
        let nothing_shown =
            !s.screen.device_list && s.screen.twin.is_none() && s.screen.rollout.is_none();
        let probe = (nothing_shown && !connected).then_some(s.next_probe);
        [twin, devices, rollout, files, probe]
            .into_iter()
            .flatten()
            .map(|next| next.map_or(Duration::ZERO, |t| t.saturating_duration_since(now)))
            .min()
    }
}

fn shown_twin(screen: &OnScreen) -> Option<Target> {
    Some(Target {
        device_id: screen.twin.clone()?,
        module_id: screen.module.clone(),
    })
}

/// The poller's task: sleeps until a read is due, the screen changes, or the hub's pause ends.
pub(super) async fn run(ctx: Arc<Ctx>) {
    loop {
        let wait = match ctx.throttle.remaining() {
            Some(pause) => Some(pause),
            None => {
                for read in ctx.poller.take_due(ctx.link.is_connected()) {
                    match read {
                        Read::Twin(target) => twin::reread(&ctx, target).await,
                        Read::Rollout(name) => assets::read_rollout(&ctx, &name).await,
                        Read::Devices => registry::reread(&ctx).await,
                        Read::Files(container) => files::list(&ctx, container).await,
                        Read::Probe => {
                            let probe = ctx
                                .config
                                .service
                                .query("SELECT * FROM devices", None, Some(1))
                                .await;
                            ctx.link.record(&ctx, &probe).await;
                        }
                    }
                }
                ctx.throttle
                    .remaining()
                    .or_else(|| ctx.poller.until_next(ctx.link.is_connected()))
            }
        };
        let woken = ctx.poller.wake.notified();
        match wait {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hub_on_this_machine_is_polled_fast() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", "::1"] {
            assert_eq!(intervals_for(host), LOCAL, "{host}");
        }
        for host in [
            "myhub.azure-devices.net",
            "10.0.0.4",
            "localhost.example.com",
        ] {
            assert_eq!(intervals_for(host), REMOTE, "{host}");
        }
        assert!(REMOTE.0 >= Duration::from_secs(30) && REMOTE.1 <= Duration::from_secs(60));
    }

    fn poller() -> Poller {
        Poller::new(Duration::from_secs(3), Duration::from_secs(5))
    }

    fn names(reads: &[Read]) -> Vec<String> {
        reads
            .iter()
            .map(|r| match r {
                Read::Twin(target) => format!("twin {target}"),
                Read::Devices => "devices".into(),
                Read::Files(c) => format!("files {c}"),
                Read::Probe => "probe".into(),
                Read::Rollout(name) => format!("rollout {name}"),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn reads_only_what_is_shown_once_per_interval() {
        let p = poller();
        assert!(p.take_due(true).is_empty(), "nothing shown, link up");
        assert_eq!(p.until_next(true), None);
        assert_eq!(names(&p.take_due(false)), ["probe"]);
        p.show(OnScreen {
            device_list: true,
            twin: None,
            ..OnScreen::default()
        });
        p.devices_read();
        assert!(p.take_due(true).is_empty(), "the list was just read");
        assert_eq!(p.until_next(true), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(names(&p.take_due(true)), ["devices"]);
        p.show(OnScreen {
            device_list: false,
            twin: Some("d".into()),
            ..OnScreen::default()
        });
        assert_eq!(names(&p.take_due(true)), ["twin d"]);
        assert!(p.take_due(true).is_empty());
        p.twin_gone(&Target {
            device_id: "d".into(),
            module_id: None,
        });
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(
            p.take_due(true).is_empty(),
            "a deleted device is not read again"
        );
        p.show(OnScreen {
            device_list: false,
            twin: Some("e".into()),
            ..OnScreen::default()
        });
        assert_eq!(names(&p.take_due(true)), ["twin e"]);
        p.show(OnScreen {
            rollout: Some("fw".into()),
            ..OnScreen::default()
        });
        assert_eq!(
            names(&p.take_due(false)),
            ["rollout fw"],
            "no probe beside it"
        );
        assert!(p.take_due(true).is_empty());
        assert_eq!(p.until_next(true), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(names(&p.take_due(true)), ["rollout fw"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_blob_listing_is_read_only_while_the_files_tab_shows_it() {
        let p = poller();
        let files = |c: Option<&str>| OnScreen {
            files: c.map(str::to_string),
            ..OnScreen::default()
        };
        p.show(files(Some("uploads")));
        assert_eq!(names(&p.take_due(true)), ["files uploads"]);
        assert!(p.take_due(true).is_empty());
        assert_eq!(p.until_next(true), Some(Duration::from_secs(5)));
        p.files_read();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(
            p.take_due(true).is_empty(),
            "an asked-for read resets the interval"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(names(&p.take_due(true)), ["files uploads"]);
        p.show(files(None));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(p.take_due(true).is_empty(), "not on screen");
        assert_eq!(p.until_next(true), None);
    }

    #[test]
    fn a_reread_is_reported_only_when_the_etag_moved() {
        let p = poller();
        let target = |id: &str| Target {
            device_id: id.into(),
            module_id: None,
        };
        p.show(OnScreen {
            device_list: false,
            twin: Some("d".into()),
            ..OnScreen::default()
        });
        p.twin_read(&target("d"), Some("1".into()));
        assert!(!p.twin_moved(&target("d"), Some("1".into())));
        assert!(p.twin_moved(&target("d"), Some("2".into())));
        assert!(!p.twin_moved(&target("d"), Some("2".into())));
        assert!(
            !p.twin_moved(&target("other"), Some("3".into())),
            "not on screen"
        );
    }
}
