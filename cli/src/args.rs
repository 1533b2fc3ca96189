//! The command line.

use clap::{Args, Parser, Subcommand};
use keygate::{SessionId, UserId};

use crate::layout::Layout;

/// Operate keygate on its Redis: sessions, flash sales and their dead letters, locks.
///
/// Reads the connection settings the example applications read: REDIS_URL (one server),
/// REDIS_CLUSTER_URLS (a cluster's seed nodes, comma-separated), REDIS_SENTINEL_MASTER with
/// REDIS_SENTINEL_URLS (and REDIS_SENTINEL_MASTER_USER/_PASSWORD), and for TLS
/// REDIS_CA_CERT, REDIS_CLIENT_CERT, REDIS_CLIENT_KEY.
///
/// Exit status: 0 done, 1 the operation failed or was refused (one line on stderr), 2 wrong
/// usage.
#[derive(Debug, Parser)]
#[command(name = "keygate-cli", version)]
pub struct Cli {
    /// Print JSON (one document on stdout) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask before destructive commands (needed without a terminal).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Login sessions: list or end a user's sessions, count sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Flash sales: status, dead letters.
    #[command(subcommand, name = "flash-sale")]
    FlashSale(FlashSaleCommand),
    /// Distributed locks.
    #[command(subcommand)]
    Lock(LockCommand),
    /// The session event log: logins and ends of sessions, as recorded.
    #[command(subcommand)]
    Events(EventsCommand),
}

/// `events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The last events (of one user, or of all users), oldest first; with --follow, then
    /// every new one as it is recorded, until interrupted. Sessions appear by public id,
    /// never by token. With --json: one JSON object per event, one per line.
    Tail {
        /// Only this user's events (as the application indexes the user).
        #[arg(long, value_parser = parse_user)]
        user: Option<UserId>,
        /// Keep printing new events as they are recorded.
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the last events to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// The event log's key prefix (default: keygate's, keygate:events:).
        #[arg(long)]
        prefix: Option<String>,
        /// The per-user index prefix (default: keygate's, keygate:user-sessions:), which
        /// names a user's stream.
        #[arg(long)]
        index_prefix: Option<String>,
    },
}

/// Where sessions live.
#[derive(Debug, Args)]
pub struct SessionOptions {
    /// The session layout: java (login:token:<token>, a hash), node:<custom>
    /// (<custom>_<token>, JSON), json:<prefix> or hash:<prefix>.
    #[arg(long, default_value = "java")]
    pub layout: Layout,
    /// The per-user index prefix (default: keygate's, keygate:user-sessions:).
    #[arg(long)]
    pub index_prefix: Option<String>,
    /// The application's idle TTL in seconds, from which the last use is computed.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_ttl: u64,
}

/// `sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// A user's live sessions: public id, created, last seen, device. Never tokens.
    List {
        /// The user id (as the application indexes it).
        #[arg(value_parser = parse_user)]
        user: UserId,
        #[command(flatten)]
        options: SessionOptions,
    },
    /// End one session of a user (by its public id), or all of them (destructive). Their
    /// watchers (`ended()`) see the reason `ended-by-operator`; where the session event log
    /// is in use (keygate:events:all holds events), each end is recorded there as
    /// operator-ended.
    End {
        /// The user id.
        #[arg(value_parser = parse_user)]
        user: UserId,
        /// The session's public id (from `sessions list`).
        #[arg(value_parser = parse_session_id, required_unless_present = "all", conflicts_with = "all")]
        session: Option<SessionId>,
        /// End every session of the user.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        options: SessionOptions,
    },
    /// Count session keys per layout and per-user indexes, with SCAN (every master of a
    /// cluster).
    Count {
        /// The layouts to count (repeatable; default java).
        #[arg(long = "layout")]
        layouts: Vec<Layout>,
        /// The per-user index prefix (default: keygate's, keygate:user-sessions:).
        #[arg(long)]
        index_prefix: Option<String>,
    },
}

/// Which sale.
#[derive(Debug, Args)]
pub struct SaleOptions {
    /// The application's shard count (`FlashSale::with_shards`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub shards: u64,
}

/// `flash-sale ...`
#[derive(Debug, Subcommand)]
pub enum FlashSaleCommand {
    /// Stock, buyers, stream lengths, consumer groups (lag, pending per consumer), dead
    /// letters.
    Status {
        /// The voucher id.
        voucher: u64,
        #[command(flatten)]
        options: SaleOptions,
    },
    /// Orders the consumers gave up on.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
}

/// `flash-sale dead-letters ...`
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// The voucher's dead letters, oldest first.
    List {
        /// The voucher id.
        voucher: u64,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        options: SaleOptions,
    },
    /// Put a dead letter's order back on the orders stream, exactly once (destructive).
    Replay {
        /// The voucher id.
        voucher: u64,
        /// The dead letter's id (from `dead-letters list`).
        id: String,
        #[command(flatten)]
        options: SaleOptions,
    },
    /// Delete a dead letter for good (destructive).
    Drop {
        /// The voucher id.
        voucher: u64,
        /// The dead letter's id (from `dead-letters list`).
        id: String,
        #[command(flatten)]
        options: SaleOptions,
    },
}

/// `lock ...`
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Whether the lock is held (never by whom), the lease left and the last fence.
    Status {
        /// The lock's name, as passed to `Locks::acquire`.
        name: String,
    },
}

fn parse_user(text: &str) -> Result<UserId, String> {
    UserId::new(text)
        .map_err(|_| "1 to 128 printable ASCII characters, without space or *?[]{}\\".to_owned())
}

fn parse_session_id(text: &str) -> Result<SessionId, String> {
    SessionId::parse(text).ok_or_else(|| "a session id is 32 lowercase hex digits".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
