//! The rate limiter: decisions per second through `RateLimiter::check` against
//! `redis-benchmark` running the same script with `EVALSHA` on the same private Redis, and
//! an axum route behind the limiter layer against the same route without it and the
//! hand-written one-`GETEX` route.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keygate::RedisStore;
use keygate::rate_limit::{Limit, Quota, RateLimiter, Window, script_sources};
use tokio::time::Instant;

use crate::Result;
use crate::args::Options;
use crate::http_bench::{self, FrameworkResult};
use crate::loadgen::Generator;
use crate::redis_admin;
use crate::servers::{Framework, RATE_LIMITED, WORKERS};
use crate::stats::{latency_percentiles, median, micros};

/// Concurrent callers, and `redis-benchmark -c`.
pub const CALLERS: usize = 64;
/// Distinct subjects, drawn uniformly at random for every decision (`redis-benchmark -r`).
pub const SUBJECTS: u64 = 100_000;
/// Longest round of the direct comparison.
const MAX_ROUND: Duration = Duration::from_secs(3);

/// The limit measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Quota::per_minute(30)`: GCRA, burst 30.
    Quota,
    /// `Window::per_minute(30)`: at most 30 in any rolling minute.
    Window,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Quota, Kind::Window];

    pub fn label(self) -> &'static str {
        match self {
            Self::Quota => "GCRA `Quota::per_minute(30)`",
            Self::Window => "sliding window `Window::per_minute(30)`",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Quota => "bench-quota",
            Self::Window => "bench-window",
        }
    }

    fn limit(self) -> Limit {
        match self {
            Self::Quota => Quota::per_minute(30).into(),
            Self::Window => Window::per_minute(30).into(),
        }
    }

    /// The script's two arguments, as `RateLimiter::check` sends them.
    fn args(self) -> (u64, u64) {
        match self.limit() {
            Limit::Window(window) => {
                let p = window.params();
                (p.period_us, p.limit)
            }
            Limit::Quota(quota) => {
                let p = quota.params();
                (p.interval_us, p.tolerance_us)
            }
            _ => (0, 0),
        }
    }

    fn source(self) -> &'static str {
        let (gcra, window) = script_sources();
        match self {
            Self::Quota => gcra,
            Self::Window => window,
        }
    }
}

/// One round of one side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Share of decisions that admitted the request (keygate side only: redis-benchmark
    /// does not look at replies).
    pub admitted: f64,
    pub errors: u64,
}

/// One limit: keygate's and redis-benchmark's rounds, in round order.
#[derive(Debug)]
pub struct DirectRow {
    pub kind: Kind,
    pub keygate: Vec<Measured>,
    pub raw: Vec<Measured>,
}

impl DirectRow {
    /// Median over rounds of keygate's rate over redis-benchmark's in the same round.
    pub fn ratio(&self) -> f64 {
        let ratios: Vec<f64> = self
            .keygate
            .iter()
            .zip(&self.raw)
            .filter(|(_, raw)| raw.per_sec > 0.0)
            .map(|(k, raw)| k.per_sec / raw.per_sec)
            .collect();
        median(&ratios)
    }

    /// Every round's ratio, for the spread.
    pub fn ratios(&self) -> Vec<f64> {
        self.keygate
            .iter()
            .zip(&self.raw)
            .filter(|(_, raw)| raw.per_sec > 0.0)
            .map(|(k, raw)| k.per_sec / raw.per_sec)
            .collect()
    }
}

/// Everything the rate-limit benchmark measured.
#[derive(Debug)]
pub struct RateLimitReport {
    pub rounds: usize,
    /// One round of the direct comparison.
    pub duration: Duration,
    pub direct: Vec<DirectRow>,
    /// One round of the HTTP comparison.
    pub http_duration: Duration,
    pub generator: String,
    pub http: FrameworkResult,
    /// One address flooding over its limit.
    pub flood: Vec<FloodRow>,
}

/// One address over its limit that keeps sending: how many script calls its refusals
/// cost Redis (counted by Redis, `INFO commandstats`).
#[derive(Debug, Clone)]
pub struct FloodRow {
    pub kind: Kind,
    /// Concurrent callers (one sequential caller, or many at once).
    pub callers: usize,
    /// Checks made, and how many of them were refused.
    pub checks: u64,
    pub refused: u64,
    /// `EVALSHA` + `EVAL` calls Redis counted during the flood.
    pub script_calls: u64,
    /// Checks per second.
    pub per_sec: f64,
}

impl FloodRow {
    /// Script calls per refused check (target: at most 0.01).
    pub fn per_refused(&self) -> f64 {
        self.script_calls as f64 / self.refused.max(1) as f64
    }
}

pub fn run(options: &Options) -> Result<RateLimitReport> {
    let duration = options.duration.min(MAX_ROUND);
    let direct = direct(options.rounds, duration)?;
    let flood = flood(duration)?;
    eprintln!("ratelimit: axum route with and without the limiter layer ...");
    let generator = Generator::choose(options.loadgen)?;
    let describe = generator.describe(options.connections);
    let log_dir =
        std::env::temp_dir().join(format!("keygate-bench-ratelimit-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let http = http_bench::run_framework(
        Framework::Axum,
        &RATE_LIMITED,
        options,
        &generator,
        &log_dir,
    );
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(RateLimitReport {
        rounds: options.rounds,
        duration,
        direct,
        http_duration: options.duration,
        generator: describe,
        http: http?,
        flood,
    })
}

/// The address that floods.
pub const FLOODER: &str = "ip:203.0.113.7";

/// For each limit, one caller and [`FLOOD_CALLERS`] callers checking [`FLOODER`] for
/// `duration` once its budget is spent, on a private Redis.
fn flood(duration: Duration) -> Result<Vec<FloodRow>> {
    eprintln!("ratelimit: one address flooding over its limit ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let store = rt.block_on(RedisStore::connect(&url))?;
    let mut admin = redis_admin::Admin::connect(&url)?;
    let mut rows = Vec::new();
    for kind in Kind::ALL {
        for callers in [1, FLOOD_CALLERS] {
            redis::cmd("FLUSHALL")
                .exec(&mut redis::Client::open(url.as_str())?.get_connection()?)?;
            let limiter = Arc::new(RateLimiter::new(store.clone(), kind.name(), kind.limit())?);
            // Spend the budget: the flood is refused from its first check on.
            rt.block_on(async {
                for _ in 0..1_000 {
                    if !limiter.check(FLOODER).await?.allowed {
                        break;
                    }
                }
                Ok::<_, keygate::Error>(())
            })?;
            admin.reset_stats()?;
            let started = Instant::now();
            let (checks, refused) = rt.block_on(flood_round(&limiter, callers, duration));
            let elapsed = started.elapsed().as_secs_f64();
            let script_calls = admin
                .command_calls()?
                .iter()
                .filter(|(name, _)| name == "evalsha" || name == "eval")
                .map(|(_, calls)| calls)
                .sum();
            let row = FloodRow {
                kind,
                callers,
                checks,
                refused,
                script_calls,
                per_sec: checks as f64 / elapsed.max(f64::EPSILON),
            };
            eprintln!(
                "ratelimit:   flood {:<42} {:>2} callers {:>9.0}/s  {} refused, {} script calls ({:.4} per refusal)",
                kind.label(),
                callers,
                row.per_sec,
                row.refused,
                row.script_calls,
                row.per_refused()
            );
            rows.push(row);
        }
    }
    drop(rt);
    drop(redis);
    Ok(rows)
}

/// Concurrent callers of the flood.
pub const FLOOD_CALLERS: usize = 32;

/// `callers` tasks checking [`FLOODER`] for `duration`: (checks, refused).
async fn flood_round(limiter: &Arc<RateLimiter>, callers: usize, duration: Duration) -> (u64, u64) {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let limiter = Arc::clone(limiter);
            tokio::spawn(async move {
                let (mut checks, mut refused) = (0u64, 0u64);
                while Instant::now() < deadline {
                    checks += 1;
                    if matches!(limiter.check(FLOODER).await, Ok(d) if !d.allowed) {
                        refused += 1;
                    }
                }
                (checks, refused)
            })
        })
        .collect();
    let mut total = (0, 0);
    for task in tasks {
        if let Ok((checks, refused)) = task.await {
            total.0 += checks;
            total.1 += refused;
        }
    }
    total
}

/// `RateLimiter::check` against `redis-benchmark ... EVALSHA`, alternating, on one private
/// Redis flushed before every measurement.
fn direct(rounds: usize, duration: Duration) -> Result<Vec<DirectRow>> {
    eprintln!("ratelimit: RateLimiter::check vs redis-benchmark EVALSHA, {CALLERS} callers ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let port = redis.port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let store = rt.block_on(RedisStore::connect(&url))?;
    let client = redis::Client::open(url.as_str())?;
    let mut admin = client.get_connection()?;
    let mut rows = Vec::new();
    let mut shas = Vec::new();
    for kind in Kind::ALL {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(kind.source())
            .query(&mut admin)?;
        let limiter = RateLimiter::new(store.clone(), kind.name(), kind.limit())?;
        shas.push((kind, sha, Arc::new(limiter)));
        rows.push(DirectRow {
            kind,
            keygate: Vec::new(),
            raw: Vec::new(),
        });
    }
    let flush = |admin: &mut redis::Connection| -> Result<()> {
        redis::cmd("FLUSHALL").exec(admin)?;
        Ok(())
    };
    // Warm-up, and the request count that makes a redis-benchmark run last `duration`.
    let mut raw_counts = Vec::new();
    for (kind, sha, limiter) in &shas {
        flush(&mut admin)?;
        rt.block_on(keygate_round(limiter, Duration::from_millis(500)));
        flush(&mut admin)?;
        let warm = raw_round(port, *kind, sha, 20_000)?;
        raw_counts.push(requests_for(warm.per_sec, duration));
    }
    // Four measurements a round (keygate and raw for each limit), order rotated.
    let n = shas.len() * 2;
    for round in 0..rounds {
        for k in 0..n {
            let slot = (k + round) % n;
            let (i, raw) = (slot / 2, slot % 2 == 1);
            let (kind, sha, limiter) = &shas[i];
            flush(&mut admin)?;
            let m = if raw {
                let m = raw_round(port, *kind, sha, raw_counts[i])?;
                raw_counts[i] = requests_for(m.per_sec, duration);
                m
            } else {
                rt.block_on(keygate_round(limiter, duration))
            };
            eprintln!(
                "ratelimit:   round {} {:<16} {:<42} {:>9.0}/s  p50 {:>5.0} us  p99 {:>5.0} us",
                round + 1,
                if raw {
                    "redis-benchmark"
                } else {
                    "RateLimiter"
                },
                kind.label(),
                m.per_sec,
                m.p50_us,
                m.p99_us
            );
            if raw {
                rows[i].raw.push(m);
            } else {
                rows[i].keygate.push(m);
            }
        }
    }
    drop(rt);
    drop(redis);
    Ok(rows)
}

fn requests_for(per_sec: f64, duration: Duration) -> u64 {
    ((per_sec * duration.as_secs_f64()) as u64).clamp(10_000, 2_000_000)
}

/// `CALLERS` tasks calling `check` on random subjects for `duration`.
async fn keygate_round(limiter: &Arc<RateLimiter>, duration: Duration) -> Measured {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..CALLERS as u64)
        .map(|seed| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                let (mut admitted, mut errors) = (0u64, 0u64);
                let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        break;
                    }
                    // xorshift64: cheap and good enough to spread subjects.
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // The same 12-digit form as redis-benchmark's `__rand_int__`.
                    let subject = format!("ip:{:012}", rng % SUBJECTS);
                    match limiter.check(&subject).await {
                        Ok(decision) => {
                            latencies.push(micros(start.elapsed()));
                            admitted += u64::from(decision.allowed);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, admitted, errors)
            })
        })
        .collect();
    let (mut latencies, mut admitted, mut errors) = (Vec::new(), 0u64, 0u64);
    for task in tasks {
        if let Ok((l, a, e)) = task.await {
            latencies.extend(l);
            admitted += a;
            errors += e;
        }
    }
    let count = latencies.len() as f64;
    let (p50_us, p99_us) = latency_percentiles(&mut latencies);
    Measured {
        per_sec: count / duration.as_secs_f64(),
        p50_us,
        p99_us,
        admitted: if count > 0.0 {
            admitted as f64 / count
        } else {
            0.0
        },
        errors,
    }
}

/// `redis-benchmark -c 64 -r 100000 EVALSHA <sha> 1 <the limiter's key> <args>`: the same
/// script, keys and arguments as `RateLimiter::check` sends.
fn raw_round(port: u16, kind: Kind, sha: &str, requests: u64) -> Result<Measured> {
    let (a, b) = kind.args();
    let key = format!("keygate:rate:{{{}:ip:__rand_int__}}", kind.name());
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &CALLERS.to_string(), "-n", &requests.to_string()])
        .args(["-r", &SUBJECTS.to_string(), "--csv"])
        .args(["EVALSHA", sha, "1", &key, &a.to_string(), &b.to_string()])
        .output()
        .map_err(|e| format!("cannot run redis-benchmark ({e}): apt-get install redis-tools"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    parse_csv(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| "redis-benchmark: no result line in its CSV output".into())
}

/// The last CSV line: `"<command>","rps","avg","min","p50","p95","p99","max"` (ms).
fn parse_csv(text: &str) -> Option<Measured> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let fields: Vec<f64> = line
        .rsplit(',')
        .take(7)
        .map(|f| f.trim().trim_matches('"').parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    // Reversed: max, p99, p95, p50, min, avg, rps.
    let [_, p99, _, p50, _, _, rps] = fields.as_slice() else {
        return None;
    };
    Some(Measured {
        per_sec: *rps,
        p50_us: p50 * 1000.0,
        p99_us: p99 * 1000.0,
        admitted: 0.0,
        errors: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"EVALSHA abc 1 keygate:rate:{bench-quota:ip:__rand_int__} 2000000 60000000\",\"19230.77\",\"3.122\",\"0.400\",\"3.007\",\"4.511\",\"5.903\",\"9.100\"\n";
        let m = parse_csv(text).unwrap_or_default();
        assert!((m.per_sec - 19230.77).abs() < 1e-6);
        assert!((m.p50_us - 3007.0).abs() < 1e-6);
        assert!((m.p99_us - 5903.0).abs() < 1e-6);
        assert!(parse_csv("nothing here").is_none());
    }
}
