//! `sessions list | end | count`.

use std::time::Duration;

use indicatif::ProgressBar;
use keygate::{SessionConfig, SessionId, SessionInfo, SessionManager, UserId};
use serde::Serialize;

use crate::args::{SessionOptions, SessionsCommand};
use crate::confirm::confirm;
use crate::connect::{Target, connect};
use crate::error::{CliError, CliResult};
use crate::layout::Layout;
use crate::output::{self, Table};
use crate::progress;

/// Runs a `sessions` command.
pub async fn run(command: SessionsCommand, json: bool, yes: bool) -> CliResult {
    match command {
        SessionsCommand::List { user, options } => list(&user, &options, json).await,
        SessionsCommand::End {
            user,
            session,
            all: _,
            options,
        } => end(&user, session.as_ref(), &options, json, yes).await,
        SessionsCommand::Count {
            layouts,
            index_prefix,
        } => count(layouts, index_prefix, json).await,
    }
}

/// A session as printed: never its token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionRow {
    id: String,
    created_at: String,
    created_at_ms: i64,
    last_seen_at: String,
    last_seen_at_ms: i64,
    device: Option<String>,
}

impl From<&SessionInfo> for SessionRow {
    fn from(info: &SessionInfo) -> Self {
        Self {
            id: info.id.to_string(),
            created_at: output::timestamp(info.created_at_ms),
            created_at_ms: info.created_at_ms,
            last_seen_at: output::timestamp(info.last_seen_ms),
            last_seen_at_ms: info.last_seen_ms,
            device: info.device.clone(),
        }
    }
}

fn config(layout: &Layout, index_prefix: Option<&str>) -> SessionConfig {
    let config = layout.config();
    match index_prefix {
        Some(prefix) => config.with_index_prefix(prefix),
        None => config,
    }
}

fn manager(
    target: &Target,
    options: &SessionOptions,
) -> CliResult<SessionManager<serde_json::Value>> {
    let config = config(&options.layout, options.index_prefix.as_deref())
        .with_idle_ttl(Duration::from_secs(options.idle_ttl));
    Ok(SessionManager::new(target.store.clone(), config)?)
}

async fn list(user: &UserId, options: &SessionOptions, json: bool) -> CliResult {
    let target = connect().await?;
    let sessions = manager(&target, options)?.peek_sessions(user).await?;
    let rows: Vec<SessionRow> = sessions.iter().map(SessionRow::from).collect();
    if json {
        #[derive(Serialize)]
        struct Listed<'a> {
            user: &'a str,
            layout: String,
            sessions: &'a [SessionRow],
        }
        return output::json(&Listed {
            user: user.as_str(),
            layout: options.layout.to_string(),
            sessions: &rows,
        });
    }
    let mut table = Table::new(&["ID", "CREATED", "LAST SEEN", "DEVICE"]);
    for row in &rows {
        table.row(vec![
            row.id.clone(),
            row.created_at.clone(),
            row.last_seen_at.clone(),
            row.device.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print()?;
    eprintln!("{} live session(s) of user {user}", rows.len());
    Ok(())
}

async fn end(
    user: &UserId,
    session: Option<&SessionId>,
    options: &SessionOptions,
    json: bool,
    yes: bool,
) -> CliResult {
    let target = connect().await?;
    let sessions = manager(&target, options)?;
    let live = sessions.peek_sessions(user).await?;
    // Nothing of keygate's for this user here: the wrong server, layout or user.
    if live.is_empty() {
        return Err(CliError::new(format!(
            "user {user} has no live session in layout {} on {} (index {}): nothing to end",
            options.layout,
            target.place,
            index_prefix(options)
        )));
    }
    let ended = match session {
        Some(id) => {
            let Some(info) = live.iter().find(|info| &info.id == id) else {
                return Err(CliError::new(format!(
                    "user {user} has no live session {id} (see `sessions list {user}`)"
                )));
            };
            let device = info.device.as_deref().unwrap_or("unknown device");
            confirm(
                &format!(
                    "end session {id} ({device}) of user {user} on {}",
                    target.place
                ),
                yes,
            )?;
            if !sessions.operator_end_session(user, id).await? {
                return Err(CliError::new(format!(
                    "session {id} of user {user} ended meanwhile"
                )));
            }
            1
        }
        None => {
            confirm(
                &format!(
                    "end all {} session(s) of user {user} on {}",
                    live.len(),
                    target.place
                ),
                yes,
            )?;
            sessions.operator_end_all(user).await?
        }
    };
    if json {
        #[derive(Serialize)]
        struct Ended<'a> {
            user: &'a str,
            ended: u64,
        }
        return output::json(&Ended {
            user: user.as_str(),
            ended,
        });
    }
    println!("ended {ended} session(s) of user {user}");
    Ok(())
}

fn index_prefix(options: &SessionOptions) -> String {
    config(&options.layout, options.index_prefix.as_deref())
        .index_prefix()
        .to_owned()
}

/// One line of `sessions count`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Counted {
    layout: String,
    prefix: String,
    redis_type: &'static str,
    keys: u64,
}

async fn count(layouts: Vec<Layout>, index_prefix: Option<String>, json: bool) -> CliResult {
    let layouts = if layouts.is_empty() {
        vec![Layout::default()]
    } else {
        layouts
    };
    let index = config(&Layout::default(), index_prefix.as_deref())
        .index_prefix()
        .to_owned();
    let target = connect().await?;
    let bar = progress::scan_bar(json);
    let mut counted = Vec::with_capacity(layouts.len() + 1);
    let scans = layouts
        .iter()
        .map(|l| (l.to_string(), l.prefix().to_owned(), l.redis_type()))
        .chain([("index".to_owned(), index, "zset")]);
    for (layout, prefix, redis_type) in scans {
        let keys = scan(&target, &bar, &prefix, redis_type).await?;
        counted.push(Counted {
            layout,
            prefix,
            redis_type,
            keys,
        });
    }
    bar.finish_and_clear();
    if json {
        return output::json(&counted);
    }
    let mut table = Table::new(&["LAYOUT", "PREFIX", "TYPE", "KEYS"]);
    for c in &counted {
        table.row(vec![
            c.layout.clone(),
            c.prefix.clone(),
            c.redis_type.to_owned(),
            c.keys.to_string(),
        ]);
    }
    table.print()
}

async fn scan(
    target: &Target,
    bar: &ProgressBar,
    prefix: &str,
    redis_type: &str,
) -> CliResult<u64> {
    bar.set_prefix(format!("{prefix}*"));
    let counted = target
        .store
        .count_keys(prefix, Some(redis_type), |progress| {
            bar.set_length(progress.nodes as u64);
            bar.set_position(progress.node as u64 + 1);
            bar.set_message(format!("{} keys", progress.matched));
        })
        .await?;
    Ok(counted)
}
