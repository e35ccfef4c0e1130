//! `hubtui device`: a device (or N devices) driven by a profile. Headless, it prints one JSON
//! line per event on stdout; otherwise one device runs in a terminal UI. Everything that can be
//! wrong with the arguments is reported in one sentence (exit status 2) before any connection
//! is made or the terminal is touched.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use client::device::{
    ClientCertificate, DeviceClient, DeviceClientOptions, MqttTransport, Proxy, ProxyChoice,
};
use client::dps::cache::CredentialCache;
use client::dps::{self, Attestation, Registration};
use client::profile::{Profile, ProfileDevice};
use client::runner::{self, Activity};
use client::service::{NewDeviceAuth, ServiceClient};
use client::tls::Trust;
use iothub::connection_string::{DeviceAuth, DeviceConnectionString, ServiceConnectionString};
use iothub::error::ErrorCode;

use super::Failure;
use super::activity_line::activity_line;
use super::profiles::parse_service;
use crate::ui::Theme;

#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Device connection string (HostName=…;DeviceId=…;SharedAccessKey=…).
    #[arg(long, env = "IOTHUB_DEVICE_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// Hub connection string (service side): creates the devices for --count instead of
    /// --connection-string; existing devices are reused.
    #[arg(long, env = "IOTHUB_CONNECTION_STRING", hide_env_values = true)]
    pub hub: Option<String>,
    /// Provision through the Device Provisioning Service under this ID scope (with
    /// --registration-id and --device-key or --group-key, or with --x509-cert and --x509-key)
    /// instead of --connection-string.
    #[arg(long, env = "IOTHUB_DPS_SCOPE")]
    pub dps_scope: Option<String>,
    /// The registration id to provision as (DPS; with --x509-cert, default: the
    /// certificate's subject CN).
    #[arg(long, env = "IOTHUB_DPS_REGISTRATION_ID")]
    pub registration_id: Option<String>,
    /// An individual enrollment's symmetric key (DPS).
    #[arg(
        long,
        env = "IOTHUB_DPS_DEVICE_KEY",
        hide_env_values = true,
        conflicts_with = "group_key"
    )]
    pub device_key: Option<String>,
    /// An enrollment group's symmetric key; the device key is derived from it (DPS).
    #[arg(long, env = "IOTHUB_DPS_GROUP_KEY", hide_env_values = true)]
    pub group_key: Option<String>,
    /// Provisioning host: Azure's global endpoint, or a local hub's host.
    #[arg(long, default_value = client::dps::GLOBAL_HOST)]
    pub dps_host: String,
    /// HTTPS port of the provisioning host (a local hub's HTTPS port).
    #[arg(long, default_value_t = 443)]
    pub dps_port: u16,
    /// Device profile: thermostat, air-quality, door-lock, camera, or the path of a TOML file.
    #[arg(long, default_value = "thermostat")]
    pub profile: String,
    /// Run without a terminal UI, printing one JSON line per event on stdout.
    #[arg(long)]
    pub headless: bool,
    /// Terminal UI: put each direct method call to you to answer (status and payload),
    /// instead of the profile; `a` on the Methods tab switches.
    #[arg(long, conflicts_with = "headless")]
    pub ask_methods: bool,
    /// Seconds a method call put to you waits for your answer before the profile answers it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub ask_timeout: u64,
    /// Theme of the terminal UI: default-dark, light, high-contrast, or NAME.toml in the user
    /// themes dir. NO_COLOR is honoured.
    #[arg(long, env = "HUBTUI_THEME", default_value = "default-dark")]
    pub theme: String,
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
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1; or encrypted PKCS#8 with
    /// --x509-key-passphrase) of --x509-cert.
    #[arg(long, value_name = "FILE", requires = "x509_cert")]
    pub x509_key: Option<PathBuf>,
    /// Passphrase of an encrypted --x509-key; prefer the environment variable, which other
    /// users cannot see in the process list.
    #[arg(
        long,
        env = "HUBTUI_X509_KEY_PASSPHRASE",
        hide_env_values = true,
        requires = "x509_key"
    )]
    pub x509_key_passphrase: Option<String>,
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
    /// HTTPS port of the hub: its service API (used with --hub), and MQTT over WebSockets.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Connect with MQTT over WebSockets on the HTTPS port instead of MQTT on --mqtt-port,
    /// for networks that allow only HTTPS out; HTTPS_PROXY (or ALL_PROXY) is honoured, and
    /// NO_PROXY.
    #[arg(long)]
    pub websockets: bool,
    /// Seed of the telemetry generators: the same seed gives the same telemetry.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Log level (error, warn, info, debug, trace): on stderr headless, where every event is
    /// already a JSON line on stdout, so only problems are logged unless asked; in the log
    /// file with the terminal UI.
    #[arg(long = "log-level", env = "HUBTUI_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
}

/// Where the devices come from.
enum Devices {
    One(DeviceConnectionString),
    /// Provisioned through DPS (or taken from the credential cache).
    Provision(Registration),
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
    /// The terminal UI's theme; None headless.
    theme: Option<Theme>,
}

const DEFAULT_DEVICE_ID: &str = "device";

pub fn run(args: DeviceArgs) -> Result<(), Failure> {
    let plan = check(&args)?;
    if plan.theme.is_some() {
        return run_tui(args, plan);
    }
    super::with_runtime(|rt| rt.block_on(run_headless(args, plan)))
}

fn check(args: &DeviceArgs) -> Result<Plan, Failure> {
    let (devices, client_certificate) = match (&args.x509_cert, &args.x509_key) {
        (Some(cert), Some(key)) if args.dps_scope.is_some() => {
            let identity = x509_registration_identity(args, cert, key)?;
            let reg = registration(args, Some(identity.clone()))?;
            (Devices::Provision(reg), Some(identity))
        }
        (Some(cert), Some(key)) => {
            let (cs, identity) = x509_device(args, cert, key)?;
            (Devices::One(cs), Some(identity))
        }
        _ => (sas_devices(args)?, None),
    };
    if args.websockets {
        // A malformed proxy variable is refused now; which hosts it applies to is decided
        // per connection.
        Proxy::from_env("").map_err(|e| Failure::usage(e.to_string()))?;
    }
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
    let theme = if args.headless {
        None
    } else {
        if args.count > 1 {
            return Err(Failure::usage(
                "the terminal UI runs one device; add --headless to run --count devices",
            ));
        }
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "the device terminal UI needs a terminal; add --headless for one JSON line per event",
            ));
        }
        let theme = Theme::load(
            &args.theme,
            Theme::user_dir().as_deref(),
            Theme::no_color_requested(),
        )
        .map_err(|e| Failure::usage(e.to_string()))?;
        Some(theme)
    };
    Ok(Plan {
        devices,
        profile,
        trust,
        client_certificate,
        theme,
    })
}

/// The devices of a key or token connection string, or created through --hub.
fn sas_devices(args: &DeviceArgs) -> Result<Devices, Failure> {
    Ok(match (&args.connection_string, &args.hub) {
        _ if args.dps_scope.is_some() => {
            if args.connection_string.is_some() || args.hub.is_some() || args.count > 1 {
                return Err(Failure::usage(
                    "--dps-scope provisions one device: leave out --connection-string, --hub and --count",
                ));
            }
            Devices::Provision(registration(args, None)?)
        }
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
                "give the device's --connection-string (or IOTHUB_DEVICE_CONNECTION_STRING), --dps-scope with --registration-id and a key to provision it, or --hub with a hub connection string to create devices",
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
    let identity = read_identity(args, cert, key)?;
    if args.dps_scope.is_some() {
        return Err(Failure::usage(
            "--dps-scope provisions the device: leave out --connection-string, --host-name and --device-id",
        ));
    }
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

/// The certificate a device registers with (DPS X.509 attestation): no key flags, no
/// hub identity flags, since DPS assigns the hub and the device id.
fn x509_registration_identity(
    args: &DeviceArgs,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<ClientCertificate, Failure> {
    if args.device_key.is_some() || args.group_key.is_some() {
        return Err(Failure::usage(
            "--x509-cert registers with the certificate; leave out --device-key and --group-key",
        ));
    }
    if args.connection_string.is_some() || args.host_name.is_some() || args.count > 1 {
        return Err(Failure::usage(
            "--dps-scope provisions one device: leave out --connection-string, --host-name and --count",
        ));
    }
    read_identity(args, cert, key)
}

fn read_identity(
    args: &DeviceArgs,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<ClientCertificate, Failure> {
    ClientCertificate::from_pem_files(cert, key, args.x509_key_passphrase.as_deref())
        .map_err(|e| Failure::usage(e.to_string()))
}

/// The DPS registration the arguments describe, checked; with `certificate`, X.509
/// attestation and the registration id defaulting to the certificate's CN.
fn registration(
    args: &DeviceArgs,
    certificate: Option<ClientCertificate>,
) -> Result<Registration, Failure> {
    let scope = args.dps_scope.clone().unwrap_or_default();
    iothub::dps::validate_id_scope(&scope)
        .map_err(|e| Failure::usage(format!("--dps-scope: {e}")))?;
    let registration_id = args.registration_id.clone().or_else(|| {
        certificate
            .as_ref()
            .and_then(ClientCertificate::common_name)
    });
    let Some(registration_id) = registration_id else {
        return Err(Failure::usage(if certificate.is_some() {
            "the certificate has no subject CN to take the registration id from; give --registration-id"
        } else {
            "--dps-scope needs --registration-id, the id the device is enrolled under"
        }));
    };
    iothub::dps::validate_registration_id(&registration_id)
        .map_err(|e| Failure::usage(format!("--registration-id: {e}")))?;
    let attestation = match (&args.device_key, &args.group_key, certificate) {
        (None, None, Some(c)) => Attestation::Certificate(c),
        (Some(k), None, None) => Attestation::DeviceKey(k.clone()),
        (None, Some(g), None) => Attestation::GroupKey(g.clone()),
        _ => {
            return Err(Failure::usage(
                "--dps-scope needs --device-key (individual enrollment), --group-key (enrollment group) or --x509-cert with --x509-key",
            ));
        }
    };
    let reg = Registration {
        host: args.dps_host.clone(),
        port: args.dps_port,
        id_scope: scope,
        registration_id,
        attestation,
        model_id: None,
    };
    reg.device_key().map_err(|e| {
        let flag = match reg.attestation {
            Attestation::DeviceKey(_) => "--device-key",
            Attestation::GroupKey(_) => "--group-key",
            Attestation::Certificate(_) => "--x509-cert",
        };
        Failure::usage(format!("{flag}: {e}"))
    })?;
    Ok(reg)
}

/// The connection string of a provisioned device: from the credential cache, unless
/// `fresh`, or else from a registration (which is then cached).
async fn provision(
    reg: &Registration,
    trust: &Trust,
    fresh: bool,
) -> Result<(DeviceConnectionString, bool), Failure> {
    let key = reg
        .device_key()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let cache = CredentialCache::new(&super::xdg::data_dir().join("dps"), reg);
    let cached = if fresh {
        None
    } else {
        cache.load(reg, key.as_deref())
    };
    let (assignment, from_cache) = match cached {
        Some(a) => {
            tracing::info!(path = %cache.path().display(), "using the cached DPS assignment");
            (a, true)
        }
        None => {
            let a = dps::register(reg, trust)
                .await
                .map_err(|e| Failure::runtime(format!("cannot provision the device: {e}")))?;
            if let Err(e) = cache.store(reg, &a) {
                tracing::warn!(path = %cache.path().display(), error = %e, "cannot cache the DPS assignment");
            }
            (a, false)
        }
    };
    let cs = DeviceConnectionString {
        host_name: assignment.assigned_hub,
        device_id: assignment.device_id,
        module_id: None,
        // No key: the device connects with the certificate it registered with.
        auth: assignment
            .device_key
            .map_or(DeviceAuth::X509, DeviceAuth::SharedAccessKey),
        gateway_host_name: None,
    };
    Ok((cs, from_cache))
}

/// One device in the terminal UI; logs go to the log file, never to the screen.
fn run_tui(args: DeviceArgs, plan: Plan) -> Result<(), Failure> {
    let log = super::logging::init_file_logging(&args.log_level);
    if let Ok(path) = &log {
        tracing::info!(log = %path.display(), "device terminal UI starting");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        let opts = client_options(&args, &plan);
        let model_id = opts.model_id.clone();
        // Everything that can fail on the way to a connection string does so before the
        // terminal is taken, so its sentence prints normally.
        let (cs, reprovision) = match plan.devices {
            Devices::One(cs) => (cs, None),
            Devices::Create { hub, ids } => {
                let mut all = create_devices(&hub, &ids, &plan.trust, args.https_port).await?;
                let cs = all
                    .pop()
                    .ok_or_else(|| Failure::usage("no device to run".to_string()))?;
                (cs, None)
            }
            Devices::Provision(mut reg) => {
                reg.model_id = model_id;
                let (cs, from_cache) = provision(&reg, &plan.trust, false).await?;
                // A cached assignment the hub no longer takes is replaced, once.
                let trust = plan.trust.clone();
                let again: Option<super::device_tui::Reprovision> = from_cache.then(|| {
                    Box::pin(async move { provision(&reg, &trust, true).await.map(|(cs, _)| cs) })
                        as super::device_tui::Reprovision
                });
                (cs, again)
            }
        };
        let theme = plan.theme.unwrap_or_else(Theme::default_dark);
        let seed = args.seed.unwrap_or_else(rand::random);
        let ask = super::device_tui::Ask {
            methods: args.ask_methods,
            timeout: std::time::Duration::from_secs(args.ask_timeout),
        };
        super::device_tui::run(cs, opts, plan.profile, seed, theme, reprovision, ask).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

/// How the device connects: the transport and the hub's port, the trust, the model id
/// (the flag's, else the profile's) and the client certificate, if any.
fn client_options(args: &DeviceArgs, plan: &Plan) -> DeviceClientOptions {
    let (transport, port) = if args.websockets {
        let proxy = ProxyChoice::FromEnvironment;
        (MqttTransport::WebSockets { proxy }, args.https_port)
    } else {
        (MqttTransport::Tls, args.mqtt_port)
    };
    DeviceClientOptions {
        port,
        transport,
        trust: plan.trust.clone(),
        model_id: args
            .model_id
            .clone()
            .or_else(|| plan.profile.model_id.clone()),
        client_certificate: plan.client_certificate.clone(),
        ..DeviceClientOptions::default()
    }
}

async fn run_headless(args: DeviceArgs, plan: Plan) -> Result<(), Failure> {
    super::logging::init_stderr_logging(&args.log_level);
    let opts = client_options(&args, &plan);
    let model_id = opts.model_id.clone();
    let seed = args.seed.unwrap_or_else(rand::random);
    let connections = match plan.devices {
        Devices::One(cs) => vec![cs],
        Devices::Create { hub, ids } => {
            create_devices(&hub, &ids, &plan.trust, args.https_port).await?
        }
        Devices::Provision(mut reg) => {
            reg.model_id = model_id;
            let (cs, from_cache) = provision(&reg, &plan.trust, false).await?;
            return match run_devices(&[cs], &opts, &plan.profile, seed).await {
                // The hub no longer takes what the cache holds (the device was deleted or
                // its keys changed): provision again, once.
                Ended::Refused(_) if from_cache => {
                    tracing::info!("the hub refused the cached DPS assignment; provisioning again");
                    let (cs, _) = provision(&reg, &plan.trust, true).await?;
                    run_devices(&[cs], &opts, &plan.profile, seed).await.into()
                }
                ended => ended.into(),
            };
        }
    };
    run_devices(&connections, &opts, &plan.profile, seed)
        .await
        .into()
}

/// How a run of devices ended.
enum Ended {
    /// Stopped (Ctrl-C, or nobody reads stdout).
    Stopped,
    /// A device that never connected was refused its credentials.
    Refused(Failure),
    Failed(Failure),
}

impl From<Ended> for Result<(), Failure> {
    fn from(e: Ended) -> Self {
        match e {
            Ended::Stopped => Ok(()),
            Ended::Refused(f) | Ended::Failed(f) => Err(f),
        }
    }
}

/// Runs one device per connection string from `profile` until stopped, printing a JSON
/// line per event.
async fn run_devices(
    connections: &[DeviceConnectionString],
    opts: &DeviceClientOptions,
    profile: &Profile,
    seed: u64,
) -> Ended {
    let (stop, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for (i, cs) in connections.iter().enumerate() {
        let (client, events) = match DeviceClient::connect(cs, opts.clone()) {
            Ok(c) => c,
            Err(e) => {
                let _ = stop.send(true);
                return Ended::Failed(Failure::usage(format!("device {}: {e}", cs.device_id)));
            }
        };
        let device = ProfileDevice::new(profile.clone(), seed.wrapping_add(i as u64));
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
            _ = &mut shutdown => break Ended::Stopped,
            next = rx.recv() => {
                let Some(a) = next else { break Ended::Stopped };
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{}", activity_line(&a)).and_then(|()| out.flush()).is_err() {
                    // Nobody reads stdout any more.
                    break Ended::Stopped;
                }
                match &a.activity {
                    Activity::Connected => {
                        ever_connected.insert(a.device_id.clone());
                    }
                    // A device that never got in will not: the hub refused it or is unreachable.
                    Activity::Disconnected { reason, refused } if !ever_connected.contains(&a.device_id) => {
                        let f = Failure::runtime(format!(
                            "device {} cannot connect: {reason}",
                            a.device_id
                        ));
                        break if *refused { Ended::Refused(f) } else { Ended::Failed(f) };
                    }
                    _ => {}
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
