//! Asking before destructive commands: on a terminal, a y/N question; without one, a
//! refusal unless `--yes` was given.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{CliError, CliResult};

/// Whether to go on with `action` (e.g. `end 3 sessions of user 598`): yes with `--yes`,
/// else the answer to a question on the terminal; an error when there is no terminal to ask
/// on or the answer is not yes.
pub fn confirm(action: &str, yes: bool) -> CliResult {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::new(format!(
            "refusing to {action} without confirmation: no terminal to ask on (pass --yes)"
        )));
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{action}? [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::new(format!("not confirmed: did not {action}")))
    }
}
