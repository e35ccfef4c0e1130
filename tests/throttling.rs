//! A hub that throttles: the REST client reads `Retry-After` and the quota error, and the
//! explorer's backend pauses its re-reads instead of hammering the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use hubtui::client::backend::{self, BackendConfig};
use hubtui::client::events::{HubCommand, HubEvent, OnScreen};
use hubtui::client::service::{ServiceClient, ServiceClientError};
use hubtui::client::tls::Trust;
use hubtui::hub::{self, tls::HubCertificates};
use hubtui::iothub::connection_string::ServiceConnectionString;
use hubtui::iothub::error::ErrorCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc;

/// An HTTPS server on loopback that answers every request as a throttling IoT Hub does:
/// `/twins/quota` with the daily quota error (403002), anything else with 429 and
/// `Retry-After: 1`. Counts the requests it got.
struct ThrottlingHub {
    _dir: tempfile::TempDir,
    port: u16,
    ca_pem: String,
    hits: Arc<AtomicUsize>,
}

async fn throttling_hub() -> ThrottlingHub {
    hub::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[b"http/1.1"]).unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let (status, code) = if uri.path() == "/twins/quota" {
                (StatusCode::FORBIDDEN, 403002)
            } else {
                (StatusCode::TOO_MANY_REQUESTS, 429001)
            };
            let body = serde_json::json!({
                "Message": format!("{{\"errorCode\":{code},\"message\":\"slow down\"}}"),
                "ExceptionMessage": ""
            });
            let mut headers = vec![("content-type", "application/json")];
            if code == 429001 {
                headers.push(("retry-after", "1"));
            }
            let headers: axum::http::HeaderMap = headers
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect();
            (status, headers, body.to_string())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    ThrottlingHub {
        ca_pem: certs.ca_pem().unwrap(),
        _dir: dir,
        port,
        hits,
    }
}

fn client(hub: &ThrottlingHub) -> ServiceClient {
    let cs = ServiceConnectionString::parse(
        "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0",
    )
    .unwrap();
    ServiceClient::new(&cs, &Trust::CaPem(hub.ca_pem.clone()), Some(hub.port)).unwrap()
}

#[tokio::test]
async fn the_client_reads_retry_after_and_the_quota_error() {
    let hub = throttling_hub().await;
    let c = client(&hub);
    match c.get_twin("d", None).await {
        Err(
            e @ ServiceClientError::Throttled {
                retry_after: Some(after),
                ..
            },
        ) => {
            assert_eq!(after, Duration::from_secs(1));
            assert_eq!(e.code(), Some(ErrorCode::ThrottlingException));
        }
        other => panic!("{other:?}"),
    }
    match c.get_twin("quota", None).await {
        Err(
            e @ ServiceClientError::Throttled {
                retry_after: None, ..
            },
        ) => assert_eq!(e.code(), Some(ErrorCode::IotHubQuotaExceeded)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.calls().total(), 2);
}

#[tokio::test]
async fn the_backend_pauses_its_rereads_while_the_hub_throttles() {
    pauses_while_throttled(OnScreen {
        device_list: false,
        twin: Some("d".into()),
        ..OnScreen::default()
    })
    .await;
}

/// The rollout of an attached asset, read while on screen, pauses the same way.
#[tokio::test]
async fn the_rollout_reads_pause_while_the_hub_throttles() {
    pauses_while_throttled(OnScreen {
        rollout: Some("firmware".into()),
        ..OnScreen::default()
    })
    .await;
}

/// With `screen` shown, a throttled read pauses every re-read for the hub's Retry-After.
async fn pauses_while_throttled(screen: OnScreen) {
    let hub = throttling_hub().await;
    let c = client(&hub);
    let mut config = BackendConfig::new(c, Trust::CaPem(hub.ca_pem.clone()));
    // Without a pause, a 1.5 s window would hold 30 reads.
    config.twin_poll = Duration::from_millis(50);
    config.devices_poll = Duration::from_millis(50);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::channel(1024);
    backend::spawn(config, commands_rx, events_tx);
    commands.send(HubCommand::Visible(screen)).unwrap();
    let retry_in = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(HubEvent::Throttled { retry_in }) = events.recv().await {
                return retry_in;
            }
        }
    })
    .await
    .expect("a throttled event");
    let pause = retry_in.expect("a pause");
    assert!(pause >= Duration::from_secs(1), "{pause:?}");
    let before = hub.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = hub.hits.load(Ordering::SeqCst) - before;
    assert!(
        during <= 1,
        "{during} reads during a pause of {pause:?} (one may end inside the window)"
    );
}
