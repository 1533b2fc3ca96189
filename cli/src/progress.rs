//! The progress bar of long scans, on stderr: hidden with `--json` and when stderr is not a
//! terminal, so scripts and logs get none of it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over the nodes being scanned, with the keys found so far.
pub fn scan_bar(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] node {pos}/{len}: {msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
