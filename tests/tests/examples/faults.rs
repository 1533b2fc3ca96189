//! Fault behaviour end to end: the flagship example under load from this (second) process
//! while its Redis is killed, frozen, or out of connections. Bounded in count and time,
//! loopback only. Each scenario prints its numbers (requests, statuses, the longest
//! request, time to recover). The contract they check: docs/http-api.md § Envelope and
//! statuses (503 for an unavailable backend, never a 500, never a hang).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keygate_tests::fixtures::{JavaUser, plant_java_session};
use keygate_tests::load::{self, Sample};
use keygate_tests::{RedisServer, eventually};

use crate::http::Client;
use crate::launcher::Example;

const TOKEN: &str = "0f0e0d0c0b0a09080706050403020100";
/// The examples use keygate's default command timeout (1 s); a request may take that plus
/// the framework's own work and CI noise, never "hang" (old connection managers hung 30 s).
const LONGEST_ALLOWED: Duration = Duration::from_millis(2500);

/// The scenarios load the machine; one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// What one scenario measured; times are from the start of the load.
struct Run {
    samples: Vec<Sample>,
    /// When the fault began.
    faulted: Duration,
    /// When the healing began.
    healing: Duration,
    /// How long after the healing the app answered 200 again.
    recovery: Duration,
}

impl Run {
    /// Statuses of requests sent after the fault began and answered before the healing.
    fn during_fault(&self) -> Vec<u16> {
        self.samples
            .iter()
            .filter(|s| s.at > self.faulted && s.at + s.latency < self.healing)
            .map(|s| s.status)
            .collect()
    }

    /// Whether requests sent after the recovery succeed.
    fn ok_after_recovery(&self) -> bool {
        self.samples
            .iter()
            .any(|s| s.at > self.healing + self.recovery && s.status == 200)
    }
}

/// Starts the flagship on a private Redis with a planted session, loads `GET /user/me`
/// from 8 keep-alive connections, applies `fault` after 1 s, `heal` after `fault_for`,
/// waits for a 200, loads 1 s more; then checks what every scenario must hold: only 200,
/// 401 (the data was lost) or 503, never 500 or a dropped connection, nothing past the
/// timeout, memory flat.
async fn under_load(
    scenario: &str,
    fault_for: Duration,
    fault: impl FnOnce(&mut RedisServer),
    heal: impl FnOnce(&mut RedisServer),
) -> Run {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Example {
        process,
        mut redis,
        http,
    } = Example::start("axum-login").await;
    plant_java_session(&redis, TOKEN, &JavaUser::new(1));
    let rss_before = rss_kib(process.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = {
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
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let faulted = started.elapsed();
    fault(&mut redis);
    tokio::time::sleep(fault_for).await;
    let healing = started.elapsed();
    heal(&mut redis);
    plant_java_session(&redis, TOKEN, &JavaUser::new(1));
    let recovery = wait_ok(http).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.expect("the load finished");
    let rss_after = rss_kib(process.pid());

    let longest = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    let phase = |from: Duration, to: Duration| {
        let inside: Vec<Sample> = samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .copied()
            .collect();
        load::status_counts(&inside)
    };
    eprintln!(
        "[{scenario}] {} requests, statuses {:?}, longest {longest:?}, recovered {recovery:?} \
         after the fault ended, RSS {rss_before} -> {rss_after} KiB; before {:?}, fault {:?}, \
         after {:?}",
        samples.len(),
        load::status_counts(&samples),
        phase(Duration::ZERO, faulted),
        phase(faulted, healing),
        phase(healing + recovery, Duration::MAX),
    );

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
    assert!(longest < LONGEST_ALLOWED, "a request took {longest:?}");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    Run {
        samples,
        faulted,
        healing,
        recovery,
    }
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

/// docs/http-api.md § Envelope and statuses: Redis killed, restarted 2 s later.
pub async fn redis_killed_and_restarted_under_load() {
    let run = under_load(
        "redis killed",
        Duration::from_secs(2),
        RedisServer::stop,
        RedisServer::restart,
    )
    .await;
    // Requests still waiting when Redis came back may be answered 200: that is recovery.
    let during = run.during_fault();
    assert!(
        !during.is_empty() && during.iter().all(|s| *s == 503),
        "503 while Redis is down: {during:?}"
    );
    assert!(run.ok_after_recovery());
    assert!(
        run.recovery < Duration::from_secs(5),
        "back within a few seconds: {:?}",
        run.recovery
    );
}

/// docs/http-api.md § Envelope and statuses: Redis frozen 3 s (command timeout).
pub async fn frozen_redis_times_out_then_recovers() {
    let run = under_load(
        "redis frozen",
        Duration::from_secs(3),
        |redis| redis.pause(),
        |redis| redis.resume(),
    )
    .await;
    assert!(run.during_fault().contains(&503), "timeouts answer 503");
    assert!(run.ok_after_recovery());
}

/// docs/http-api.md § Envelope and statuses: Redis refuses new connections.
pub async fn connection_limit_is_503_then_recovers() {
    // One admin connection for the whole scenario: new ones are refused while limited.
    let admin: RefCell<Option<redis::Connection>> = RefCell::new(None);
    let set_maxclients = |conn: &mut redis::Connection, n: u32| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxclients")
            .arg(n)
            .query(conn)
            .expect("CONFIG SET maxclients");
    };
    let run = under_load(
        "maxclients",
        Duration::from_secs(2),
        |redis| {
            let mut conn = redis.admin();
            set_maxclients(&mut conn, 1);
            let _: () = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query(&mut conn)
                .expect("CLIENT KILL");
            *admin.borrow_mut() = Some(conn);
        },
        |_| {
            if let Some(conn) = admin.borrow_mut().as_mut() {
                set_maxclients(conn, 10_000);
            }
        },
    )
    .await;
    assert!(
        run.during_fault().contains(&503),
        "refused connections answer 503"
    );
    assert!(run.ok_after_recovery());
}
