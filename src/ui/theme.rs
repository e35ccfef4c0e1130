//! Themes: styles for semantic roles, read from TOML. Built-ins come from themes/*.toml via
//! `include_str!`; a user file overrides only the roles it sets; `NO_COLOR` maps every role to
//! the terminal's own colours plus modifiers, so meaning survives without colour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

macro_rules! roles {
    ($($name:ident => $key:literal, $plain:expr;)*) => {
        /// What a piece of text means; themes give each role a style.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Role { $($name,)* }

        impl Role {
            pub const ALL: &[Role] = &[$(Role::$name,)*];

            /// The role's key in theme files.
            pub fn key(self) -> &'static str {
                match self { $(Role::$name => $key,)* }
            }

            /// Modifiers used for this role under NO_COLOR.
            fn plain(self) -> Modifier {
                match self { $(Role::$name => $plain,)* }
            }
        }
    };
}

roles! {
    Text => "text", Modifier::empty();
    Muted => "muted", Modifier::DIM;
    Title => "title", Modifier::BOLD;
    Border => "border", Modifier::empty();
    BorderFocus => "border_focus", Modifier::BOLD;
    Selected => "selected", Modifier::REVERSED;
    TabActive => "tab_active", Modifier::REVERSED.union(Modifier::BOLD);
    TabInactive => "tab_inactive", Modifier::empty();
    Key => "key", Modifier::BOLD;
    StatusBar => "status_bar", Modifier::REVERSED;
    Error => "error", Modifier::BOLD;
    Notice => "notice", Modifier::empty();
    Banner => "banner", Modifier::REVERSED;
    Ok => "ok", Modifier::empty();
    Warn => "warn", Modifier::BOLD;
    InSync => "in_sync", Modifier::empty();
    Pending => "pending", Modifier::ITALIC;
    Differs => "differs", Modifier::BOLD.union(Modifier::UNDERLINED);
    ReportedOnly => "reported_only", Modifier::DIM;
    Changed => "changed", Modifier::UNDERLINED;
    Added => "added", Modifier::BOLD;
    Removed => "removed", Modifier::CROSSED_OUT;
    Chart => "chart", Modifier::empty();
}

pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "default-dark",
        include_str!("../../themes/default-dark.toml"),
    ),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Why a theme could not be used; each names the file or theme.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "there is no theme named \"{name}\"; built in: default-dark, light, high-contrast{user}"
    )]
    Unknown { name: String, user: String },
    #[error("the theme file {path} cannot be read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("the theme {name} is not valid TOML: {reason}")]
    Toml { name: String, reason: String },
    #[error("the theme {name} has an unknown role \"{role}\"")]
    UnknownRole { name: String, role: String },
    #[error("the theme {name} gives role {role} the unknown colour \"{colour}\"")]
    BadColour {
        name: String,
        role: String,
        colour: String,
    },
    #[error("the theme {name} gives role {role} the unknown modifier \"{modifier}\"")]
    BadModifier {
        name: String,
        role: String,
        modifier: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, RoleStyle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleStyle {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

/// Styles by role.
#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<&'static str, Style>,
}

fn colour(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        let v = u32::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == 6)?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    Some(
        match s.to_ascii_lowercase().replace(['_', '-', ' '], "").as_str() {
            "reset" | "default" => Color::Reset,
            "black" => Color::Black,
            "red" => Color::Red,
            "green" => Color::Green,
            "yellow" => Color::Yellow,
            "blue" => Color::Blue,
            "magenta" => Color::Magenta,
            "cyan" => Color::Cyan,
            "gray" | "grey" => Color::Gray,
            "darkgray" | "darkgrey" => Color::DarkGray,
            "lightred" => Color::LightRed,
            "lightgreen" => Color::LightGreen,
            "lightyellow" => Color::LightYellow,
            "lightblue" => Color::LightBlue,
            "lightmagenta" => Color::LightMagenta,
            "lightcyan" => Color::LightCyan,
            "white" => Color::White,
            _ => return None,
        },
    )
}

fn modifier(s: &str) -> Option<Modifier> {
    Some(match s.to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "crossed_out" | "strikethrough" => Modifier::CROSSED_OUT,
        _ => return None,
    })
}

impl Theme {
    /// The default theme (16 named colours).
    pub fn default_dark() -> Theme {
        let mut t = Theme {
            name: "default-dark".into(),
            styles: BTreeMap::new(),
        };
        // The built-in file is tested to parse; fall back to plain styles if it ever did not.
        let _ = t.apply("default-dark", BUILT_IN[0].1);
        t
    }

    /// Every role in the terminal's own colours with its NO_COLOR modifiers.
    pub fn no_color() -> Theme {
        Theme {
            name: "no-color".into(),
            styles: Role::ALL
                .iter()
                .map(|r| {
                    (
                        r.key(),
                        Style::new()
                            .fg(Color::Reset)
                            .bg(Color::Reset)
                            .add_modifier(r.plain()),
                    )
                })
                .collect(),
        }
    }

    pub fn style(&self, role: Role) -> Style {
        self.styles.get(role.key()).copied().unwrap_or_default()
    }

    /// Parses `text` and sets the roles it names, leaving the others as they are.
    pub fn apply(&mut self, name: &str, text: &str) -> Result<(), ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Toml {
            name: name.into(),
            reason: e.message().to_string(),
        })?;
        for (role_name, spec) in file.roles {
            let role = Role::ALL
                .iter()
                .find(|r| r.key() == role_name)
                .ok_or_else(|| ThemeError::UnknownRole {
                    name: name.into(),
                    role: role_name.clone(),
                })?;
            let mut style = Style::new();
            for (slot, value) in [(0, &spec.fg), (1, &spec.bg)] {
                let Some(value) = value else { continue };
                let c = colour(value).ok_or_else(|| ThemeError::BadColour {
                    name: name.into(),
                    role: role_name.clone(),
                    colour: value.clone(),
                })?;
                style = if slot == 0 { style.fg(c) } else { style.bg(c) };
            }
            for m in &spec.modifiers {
                style = style.add_modifier(modifier(m).ok_or_else(|| ThemeError::BadModifier {
                    name: name.into(),
                    role: role_name.clone(),
                    modifier: m.clone(),
                })?);
            }
            self.styles.insert(role.key(), style);
        }
        self.name = name.into();
        Ok(())
    }

    /// The theme `name`: a user file `user_dir/NAME.toml` if there is one (over default-dark,
    /// or over the built-in of the same name), else the built-in. `no_color` wins over both.
    pub fn load(name: &str, user_dir: Option<&Path>, no_color: bool) -> Result<Theme, ThemeError> {
        if no_color {
            return Ok(Theme::no_color());
        }
        let mut theme = Theme::default_dark();
        let built_in = BUILT_IN.iter().find(|(n, _)| *n == name);
        if let Some((_, text)) = built_in {
            theme.apply(name, text)?;
        }
        let user_file = user_dir.map(|d| d.join(format!("{name}.toml")));
        match user_file.filter(|p| p.is_file()) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                theme.apply(name, &text)?;
            }
            None if built_in.is_none() => {
                return Err(ThemeError::Unknown {
                    name: name.into(),
                    user: user_dir
                        .map(|d| format!("; user themes in {}", d.display()))
                        .unwrap_or_default(),
                });
            }
            None => {}
        }
        Ok(theme)
    }

    /// `$XDG_CONFIG_HOME/hubtui/themes` or `~/.config/hubtui/themes`.
    pub fn user_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("hubtui").join("themes"))
    }

    /// True when the `NO_COLOR` convention asks for no colour (set and not empty).
    pub fn no_color_requested() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse_and_cover_every_role_with_16_colours() {
        for (name, text) in BUILT_IN {
            let mut t = Theme::default_dark();
            t.apply(name, text).unwrap();
        }
        let d = Theme::default_dark();
        for role in Role::ALL {
            let s = d.style(*role);
            assert!(d.styles.contains_key(role.key()), "{role:?} missing");
            for c in [s.fg, s.bg].into_iter().flatten() {
                assert!(!matches!(c, Color::Rgb(..) | Color::Indexed(_)), "{role:?}");
            }
        }
        assert_eq!(
            d.style(Role::Title),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
        );
    }

    #[test]
    fn no_color_is_reset_plus_modifiers() {
        let t = Theme::no_color();
        for role in Role::ALL {
            let s = t.style(*role);
            assert_eq!(s.fg, Some(Color::Reset));
            assert_eq!(s.bg, Some(Color::Reset));
        }
        assert!(
            t.style(Role::Selected)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        assert!(t.style(Role::Differs).add_modifier.contains(Modifier::BOLD));
        let loaded = Theme::load("light", None, true).unwrap();
        assert_eq!(loaded.name, "no-color");
    }

    #[test]
    fn user_file_overrides_only_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "[roles]\ntitle = { fg = \"#ff0000\", modifiers = [\"italic\"] }\n",
        )
        .unwrap();
        let t = Theme::load("mine", Some(dir.path()), false).unwrap();
        assert_eq!(
            t.style(Role::Title),
            Style::new()
                .fg(Color::Rgb(255, 0, 0))
                .add_modifier(Modifier::ITALIC)
        );
        assert_eq!(
            t.style(Role::Error),
            Theme::default_dark().style(Role::Error)
        );
        let light = Theme::load("light", Some(dir.path()), false).unwrap();
        assert_eq!(light.style(Role::Title).fg, Some(Color::Blue));
    }

    #[test]
    fn errors_are_sentences_naming_the_problem() {
        let e = Theme::load("nope", None, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "there is no theme named \"nope\"; built in: default-dark, light, high-contrast"
        );
        let mut t = Theme::default_dark();
        let e = t
            .apply("x", "[roles]\ntitel = { fg = \"red\" }")
            .unwrap_err();
        assert_eq!(e.to_string(), "the theme x has an unknown role \"titel\"");
        let e = t
            .apply("x", "[roles]\ntitle = { fg = \"reddish\" }")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the theme x gives role title the unknown colour \"reddish\""
        );
        let e = t
            .apply("x", "[roles]\ntitle = { modifiers = [\"blink\"] }")
            .unwrap_err();
        assert!(e.to_string().contains("unknown modifier \"blink\""));
        assert!(
            t.apply("x", "roles = 3")
                .unwrap_err()
                .to_string()
                .starts_with("the theme x is not valid TOML")
        );
    }
}
