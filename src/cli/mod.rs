//! Command-line entry: parses arguments with clap and runs one face of hubtui.

mod hub_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "hubtui",
    version,
    about = "A terminal explorer for Azure IoT Hub that carries its own local IoT Hub",
    long_about = "A terminal explorer for Azure IoT Hub that carries its own local IoT Hub.\n\n\
                  With no subcommand, hubtui runs against the hub named by --hub or \
                  IOTHUB_CONNECTION_STRING, or else starts a local hub with simulated devices."
)]
pub struct Cli {
    /// Service connection string of the hub to explore.
    #[arg(
        long,
        env = "IOTHUB_CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    pub hub: Option<String>,
    /// Log level for the log file (error, warn, info, debug, trace).
    #[arg(long, env = "HUBTUI_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the local IoT Hub (MQTT, AMQP, HTTPS; official Azure SDKs connect unmodified).
    Hub(hub_cmd::HubArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hubtui: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Hub(args)) => hub_cmd::run(args, &cli.log_level).await,
            None => hub_cmd::run_embedded(&cli.log_level).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hubtui: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Sends tracing output to stderr (for the hub, a server) at the given level.
fn init_stderr_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The per-user data directory for hubtui's own local hub.
fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("hubtui").join("hub");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/share/hubtui/hub");
    }
    PathBuf::from(".hubtui-hub")
}
