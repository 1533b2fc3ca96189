//! The distributed lock: uncontended acquire+release pairs per second, and hand-over
//! latency (release by one holder to acquisition by another) under contention.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate::RedisStore;
use keygate::lock::Locks;
use tokio::time::Instant;

use crate::Result;
use crate::args::Options;
use crate::redis_admin;
use crate::servers::WORKERS;
use crate::stats::{latency_percentiles, micros};

/// Tasks competing for one lock.
pub const CONTENDERS: usize = 8;

/// How long a contender waits for the lock before giving up (counted as an error).
const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct LockReport {
    pub duration: Duration,
    /// One caller, `try_acquire` then `release`, default options (lease renewal on).
    pub pairs_per_sec: f64,
    pub pair_p50_us: f64,
    pub pair_p99_us: f64,
    pub uncontended_errors: u64,
    /// `CONTENDERS` tasks looping `acquire(wait 2 s)` then `release` on one name.
    pub acquisitions_per_sec: f64,
    pub handovers_per_sec: f64,
    pub handover_p50_us: f64,
    pub handover_p99_us: f64,
    pub contended_errors: u64,
}

pub fn run(options: &Options) -> Result<LockReport> {
    eprintln!("lock: uncontended pairs and hand-over latency ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let duration = options.duration;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let report = rt.block_on(async move {
        let locks = Locks::new(RedisStore::connect(&url).await?);
        let mut report = LockReport {
            duration,
            ..LockReport::default()
        };
        // Warm-up.
        uncontended(&locks, Duration::from_millis(300)).await;
        let (pairs, mut latencies, errors) = uncontended(&locks, duration).await;
        report.pairs_per_sec = pairs as f64 / duration.as_secs_f64();
        (report.pair_p50_us, report.pair_p99_us) = latency_percentiles(&mut latencies);
        report.uncontended_errors = errors;
        eprintln!(
            "lock:   uncontended: {:.0} acquire+release pairs/s",
            report.pairs_per_sec
        );

        let (acquisitions, mut handovers, errors) = contended(&locks, duration).await?;
        report.acquisitions_per_sec = acquisitions as f64 / duration.as_secs_f64();
        report.handovers_per_sec = handovers.len() as f64 / duration.as_secs_f64();
        (report.handover_p50_us, report.handover_p99_us) = latency_percentiles(&mut handovers);
        report.contended_errors = errors;
        eprintln!(
            "lock:   {CONTENDERS} contenders: {:.0} acquisitions/s, {:.0} hand-overs/s, p50 {:.0} us",
            report.acquisitions_per_sec, report.handovers_per_sec, report.handover_p50_us
        );
        Ok::<_, crate::Error>(report)
    })?;
    drop(redis);
    Ok(report)
}

/// One caller: acquire and release in a loop. (pairs, latencies per pair, errors)
async fn uncontended(locks: &Locks, duration: Duration) -> (u64, Vec<u32>, u64) {
    let deadline = Instant::now() + duration;
    let mut latencies = Vec::with_capacity(1 << 14);
    let mut errors = 0;
    while Instant::now() < deadline {
        let start = Instant::now();
        let ok = match locks.try_acquire("bench-uncontended").await {
            Ok(guard) => guard.release().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            latencies.push(micros(start.elapsed()));
        } else {
            errors += 1;
        }
    }
    (latencies.len() as u64, latencies, errors)
}

/// `CONTENDERS` tasks fighting over one lock. (acquisitions, hand-over latencies, errors)
///
/// A hand-over is timed from the moment a holder starts releasing to the moment another
/// task holds the lock: the release script, the release message, the waiter's wake-up and
/// its acquire script.
async fn contended(locks: &Locks, duration: Duration) -> Result<(u64, Vec<u32>, u64)> {
    let deadline = Instant::now() + duration;
    let last_release: Arc<Mutex<Option<(usize, Instant)>>> = Arc::new(Mutex::new(None));
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|me| {
            let locks = locks.clone();
            let last_release = Arc::clone(&last_release);
            tokio::spawn(async move {
                let mut acquisitions = 0u64;
                let mut handovers = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let guard = match locks.acquire("bench-hot", WAIT).await {
                        Ok(guard) => guard,
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    };
                    let now = Instant::now();
                    acquisitions += 1;
                    {
                        let mut last = last_release.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some((holder, at)) = *last
                            && holder != me
                        {
                            handovers.push(micros(now.duration_since(at)));
                        }
                        *last = Some((me, Instant::now()));
                    }
                    if guard.release().await.is_err() {
                        errors += 1;
                    }
                }
                (acquisitions, handovers, errors)
            })
        })
        .collect();
    let mut acquisitions = 0;
    let mut handovers = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (a, h, e) = task.await?;
        acquisitions += a;
        handovers.extend(h);
        errors += e;
    }
    Ok((acquisitions, handovers, errors))
}
