//! Redis CPU per operation of each capability, on one private server: what one Redis core
//! serves per second of each, the figure a capacity plan divides by.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keygate::code::{CodeConfig, CodeSender, Codes, Phone, SendError, VerificationCode};
use keygate::flash_sale::{FlashSale, OrderOutcome, SaleWindow};
use keygate::lock::Locks;
use keygate::rate_limit::{Quota, RateLimiter, Window};
use keygate::session::NearCache;
use keygate::{RedisStore, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::fixtures::JavaUser;

use super::populate;
use crate::Result;
use crate::redis_admin::{self, Admin};
use crate::servers::process_cpu_ns;
use crate::user::{NODE_CUSTOM, NodeUser};

/// Callers in flight.
const CALLERS: usize = 64;
/// Sessions the session loads spread over.
const SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct CapabilityPoint {
    pub capability: &'static str,
    pub operation: &'static str,
    /// Operations per second this run reached (client and Redis sharing the cores).
    pub ops_per_sec: f64,
    /// Redis CPU per operation, µs.
    pub redis_cpu_us: f64,
    /// Redis commands (scripts count one) per operation.
    pub commands: f64,
}

impl CapabilityPoint {
    /// Operations one fully busy Redis core serves per second.
    pub fn per_core(&self) -> f64 {
        if self.commands >= 0.01 && self.redis_cpu_us > 0.0 {
            1e6 / self.redis_cpu_us
        } else {
            f64::INFINITY
        }
    }
}

/// Codes handed to the "SMS gateway": kept for the verification.
#[derive(Default, Clone)]
struct Captured(Arc<Mutex<HashMap<String, String>>>);

#[async_trait]
impl CodeSender for Captured {
    async fn send(
        &self,
        phone: &Phone,
        code: &VerificationCode,
    ) -> std::result::Result<(), SendError> {
        self.0
            .lock()
            .map_err(|_| SendError("poisoned".into()))?
            .insert(phone.as_str().to_owned(), code.expose().to_owned());
        Ok(())
    }
}

struct Meter<'a> {
    admin: &'a mut Admin,
    pid: u32,
    duration: Duration,
    points: Vec<CapabilityPoint>,
}

impl Meter<'_> {
    /// Runs `op(i)` from [`CALLERS`] tasks for the duration and reads Redis' CPU.
    async fn measure<F, Fut>(
        &mut self,
        capability: &'static str,
        operation: &'static str,
        op: F,
    ) -> Result<()>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let op = Arc::new(op);
        let next = Arc::new(AtomicUsize::new(0));
        self.admin.reset_stats()?;
        let cpu0 = process_cpu_ns(self.pid).unwrap_or(0);
        let started = Instant::now();
        let deadline = started + self.duration;
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let op = Arc::clone(&op);
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        op(next.fetch_add(1, Ordering::Relaxed)).await?;
                    }
                    Ok::<_, crate::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = process_cpu_ns(self.pid).unwrap_or(0).saturating_sub(cpu0);
        let ops = next.load(Ordering::Relaxed) as f64;
        let commands = self.admin.all_command_calls()?;
        let point = CapabilityPoint {
            capability,
            operation,
            ops_per_sec: ops / elapsed,
            redis_cpu_us: cpu as f64 / 1e3 / ops.max(1.0),
            commands: commands as f64 / ops.max(1.0),
        };
        eprintln!(
            "scale:   {capability}: {operation}: {:.0}/s, {:.1} us Redis CPU each ({:.0}/s per Redis core), {:.2} commands",
            point.ops_per_sec,
            point.redis_cpu_us,
            point.per_core(),
            point.commands
        );
        self.points.push(point);
        Ok(())
    }
}

fn parse_all(tokens: &[String]) -> Result<Arc<Vec<Token>>> {
    Ok(Arc::new(
        tokens
            .iter()
            .map(|t| Token::parse(t))
            .collect::<std::result::Result<_, _>>()?,
    ))
}

pub fn run(duration: Duration) -> Result<Vec<CapabilityPoint>> {
    eprintln!("scale: Redis CPU per operation, per capability ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let mut admin = Admin::connect(&url)?;
    let pid = admin.pid()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut meter = Meter {
        admin: &mut admin,
        pid,
        duration,
        points: Vec::new(),
    };
    rt.block_on(async {
        let store = RedisStore::connect(&url).await?;
        let json =
            SessionManager::<NodeUser>::new(store.clone(), SessionConfig::node_seed(NODE_CUSTOM))?;
        let hash = SessionManager::<JavaUser>::new(store.clone(), SessionConfig::java_seed())?;
        let (node_tokens, _) =
            populate::login_range(&json, "n", &NodeUser::seed(), 0, SESSIONS, true).await?;
        let (java_tokens, _) =
            populate::login_range(&hash, "j", &JavaUser::new(598), 0, SESSIONS, true).await?;
        let node_tokens = parse_all(&node_tokens)?;
        let java_tokens = parse_all(&java_tokens)?;

        let (m, t) = (json.clone(), Arc::clone(&node_tokens));
        meter
            .measure("sessions", "load, JSON (GETEX)", move |i| {
                let (m, t) = (m.clone(), Arc::clone(&t));
                async move {
                    m.load(&t[i % t.len()]).await?.ok_or("no session")?;
                    Ok(())
                }
            })
            .await?;
        let (m, t) = (hash.clone(), Arc::clone(&java_tokens));
        meter
            .measure("sessions", "load, hash (script)", move |i| {
                let (m, t) = (m.clone(), Arc::clone(&t));
                async move {
                    m.load(&t[i % t.len()]).await?.ok_or("no session")?;
                    Ok(())
                }
            })
            .await?;
        let m = json.clone();
        meter
            .measure("sessions", "login, one session per user", move |i| {
                let m = m.clone();
                async move {
                    m.login(&populate::user_of("login", i)?, &NodeUser::seed())
                        .await?;
                    Ok(())
                }
            })
            .await?;
        for (operation, entries) in [
            ("load, near cache hit", SESSIONS * 2),
            ("load, near cache miss", SESSIONS / 10),
        ] {
            let near = SessionManager::<NodeUser>::new(
                store.clone(),
                SessionConfig::node_seed(NODE_CUSTOM).with_near_cache(
                    NearCache::new(entries, Duration::from_secs(60)).with_max_bytes(1 << 30),
                ),
            )?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while !near.near_cache_stats().is_some_and(|s| s.tracking) {
                if Instant::now() > deadline {
                    return Err("the near cache did not start tracking".into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for token in node_tokens.iter() {
                near.load(token).await?;
            }
            let t = Arc::clone(&node_tokens);
            meter
                .measure("sessions", operation, move |i| {
                    let (m, t) = (near.clone(), Arc::clone(&t));
                    async move {
                        m.load(&t[i % t.len()]).await?.ok_or("no session")?;
                        Ok(())
                    }
                })
                .await?;
        }

        let sender = Captured::default();
        let codes = Arc::new(Codes::new(
            store.clone(),
            sender.clone(),
            CodeConfig::new(),
        )?);
        meter
            .measure("codes", "send + verify", move |i| {
                let (codes, sender) = (Arc::clone(&codes), sender.clone());
                async move {
                    let phone = codes.phone(&format!("13{:09}", i % 1_000_000_000))?;
                    codes.send(&phone).await?;
                    let code = sender
                        .0
                        .lock()
                        .map_err(|_| "poisoned")?
                        .remove(phone.as_str())
                        .ok_or("no code sent")?;
                    codes.verify(&phone, &code).await?;
                    Ok(())
                }
            })
            .await?;

        let locks = Locks::new(store.clone());
        meter
            .measure("locks", "try_acquire + release", move |i| {
                let locks = locks.clone();
                async move {
                    let guard = locks.try_acquire(&format!("order:{i}")).await?;
                    guard.release().await?;
                    Ok(())
                }
            })
            .await?;

        let sale = FlashSale::new(store.clone());
        sale.load(1, 100_000_000, SaleWindow::default()).await?;
        meter
            .measure("flash sale", "order (stock left)", move |i| {
                let sale = sale.clone();
                async move {
                    match sale.order(1, &UserId::from(i)).await? {
                        OrderOutcome::Ordered { .. } => Ok(()),
                        other => Err(format!("order: {other:?}").into()),
                    }
                }
            })
            .await?;

        for (operation, limiter) in [
            (
                "check, GCRA quota",
                RateLimiter::new(store.clone(), "cap-gcra", Quota::per_minute(30))?,
            ),
            (
                "check, sliding window",
                RateLimiter::new(store.clone(), "cap-window", Window::per_minute(30))?,
            ),
        ] {
            let limiter = Arc::new(limiter);
            meter
                .measure("rate limiter", operation, move |i| {
                    let limiter = Arc::clone(&limiter);
                    async move {
                        limiter.check(&format!("ip:{}", i % 100_000)).await?;
                        Ok(())
                    }
                })
                .await?;
        }
        Ok::<_, crate::Error>(())
    })?;
    let points = meter.points;
    drop(redis);
    Ok(points)
}
