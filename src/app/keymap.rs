//! Keys as data. Each mode and tab has a table of (keys, action, description, footer,
//! dangerous); `resolve` reads the tables to turn a key into an `Action`, and the help overlay
//! and footer read the same tables, so they cannot disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::{Action, Mode, Tab};

/// One key with modifiers (Shift is implied by the character for letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

pub const fn key(c: char) -> Chord {
    Chord {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

pub const fn code(code: KeyCode) -> Chord {
    Chord {
        code,
        mods: KeyModifiers::NONE,
    }
}

pub const fn ctrl(c: char) -> Chord {
    Chord {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

/// A key binding and what the help overlay says about it. Generic over the action so that
/// the device face's tables share the footer and help overlay with the explorer's.
#[derive(Debug)]
pub struct Binding<A = Action> {
    pub keys: &'static [Chord],
    pub action: A,
    pub desc: &'static str,
    /// Shown in the footer hint line.
    pub footer: bool,
    /// Asks for confirmation or loses data.
    pub dangerous: bool,
}

const fn bind(keys: &'static [Chord], action: Action, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        desc,
        footer: false,
        dangerous: false,
    }
}

const fn foot(keys: &'static [Chord], action: Action, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        desc,
        footer: true,
        dangerous: false,
    }
}

const fn danger(keys: &'static [Chord], action: Action, desc: &'static str) -> Binding {
    Binding {
        keys,
        action,
        desc,
        footer: true,
        dangerous: true,
    }
}

pub static GLOBAL: &[Binding] = &[
    foot(&[key('?')], Action::ToggleHelp, "help"),
    foot(&[key('q'), ctrl('c')], Action::Quit, "quit"),
    bind(&[code(KeyCode::Tab)], Action::NextTab, "next tab"),
    bind(&[code(KeyCode::BackTab)], Action::PrevTab, "previous tab"),
    bind(&[key('1')], Action::SelectTab(Tab::Devices), "Devices tab"),
    bind(
        &[key('2')],
        Action::SelectTab(Tab::Telemetry),
        "Telemetry tab",
    ),
    bind(&[key('3')], Action::SelectTab(Tab::Twin), "Twin tab"),
    bind(&[key('4')], Action::SelectTab(Tab::Methods), "Methods tab"),
    bind(&[key('5')], Action::SelectTab(Tab::C2d), "C2D tab"),
    bind(&[key('6')], Action::SelectTab(Tab::Files), "Files tab"),
    bind(&[code(KeyCode::Esc)], Action::Back, "back / close"),
    bind(&[ctrl('z')], Action::Suspend, "suspend (fg resumes)"),
];

pub static NAVIGATION: &[Binding] = &[
    bind(&[key('j'), code(KeyCode::Down)], Action::Down, "down"),
    bind(&[key('k'), code(KeyCode::Up)], Action::Up, "up"),
    bind(
        &[code(KeyCode::PageDown), ctrl('d')],
        Action::PageDown,
        "page down",
    ),
    bind(
        &[code(KeyCode::PageUp), ctrl('u')],
        Action::PageUp,
        "page up",
    ),
    bind(&[key('g'), code(KeyCode::Home)], Action::Top, "first"),
    bind(
        &[key('G'), code(KeyCode::End)],
        Action::Bottom,
        "last (follow)",
    ),
];

pub static DEVICES: &[Binding] = &[
    foot(&[key('/')], Action::StartFilter, "filter"),
    foot(&[key('n')], Action::NewDevice, "new"),
    foot(&[key('e')], Action::ToggleDeviceStatus, "enable/disable"),
    danger(&[key('d')], Action::DeleteDevice, "delete"),
    foot(
        &[key('c'), code(KeyCode::Enter)],
        Action::ShowConnectionString,
        "connection string",
    ),
    bind(
        &[key('r'), code(KeyCode::F(5))],
        Action::Refresh,
        "reload list",
    ),
];

pub static TELEMETRY: &[Binding] = &[
    foot(&[key('p')], Action::TogglePause, "pause"),
    foot(&[code(KeyCode::Enter)], Action::OpenDetail, "open"),
    foot(&[key('a')], Action::ToggleScope, "all/one device"),
    foot(&[key('/')], Action::StartFilter, "filter"),
    foot(&[key('c')], Action::ToggleChart, "chart"),
    foot(&[key('s')], Action::StartFrom, "start from"),
    bind(&[key('f')], Action::NextChartField, "next chart field"),
    bind(&[key('x')], Action::Export, "export JSON lines"),
    bind(&[key('C')], Action::ConsumerGroup, "consumer group"),
    bind(&[key('X')], Action::ClearTelemetry, "clear buffer"),
];

pub static DETAIL: &[Binding] = &[
    foot(&[key('d')], Action::ToggleDiff, "diff to previous"),
    foot(&[key('y')], Action::Copy, "copy"),
    bind(
        &[key('j'), code(KeyCode::Down)],
        Action::Down,
        "next message",
    ),
    bind(
        &[key('k'), code(KeyCode::Up)],
        Action::Up,
        "previous message",
    ),
    foot(
        &[code(KeyCode::PageDown), ctrl('d')],
        Action::PageDown,
        "scroll",
    ),
    bind(
        &[code(KeyCode::PageUp), ctrl('u')],
        Action::PageUp,
        "scroll body up",
    ),
    bind(&[code(KeyCode::Home)], Action::Top, "body top"),
    bind(&[code(KeyCode::End)], Action::Bottom, "body end"),
];

pub static TWIN: &[Binding] = &[
    foot(&[key('e')], Action::EditDesired, "edit desired"),
    foot(&[key('t')], Action::EditTags, "edit tags"),
    foot(&[key('v')], Action::ToggleTwinView, "sections/diff"),
    foot(&[key('a')], Action::Reapply, "re-apply"),
    foot(&[key('A')], Action::AttachAsset, "attach asset"),
    bind(&[key('R')], Action::ToggleRollout, "asset rollout / twin"),
    bind(
        &[key('l'), code(KeyCode::Right)],
        Action::NextPane,
        "next pane (scrolls)",
    ),
    bind(
        &[key('h'), code(KeyCode::Left)],
        Action::PrevPane,
        "previous pane",
    ),
    bind(
        &[key('r'), code(KeyCode::F(5))],
        Action::Refresh,
        "reload twin",
    ),
    bind(&[key('m')], Action::NextModule, MODULE_DESC),
];

const MODULE_DESC: &str = "next module";

pub static METHODS: &[Binding] = &[
    foot(
        &[key('e'), code(KeyCode::Enter)],
        Action::EditForm,
        "edit call",
    ),
    foot(&[key('x')], Action::Invoke, "invoke"),
    foot(&[key('r')], Action::Rerun, "re-run"),
    foot(&[key('y')], Action::Copy, "copy result"),
    bind(&[key('m')], Action::NextModule, MODULE_DESC),
];

pub static C2D: &[Binding] = &[
    foot(
        &[key('e'), code(KeyCode::Enter)],
        Action::EditForm,
        "edit message",
    ),
    foot(&[key('s')], Action::SendC2d, "send"),
    foot(&[key('a')], Action::CycleAck, "ack mode"),
    danger(&[key('P')], Action::PurgeQueue, "purge queue"),
];

pub static FILES: &[Binding] = &[
    foot(&[code(KeyCode::Enter)], Action::OpenDetail, "preview"),
    foot(&[key('d')], Action::Download, "download"),
    foot(&[key('/')], Action::StartFilter, "filter"),
    foot(&[key('s')], Action::ToggleSort, "newest/by device"),
    foot(&[key('c')], Action::PickContainer, "container"),
    bind(&[key('n')], Action::ToggleLive, "live (real hub's queue)"),
    bind(
        &[key('r'), code(KeyCode::F(5))],
        Action::Refresh,
        "reload list",
    ),
];

/// The preview pane; the list keys (NAVIGATION) scroll it.
pub static FILE_PREVIEW: &[Binding] = &[
    foot(&[key('d')], Action::Download, "download"),
    foot(&[code(KeyCode::Esc)], Action::Back, "close"),
];

/// The container picker; the list keys (NAVIGATION) move in it.
pub static PICKER: &[Binding] = &[
    foot(&[code(KeyCode::Enter)], Action::Submit, "open container"),
    foot(&[code(KeyCode::Esc)], Action::Back, "close"),
];

pub static FORM: &[Binding] = &[
    foot(&[ctrl('s')], Action::Submit, "submit"),
    foot(&[code(KeyCode::Tab)], Action::NextField, "next field"),
    bind(
        &[code(KeyCode::BackTab)],
        Action::PrevField,
        "previous field",
    ),
    foot(&[code(KeyCode::Esc)], Action::Back, "leave (kept)"),
];

pub static EDITOR: &[Binding] = &[
    foot(&[ctrl('s')], Action::Submit, "submit patch"),
    foot(&[code(KeyCode::Esc)], Action::Back, "leave (kept)"),
];

pub static PROMPT: &[Binding] = &[
    foot(&[code(KeyCode::Enter)], Action::Submit, "apply"),
    foot(&[code(KeyCode::Esc)], Action::Back, "cancel"),
];

pub static CONFIRM: &[Binding] = &[
    foot(&[key('y')], Action::ConfirmYes, "yes"),
    foot(&[key('n'), code(KeyCode::Esc)], Action::ConfirmNo, "no"),
];

pub static SECRET: &[Binding] = &[
    foot(&[key('r')], Action::RevealKeys, "reveal / mask keys"),
    foot(&[key('y')], Action::Copy, "copy"),
    foot(&[code(KeyCode::Esc)], Action::Back, "close"),
];

pub static HELP: &[Binding] = &[bind(
    &[code(KeyCode::Esc), key('?'), key('q')],
    Action::ToggleHelp,
    "close help",
)];

/// What key resolution needs to know besides the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyContext {
    pub tab: Tab,
}

/// The tab's own table.
pub fn tab_table(tab: Tab) -> &'static [Binding] {
    match tab {
        Tab::Devices => DEVICES,
        Tab::Telemetry => TELEMETRY,
        Tab::Twin => TWIN,
        Tab::Methods => METHODS,
        Tab::C2d => C2D,
        Tab::Files => FILES,
    }
}

/// Tables searched, first match wins, for a mode.
pub fn tables(mode: Mode, ctx: KeyContext) -> Vec<&'static [Binding]> {
    match mode {
        Mode::Normal => vec![tab_table(ctx.tab), NAVIGATION, GLOBAL],
        Mode::Help => vec![HELP],
        Mode::Confirm => vec![CONFIRM],
        Mode::Prompt => vec![PROMPT],
        Mode::Form => vec![FORM],
        Mode::Editor => vec![EDITOR],
        Mode::Detail => vec![DETAIL, GLOBAL],
        Mode::Secret => vec![SECRET, GLOBAL],
        Mode::Preview => vec![FILE_PREVIEW, NAVIGATION, GLOBAL],
        Mode::Picker => vec![PICKER, NAVIGATION, GLOBAL],
    }
}

/// Sections of the help overlay for a tab: (heading, bindings).
pub fn help_sections(tab: Tab) -> Vec<(&'static str, &'static [Binding])> {
    let mut out = vec![(tab.title(), tab_table(tab))];
    match tab {
        Tab::Devices => out.push(("Connection string", SECRET)),
        Tab::Telemetry => out.push(("Message detail", DETAIL)),
        Tab::Twin => out.push(("Editor", EDITOR)),
        Tab::Methods | Tab::C2d => out.push(("Form", FORM)),
        Tab::Files => {
            out.push(("Preview", FILE_PREVIEW));
            out.push(("Containers", PICKER));
        }
    }
    out.push(("Lists", NAVIGATION));
    out.push(("Everywhere", GLOBAL));
    out
}

/// Shift is part of the character for letters and of BackTab; drop it before comparing.
fn normalized(key: &KeyEvent) -> KeyModifiers {
    match key.code {
        KeyCode::Char(_) | KeyCode::BackTab => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    }
}

pub fn matches(chord: &Chord, key: &KeyEvent) -> bool {
    chord.code == key.code && chord.mods == normalized(key)
}

/// Key → action in a mode; pure. Modes with a text input pass unbound keys through as
/// `Action::Input`. Key releases resolve to nothing.
pub fn resolve(key: KeyEvent, mode: Mode, ctx: KeyContext) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let found = tables(mode, ctx)
        .into_iter()
        .flat_map(|t| t.iter())
        .find(|b| b.keys.iter().any(|c| matches(c, &key)))
        .map(|b| b.action.clone());
    match mode {
        Mode::Prompt | Mode::Form | Mode::Editor => found.or(Some(Action::Input(key))),
        _ => found,
    }
}

/// "Ctrl-s", "↑", "PgDn", "q" for the help overlay and footer.
pub fn chord_label(chord: &Chord) -> String {
    let base = match chord.code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "S-Tab".into(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    };
    if chord.mods.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{base}")
    } else {
        base
    }
}

/// All keys of a binding, "j/↓".
pub fn keys_label<A>(binding: &Binding<A>) -> String {
    binding
        .keys
        .iter()
        .map(chord_label)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        let mods = if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        KeyEvent::new(KeyCode::Char(c), mods)
    }

    fn ctx(tab: Tab) -> KeyContext {
        KeyContext { tab }
    }

    #[test]
    fn normal_mode_table() {
        let cases: &[(Tab, KeyEvent, Option<Action>)] = &[
            (Tab::Devices, ch('q'), Some(Action::Quit)),
            (
                Tab::Devices,
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Some(Action::Quit),
            ),
            (Tab::Devices, ch('?'), Some(Action::ToggleHelp)),
            (Tab::Devices, k(KeyCode::Tab), Some(Action::NextTab)),
            (
                Tab::Devices,
                KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
                Some(Action::PrevTab),
            ),
            (Tab::Twin, ch('1'), Some(Action::SelectTab(Tab::Devices))),
            (Tab::Devices, ch('5'), Some(Action::SelectTab(Tab::C2d))),
            (Tab::Devices, ch('j'), Some(Action::Down)),
            (Tab::Devices, k(KeyCode::Up), Some(Action::Up)),
            (Tab::Devices, ch('G'), Some(Action::Bottom)),
            (Tab::Devices, ch('/'), Some(Action::StartFilter)),
            (Tab::Devices, ch('n'), Some(Action::NewDevice)),
            (Tab::Devices, ch('d'), Some(Action::DeleteDevice)),
            (
                Tab::Devices,
                k(KeyCode::Enter),
                Some(Action::ShowConnectionString),
            ),
            (Tab::Telemetry, ch('p'), Some(Action::TogglePause)),
            (Tab::Telemetry, k(KeyCode::Enter), Some(Action::OpenDetail)),
            (Tab::Telemetry, ch('c'), Some(Action::ToggleChart)),
            (Tab::Telemetry, ch('C'), Some(Action::ConsumerGroup)),
            (Tab::Twin, ch('e'), Some(Action::EditDesired)),
            (Tab::Twin, ch('a'), Some(Action::Reapply)),
            (Tab::Methods, ch('e'), Some(Action::EditForm)),
            // Enter opens (as everywhere); only x and s act.
            (Tab::Methods, k(KeyCode::Enter), Some(Action::EditForm)),
            (Tab::Methods, ch('x'), Some(Action::Invoke)),
            (Tab::C2d, k(KeyCode::Enter), Some(Action::EditForm)),
            (Tab::C2d, ch('s'), Some(Action::SendC2d)),
            (Tab::C2d, ch('P'), Some(Action::PurgeQueue)),
            (Tab::C2d, ch('a'), Some(Action::CycleAck)),
            (Tab::C2d, ch('z'), None),
            (Tab::C2d, ch('6'), Some(Action::SelectTab(Tab::Files))),
            (Tab::Files, k(KeyCode::Enter), Some(Action::OpenDetail)),
            (Tab::Files, ch('d'), Some(Action::Download)),
            (Tab::Files, ch('/'), Some(Action::StartFilter)),
            (Tab::Files, ch('s'), Some(Action::ToggleSort)),
            (Tab::Files, ch('c'), Some(Action::PickContainer)),
            (Tab::Files, ch('n'), Some(Action::ToggleLive)),
            (Tab::Files, ch('r'), Some(Action::Refresh)),
            (Tab::Files, ch('j'), Some(Action::Down)),
            (Tab::Twin, ch('m'), Some(Action::NextModule)),
            (Tab::Methods, ch('m'), Some(Action::NextModule)),
            (Tab::Devices, k(KeyCode::Esc), Some(Action::Back)),
        ];
        for (tab, key, want) in cases {
            assert_eq!(
                &resolve(*key, Mode::Normal, ctx(*tab)),
                want,
                "{tab:?} {key:?}"
            );
        }
    }

    #[test]
    fn input_modes_pass_text_through() {
        let c = ctx(Tab::Twin);
        assert_eq!(
            resolve(ch('q'), Mode::Editor, c),
            Some(Action::Input(ch('q')))
        );
        assert_eq!(
            resolve(k(KeyCode::Tab), Mode::Editor, c),
            Some(Action::Input(k(KeyCode::Tab)))
        );
        assert_eq!(
            resolve(
                KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL),
                Mode::Editor,
                c
            ),
            Some(Action::Submit)
        );
        assert_eq!(
            resolve(k(KeyCode::Esc), Mode::Editor, c),
            Some(Action::Back)
        );
        assert_eq!(
            resolve(k(KeyCode::Tab), Mode::Form, c),
            Some(Action::NextField)
        );
        assert_eq!(
            resolve(k(KeyCode::Enter), Mode::Form, c),
            Some(Action::Input(k(KeyCode::Enter)))
        );
        assert_eq!(
            resolve(k(KeyCode::Enter), Mode::Prompt, c),
            Some(Action::Submit)
        );
        assert_eq!(
            resolve(ch('1'), Mode::Prompt, c),
            Some(Action::Input(ch('1')))
        );
    }

    #[test]
    fn overlays_take_only_their_keys() {
        let c = ctx(Tab::Devices);
        assert_eq!(resolve(ch('y'), Mode::Confirm, c), Some(Action::ConfirmYes));
        assert_eq!(
            resolve(k(KeyCode::Esc), Mode::Confirm, c),
            Some(Action::ConfirmNo)
        );
        assert_eq!(resolve(ch('q'), Mode::Confirm, c), None);
        assert_eq!(resolve(ch('q'), Mode::Help, c), Some(Action::ToggleHelp));
        assert_eq!(resolve(ch('j'), Mode::Help, c), None);
        assert_eq!(
            resolve(ch('d'), Mode::Detail, ctx(Tab::Telemetry)),
            Some(Action::ToggleDiff)
        );
        assert_eq!(
            resolve(ch('2'), Mode::Detail, ctx(Tab::Telemetry)),
            Some(Action::SelectTab(Tab::Telemetry))
        );
        assert_eq!(
            resolve(k(KeyCode::PageDown), Mode::Detail, ctx(Tab::Telemetry)),
            Some(Action::PageDown)
        );
        assert_eq!(
            resolve(k(KeyCode::Home), Mode::Detail, ctx(Tab::Telemetry)),
            Some(Action::Top)
        );
        assert_eq!(
            resolve(ch('l'), Mode::Normal, ctx(Tab::Twin)),
            Some(Action::NextPane)
        );
        assert_eq!(
            resolve(k(KeyCode::Left), Mode::Normal, ctx(Tab::Twin)),
            Some(Action::PrevPane)
        );
        assert_eq!(resolve(ch('r'), Mode::Secret, c), Some(Action::RevealKeys));
        let files = ctx(Tab::Files);
        assert_eq!(
            resolve(ch('d'), Mode::Preview, files),
            Some(Action::Download)
        );
        assert_eq!(
            resolve(k(KeyCode::Esc), Mode::Preview, files),
            Some(Action::Back)
        );
        assert_eq!(resolve(ch('j'), Mode::Preview, files), Some(Action::Down));
        assert_eq!(resolve(ch('s'), Mode::Preview, files), None);
        assert_eq!(
            resolve(k(KeyCode::Enter), Mode::Picker, files),
            Some(Action::Submit)
        );
        assert_eq!(resolve(ch('q'), Mode::Picker, files), Some(Action::Quit));
        let mut release = ch('q');
        release.kind = KeyEventKind::Release;
        assert_eq!(resolve(release, Mode::Normal, c), None);
    }

    #[test]
    fn no_key_is_bound_twice_to_different_actions() {
        for tab in Tab::ALL {
            for mode in [
                Mode::Normal,
                Mode::Detail,
                Mode::Form,
                Mode::Editor,
                Mode::Secret,
                Mode::Preview,
                Mode::Picker,
            ] {
                let all: Vec<(&Chord, &Action)> = tables(mode, ctx(tab))
                    .into_iter()
                    .flat_map(|t| t.iter())
                    .flat_map(|b| b.keys.iter().map(move |k| (k, &b.action)))
                    .collect();
                for (i, (key, action)) in all.iter().enumerate() {
                    for (other, other_action) in &all[i + 1..] {
                        assert!(
                            key != other || action == other_action,
                            "{tab:?} {mode:?} {key:?} bound to {action:?} and {other_action:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn labels() {
        assert_eq!(keys_label(&NAVIGATION[0]), "j/↓");
        assert_eq!(keys_label(&GLOBAL[1]), "q/Ctrl-c");
        assert_eq!(keys_label(&FORM[1]), "Tab");
        assert_eq!(chord_label(&code(KeyCode::F(5))), "F5");
    }
}
