//! Expiry churn: many sessions reaching their idle TTL at once while `GET /me` runs on
//! live ones. Redis expires keys in its own active cycle; the question is what that does
//! to the live requests' latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keygate::{RedisStore, SessionConfig, SessionManager};

use super::{http, populate};
use crate::Result;
use crate::loadgen;
use crate::redis_admin::Admin;
use crate::user::{NODE_CUSTOM, NodeUser};

/// The expiring sessions' idle TTL.
pub const SHORT_IDLE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
pub struct ChurnPoint {
    pub live: usize,
    pub expiring: usize,
    /// Seconds over which the expiring sessions were created (and so expire).
    pub created_over_s: f64,
    /// Seconds from the first expiry seen to the last.
    pub expired_over_s: f64,
    /// Seconds from the first expiry seen until 90 % had expired.
    pub ninety_percent_s: f64,
    pub p99_before_us: f64,
    pub p99_during_us: f64,
    pub max_during_us: f64,
    pub requests_during: usize,
    pub errors: u64,
    pub expired: u64,
}

pub async fn run(
    store: &RedisStore,
    url: &str,
    port: u16,
    live: usize,
    expiring: usize,
    connections: usize,
) -> Result<ChurnPoint> {
    let mut admin = Admin::connect(url)?;
    let config = SessionConfig::node_seed(NODE_CUSTOM);
    let lasting = SessionManager::<NodeUser>::new(store.clone(), config.clone())?;
    let short = SessionManager::<NodeUser>::new(store.clone(), config.with_idle_ttl(SHORT_IDLE))?;
    let (tokens, _) =
        populate::login_range(&lasting, "live", &NodeUser::seed(), 0, live, true).await?;
    let base_expired = admin.info_number("stats", "expired_keys")? as u64;
    let created = Instant::now();
    populate::login_range(&short, "churn", &NodeUser::seed(), 0, expiring, false).await?;
    let created_over_s = created.elapsed().as_secs_f64();
    eprintln!(
        "scale:   churn: {expiring} sessions of {} s idle TTL created over {created_over_s:.1} s",
        SHORT_IDLE.as_secs()
    );
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
    let cycle = http::headers(&http::uniform(&tokens, &mut rng));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            loadgen::run_timed(port, &cycle, connections, Duration::from_secs(120), stop)
        })
    };
    // Watch the expiries: when the first and the last of them happened.
    let deadline = created + SHORT_IDLE + Duration::from_secs(60);
    let (mut first, mut last, mut ninety) = (None, None, None);
    let mut expired = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        expired = (admin.info_number("stats", "expired_keys")? as u64).saturating_sub(base_expired);
        let at = started.elapsed();
        if expired > 0 && first.is_none() {
            first = Some(at);
        }
        if ninety.is_none() && expired * 10 >= expiring as u64 * 9 {
            ninety = Some(at);
        }
        if expired >= expiring as u64 {
            last = Some(at);
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let timed = load.join().map_err(|_| "the load thread panicked")??;
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    let first = first.ok_or("no session expired")?;
    let last = last.unwrap_or_else(|| started.elapsed());
    let (p99_before_us, _) = timed.quantile_within(500, ms(first), 0.99);
    let (p99_during_us, requests_during) = timed.quantile_within(ms(first), ms(last), 0.99);
    let (max_during_us, _) = timed.quantile_within(ms(first), ms(last), 1.0);
    let point = ChurnPoint {
        live,
        expiring,
        created_over_s,
        expired_over_s: (last - first).as_secs_f64(),
        ninety_percent_s: ninety.map_or(f64::NAN, |t| (t - first).as_secs_f64()),
        p99_before_us,
        p99_during_us,
        max_during_us,
        requests_during,
        errors: timed.errors,
        expired,
    };
    eprintln!(
        "scale:   churn: {} expired over {:.1} s; GET /me p99 {:.0} us before, {:.0} us during (max {:.0} us, {} requests), errors {}",
        point.expired,
        point.expired_over_s,
        point.p99_before_us,
        point.p99_during_us,
        point.max_during_us,
        point.requests_during,
        point.errors
    );
    Ok(point)
}
