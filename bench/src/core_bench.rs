//! The session manager alone: `SessionManager::load` (load and touch, one `GETEX`, the
//! JSON decoded into the user type) against the redis crate's raw `GETEX` on a
//! `ConnectionManager`, with 1 and 64 concurrent callers, in alternating rounds.

use std::time::Duration;

use keygate::{RedisStore, SessionConfig, SessionManager, Token, UserId};
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::Result;
use crate::args::Options;
use crate::redis_admin;
use crate::servers::WORKERS;
use crate::stats::{latency_percentiles, median, micros};
use crate::user::{IDLE_SECS, NODE_CUSTOM, NodeUser};

/// Caller counts measured.
pub const CALLERS: [usize; 2] = [1, 64];

/// Longest round of this benchmark (it has many).
const MAX_ROUND: Duration = Duration::from_secs(2);

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// `SessionManager::<NodeUser>::load`.
    Keygate,
    /// `GETEX key PX ttl` returning the bytes.
    RawGetex,
    /// The same, plus `serde_json::from_slice::<NodeUser>`: what keygate does on top of it.
    RawGetexDecode,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Keygate, Impl::RawGetex, Impl::RawGetexDecode];

    pub fn label(self) -> &'static str {
        match self {
            Self::Keygate => "keygate `SessionManager::load`",
            Self::RawGetex => "redis crate `GETEX` (bytes)",
            Self::RawGetexDecode => "redis crate `GETEX` + serde_json decode",
        }
    }
}

/// One round of one implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
}

/// Results per caller count and implementation (rounds in order).
#[derive(Debug)]
pub struct CoreReport {
    pub rounds: usize,
    pub duration: Duration,
    pub rows: Vec<(usize, Impl, Vec<Measured>)>,
}

impl CoreReport {
    pub fn rounds_of(&self, callers: usize, which: Impl) -> Option<&[Measured]> {
        self.rows
            .iter()
            .find(|(c, i, _)| *c == callers && *i == which)
            .map(|(_, _, m)| m.as_slice())
    }

    /// Median over rounds of `a`'s rate over `b`'s in the same round.
    pub fn ratio(&self, callers: usize, a: Impl, b: Impl) -> Option<f64> {
        let (a, b) = (self.rounds_of(callers, a)?, self.rounds_of(callers, b)?);
        let ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(_, b)| b.per_sec > 0.0)
            .map(|(a, b)| a.per_sec / b.per_sec)
            .collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }
}

pub fn run(options: &Options) -> Result<CoreReport> {
    eprintln!("core: SessionManager::load vs raw GETEX ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let duration = options.duration.min(MAX_ROUND);
    let rounds = options.rounds;
    let rows = rt.block_on(async move {
        let store = RedisStore::connect(&url).await?;
        let manager = SessionManager::new(store, SessionConfig::node_seed(NODE_CUSTOM))?;
        let user = NodeUser::seed();
        let token = manager.login(&UserId::from(user.user_id), &user).await?;
        let key = format!("{NODE_CUSTOM}_{}", token.expose());
        let conn = ConnectionManager::new(redis::Client::open(url.as_str())?).await?;
        let mut rows = Vec::new();
        for callers in CALLERS {
            let mut per_impl: Vec<Vec<Measured>> = vec![Vec::new(); Impl::ALL.len()];
            // Warm-up: connections, caches, the first allocations.
            for which in Impl::ALL {
                measure(which, callers, Duration::from_millis(300), &manager, &token, &conn, &key)
                    .await?;
            }
            for round in 0..rounds {
                for k in 0..Impl::ALL.len() {
                    let i = (k + round) % Impl::ALL.len();
                    let which = Impl::ALL[i];
                    let m = measure(which, callers, duration, &manager, &token, &conn, &key).await?;
                    eprintln!(
                        "core:   {callers:>2} callers, round {}: {:<42} {:>9.0}/s  p50 {:>5.0} us  p99 {:>5.0} us",
                        round + 1,
                        which.label(),
                        m.per_sec,
                        m.p50_us,
                        m.p99_us
                    );
                    per_impl[i].push(m);
                }
            }
            for (i, measured) in per_impl.into_iter().enumerate() {
                rows.push((callers, Impl::ALL[i], measured));
            }
        }
        Ok::<_, crate::Error>(rows)
    })?;
    drop(redis);
    Ok(CoreReport {
        rounds,
        duration,
        rows,
    })
}

/// `callers` tasks calling `which` in a loop for `duration`.
async fn measure(
    which: Impl,
    callers: usize,
    duration: Duration,
    manager: &SessionManager<NodeUser>,
    token: &Token,
    conn: &ConnectionManager,
    key: &str,
) -> Result<Measured> {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let manager = manager.clone();
            let token = token.clone();
            let mut conn = conn.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                let mut errors = 0u64;
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        break;
                    }
                    let ok = match which {
                        Impl::Keygate => matches!(manager.load(&token).await, Ok(Some(_))),
                        Impl::RawGetex => raw_getex(&mut conn, &key).await.is_some(),
                        Impl::RawGetexDecode => raw_getex(&mut conn, &key)
                            .await
                            .and_then(|b| serde_json::from_slice::<NodeUser>(&b).ok())
                            .is_some(),
                    };
                    if ok {
                        latencies.push(micros(start.elapsed()));
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let count = latencies.len() as f64;
    let (p50_us, p99_us) = latency_percentiles(&mut latencies);
    Ok(Measured {
        per_sec: count / duration.as_secs_f64(),
        p50_us,
        p99_us,
        errors,
    })
}

async fn raw_getex(conn: &mut ConnectionManager, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GETEX")
        .arg(key)
        .arg("PX")
        .arg(IDLE_SECS * 1000)
        .query_async::<Option<Vec<u8>>>(conn)
        .await
        .ok()
        .flatten()
}
