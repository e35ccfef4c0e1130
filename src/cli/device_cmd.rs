//! `hubtui device`: a device (or N devices) driven by a profile. Headless, it prints one JSON
//! line per event on stdout. Everything that can be wrong with the arguments is reported in
//! one sentence (exit status 2) before any connection is made.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use client::device::{DeviceClient, DeviceClientOptions};
use client::profile::{Profile, ProfileDevice};
use client::runner::{self, Activity};
use client::service::{NewDeviceAuth, ServiceClient};
use client::tls::Trust;
use iothub::connection_string::{DeviceAuth, DeviceConnectionString, ServiceConnectionString};
use iothub::error::ErrorCode;

use super::Failure;
use super::activity_line::activity_line;
use super::profiles::parse_service;

#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Device connection string (HostName=…;DeviceId=…;SharedAccessKey=…).
    #[arg(long, env = "IOTHUB_DEVICE_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// Hub connection string (service side): creates the devices for --count instead of
    /// --connection-string; existing devices are reused.
    #[arg(long, env = "IOTHUB_CONNECTION_STRING", hide_env_values = true)]
    pub hub: Option<String>,
    /// Device profile: thermostat, air-quality, door-lock, camera, or the path of a TOML file.
    #[arg(long, default_value = "thermostat")]
    pub profile: String,
    /// Run without a terminal UI, printing one JSON line per event on stdout.
    #[arg(long)]
    pub headless: bool,
    /// Devices to start from the profile (needs --hub); ids are DEVICE_ID-1 … DEVICE_ID-N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Device id, or id prefix with --count, for devices created through --hub.
    #[arg(long, default_value = "device")]
    pub device_id: String,
    /// IoT Plug and Play model id announced at connect (overrides the profile's).
    #[arg(long)]
    pub model_id: Option<String>,
    /// CA certificate (PEM) to trust instead of the system's roots, e.g. a local hub's ca.pem.
    #[arg(long, env = "HUBTUI_CA_CERT")]
    pub ca: Option<PathBuf>,
    /// MQTT over TLS port of the hub.
    #[arg(long, default_value_t = 8883)]
    pub mqtt_port: u16,
    /// HTTPS port of the hub's service API (used with --hub).
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Seed of the telemetry generators: the same seed gives the same telemetry.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Log level on stderr (error, warn, info, debug, trace). Every event is already a
    /// JSON line on stdout, so only problems are logged unless asked.
    #[arg(long = "log-level", env = "HUBTUI_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
}

/// Where the devices come from.
enum Devices {
    One(DeviceConnectionString),
    Create {
        hub: ServiceConnectionString,
        ids: Vec<String>,
    },
}

/// The checked arguments.
struct Plan {
    devices: Devices,
    profile: Profile,
    trust: Trust,
}

pub fn run(args: DeviceArgs) -> Result<(), Failure> {
    let plan = check(&args)?;
    super::with_runtime(|rt| rt.block_on(run_headless(args, plan)))
}

fn check(args: &DeviceArgs) -> Result<Plan, Failure> {
    let devices = match (&args.connection_string, &args.hub) {
        (Some(cs), _) => {
            if args.count > 1 {
                return Err(Failure::usage(
                    "--count needs --hub (a hub connection string) to create the devices; one --connection-string runs one device",
                ));
            }
            let cs = DeviceConnectionString::parse(cs.trim())
                .map_err(|e| Failure::usage(format!("--connection-string: {e}")))?;
            if cs.auth == DeviceAuth::X509 {
                return Err(Failure::usage(
                    "--connection-string uses x509, which hubtui device does not support yet; use one with a SharedAccessKey",
                ));
            }
            Devices::One(cs)
        }
        (None, Some(hub)) => {
            let hub = parse_service(hub, "--hub").map_err(Failure::usage)?;
            let ids = match args.count {
                1 => vec![args.device_id.clone()],
                n => (1..=n).map(|i| format!("{}-{i}", args.device_id)).collect(),
            };
            Devices::Create { hub, ids }
        }
        (None, None) => {
            return Err(Failure::usage(
                "give the device's --connection-string (or IOTHUB_DEVICE_CONNECTION_STRING), or --hub with a hub connection string to create devices",
            ));
        }
    };
    let profile = Profile::load(&args.profile).map_err(|e| Failure::usage(e.to_string()))?;
    let trust = match &args.ca {
        None => Trust::PlatformRoots,
        Some(path) => Trust::CaPem(std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the CA certificate {}: {e}",
                path.display()
            ))
        })?),
    };
    if !args.headless {
        return Err(Failure::usage(
            "the device face has no terminal UI yet; add --headless to run the device from its profile",
        ));
    }
    Ok(Plan {
        devices,
        profile,
        trust,
    })
}

async fn run_headless(args: DeviceArgs, plan: Plan) -> Result<(), Failure> {
    super::logging::init_stderr_logging(&args.log_level);
    let connections = match plan.devices {
        Devices::One(cs) => vec![cs],
        Devices::Create { hub, ids } => {
            create_devices(&hub, &ids, &plan.trust, args.https_port).await?
        }
    };
    let opts = DeviceClientOptions {
        port: args.mqtt_port,
        trust: plan.trust,
        model_id: args.model_id.or_else(|| plan.profile.model_id.clone()),
        ..DeviceClientOptions::default()
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let (stop, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for (i, cs) in connections.iter().enumerate() {
        let (client, events) = DeviceClient::connect(cs, opts.clone())
            .map_err(|e| Failure::usage(format!("device {}: {e}", cs.device_id)))?;
        let device = ProfileDevice::new(plan.profile.clone(), seed.wrapping_add(i as u64));
        tasks.push(tokio::spawn(runner::run(
            client,
            events,
            device,
            stop_rx.clone(),
            Some(tx.clone()),
        )));
    }
    drop(tx);

    let mut ever_connected = std::collections::HashSet::new();
    let shutdown = super::hub_cmd::wait_for_shutdown();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            next = rx.recv() => {
                let Some(a) = next else { break Ok(()) };
                match &a.activity {
                    Activity::Connected => {
                        ever_connected.insert(a.device_id.clone());
                    }
                    // A device that never got in will not: the hub refused it or is unreachable.
                    Activity::Disconnected { reason } if !ever_connected.contains(&a.device_id) => {
                        break Err(Failure::runtime(format!(
                            "device {} cannot connect: {reason}",
                            a.device_id
                        )));
                    }
                    _ => {}
                }
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{}", activity_line(&a)).and_then(|()| out.flush()).is_err() {
                    // Nobody reads stdout any more.
                    break Ok(());
                }
            }
        }
    };
    let _ = stop.send(true);
    futures::future::join_all(tasks).await;
    outcome
}

/// Creates (or reuses) each device through the service API; their connection strings.
async fn create_devices(
    hub: &ServiceConnectionString,
    ids: &[String],
    trust: &Trust,
    https_port: u16,
) -> Result<Vec<DeviceConnectionString>, Failure> {
    let service = ServiceClient::new(hub, trust, Some(https_port))
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mut out = Vec::new();
    for id in ids {
        let identity = match service.create_device(id, &NewDeviceAuth::Sas).await {
            Ok(identity) => identity,
            Err(e) if e.code() == Some(ErrorCode::DeviceAlreadyExists) => service
                .get_device(id)
                .await
                .map_err(|e| Failure::runtime(format!("cannot read the device {id}: {e}")))?,
            Err(e) => {
                return Err(Failure::runtime(format!(
                    "cannot create the device {id}: {e}"
                )));
            }
        };
        let key = identity
            .authentication
            .symmetric_key
            .and_then(|k| k.primary_key)
            .ok_or_else(|| {
                Failure::runtime(format!(
                    "the device {id} has no symmetric key; give its --connection-string instead"
                ))
            })?;
        out.push(DeviceConnectionString {
            host_name: hub.host_name.clone(),
            device_id: id.clone(),
            module_id: None,
            auth: DeviceAuth::SharedAccessKey(key),
            gateway_host_name: None,
        });
    }
    Ok(out)
}
