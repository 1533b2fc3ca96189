//! `events tail [--user U] [--follow]`.

use std::io::Write;

use keygate::session::{EventLog, SessionEvent};
use keygate::{SessionConfig, SessionManager, UserId};
use serde::Serialize;

use crate::args::EventsCommand;
use crate::connect::connect;
use crate::error::CliResult;
use crate::output;

/// Runs an `events` command.
pub async fn run(command: EventsCommand, json: bool) -> CliResult {
    match command {
        EventsCommand::Tail {
            user,
            follow,
            lines,
            prefix,
            index_prefix,
        } => {
            let log = match prefix {
                Some(prefix) => EventLog::new().with_prefix(prefix),
                None => EventLog::new(),
            };
            let mut config = SessionConfig::java_seed().with_event_log(log);
            if let Some(prefix) = index_prefix {
                config = config.with_index_prefix(prefix);
            }
            tail(config, user.as_ref(), follow, lines, json).await
        }
    }
}

/// An event as printed: never a token (events hold none).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRow {
    position: String,
    at: String,
    at_ms: i64,
    kind: &'static str,
    user: String,
    session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_session_id: Option<String>,
    device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_ttl_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_ms: Option<u128>,
}

impl From<&SessionEvent> for EventRow {
    fn from(event: &SessionEvent) -> Self {
        Self {
            position: event.position.clone(),
            at: output::timestamp(event.at_ms),
            at_ms: event.at_ms,
            kind: event.kind.as_str(),
            user: event.user.to_string(),
            session_id: event.session.to_string(),
            new_session_id: event.new_session.as_ref().map(ToString::to_string),
            device: event.device.clone(),
            idle_ttl_ms: event.idle_ttl.map(|d| d.as_millis()),
            lifetime_ms: event.lifetime.map(|d| d.as_millis()),
        }
    }
}

/// One line per event: JSON, or columns that line up for ids of fixed width.
fn print(event: &SessionEvent, json: bool) -> CliResult {
    let row = EventRow::from(event);
    if json {
        return output::json(&row);
    }
    let session = match &row.new_session_id {
        Some(new) => format!("{} -> {new}", row.session_id),
        None => row.session_id.clone(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24}  {:<14}  {:<10}  {}  {}",
        row.at,
        row.kind,
        row.user,
        session,
        row.device.as_deref().unwrap_or("-")
    )?;
    out.flush()?;
    Ok(())
}

async fn tail(
    config: SessionConfig,
    user: Option<&UserId>,
    follow: bool,
    lines: usize,
    json: bool,
) -> CliResult {
    let target = connect().await?;
    let sessions = SessionManager::<serde_json::Value>::new(target.store.clone(), config)?;
    let recent = match user {
        Some(user) => sessions.events(user, lines).await?,
        None => sessions.recent_events(lines).await?,
    };
    if !json && (!recent.is_empty() || follow) {
        println!(
            "{:<24}  {:<14}  {:<10}  SESSION  DEVICE",
            "TIME", "KIND", "USER"
        );
    }
    for event in &recent {
        print(event, json)?;
    }
    if !follow {
        if recent.is_empty() && !json {
            eprintln!("no session events on {}", target.place);
        }
        return Ok(());
    }
    // From the last event printed, so nothing recorded in between is missed.
    let mut follower = match recent.last() {
        Some(last) => sessions.follow_events_after(user, &last.position).await?,
        None => sessions.follow_events(user).await?,
    };
    loop {
        let event = follower.next().await?;
        print(&event, json)?;
    }
}
