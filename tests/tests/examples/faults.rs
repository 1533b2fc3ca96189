//! Fault behaviour end to end: the flagship example under load from this (second) process
//! while its Redis is killed, frozen, or out of connections. Bounded in count and time,
//! loopback only. Each scenario prints its numbers (requests, statuses, the longest
//! request, time to recover).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use keygate_tests::fixtures::{JavaUser, plant_java_session};
use keygate_tests::load::{self, Sample};
use keygate_tests::{RedisServer, eventually};

use crate::http::Client;
use crate::launcher::{Example, Process};

const TOKEN: &str = "0f0e0d0c0b0a09080706050403020100";
/// The examples use keygate's default command timeout (1 s); a request may take that plus
/// the framework's own work and CI noise, never "hang" (old connection managers hung 30 s).
const LONGEST_ALLOWED: Duration = Duration::from_millis(2500);

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

struct Phase {
    name: &'static str,
    from: Duration,
    to: Duration,
}

fn report(
    scenario: &str,
    samples: &[Sample],
    phases: &[Phase],
    recovery: Duration,
    rss: (u64, u64),
) {
    let longest = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    eprintln!(
        "[{scenario}] {} requests, statuses {:?}, longest {longest:?}, recovered {recovery:?} after the fault ended, RSS {} -> {} KiB",
        samples.len(),
        load::status_counts(samples),
        rss.0,
        rss.1
    );
    for phase in phases {
        let inside: Vec<Sample> = samples
            .iter()
            .filter(|s| s.at >= phase.from && s.at < phase.to)
            .copied()
            .collect();
        eprintln!(
            "[{scenario}]   {}: {:?}",
            phase.name,
            load::status_counts(&inside)
        );
    }
}

/// The checks every scenario shares: no 500, no dropped connection, nothing past the
/// timeout, memory flat.
fn assert_sane(samples: &[Sample], rss: (u64, u64)) {
    assert!(!samples.is_empty());
    let bad: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.status, 200 | 401 | 503))
        .collect();
    assert!(
        bad.is_empty(),
        "only 200, 401 (session lost with the data) or 503: {:?}",
        &bad[..bad.len().min(5)]
    );
    let longest = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    assert!(longest < LONGEST_ALLOWED, "a request took {longest:?}");
    assert!(
        rss.1 < rss.0 + 64 * 1024,
        "memory grew from {} to {} KiB",
        rss.0,
        rss.1
    );
}

async fn wait_ok(http: Client) -> Duration {
    let started = Instant::now();
    let ok = eventually(Duration::from_secs(15), async || {
        http.get("/user/me").token(TOKEN).send().await.status == 200
    })
    .await;
    assert!(ok, "the app answers 200 again without a restart");
    started.elapsed()
}

/// The scenarios load the machine; one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start() -> (RedisServer, Process, Client) {
    let Example {
        process,
        redis,
        http,
    } = Example::start("axum-login").await;
    plant_java_session(&redis, TOKEN, &JavaUser::new(1));
    (redis, process, http)
}

fn spawn_load(http: &Client, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Sample>> {
    let (addr, stop) = (http.addr(), stop.clone());
    tokio::spawn(async move {
        load::run(
            addr,
            "/user/me",
            TOKEN,
            8,
            Duration::from_secs(30),
            300_000,
            stop,
        )
        .await
    })
}

pub async fn redis_killed_and_restarted_under_load() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (mut redis, app, http) = start().await;
    let rss_before = rss_kib(app.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = spawn_load(&http, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = t0.elapsed();
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarting = t0.elapsed();
    redis.restart();
    plant_java_session(&redis, TOKEN, &JavaUser::new(1));
    let restarted = t0.elapsed();
    let recovery = wait_ok(http).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = load.await.unwrap();
    let rss = (rss_before, rss_kib(app.pid()));
    report(
        "redis killed",
        &samples,
        &[
            Phase {
                name: "before",
                from: Duration::ZERO,
                to: killed,
            },
            Phase {
                name: "down",
                from: killed,
                to: restarting,
            },
            Phase {
                name: "after recovery",
                from: restarted + recovery,
                to: Duration::MAX,
            },
        ],
        recovery,
        rss,
    );
    assert_sane(&samples, rss);
    // Answered while Redis was down (sent after the kill, done before the restart): 503.
    // Requests still waiting when it came back may be answered 200: that is recovery.
    let during: Vec<u16> = samples
        .iter()
        .filter(|s| s.at > killed && s.at + s.latency < restarting)
        .map(|s| s.status)
        .collect();
    assert!(
        !during.is_empty() && during.iter().all(|s| *s == 503),
        "503 while Redis is down: {during:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.at > restarted + recovery && s.status == 200)
    );
    assert!(
        recovery < Duration::from_secs(5),
        "back within a few seconds: {recovery:?}"
    );
}

pub async fn frozen_redis_times_out_then_recovers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (redis, app, http) = start().await;
    let rss_before = rss_kib(app.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = spawn_load(&http, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frozen = t0.elapsed();
    redis.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.resume();
    let thawed = t0.elapsed();
    let recovery = wait_ok(http).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = load.await.unwrap();
    let rss = (rss_before, rss_kib(app.pid()));
    report(
        "redis frozen",
        &samples,
        &[
            Phase {
                name: "before",
                from: Duration::ZERO,
                to: frozen,
            },
            Phase {
                name: "frozen",
                from: frozen,
                to: thawed,
            },
            Phase {
                name: "after",
                from: thawed + recovery,
                to: Duration::MAX,
            },
        ],
        recovery,
        rss,
    );
    assert_sane(&samples, rss);
    assert!(
        samples
            .iter()
            .any(|s| s.at > frozen && s.at < thawed && s.status == 503),
        "timeouts answer 503"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.at > thawed + recovery && s.status == 200)
    );
}

pub async fn connection_limit_is_503_then_recovers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (redis, app, http) = start().await;
    let rss_before = rss_kib(app.pid());
    // One admin connection for the whole scenario: new ones will be refused.
    let mut admin = redis.admin();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = spawn_load(&http, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let limited = t0.elapsed();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(1)
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut admin)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(10_000)
        .query(&mut admin)
        .unwrap();
    let lifted = t0.elapsed();
    let recovery = wait_ok(http).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = load.await.unwrap();
    let rss = (rss_before, rss_kib(app.pid()));
    report(
        "maxclients",
        &samples,
        &[
            Phase {
                name: "before",
                from: Duration::ZERO,
                to: limited,
            },
            Phase {
                name: "limited",
                from: limited,
                to: lifted,
            },
            Phase {
                name: "after",
                from: lifted + recovery,
                to: Duration::MAX,
            },
        ],
        recovery,
        rss,
    );
    assert_sane(&samples, rss);
    assert!(
        samples
            .iter()
            .any(|s| s.at > limited && s.at < lifted && s.status == 503),
        "refused connections answer 503"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.at > lifted + recovery && s.status == 200)
    );
}
