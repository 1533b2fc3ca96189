//! `lock status`.

use keygate::lock::Locks;
use serde::Serialize;

use crate::args::LockCommand;
use crate::connect::connect;
use crate::error::CliResult;
use crate::output;

/// Runs a `lock` command.
pub async fn run(command: LockCommand, json: bool) -> CliResult {
    let LockCommand::Status { name } = command;
    let target = connect().await?;
    let status = Locks::new(target.store).status(&name).await?;
    let lease_left_ms = status
        .lease_left
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if json {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct StatusOut<'a> {
            name: &'a str,
            held: bool,
            lease_left_ms: Option<u64>,
            fence: Option<u64>,
        }
        return output::json(&StatusOut {
            name: &name,
            held: status.held,
            lease_left_ms,
            fence: status.fence,
        });
    }
    let held = match lease_left_ms {
        Some(ms) if status.held => format!("held, lease left {}", output::duration_ms(ms)),
        _ if status.held => "held".to_owned(),
        _ => "free".to_owned(),
    };
    let fence = status
        .fence
        .map_or_else(|| "none stored".to_owned(), |f| f.to_string());
    println!("lock {name}: {held}; last fence {fence}");
    Ok(())
}
