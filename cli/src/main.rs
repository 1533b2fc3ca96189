//! # keygate-cli
//!
//! The operator's tool for a Redis that keygate services use: look at and end a user's
//! login sessions, follow the session event log, count sessions, look at a flash sale (stock, buyers, streams, consumer
//! lag and pending orders) and replay or drop its dead letters, look at a lock.
//!
//! It reaches Redis as the example applications do, through the same environment
//! variables, read by [`keygate::RedisEnv`]: `REDIS_URL`, `REDIS_CLUSTER_URLS`,
//! `REDIS_SENTINEL_MASTER` with `REDIS_SENTINEL_URLS`, and `REDIS_CA_CERT`,
//! `REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY` for TLS.
//!
//! ```text
//! keygate-cli sessions list 598                   # id, created, last seen, device
//! keygate-cli sessions end 598 --all --yes
//! keygate-cli sessions count --layout java --layout node:myapp
//! keygate-cli flash-sale status 7 --json
//! keygate-cli flash-sale dead-letters list 7
//! keygate-cli flash-sale dead-letters replay 7 1733130000000-0
//! keygate-cli lock status order:42
//! keygate-cli events tail --user 598 --follow     # logins and ends of sessions, live
//! ```
//!
//! - Every command prints a table, or with `--json` one JSON document on stdout
//!   (`events tail`: one per event, one per line).
//! - Destructive commands (`sessions end`, `dead-letters replay`, `dead-letters drop`) ask
//!   on the terminal, and without a terminal refuse unless `--yes` is given. They also
//!   refuse when the server holds nothing of keygate's for them (no live session of the
//!   user, no sale for the voucher, no such dead letter): a wrong `REDIS_URL` cannot make
//!   them act on another application's data.
//! - Sessions are shown by their public id only, never by token; locks never by owner.
//! - Exit status: 0 done, 1 the operation failed or was refused (one line on stderr), 2
//!   wrong usage.
#![forbid(unsafe_code)]

#[allow(
    rustdoc::invalid_html_tags,
    reason = "clap prints these doc comments as help, where <prefix> is a placeholder"
)]
mod args;
mod confirm;
mod connect;
mod error;
mod events;
mod flash_sale;
mod layout;
mod lock;
mod output;
mod progress;
mod sessions;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliResult;

fn main() -> ExitCode {
    // Usage errors exit with 2 here, help and version with 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("keygate-cli: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate-cli: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Sessions(command) => sessions::run(command, cli.json, cli.yes).await,
        Command::FlashSale(command) => flash_sale::run(command, cli.json, cli.yes).await,
        Command::Lock(command) => lock::run(command, cli.json).await,
        Command::Events(command) => events::run(command, cli.json).await,
    }
}
