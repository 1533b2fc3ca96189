//! The session near cache: axum's `GET /me` with the cache against the same
//! route without it and the hand-written one-`GETEX` route, with one hot session and with
//! 10,000 sessions round-robin; and the memory one cached session takes.

use std::time::Duration;

use keygate::session::NearCache;
use keygate::{RedisStore, SessionConfig, SessionManager, Token};

use crate::Result;
use crate::args::Options;
use crate::http_bench::{self, FrameworkResult, NEAR_CACHE_SESSIONS};
use crate::redis_admin::{self, Admin};
use crate::servers::NEAR_CACHE_TOUCH_EVERY;
use crate::user::{NODE_CUSTOM, NodeUser};

/// What one cached session costs.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub sessions: usize,
    /// The cache's own estimate (`NearCacheStats::bytes`) per session.
    pub estimated: f64,
    /// The process's resident memory grown per session while filling the cache.
    pub resident: Option<f64>,
}

pub struct NearCacheReport {
    pub generator: String,
    pub rounds: usize,
    pub duration: Duration,
    pub hot: FrameworkResult,
    pub spread: FrameworkResult,
    pub memory: Memory,
}

pub fn run(options: &Options) -> Result<NearCacheReport> {
    let generator = crate::loadgen::Generator::choose(options.loadgen)?;
    let (hot, spread) = http_bench::run_near_cache(options)?;
    let memory = memory(NEAR_CACHE_SESSIONS)?;
    Ok(NearCacheReport {
        generator: generator.describe(options.connections),
        rounds: options.rounds,
        duration: options.duration,
        hot,
        spread,
        memory,
    })
}

/// Resident set size of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Fills a cache with `count` sessions of the Node seed's user and reads what it holds.
pub fn memory(count: usize) -> Result<Memory> {
    let redis = redis_admin::start()?;
    let mut admin = Admin::connect(&redis.url())?;
    let tokens = admin.plant_node_sessions(count, &[NODE_CUSTOM])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = RedisStore::connect(&redis.url()).await?;
        let config = SessionConfig::node_seed(NODE_CUSTOM).with_near_cache(
            NearCache::new(count * 2, NEAR_CACHE_TOUCH_EVERY).with_max_bytes(usize::MAX / 2),
        );
        let sessions = SessionManager::<NodeUser>::new(store, config)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !sessions.near_cache_stats().is_some_and(|s| s.tracking) {
            if tokio::time::Instant::now() > deadline {
                return Err("the near cache did not start tracking".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let tokens: Vec<Token> = tokens
            .iter()
            .map(|t| Token::parse(t))
            .collect::<std::result::Result<_, _>>()?;
        let before = resident_bytes();
        for token in &tokens {
            sessions
                .load(token)
                .await?
                .ok_or("a planted session did not load")?;
        }
        let after = resident_bytes();
        let stats = sessions.near_cache_stats().ok_or("no near cache")?;
        if stats.entries != tokens.len() {
            return Err(format!("cached {} of {} sessions", stats.entries, tokens.len()).into());
        }
        Ok(Memory {
            sessions: stats.entries,
            estimated: stats.bytes as f64 / stats.entries as f64,
            resident: before
                .zip(after)
                .map(|(b, a)| a.saturating_sub(b) as f64 / stats.entries as f64),
        })
    })
}
