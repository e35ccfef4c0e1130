//! MQTT 3.1.1 over TLS: the device side of the hub.

use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::state::HubState;

pub async fn serve(
    _listener: TcpListener,
    _tls: Arc<ServerConfig>,
    _state: Arc<HubState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = shutdown.changed().await;
}
