//! The terminal's lifecycle as one RAII guard: raw mode, alternate screen, bracketed paste and
//! (only when asked) mouse capture on `enter`; all of it undone on `Drop`, by the panic hook
//! before the panic message prints, and around a Ctrl-Z suspend.

use std::io::{self, Stdout, Write};
use std::sync::Once;

use base64::Engine as _;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

/// What the explorer's loop needs from a screen: a ratatui terminal to draw on, a way to
/// suspend the process (Ctrl-Z) and a clipboard (OSC 52). Tests implement it on TestBackend.
pub trait Screen {
    type Backend: ratatui::backend::Backend;
    fn terminal(&mut self) -> &mut Terminal<Self::Backend>;
    /// Gives the terminal back, stops the process until SIGCONT, then takes the terminal
    /// again and clears it so the next draw is a full one.
    fn suspend(&mut self) -> io::Result<()>;
    /// Puts `text` on the system clipboard through the terminal (OSC 52).
    fn set_clipboard(&mut self, text: &str) -> io::Result<()>;
}

/// Terminal modes the guard turns on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TerminalOptions {
    /// Capture the mouse (off by default: it breaks the terminal's own copy and paste).
    pub mouse: bool,
}

/// Owns the terminal while the explorer runs.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    options: TerminalOptions,
    active: bool,
}

static PANIC_HOOK: Once = Once::new();

/// Undoes every mode `enter` may have set. Safe to call twice, or when nothing was set.
pub fn restore_terminal() -> io::Result<()> {
    let mut out = io::stdout();
    // Each step runs even if an earlier one failed; the first error is returned.
    let steps = [
        execute!(out, DisableMouseCapture),
        execute!(out, DisableBracketedPaste),
        execute!(out, LeaveAlternateScreen),
        execute!(out, ratatui::crossterm::cursor::Show),
        disable_raw_mode(),
    ];
    steps.into_iter().collect::<io::Result<Vec<()>>>().map(drop)
}

/// Chains a panic hook that restores the terminal before the previous hook prints the
/// message. Only a panic on the main thread (the terminal loop) ends the explorer; a panic
/// in a backend task is logged to the log file and that task alone ends, so the hook must not
/// give the terminal back (or print over the screen) then.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("main") {
                let _ = restore_terminal();
                previous(info);
            } else {
                tracing::error!(panic = %info, "a background task panicked");
            }
        }));
    });
}

fn enter_modes(options: TerminalOptions) -> io::Result<()> {
    enable_raw_mode()?;
    let mut out = io::stdout();
    execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
    if options.mouse {
        execute!(out, EnableMouseCapture)?;
    }
    Ok(())
}

impl TerminalGuard {
    /// Takes over the terminal. On failure everything set so far is undone.
    pub fn enter(options: TerminalOptions) -> io::Result<TerminalGuard> {
        install_panic_hook();
        if let Err(e) = enter_modes(options) {
            let _ = restore_terminal();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                let _ = restore_terminal();
                return Err(e);
            }
        };
        Ok(TerminalGuard {
            terminal,
            options,
            active: true,
        })
    }

    /// Gives the terminal back now (before printing a final message, say).
    pub fn leave(&mut self) -> io::Result<()> {
        if !self.active {
            return Ok(());
        }
        self.active = false;
        restore_terminal()
    }
}

impl Screen for TerminalGuard {
    type Backend = CrosstermBackend<Stdout>;

    fn terminal(&mut self) -> &mut Terminal<Self::Backend> {
        &mut self.terminal
    }

    fn suspend(&mut self) -> io::Result<()> {
        self.leave()?;
        stop_until_continued();
        enter_modes(self.options)?;
        self.active = true;
        // The shell drew over the screen meanwhile: clear it, and draw a blank frame so that
        // ratatui's idea of the screen is blank too and the next frame is drawn in full.
        // (`Terminal::clear` would read the cursor position, racing the event stream.)
        execute!(io::stdout(), Clear(ClearType::All))?;
        self.terminal
            .draw(|frame| frame.render_widget(ratatui::widgets::Clear, frame.area()))?;
        Ok(())
    }

    fn set_clipboard(&mut self, text: &str) -> io::Result<()> {
        let out = self.terminal.backend_mut();
        write!(out, "{}", osc52(text))?;
        out.flush()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// The OSC 52 sequence that sets the clipboard to `text`.
pub fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Stops the process the way Ctrl-Z does in a cooked terminal (SIGTSTP, default action);
/// returns once the shell continues it (SIGCONT).
#[cfg(unix)]
fn stop_until_continued() {
    // SAFETY: raise only sends a signal to this process; SIGTSTP keeps its default action
    // (the explorer installs no handler for it), which stops the process until SIGCONT.
    unsafe {
        libc::raise(libc::SIGTSTP);
    }
}

#[cfg(not(unix))]
fn stop_until_continued() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_base64_between_the_markers() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}
