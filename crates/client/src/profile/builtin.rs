//! The profiles that ship with hubtui, compiled in from `assets/profiles`.

/// Names of the built-in profiles, as `--profile` takes them.
/// Files the built-in profiles upload, by name.
pub fn asset(name: &str) -> Option<&'static [u8]> {
    match name {
        "capture.png" => Some(include_bytes!("../../../../assets/capture.png")),
        _ => None,
    }
}

pub const BUILTIN_NAMES: [&str; 4] = ["thermostat", "air-quality", "door-lock", "camera"];

/// The TOML text of a built-in profile.
pub fn text(name: &str) -> Option<&'static str> {
    Some(match name {
        "thermostat" => include_str!("../../../../assets/profiles/thermostat.toml"),
        "air-quality" => include_str!("../../../../assets/profiles/air-quality.toml"),
        "door-lock" => include_str!("../../../../assets/profiles/door-lock.toml"),
        "camera" => include_str!("../../../../assets/profiles/camera.toml"),
        _ => return None,
    })
}
