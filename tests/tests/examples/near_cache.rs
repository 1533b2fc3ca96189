//! The session near cache end to end (docs/http-api.md § Start-up,
//! `SESSION_NEAR_CACHE`): two processes of one example on one private Redis, both with
//! `SESSION_NEAR_CACHE=1`. A warm instance answers `GET /user/me` from memory; a logout on
//! one instance, or a `DEL` from an outside connection (what `redis-cli` sends), is a 401
//! on the other within milliseconds; after Redis restarts empty no instance answers 200
//! for a lost session. Each scenario prints what it measured.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use keygate_tests::fixtures::commands_since_reset;
use keygate_tests::load;
use keygate_tests::{RedisServer, eventually};

use crate::http::Client;
use crate::launcher::{ADMIN_TOKEN, Process};
use crate::login::{login, phone};

/// How long the command count's load runs: long enough for each instance's tracking
/// check (every second) to run a few times, so that its commands are counted too.
const LOAD_FOR: Duration = Duration::from_secs(3);
/// The fewest requests the load must send for the count to mean something.
const MIN_REQUESTS: usize = 1_000;
/// The most Redis commands a warm instance may send per `GET /user/me`.
const MOST_COMMANDS_PER_REQUEST: f64 = 0.02;
/// Sessions ended per kind of change in the invalidation scenario.
const TRIALS: usize = 20;
/// How long the other instance is polled after a change before the test gives up.
const POLL_DEADLINE: Duration = Duration::from_secs(1);
/// The bound the issue sets on "within milliseconds", generous for a shared machine
/// (the figures printed are the measurement).
const MOST_TIME_TO_401: Duration = Duration::from_millis(100);
/// Commands that read a session: none of them may reach Redis on a hit.
const SESSION_READS: [&str; 5] = ["evalsha", "hgetall", "getex", "get", "pttl"];

/// The scenarios measure latency and count every command on their Redis: one at a time,
/// so that they do not disturb each other's figures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two processes of one example on one private Redis, both with `SESSION_NEAR_CACHE=1`,
/// each with its own SQLite file.
struct Pair {
    redis: RedisServer,
    a: Instance,
    b: Instance,
}

struct Instance {
    _process: Process,
    http: Client,
}

impl Pair {
    async fn start(example: &'static str) -> Self {
        let redis = RedisServer::start();
        let a = Instance::start(example, &redis).await;
        let b = Instance::start(example, &redis).await;
        Self { redis, a, b }
    }
}

impl Instance {
    async fn start(example: &'static str, redis: &RedisServer) -> Self {
        let env = [
            ("REDIS_URL", redis.url()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite://example.sqlite3".to_owned()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("RATE_LIMIT_PER_IP", "10000".to_owned()),
            ("SESSION_NEAR_CACHE", "1".to_owned()),
        ];
        let mut process = Process::spawn(example, &env);
        let addr = process.ready().await;
        let ready = process
            .stdout
            .find(" ready on http://")
            .expect("ready line");
        assert!(
            ready.contains("(backend: redis) (session near cache: on)"),
            "the ready line says the near cache is on: {ready}"
        );
        Self {
            _process: process,
            http: Client::new(addr),
        }
    }

    async fn status(&self, token: &str) -> u16 {
        self.http.get("/user/me").token(token).send().await.status
    }

    /// Sends a few `GET /user/me` (200 each), so that the session is cached here.
    async fn warm(&self, token: &str) {
        for _ in 0..3 {
            self.http
                .get("/user/me")
                .token(token)
                .send()
                .await
                .envelope(200);
        }
    }
}

/// Session reads among the commands Redis ran since the last reset of its statistics.
fn session_reads(redis: &RedisServer) -> Vec<(String, u64)> {
    commands_since_reset(redis)
        .into_iter()
        .filter(|(name, _)| SESSION_READS.contains(&name.as_str()))
        .collect()
}

/// Asserts that `instance` comes to answer 200 for `token` without reading the session
/// from Redis (it is served from the near cache) within 2 s: tracking may still be being
/// established right after start.
async fn assert_served_from_memory(redis: &RedisServer, token: &str, instance: &Instance) {
    let mut reads = Vec::new();
    let from_memory = eventually(Duration::from_secs(2), async || {
        redis.reset_stats();
        instance
            .http
            .get("/user/me")
            .token(token)
            .send()
            .await
            .envelope(200);
        reads = session_reads(redis);
        reads.is_empty()
    })
    .await;
    assert!(
        from_memory,
        "a warm instance reads no session from Redis: {reads:?}"
    );
}

/// What polling an instance after a change saw.
#[derive(Debug)]
struct Seen {
    /// From the end of the change to the first 401.
    elapsed: Duration,
    /// 200s answered after the change had completed and before the 401.
    stale: usize,
}

/// Polls `instance` with `GET /user/me` back to back (each request is the wait) until it
/// answers 401, for at most [`POLL_DEADLINE`] after `since`; then checks it stays 401.
async fn time_to_401(instance: &Instance, token: &str, since: Instant) -> Seen {
    let mut stale = 0;
    loop {
        let status = instance.status(token).await;
        let elapsed = since.elapsed();
        match status {
            401 => {
                for _ in 0..3 {
                    assert_eq!(instance.status(token).await, 401, "a 401 stays a 401");
                }
                return Seen { elapsed, stale };
            }
            200 => stale += 1,
            other => panic!("only 200 or 401 after the change, got {other}"),
        }
        assert!(
            elapsed < POLL_DEADLINE,
            "still 200 {elapsed:?} after the session ended ({stale} requests)"
        );
    }
}

/// p50 and max of `times`, for the report.
fn summary(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let p50 = times[times.len() / 2];
    let max = times[times.len() - 1];
    (p50, max)
}

/// Black box: a warm instance sends at most 0.02 Redis commands per
/// `GET /user/me`. A's session is loaded from 4 keep-alive connections for 3 s (at least
/// 1,000 requests); everything Redis runs meanwhile is counted, from both instances (their
/// tracking checks, `CLIENT TRACKINGINFO` and `ROLE` every second, included), except the
/// test's own `INFO` and `CONFIG RESETSTAT`.
pub async fn warm_instance_sends_almost_no_commands(example: &'static str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    // B stays up, idle: its background commands count too.
    let Pair { redis, a, b: _idle } = Pair::start(example).await;
    let token = login(&a.http, &redis, &phone()).await;
    a.warm(&token).await;
    assert_served_from_memory(&redis, &token, &a).await;

    redis.reset_stats();
    let started = Instant::now();
    let samples = load::run(
        a.http.addr(),
        "/user/me",
        &token,
        4,
        LOAD_FOR,
        usize::MAX,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let took = started.elapsed();
    let commands = commands_since_reset(&redis);
    let total: u64 = commands.iter().map(|(_, calls)| calls).sum();
    let per_request = total as f64 / samples.len() as f64;
    eprintln!(
        "[near cache, {example}] {} GET /user/me in {took:?}: {total} Redis commands \
         ({per_request:.4} per request): {commands:?}",
        samples.len()
    );
    assert!(samples.len() >= MIN_REQUESTS, "{} requests", samples.len());
    assert_eq!(
        load::status_counts(&samples),
        vec![(200, samples.len())],
        "every request answered 200"
    );
    assert!(
        per_request <= MOST_COMMANDS_PER_REQUEST,
        "{per_request} commands per request: {commands:?}"
    );
}

/// Black box: a logout on one instance (`POST /user/logout`) is a 401 on the
/// other, and a session key deleted from an outside connection (`DEL`, as `redis-cli`
/// sends it) is a 401 on both, within milliseconds, although both served the session
/// from memory just before.
pub async fn changes_elsewhere_are_401_within_milliseconds(example: &'static str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Pair { redis, a, b } = Pair::start(example).await;
    let mut admin = redis.admin();

    let mut after_logout = Vec::new();
    let mut stale_after_logout = 0;
    for _ in 0..TRIALS {
        let token = login(&a.http, &redis, &phone()).await;
        b.warm(&token).await;
        assert_served_from_memory(&redis, &token, &b).await;
        a.http
            .post("/user/logout")
            .token(&token)
            .send()
            .await
            .envelope(200);
        let ended = Instant::now();
        let seen = time_to_401(&b, &token, ended).await;
        after_logout.push(seen.elapsed);
        stale_after_logout += seen.stale;
        assert_eq!(
            a.status(&token).await,
            401,
            "logged out where it logged out"
        );
    }

    let mut after_del = Vec::new();
    let mut stale_after_del = 0;
    for _ in 0..TRIALS {
        let token = login(&a.http, &redis, &phone()).await;
        a.warm(&token).await;
        b.warm(&token).await;
        assert_served_from_memory(&redis, &token, &b).await;
        let deleted: i64 = redis::cmd("DEL")
            .arg(format!("login:token:{token}"))
            .query(&mut admin)
            .expect("DEL");
        assert_eq!(deleted, 1, "the session key was there");
        let ended = Instant::now();
        let (on_a, on_b) = tokio::join!(
            time_to_401(&a, &token, ended),
            time_to_401(&b, &token, ended)
        );
        for seen in [on_a, on_b] {
            after_del.push(seen.elapsed);
            stale_after_del += seen.stale;
        }
    }

    let (logout_p50, logout_max) = summary(&mut after_logout);
    let (del_p50, del_max) = summary(&mut after_del);
    eprintln!(
        "[near cache, {example}] logout on A -> 401 on B: p50 {logout_p50:?}, max \
         {logout_max:?} over {TRIALS} sessions ({stale_after_logout} stale 200s); DEL from \
         outside -> 401 on A and B: p50 {del_p50:?}, max {del_max:?} over {} polls \
         ({stale_after_del} stale 200s)",
        after_del.len()
    );
    assert!(
        logout_max < MOST_TIME_TO_401 && del_max < MOST_TIME_TO_401,
        "a 401 within {MOST_TIME_TO_401:?}: logout max {logout_max:?}, DEL max {del_max:?}"
    );
}

/// Black box: Redis restarts empty while both instances hold sessions in their
/// near caches. From the moment it is back, no instance answers 200 for a lost session:
/// 503 while the instances reconnect, then 401 for good. A new login then works on both.
pub async fn no_200_for_sessions_lost_in_a_restart(example: &'static str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Pair { mut redis, a, b } = Pair::start(example).await;
    // One session cached on A, one on B, and one used on both (B last: a fill's TTL
    // refresh drops the entry on the other instance).
    let mut tokens = Vec::new();
    for warm_on in [vec![&a], vec![&b], vec![&a, &b]] {
        let token = login(&a.http, &redis, &phone()).await;
        for instance in &warm_on {
            instance.warm(&token).await;
        }
        let last = warm_on.last().expect("one instance at least");
        assert_served_from_memory(&redis, &token, last).await;
        tokens.push(token);
    }

    redis.restart();
    let back = Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    let mut settled = Vec::new();
    for (name, instance) in [("A", &a), ("B", &b)] {
        for token in &tokens {
            let mut status = 0;
            let answered = eventually(Duration::from_secs(10), async || {
                status = instance.status(token).await;
                *statuses.entry(status).or_insert(0) += 1;
                assert_ne!(
                    status,
                    200,
                    "{name} answered 200 for a session lost {:?} ago",
                    back.elapsed()
                );
                assert!(
                    matches!(status, 401 | 503),
                    "{name}: only 401 or 503, got {status}"
                );
                status == 401
            })
            .await;
            assert!(answered, "{name} answers 401 once Redis is back ({status})");
            settled.push(back.elapsed());
            for _ in 0..3 {
                assert_eq!(instance.status(token).await, 401, "{name}: a 401 stays");
            }
        }
    }
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("login:token:*"));
    assert!(keys.is_empty(), "no lost session came back: {keys:?}");
    eprintln!(
        "[near cache, {example}] Redis restarted empty: statuses {statuses:?}, all 401 within \
         {:?}",
        settled.iter().max().copied().unwrap_or_default()
    );

    // The caches work again: a new session on A is served by B, and its logout on A is a
    // 401 on B.
    let token = login(&a.http, &redis, &phone()).await;
    b.warm(&token).await;
    a.http
        .post("/user/logout")
        .token(&token)
        .send()
        .await
        .envelope(200);
    time_to_401(&b, &token, Instant::now()).await;
}

/// docs/http-api.md § Start-up: on the embedded backend `SESSION_NEAR_CACHE=1` has no
/// effect, and the ready line says so.
pub async fn near_cache_has_no_effect_on_the_embedded_backend(example: &'static str) {
    let mut process = Process::spawn(
        example,
        &[
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite::memory:".to_owned()),
            ("SESSION_NEAR_CACHE", "1".to_owned()),
        ],
    );
    process.ready().await;
    let ready = process
        .stdout
        .find(" ready on http://")
        .expect("ready line");
    assert!(
        ready.contains(
            "(backend: memory) (session near cache: off, SESSION_NEAR_CACHE has no effect \
             on the embedded backend)"
        ),
        "{ready}"
    );
}

/// Black box, as a round-robin load balancer sends it: the two instances serve
/// one session alternately. Each should answer from memory, refreshing the TTL at most
/// once per 60 s, so the pair should send at most 0.02 commands per request.
///
/// It failed before fills stopped writing (340 misses in 500 requests, 2.05 commands per
/// request): every fill queued a `PEXPIRE`, a write, on which the other instance's
/// broadcast tracking dropped its entry, whose next request filled and refreshed in turn.
pub async fn instances_taking_turns_on_one_session(example: &'static str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Pair { redis, a, b } = Pair::start(example).await;
    let token = login(&a.http, &redis, &phone()).await;
    a.warm(&token).await;
    b.warm(&token).await;
    redis.reset_stats();
    let rounds = 250;
    for _ in 0..rounds {
        for instance in [&a, &b] {
            instance
                .http
                .get("/user/me")
                .token(&token)
                .send()
                .await
                .envelope(200);
        }
    }
    let commands = commands_since_reset(&redis);
    let total: u64 = commands.iter().map(|(_, calls)| calls).sum();
    let per_request = total as f64 / (2 * rounds) as f64;
    eprintln!(
        "[near cache, {example}] A and B taking turns, {} GET /user/me: {total} Redis commands \
         ({per_request:.4} per request): {commands:?}",
        2 * rounds
    );
    assert!(
        per_request <= MOST_COMMANDS_PER_REQUEST,
        "{per_request} commands per request: {commands:?}"
    );
}
