//! Per-user directories (XDG base directories, with the usual fallbacks under $HOME).

use std::path::PathBuf;

fn base(var: &str, fallback: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h).join(fallback);
    }
    std::env::temp_dir().join(format!("hubtui-{}", fallback.replace('/', "-")))
}

/// `$XDG_CONFIG_HOME/hubtui` (profiles, themes).
pub fn config_dir() -> PathBuf {
    base("XDG_CONFIG_HOME", ".config").join("hubtui")
}

/// `$XDG_DATA_HOME/hubtui` (local hubs' data).
pub fn data_dir() -> PathBuf {
    base("XDG_DATA_HOME", ".local/share").join("hubtui")
}

/// `$XDG_STATE_HOME/hubtui` (logs).
pub fn state_dir() -> PathBuf {
    base("XDG_STATE_HOME", ".local/state").join("hubtui")
}
