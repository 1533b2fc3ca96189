//! A seeded random interleaving over two instances and a few sessions: create, update,
//! logout, logout-everywhere, rotate, expire (outside `PEXPIRE 1`), outside `DEL` and
//! loads, on either instance. Once an operation has completed and 5 ms have passed, no
//! load on either instance may reflect an older state: every load is compared with a model
//! of what Redis holds, and the model with Redis itself.
//!
//! The seed is printed on failure; rerun one with `NEAR_CACHE_SEED=<seed>`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::{Layout, SessionConfig, SessionManager, Token, UpdateOutcome, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{admin, in_redis, instance, key_of, near, poll_until, shared};

const STEPS: u64 = 3_000;
const SLOTS: usize = 20;
/// How long after an operation completes every instance must reflect it.
const SETTLE: Duration = Duration::from_millis(5);

/// SplitMix64: a small, seedable generator, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One session slot: user `id` has at most one live session, here.
#[derive(Clone)]
struct Slot {
    token: Option<Token>,
    /// What Redis holds for the token (the model).
    data: Option<JavaUser>,
    /// Tokens this slot had before (rotated, logged out, expired): they must stay dead.
    dead: Vec<Token>,
}

struct World {
    instances: [SessionManager<JavaUser>; 2],
    slots: Vec<Slot>,
    admin: redis::aio::MultiplexedConnection,
    codec: Layout,
    log: Log,
}

/// The last steps taken, printed with the seed when a check fails.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap();
        if lines.len() == 40 {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// Prints the seed and the last steps if the test fails.
struct OnFailure {
    seed: u64,
    log: Log,
}

impl Drop for OnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let lines = self.log.0.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!(
                "interleaving failed with NEAR_CACHE_SEED={}; last steps:",
                self.seed
            );
            for line in lines {
                eprintln!("  {line}");
            }
        }
    }
}

impl World {
    fn key(&self, token: &Token) -> String {
        key_of(&self.instances[0], token)
    }

    /// Loads `slot`'s token (and one dead token) on instance `on` and checks both answers
    /// against the model.
    async fn check(&mut self, on: usize, slot: usize) {
        let m = &self.instances[on];
        let s = &self.slots[slot];
        if let Some(token) = &s.token {
            let loaded = m.load(token).await.unwrap().map(|s| s.into_data());
            assert_eq!(loaded, s.data, "slot {slot} on instance {on}");
        }
        if let Some(token) = s.dead.last() {
            let loaded = m.load(token).await.unwrap();
            assert!(
                loaded.is_none(),
                "slot {slot}: an ended token loads on {on}"
            );
        }
    }

    /// Compares the model of `slot` with Redis.
    async fn check_redis(&mut self, slot: usize) {
        let Some(token) = self.slots[slot].token.clone() else {
            return;
        };
        let key = self.key(&token);
        let held = in_redis(&mut self.admin, self.codec, &key).await;
        assert_eq!(
            held, self.slots[slot].data,
            "slot {slot}: the model and Redis"
        );
    }

    fn end(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if let Some(token) = s.token.take() {
            s.dead.push(token);
        }
        s.data = None;
    }

    /// One random operation on `slot`, on instance `on`.
    async fn step(&mut self, rng: &mut Rng, step: u64, on: usize, slot: usize) {
        let id = slot as u64 + 1;
        let m = self.instances[on].clone();
        let op = rng.below(8);
        let Some(token) = self.slots[slot].token.clone() else {
            // No session: create one.
            let data = JavaUser {
                nick_name: format!("created_{step}"),
                ..JavaUser::new(id)
            };
            let token = m.login(&UserId::from(id), &data).await.unwrap();
            self.log.push(format!("{step}: create slot {slot} on {on}"));
            self.slots[slot].token = Some(token);
            self.slots[slot].data = Some(data);
            return;
        };
        match op {
            0 | 1 => {
                self.log.push(format!("{step}: load slot {slot} on {on}"));
                self.check(on, slot).await;
            }
            2 => {
                let session = m.load(&token).await.unwrap().unwrap();
                assert_eq!(Some(session.data()), self.slots[slot].data.as_ref());
                let data = JavaUser {
                    nick_name: format!("updated_{step}"),
                    ..JavaUser::new(id)
                };
                assert_eq!(
                    m.update(&session, &data).await.unwrap(),
                    UpdateOutcome::Updated
                );
                self.log.push(format!("{step}: update slot {slot} on {on}"));
                self.slots[slot].data = Some(data);
            }
            3 => {
                assert!(m.logout(&token).await.unwrap());
                self.log.push(format!("{step}: logout slot {slot} on {on}"));
                self.end(slot);
            }
            4 => {
                let session = m.load(&token).await.unwrap().unwrap();
                let rotated = m.rotate(&session).await.unwrap().unwrap();
                self.log.push(format!("{step}: rotate slot {slot} on {on}"));
                let s = &mut self.slots[slot];
                s.dead.push(token);
                s.token = Some(rotated.token);
            }
            5 => {
                assert_eq!(m.logout_everywhere(&UserId::from(id)).await.unwrap(), 1);
                self.log
                    .push(format!("{step}: logout_everywhere slot {slot} on {on}"));
                self.end(slot);
            }
            6 => {
                // Expiry: a 1 ms TTL from outside, then waited out in Redis. A refresh
                // in flight (a use) may land in that millisecond and keep the session:
                // then Redis shows a long TTL again, and the model keeps it.
                let key = self.key(&token);
                let admin = &mut self.admin;
                let _: i64 = redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(1)
                    .query_async(admin)
                    .await
                    .unwrap();
                let mut ttl = 0;
                let settled = poll_until(Duration::from_secs(1), async || {
                    ttl = redis::cmd("PTTL")
                        .arg(&key)
                        .query_async(admin)
                        .await
                        .unwrap();
                    ttl == -2 || ttl > 1
                })
                .await;
                assert!(
                    settled.is_some(),
                    "slot {slot}: the key neither expired nor lived on"
                );
                if ttl == -2 {
                    self.log.push(format!("{step}: expire slot {slot}"));
                    self.end(slot);
                } else {
                    self.log
                        .push(format!("{step}: expire slot {slot}, kept by a refresh"));
                }
            }
            _ => {
                let n: i64 = redis::cmd("DEL")
                    .arg(self.key(&token))
                    .query_async(&mut self.admin)
                    .await
                    .unwrap();
                assert_eq!(n, 1);
                self.log.push(format!("{step}: outside DEL slot {slot}"));
                self.end(slot);
            }
        }
    }
}

async fn interleave(config: SessionConfig) {
    let _turn = shared().await;
    let seed = std::env::var("NEAR_CACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b65_7967_6174_6520);
    let server = RedisServer::start();
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut world = World {
        codec: a.config().layout(),
        instances: [a, b],
        slots: vec![
            Slot {
                token: None,
                data: None,
                dead: Vec::new(),
            };
            SLOTS
        ],
        admin: admin(&server).await,
        log: Log::default(),
    };
    let _on_failure = OnFailure {
        seed,
        log: world.log.clone(),
    };
    let mut rng = Rng(seed);
    for step in 0..STEPS {
        let on = rng.below(2) as usize;
        let slot = rng.below(SLOTS as u64) as usize;
        world.step(&mut rng, step, on, slot).await;
        tokio::time::sleep(SETTLE).await;
        // Both instances, on the slot changed and on another one.
        let other = rng.below(SLOTS as u64) as usize;
        for s in [slot, other] {
            world.check(0, s).await;
            world.check(1, s).await;
            world.check_redis(s).await;
        }
    }
    for slot in 0..SLOTS {
        world.check(0, slot).await;
        world.check(1, slot).await;
        world.check_redis(slot).await;
    }
    for (name, m) in ["A", "B"].iter().zip(&world.instances) {
        let stats = m.near_cache_stats().unwrap();
        eprintln!("near cache interleaving | {name}: {stats:?}");
        assert!(stats.hits > 0 && stats.invalidations > 0, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleaving_hash() {
    interleave(SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)))).await;
}

/// With a 20 ms touch interval, hits keep making refreshes due: the refreshes (writes on
/// the tracking connection, read back) interleave with every other operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleaving_hash_with_frequent_refreshes() {
    interleave(SessionConfig::java_seed().with_near_cache(near(Duration::from_millis(20)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleaving_json() {
    interleave(SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60))))
        .await;
}
