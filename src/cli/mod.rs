//! Command-line entry: parses arguments with clap and runs one face of hubtui.

mod activity_line;
mod ca_cmd;
mod device_cmd;
mod device_tui;
mod enrollment_cmd;
mod explorer;
mod hub_cmd;
mod hub_store;
mod hubs_cmd;
mod logging;
pub mod profiles;
mod simulated;
pub mod xdg;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// When `main` began: the first-frame measurement counts from here.
static STARTED: OnceLock<Instant> = OnceLock::new();

#[derive(Parser, Debug)]
#[command(
    name = "hubtui",
    version,
    about = "A terminal explorer for Azure IoT Hub that carries its own local IoT Hub",
    long_about = "A terminal explorer for Azure IoT Hub that carries its own local IoT Hub.\n\n\
                  With no subcommand, hubtui explores the hub named by --hub (a connection \
                  string or a saved profile) or IOTHUB_CONNECTION_STRING; with neither, it \
                  starts a local hub with simulated devices and explores that.",
    // The explorer's flags belong to the explorer: `hubtui --theme x hub` is an error, not a
    // flag silently ignored. Environment variables do not count as given flags here.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Hub to explore: a service connection string, or the name of a profile saved with
    /// `hubtui hubs add`.
    #[arg(long, env = "IOTHUB_CONNECTION_STRING", hide_env_values = true)]
    pub hub: Option<String>,
    #[command(flatten)]
    pub log: logging::LogLevel,
    #[command(flatten)]
    pub explorer: explorer::ExplorerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the local IoT Hub (MQTT, AMQP, HTTPS; official Azure SDKs connect unmodified).
    Hub(hub_cmd::HubArgs),
    /// Saved hub profiles: add, list, remove.
    Hubs(hubs_cmd::HubsArgs),
    /// Be a device: a terminal UI for one device (compose telemetry, see C2D, methods and the
    /// twin), or --headless devices run from a profile with one JSON line per event.
    Device(device_cmd::DeviceArgs),
}

/// Why a command failed: one sentence and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// Bad input (arguments, connection strings, config): exit status 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// Something failed while running: exit status 1.
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

pub fn main() -> ExitCode {
    STARTED.get_or_init(Instant::now);
    let matches = Cli::command().get_matches();
    let hub_from_env = matches.value_source("hub") == Some(ValueSource::EnvVariable);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Some(Command::Hubs(args)) => hubs_cmd::run(args),
        Some(Command::Device(args)) => device_cmd::run(args),
        Some(Command::Hub(hub_cmd::HubArgs {
            command: Some(hub_cmd::HubCommand::Enrollment(e)),
            ..
        })) => enrollment_cmd::run(e, hub_cmd::default_data_dir()),
        Some(Command::Hub(hub_cmd::HubArgs {
            command: Some(hub_cmd::HubCommand::Ca(c)),
            ..
        })) => ca_cmd::run(c, hub_cmd::default_data_dir()),
        Some(Command::Hub(args)) => {
            with_runtime(|rt| rt.block_on(hub_cmd::run(args)).map_err(Failure::runtime))
        }
        None => explorer::run(cli.hub, hub_from_env, &cli.log.level, cli.explorer),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hubtui: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn with_runtime(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    f(&runtime)
}
