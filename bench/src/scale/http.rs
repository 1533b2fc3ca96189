//! `GET /me` on axum against a populated Redis: requests per second beside what the load
//! generator sharing the cores cannot blur, Redis µs per call (`INFO commandstats`) and
//! the server's CPU per request.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rand::Rng;

use crate::Result;
use crate::loadgen::{self, TimedLoad};
use crate::redis_admin::Admin;
use crate::servers::{ServerProcess, process_cpu_ns};
use crate::stats::median;

/// Requests drawn for a load over many sessions: each request names a session drawn at
/// random, so a run of a few seconds touches keys all over the population.
pub const DRAWS: usize = 1 << 18;

/// Zipf exponent of the skewed draws (web traffic: a few users make most requests).
pub const ZIPF_EXPONENT: f64 = 1.0;

/// The servers and clients of the measured points.
pub const KEYGATE: &str = "keygate (axum)";
pub const HAND_WRITTEN: &str = "hand-written GETEX route (axum)";
pub const RAW: &str = "GETEX loop, no HTTP";

/// One measured point.
#[derive(Debug, Clone, Default)]
pub struct HttpPoint {
    /// Which route or client served the requests.
    pub server: &'static str,
    pub label: String,
    /// Sessions in Redis.
    pub sessions: usize,
    pub rps: f64,
    pub p99_us: f64,
    pub errors: u64,
    /// Server CPU per request, µs.
    pub server_cpu_us: f64,
    /// Redis µs per call of the request's command (commandstats), summed over masters.
    pub redis_us_per_call: f64,
    /// Calls of that command per request.
    pub calls_per_request: f64,
    /// Redis CPU per request (all its processes), µs.
    pub redis_cpu_us: f64,
}

/// Header sets naming `tokens` in `authorization`.
pub fn headers(tokens: &[&str]) -> Vec<Vec<(String, String)>> {
    tokens
        .iter()
        .map(|t| vec![("authorization".to_owned(), (*t).to_owned())])
        .collect()
}

/// [`DRAWS`] tokens drawn uniformly from `tokens`.
pub fn uniform<'a>(tokens: &'a [String], rng: &mut impl Rng) -> Vec<&'a str> {
    (0..DRAWS)
        .map(|_| tokens[rng.random_range(0..tokens.len())].as_str())
        .collect()
}

/// [`DRAWS`] tokens drawn from `tokens` with Zipf's law (rank `k` with weight
/// `1 / k^ZIPF_EXPONENT`).
pub fn zipf<'a>(tokens: &'a [String], rng: &mut impl Rng) -> Vec<&'a str> {
    let mut cumulative = Vec::with_capacity(tokens.len());
    let mut total = 0.0;
    for k in 1..=tokens.len() {
        total += 1.0 / (k as f64).powf(ZIPF_EXPONENT);
        cumulative.push(total);
    }
    (0..DRAWS)
        .map(|_| {
            let u = rng.random::<f64>() * total;
            let rank = cumulative.partition_point(|c| *c < u).min(tokens.len() - 1);
            tokens[rank].as_str()
        })
        .collect()
}

/// Where the request's Redis work is read: one server, or each master of a cluster.
pub struct RedisSide<'a> {
    pub admins: &'a mut [Admin],
    pub pids: Vec<u32>,
    /// The command each request sends (`getex`, `evalsha`).
    pub command: &'static str,
}

impl RedisSide<'_> {
    fn reset(&mut self) -> Result<()> {
        for admin in self.admins.iter_mut() {
            admin.reset_stats()?;
        }
        Ok(())
    }

    fn usec(&mut self) -> Result<(u64, u64)> {
        let mut total = (0, 0);
        for admin in self.admins.iter_mut() {
            let (calls, usec) = admin.command_usec(self.command)?;
            total.0 += calls;
            total.1 += usec;
        }
        Ok(total)
    }

    /// CPU time of the Redis processes so far, ns.
    pub fn cpu_ns(&self) -> u64 {
        self.pids.iter().filter_map(|p| process_cpu_ns(*p)).sum()
    }
}

/// Loads the server with `cycle` for a warm-up and `rounds` rounds of `duration`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    server_name: &'static str,
    label: &str,
    sessions: usize,
    server: &ServerProcess,
    redis: &mut RedisSide<'_>,
    cycle: &[Vec<(String, String)>],
    connections: usize,
    rounds: usize,
    duration: Duration,
) -> Result<HttpPoint> {
    let run = |d: Duration| -> Result<TimedLoad> {
        loadgen::run_timed(
            server.port,
            cycle,
            connections,
            d,
            Arc::new(AtomicBool::new(false)),
        )
    };
    run(Duration::from_millis(500))?;
    let mut rps = Vec::new();
    let mut p99 = Vec::new();
    let (mut requests, mut errors, mut cpu_ns, mut calls, mut usec) = (0u64, 0, 0, 0, 0);
    let mut redis_ns = 0u64;
    for _ in 0..rounds {
        redis.reset()?;
        let cpu0 = server.cpu_ns();
        let redis0 = redis.cpu_ns();
        let mut load = run(duration)?;
        let cpu1 = server.cpu_ns();
        redis_ns += redis.cpu_ns().saturating_sub(redis0);
        let (c, u) = redis.usec()?;
        let summary = load.summary(duration);
        rps.push(summary.rps());
        p99.push(summary.p99_us);
        requests += load.ok + load.errors;
        errors += load.errors;
        cpu_ns += cpu1.zip(cpu0).map_or(0, |(a, b)| a.saturating_sub(b));
        calls += c;
        usec += u;
    }
    let point = HttpPoint {
        server: server_name,
        label: label.to_owned(),
        sessions,
        rps: median(&rps),
        p99_us: median(&p99),
        errors,
        server_cpu_us: cpu_ns as f64 / 1e3 / requests.max(1) as f64,
        redis_us_per_call: usec as f64 / calls.max(1) as f64,
        calls_per_request: calls as f64 / requests.max(1) as f64,
        redis_cpu_us: redis_ns as f64 / 1e3 / requests.max(1) as f64,
    };
    eprintln!(
        "scale:   GET /me {server_name}, {label}: {:.0} req/s, p99 {:.0} us, {:.2} us/{} in Redis, server {:.1} us CPU/req, errors {}",
        point.rps,
        point.p99_us,
        point.redis_us_per_call,
        redis.command,
        point.server_cpu_us,
        point.errors
    );
    Ok(point)
}

/// The floor at the same population: a hand-written `GETEX key PX <idle>` from 32 tasks on
/// one redis-crate multiplexed connection over the same draws, no HTTP, no keygate.
pub async fn raw_getex(
    label: &str,
    sessions: usize,
    url: &str,
    admin: &mut Admin,
    keys: Vec<String>,
    duration: Duration,
) -> Result<HttpPoint> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let ttl_ms = crate::user::IDLE_SECS * 1000;
    let round = |d: Duration| {
        let deadline = tokio::time::Instant::now() + d;
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (mut conn, keys, next) = (conn.clone(), Arc::clone(&keys), Arc::clone(&next));
                tokio::spawn(async move {
                    while tokio::time::Instant::now() < deadline {
                        let key = &keys[next.fetch_add(1, Ordering::Relaxed) % keys.len()];
                        let found: Option<Vec<u8>> = redis::cmd("GETEX")
                            .arg(key)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async(&mut conn)
                            .await?;
                        found.ok_or("a session was missing")?;
                    }
                    Ok::<_, crate::Error>(())
                })
            })
            .collect::<Vec<_>>();
        async move {
            for task in tasks {
                task.await??;
            }
            Ok::<_, crate::Error>(())
        }
    };
    round(Duration::from_millis(300)).await?;
    admin.reset_stats()?;
    let before = next.load(Ordering::Relaxed);
    round(duration).await?;
    let done = next.load(Ordering::Relaxed) - before;
    let (calls, usec) = admin.command_usec("getex")?;
    let point = HttpPoint {
        server: RAW,
        label: label.to_owned(),
        sessions,
        rps: done as f64 / duration.as_secs_f64(),
        redis_us_per_call: usec as f64 / calls.max(1) as f64,
        calls_per_request: calls as f64 / done.max(1) as f64,
        ..HttpPoint::default()
    };
    eprintln!(
        "scale:   raw GETEX {label}: {:.0}/s, {:.2} us/getex in Redis",
        point.rps, point.redis_us_per_call
    );
    Ok(point)
}
