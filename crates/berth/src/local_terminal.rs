//! The CLI's own terminal during `berth exec -t`: whether stdin is one, its size (sent
//! to the command's terminal at the start and on every `SIGWINCH`), and raw mode for the
//! session (keys, Ctrl-C included, go to the command as typed; no local echo), restored
//! when the [`RawMode`] guard drops.
//!
//! What it does not do: restore the terminal when the CLI is killed by a signal it does
//! not handle (the session handles SIGTERM and SIGHUP by ending normally).

use std::io::IsTerminal;

use berth_model::exec_stream::WindowSize;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The size of the terminal on stdout (or else stdin), when there is one.
pub fn window_size() -> Option<WindowSize> {
    let size = tcgetwinsize(std::io::stdout())
        .or_else(|_| tcgetwinsize(std::io::stdin()))
        .ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some(WindowSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

/// The terminal on stdin in raw mode until this drops.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode.
    pub fn enter() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}
