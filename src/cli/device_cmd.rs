//! `hubtui device`: a device (or N devices) driven by a profile. Headless, it prints one JSON
//! line per event on stdout. Everything that can be wrong with the arguments is reported in
//! one sentence (exit status 2) before any connection is made.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use client::device::{ClientCertificate, DeviceClient, DeviceClientOptions};
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
    /// Device id, or id prefix with --count, for devices created through --hub (default:
    /// device); with --x509-cert and no --connection-string, the device id (default: the
    /// certificate's subject CN, `DEVICE/MODULE` for a module).
    #[arg(long)]
    pub device_id: Option<String>,
    /// Device certificate (PEM, followed by its chain if any) for X.509 authentication; with
    /// --x509-key, and either a --connection-string with x509=true or --host-name.
    #[arg(long, value_name = "FILE", requires = "x509_key")]
    pub x509_cert: Option<PathBuf>,
    /// Private key (PEM, unencrypted) of --x509-cert.
    #[arg(long, value_name = "FILE", requires = "x509_cert")]
    pub x509_key: Option<PathBuf>,
    /// Host name of the hub an X.509 device connects to without --connection-string.
    #[arg(long)]
    pub host_name: Option<String>,
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
    client_certificate: Option<ClientCertificate>,
}

const DEFAULT_DEVICE_ID: &str = "device";

pub fn run(args: DeviceArgs) -> Result<(), Failure> {
    let plan = check(&args)?;
    super::with_runtime(|rt| rt.block_on(run_headless(args, plan)))
}

fn check(args: &DeviceArgs) -> Result<Plan, Failure> {
    let (devices, client_certificate) = match (&args.x509_cert, &args.x509_key) {
        (Some(cert), Some(key)) => {
            let (cs, identity) = x509_device(args, cert, key)?;
            (Devices::One(cs), Some(identity))
        }
        _ => (sas_devices(args)?, None),
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
        client_certificate,
    })
}

/// The devices of a key or token connection string, or created through --hub.
fn sas_devices(args: &DeviceArgs) -> Result<Devices, Failure> {
    Ok(match (&args.connection_string, &args.hub) {
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
                    "--connection-string says x509=true; give the device's certificate and key with --x509-cert and --x509-key",
                ));
            }
            Devices::One(cs)
        }
        (None, Some(hub)) => {
            let hub = parse_service(hub, "--hub").map_err(Failure::usage)?;
            let prefix = args.device_id.as_deref().unwrap_or(DEFAULT_DEVICE_ID);
            let ids = match args.count {
                1 => vec![prefix.to_string()],
                n => (1..=n).map(|i| format!("{prefix}-{i}")).collect(),
            };
            Devices::Create { hub, ids }
        }
        (None, None) => {
            return Err(Failure::usage(
                "give the device's --connection-string (or IOTHUB_DEVICE_CONNECTION_STRING), or --hub with a hub connection string to create devices",
            ));
        }
    })
}

/// The one X.509 device: its certificate and key, and its identity from an `x509=true`
/// connection string, or from --host-name with --device-id or the certificate's CN.
fn x509_device(
    args: &DeviceArgs,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(DeviceConnectionString, ClientCertificate), Failure> {
    if args.count > 1 {
        return Err(Failure::usage(
            "--count does not apply to --x509-cert: one certificate is one device",
        ));
    }
    let identity =
        ClientCertificate::from_pem_files(cert, key).map_err(|e| Failure::usage(e.to_string()))?;
    let cs = match &args.connection_string {
        Some(cs) => {
            let cs = DeviceConnectionString::parse(cs.trim())
                .map_err(|e| Failure::usage(format!("--connection-string: {e}")))?;
            if cs.auth != DeviceAuth::X509 {
                return Err(Failure::usage(
                    "--connection-string has a key or token; with --x509-cert give one with x509=true, or --host-name instead",
                ));
            }
            cs
        }
        None => {
            let host_name = args.host_name.clone().ok_or_else(|| {
                Failure::usage(
                    "give --host-name (the hub's host name, e.g. localhost) or a --connection-string with x509=true for the X.509 device",
                )
            })?;
            let (device_id, module_id) = match (&args.device_id, identity.common_name()) {
                (Some(id), _) => (id.clone(), None),
                // A module's CA-signed certificate names it `{deviceId}/{moduleId}`.
                (None, Some(cn)) => match cn.split_once('/') {
                    Some((d, m)) => (d.to_string(), Some(m.to_string())),
                    None => (cn, None),
                },
                (None, None) => {
                    return Err(Failure::usage(format!(
                        "the certificate {} has no subject CN to take the device id from; give --device-id",
                        cert.display()
                    )));
                }
            };
            DeviceConnectionString {
                host_name,
                device_id,
                module_id,
                auth: DeviceAuth::X509,
                gateway_host_name: None,
            }
        }
    };
    Ok((cs, identity))
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
        client_certificate: plan.client_certificate,
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
