//! The device face's keys as data: the footer, the help overlay and `resolve` read the same
//! tables (the explorer's `Binding`, over `DeviceAction`).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::action::{DeviceAction as A, DeviceTab, Editing};
use crate::app::keymap::{Binding, Chord, code, ctrl, key, matches};

const fn bind(keys: &'static [Chord], action: A, desc: &'static str) -> Binding<A> {
    Binding {
        keys,
        action,
        desc,
        footer: false,
        dangerous: false,
    }
}

const fn foot(keys: &'static [Chord], action: A, desc: &'static str) -> Binding<A> {
    Binding {
        keys,
        action,
        desc,
        footer: true,
        dangerous: false,
    }
}

pub static GLOBAL: &[Binding<A>] = &[
    foot(&[key('?')], A::ToggleHelp, "help"),
    foot(&[key('q'), ctrl('c')], A::Quit, "quit"),
    bind(&[code(KeyCode::Tab)], A::NextTab, "next tab"),
    bind(&[code(KeyCode::BackTab)], A::PrevTab, "previous tab"),
    bind(&[key('1')], A::GoTab(DeviceTab::Telemetry), "Telemetry"),
    bind(&[key('2')], A::GoTab(DeviceTab::Inbox), "Inbox"),
    bind(&[key('3')], A::GoTab(DeviceTab::Methods), "Methods"),
    bind(&[key('4')], A::GoTab(DeviceTab::Twin), "Twin"),
];

pub static TELEMETRY: &[Binding<A>] = &[
    foot(&[key('s')], A::SendOnce, "send"),
    foot(&[key('e')], A::EditTemplate, "edit template"),
    foot(&[key('p')], A::EditProperties, "properties"),
    foot(&[key('a')], A::ToggleAutoSend, "auto-send"),
    foot(&[key('+')], A::Faster, "faster"),
    foot(&[key('-')], A::Slower, "slower"),
];

pub static LIST: &[Binding<A>] = &[
    foot(&[key('j'), code(KeyCode::Down)], A::Down, "older"),
    foot(&[key('k'), code(KeyCode::Up)], A::Up, "newer"),
    bind(&[key('g'), code(KeyCode::Home)], A::First, "newest"),
    bind(&[key('G'), code(KeyCode::End)], A::Last, "oldest"),
    bind(
        &[code(KeyCode::PageDown)],
        A::ScrollDown,
        "scroll the detail down",
    ),
    bind(
        &[code(KeyCode::PageUp)],
        A::ScrollUp,
        "scroll the detail up",
    ),
];

pub static METHODS: &[Binding<A>] = &[
    foot(&[key('e'), code(KeyCode::Enter)], A::AnswerMethod, "answer"),
    foot(&[key('a')], A::ToggleAskMethods, "ask me/profile"),
];

pub static TWIN: &[Binding<A>] = &[
    foot(&[key('e')], A::EditReported, "edit reported patch"),
    foot(&[key('s')], A::SendReported, "send patch"),
    foot(&[key('A')], A::ToggleAutoAck, "auto-ack on/off"),
    bind(
        &[key('j'), code(KeyCode::Down), code(KeyCode::PageDown)],
        A::ScrollDown,
        "scroll desired/reported",
    ),
    bind(
        &[key('k'), code(KeyCode::Up), code(KeyCode::PageUp)],
        A::ScrollUp,
        "scroll back",
    ),
];

pub static EDITOR: &[Binding<A>] = &[
    foot(&[ctrl('s')], A::Submit, "send"),
    foot(&[code(KeyCode::Esc)], A::LeaveEditor, "leave (text kept)"),
];

pub static HELP: &[Binding<A>] = &[foot(
    &[code(KeyCode::Esc), key('?'), key('q')],
    A::ToggleHelp,
    "close help",
)];

/// What decides which tables apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyContext {
    pub tab: DeviceTab,
    pub editing: Option<Editing>,
    pub help: bool,
}

fn tab_tables(tab: DeviceTab) -> Vec<&'static [Binding<A>]> {
    match tab {
        DeviceTab::Telemetry => vec![TELEMETRY],
        DeviceTab::Inbox => vec![LIST],
        DeviceTab::Methods => vec![METHODS, LIST],
        DeviceTab::Twin => vec![TWIN],
    }
}

/// Tables searched, first match wins.
pub fn tables(ctx: KeyContext) -> Vec<&'static [Binding<A>]> {
    if ctx.help {
        vec![HELP]
    } else if ctx.editing.is_some() {
        vec![EDITOR]
    } else {
        let mut all = tab_tables(ctx.tab);
        all.push(GLOBAL);
        all
    }
}

/// Sections of the help overlay for a tab.
pub fn help_sections(tab: DeviceTab) -> Vec<(&'static str, &'static [Binding<A>])> {
    let mut sections: Vec<_> = tab_tables(tab)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (if i == 0 { tab.title() } else { "List" }, t))
        .collect();
    sections.extend([("Editors", EDITOR), ("Everywhere", GLOBAL)]);
    sections
}

/// Key → action; pure. In an editor, keys no table binds go to the editor.
pub fn resolve(key: KeyEvent, ctx: KeyContext) -> Option<A> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let found = tables(ctx)
        .into_iter()
        .flat_map(|t| t.iter())
        .find(|b| b.keys.iter().any(|c| matches(c, &key)))
        .map(|b| b.action.clone());
    match ctx.editing {
        Some(_) if !ctx.help => found.or(Some(A::Input(key))),
        _ => found,
    }
}
