//! `hubtui hub`: the local IoT Hub as a server process.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use hub::{self, HubOptions};

use super::simulated::{SimulateSpec, start_simulators, stop_all};

#[derive(Args, Debug)]
pub struct HubArgs {
    /// Directory for the hub's database, certificates and hub.json (created if missing).
    #[arg(long, env = "HUBTUI_HUB_DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT over TLS port (device side); 0 picks a free port.
    #[arg(long, default_value_t = 8883)]
    pub mqtt_port: u16,
    /// AMQP over TLS port (service side); 0 picks a free port.
    #[arg(long, default_value_t = 5671)]
    pub amqp_port: u16,
    /// HTTPS port (service REST API); 0 picks a free port.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Address to listen on. Loopback unless you mean to expose the hub.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Host name clients use; also put in the server certificate.
    #[arg(long, default_value = "localhost")]
    pub host_name: String,
    /// Simulated devices that connect over MQTT: a count of demo devices (thermostat, air
    /// quality, door lock in turn), or NAME=COUNT,… with demo kinds, built-in profiles
    /// (camera) or profile files, e.g. thermostat=3,camera=1.
    #[arg(long, default_value = "0", value_name = "N|NAME=COUNT,…")]
    pub simulate: SimulateSpec,
    /// Event Hubs-compatible partitions for telemetry.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub partitions: u32,
    /// Connections each listener (MQTT, AMQP, HTTPS) holds at once; lowered to the
    /// listener's share of the process's descriptor limit.
    #[arg(long, default_value_t = hub::ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections one client address holds at once on one listener (raise it to load-test
    /// with many devices from one machine).
    #[arg(long, default_value_t = hub::ConnectionLimits::default().max_connections_per_address)]
    pub max_connections_per_address: usize,
    /// Make every acknowledged write durable across a power loss (each commit waits for
    /// the disk), not only across a crash of the hub; slower.
    #[arg(long)]
    pub fsync: bool,
    /// DPS ID scope devices register under (default: made on first start, then kept).
    #[arg(long, value_parser = parse_id_scope)]
    pub id_scope: Option<String>,
    /// Blob container device file uploads go to (made when first needed).
    #[arg(long, default_value = "fileuploads", value_parser = parse_container)]
    pub upload_container: String,
    /// Hours the SAS URI handed out for a file upload is valid (1 to 24, as in Azure).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=24))]
    pub upload_sas_hours: u64,
    /// Do not notify services (`/messages/serviceBound/filenotifications`) of completed
    /// file uploads.
    #[arg(long)]
    pub no_file_notifications: bool,
    #[command(flatten)]
    pub log: super::logging::LogLevel,
    #[command(subcommand)]
    pub command: Option<HubCommand>,
}

#[derive(Subcommand, Debug)]
pub enum HubCommand {
    /// The hub's Device Provisioning Service enrollments: add, list, show, remove.
    Enrollment(super::enrollment_cmd::EnrollmentArgs),
    /// CA certificates for X.509 CA-signed devices: add, list, remove.
    Ca(super::ca_cmd::CaArgs),
}

fn parse_id_scope(s: &str) -> Result<String, String> {
    iothub::dps::validate_id_scope(s).map(|()| s.to_string())
}

fn parse_container(s: &str) -> Result<String, String> {
    if hub::blob::routes::valid_container_name(s) {
        Ok(s.to_string())
    } else {
        Err("a container name is 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit".into())
    }
}

/// Where the hub keeps its state unless --data-dir says otherwise.
pub fn default_data_dir() -> PathBuf {
    super::xdg::data_dir().join("hub")
}

pub async fn run(args: HubArgs) -> Result<(), String> {
    super::logging::init_stderr_logging(&args.log.level);
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut opts = HubOptions::new(data_dir.clone());
    opts.mqtt_port = args.mqtt_port;
    opts.amqp_port = args.amqp_port;
    opts.https_port = args.https_port;
    opts.bind = args.bind;
    opts.host_name = args.host_name.clone();
    opts.settings.partitions = args.partitions;
    opts.settings.id_scope = args.id_scope.clone();
    opts.settings.fsync = args.fsync;
    opts.settings.file_upload = hub::file_upload::FileUploadSettings {
        container: args.upload_container.clone(),
        sas_ttl: std::time::Duration::from_secs(args.upload_sas_hours * 3600),
        notifications: !args.no_file_notifications,
    };
    opts.limits.max_connections = args.max_connections;
    opts.limits.max_connections_per_address = args.max_connections_per_address;
    let running = hub::start(opts).await.map_err(|e| e.to_string())?;
    let simulators = match start_simulators(&running, &args.simulate.0, args.bind) {
        Ok(s) => s,
        Err(e) => {
            running.shutdown().await;
            return Err(e);
        }
    };
    print_banner(&running, &data_dir);
    if !simulators.is_empty() {
        let names: Vec<String> = simulators
            .iter()
            .map(|s| format!("{} ({})", s.device_id(), s.name()))
            .collect();
        println!("  simulated devices: {}", names.join(", "));
    }
    wait_for_shutdown().await;
    stop_all(simulators).await;
    running.shutdown().await;
    Ok(())
}

fn print_banner(running: &hub::RunningHub, data_dir: &std::path::Path) {
    let info = &running.info;
    println!("hubtui local IoT Hub is running");
    println!("  data dir:      {}", data_dir.display());
    println!("  MQTT (TLS):    {}:{}", info.host_name, info.ports.mqtt);
    println!("  HTTPS:         {}:{}", info.host_name, info.ports.https);
    if let Some(amqp) = info.ports.amqp {
        println!("  AMQP (TLS):    {}:{amqp}", info.host_name);
    }
    println!(
        "  DPS:           id scope {} at {} (MQTT and HTTPS ports above)",
        info.id_scope, info.provisioning_host
    );
    println!(
        "  CA to trust:   {}",
        data_dir.join(&info.ca_certificate).display()
    );
    println!("  service connection string:");
    println!("    {}", info.service_connection_string);
    if let Some(eh) = &info.event_hub_compatible_connection_string {
        println!("  Event Hubs-compatible connection string (telemetry):");
        println!("    {eh}");
    }
    println!("Press Ctrl-C to stop.");
}

pub(super) async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
