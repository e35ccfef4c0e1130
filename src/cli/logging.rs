//! Logging: the explorer logs to a file in the XDG state dir, never to the screen it draws
//! on. Crates that could print request headers at debug level stay at warn, so SAS tokens
//! cannot reach the file; hubtui itself never logs keys, tokens or connection strings.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::Args;
use tracing_subscriber::EnvFilter;

pub const LOG_FILE: &str = "hubtui.log";

/// `--log-level`, declared by each command that logs (the explorer to its file, the hub to
/// stderr), so it is accepted only where it does something.
#[derive(Args, Debug)]
pub struct LogLevel {
    /// Log level (error, warn, info, debug, trace).
    #[arg(long = "log-level", env = "HUBTUI_LOG_LEVEL", default_value = "info")]
    pub level: String,
}

fn filter(level: &str) -> EnvFilter {
    let quiet =
        "hyper=warn,hyper_util=warn,h2=warn,reqwest=warn,rustls=warn,rumqttc=warn,tower=warn";
    EnvFilter::try_new(format!("{level},{quiet}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{quiet}")))
}

/// Sends tracing output to `$XDG_STATE_HOME/hubtui/hubtui.log` (appended, mode 0600).
/// Returns the file's path, or why there is no log (the explorer runs without one).
pub fn init_file_logging(level: &str) -> Result<PathBuf, String> {
    let dir = super::xdg::state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(LOG_FILE);
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// Sends tracing output to stderr (for the hub, a server) at the given level.
pub fn init_stderr_logging(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .try_init();
}
