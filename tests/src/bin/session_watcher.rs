//! A second process that watches sessions end, for the watch tests: it connects to Redis as
//! told, reads commands on stdin and prints what it sees on stdout, one line each.
//!
//! ```text
//! session_watcher (--single URL | --cluster URL,... | --sentinel MASTER URL,...)
//!     [--layout java | --layout json:<prefix>] [--lifetime-ms N] [--near-cache]
//!     [--recheck-ms N]
//! stdin:  watch <id> <token>   start watching (prints `ended <id> <reason> <unix µs>` at the end)
//!         armed                wait until every watch is checked with tracking up; prints
//!                              `armed <watched>` (or `not-armed ...` after 20 s)
//!         stats                prints `stats <watched> <tracking> <pending> <checks>`
//!         rss                  prints `rss <kB>` (VmRSS)
//! ```
#![allow(
    clippy::expect_used,
    reason = "a test program: a failed set-up must stop it"
)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate::session::NearCache;
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, Token};
use tokio::io::{AsyncBufReadExt, BufReader};

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Args {
    options: RedisOptions,
    config: SessionConfig,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut options = None;
    let mut config = SessionConfig::java_seed();
    let mut lifetime = None;
    let mut near_cache = false;
    let mut recheck = None;
    let list = |s: String| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--single" => options = Some(RedisOptions::new(value())),
            "--cluster" => options = Some(RedisOptions::cluster(list(value()))),
            "--sentinel" => {
                let master = value();
                options = Some(RedisOptions::sentinel(master, list(value())));
            }
            "--layout" => {
                let layout = value();
                config = match layout.strip_prefix("json:") {
                    Some(prefix) => SessionConfig::json(prefix),
                    None => SessionConfig::java_seed(),
                };
            }
            "--lifetime-ms" => lifetime = Some(value().parse::<u64>().expect("ms")),
            "--near-cache" => near_cache = true,
            "--recheck-ms" => recheck = Some(value().parse::<u64>().expect("ms")),
            other => panic!("unknown argument {other}"),
        }
    }
    if let Some(ms) = lifetime {
        config = config.with_absolute_lifetime(Duration::from_millis(ms));
    }
    if near_cache {
        config = config.with_near_cache(NearCache::new(100_000, Duration::from_secs(1)));
    }
    if let Some(ms) = recheck {
        config = config.with_watch_recheck(Duration::from_millis(ms));
    }
    Args {
        options: options
            .expect("--single, --cluster or --sentinel")
            .with_command_timeout(Duration::from_secs(2)),
        config,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let store = RedisStore::connect_with(args.options)
        .await
        .expect("connect to Redis");
    let sessions = SessionManager::<serde_json::Value>::new(store, args.config)
        .expect("a valid configuration");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    // Watches started and not ended (each of another session).
    let active = Arc::new(AtomicUsize::new(0));
    say(&out, "started");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["watch", id, token] => {
                let token = Token::parse(token).expect("a token");
                let ended = sessions.ended(&token);
                let (out, id) = (Arc::clone(&out), (*id).to_owned());
                active.fetch_add(1, Ordering::SeqCst);
                let active = Arc::clone(&active);
                tokio::spawn(async move {
                    let reason = ended.await;
                    let at = unix_us();
                    active.fetch_sub(1, Ordering::SeqCst);
                    say(&out, &format!("ended {id} {reason} {at}"));
                });
            }
            ["armed"] => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let stats = sessions.watch_stats();
                    let watching = active.load(Ordering::SeqCst);
                    if stats.tracking && stats.pending == 0 && stats.watched == watching {
                        say(&out, &format!("armed {}", stats.watched));
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        say(&out, &format!("not-armed {stats:?}"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            ["stats"] => {
                let s = sessions.watch_stats();
                say(
                    &out,
                    &format!(
                        "stats {} {} {} {}",
                        s.watched, s.tracking, s.pending, s.checks
                    ),
                );
            }
            ["rss"] => say(&out, &format!("rss {}", rss_kb())),
            ["quit"] => break,
            _ => say(&out, &format!("unknown command {line:?}")),
        }
    }
}
