//! Rate limiting shared by every instance of a service, kept in Redis: a GCRA quota or an
//! exact sliding window.
//!
//! A [`RateLimiter`] enforces one [`Limit`] per subject (a client IP, a phone number, a
//! user id), one of:
//!
//! - a [`Quota`]: `rate` requests per `period`, up to `burst` at once, then one every
//!   `period / rate`. It is the generic cell rate algorithm (GCRA): per subject one number
//!   is stored, the theoretical arrival time (TAT); a request is allowed when the TAT,
//!   moved on by one emission interval, stays within `burst` intervals of now. Its budget
//!   refills continuously, so within one `period` a client may get `burst` at once and
//!   then `rate` more as it refills.
//! - a [`Window`]: at most `limit` requests in **any** rolling `period` (a sliding window
//!   log): all of them at once if the client likes, then none until the oldest admitted
//!   request is `period` old. Per subject a sorted set of the admitted requests' times is
//!   stored (at most [`MAX_WINDOW_LIMIT`] entries); refused requests are not recorded.
//!
//! Both share:
//!
//! - **One round trip.** Each decision is one script call that reads the state, decides,
//!   records an admitted request and answers the decision, the remaining budget, the exact
//!   wait before a refused request would be allowed (`retry_after`: for a window, when the
//!   entry that makes room leaves it) and the time until the budget is full again
//!   (`reset`).
//! - **A flood from one subject is one call per round trip.** Checks of one subject that
//!   overlap on one instance (one limiter) share a script call: while the subject's call
//!   is in flight, its new checks wait and then go together in the next call (at most 256
//!   a call), which decides them in arrival order exactly as that many calls at one
//!   instant would. An address hammering an instance (SMS pumping) then costs Redis one
//!   script call per round trip however many requests it sends; other subjects never wait
//!   for it, and a lone check pays nothing for it. While Redis fails, the checks queued
//!   behind a failed call fail with it rather than wait for a call of their own.
//! - **A refusal costs Redis once.** A subject refused with "retry after R" stays refused
//!   until R (refusals change no state, and admissions elsewhere only push R later), so
//!   the limiter holds the refusal and answers the subject's checks itself until then,
//!   without a script call: the same refusal, no budget left, `retry_after` and `reset`
//!   counting down. A client that keeps sending over its limit costs Redis nothing until
//!   its wait is over, then one call. The wait is timed on the limiter's clock from when
//!   its call was sent, so the hold never outlasts the server's. Each limiter holds at
//!   most [`DEFAULT_REFUSAL_CACHE`] refused subjects (its key and three numbers each), forgetting
//!   the least recently used first ([`RateLimiter::with_refusal_cache`]; 0 holds none).
//!   Decisions stay exact, with one exception: when an operator deletes a subject's key
//!   to lift its limit early, the instances that hold its refusal keep refusing until
//!   the wait they were told (at most one period).
//! - **The server's clock.** The scripts take the time from Redis (`TIME`), not from the
//!   application, so instances whose clocks disagree make the same decisions.
//! - **Small, self-cleaning state.** One key per limited subject,
//!   `keygate:rate:{<limiter name>:<subject>}` (one hash tag, so the script is single-slot
//!   on Redis Cluster), expiring when the budget is full again (a quota's TAT) or one
//!   window after the newest admission (a window's log): an idle subject's key expires by
//!   itself. Names and subjects are escaped into the tag (they cannot close it, glob or
//!   collide); subjects longer than 128 bytes are replaced by their SHA-256, so keys stay
//!   small whatever the subject. A quota and a window must not share a limiter name.
//! - **Failure is a choice per limiter** ([`FailureMode`]): fail open (allow while Redis
//!   is unreachable, logging at WARN at most once a second) or fail closed (an error:
//!   adapters answer 503). A refusal held from before the outage is still answered.
//!
//! The embedded [`MemoryStore`](crate::MemoryStore) makes the same decisions for the same
//! arrivals (the same functions on the same integers, [`gcra`] and [`sliding_window`]), on
//! the process's clock (or one given with [`RateLimiter::with_clock`]).
//!
//! Subjects are never logged: they may be phone numbers.
//!
//! ```no_run
//! # async fn run() -> Result<(), keygate::Error> {
//! use keygate::RedisStore;
//! use keygate::rate_limit::{FailureMode, Quota, RateLimiter, Window};
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
//! // 30 per minute, at most 10 at once; refuse (503) while Redis is unreachable.
//! let sms = RateLimiter::new(store.clone(), "sms", Quota::per_minute(30).with_burst(10))?
//!     .with_failure_mode(FailureMode::Closed);
//! let decision = sms.check("phone:13800138000").await?;
//! if !decision.allowed {
//!     println!("retry in {:?}", decision.retry_after);
//! }
//! // Never more than 30 in any 60 s.
//! let per_ip = RateLimiter::new(store, "login-ip", Window::per_minute(30))?;
//! per_ip.check("ip:198.51.100.7").await?;
//! # Ok(()) }
//! ```
//!
//! The framework adapters wrap a limiter in a middleware keyed by the client's IP (IPv6 per
//! /64 by default): the framework-neutral part they translate, which subject a request
//! counts against and what a refusal answers, is
//! [`RateLimitPolicy`](crate::web::RateLimitPolicy).

mod coalesce;
mod decision;
mod gcra;
mod limiter;
#[cfg(feature = "memory")]
mod memory;
mod redis;
mod refusals;
mod window;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub use self::decision::RateLimitDecision;
pub use self::gcra::{GcraParams, Quota, gcra};
pub use self::limiter::RateLimiter;
#[doc(hidden)]
pub use self::redis::script_sources;
pub use self::refusals::DEFAULT_REFUSAL_CACHE;
pub use self::window::{MAX_WINDOW_LIMIT, Window, WindowParams, sliding_window};
use crate::error::Result;

/// What a store answers for one decision, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitReply {
    /// Whether the request is allowed (and counted).
    pub allowed: bool,
    /// Requests that would still be allowed right now.
    pub remaining: u64,
    /// For a refused request, how long until it would be allowed; 0 when allowed.
    pub retry_after_us: u64,
    /// How long until the budget is full again.
    pub reset_us: u64,
    /// The store's clock when it decided (the Redis server's `TIME`).
    pub now_us: u64,
}

/// Storage of rate-limit state: one atomic decision per call.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// A GCRA decision for the subject at `key`, recording an allowed request,
    /// atomically. `clock` is the time now in microseconds for stores without a clock of
    /// their own; Redis ignores it and uses the server's `TIME`.
    async fn gcra(&self, key: &str, params: GcraParams, clock: &Clock) -> Result<LimitReply>;

    /// A sliding-window decision for the subject at `key`, recording an allowed request,
    /// atomically; `clock` as for [`gcra`](Self::gcra).
    async fn window(&self, key: &str, params: WindowParams, clock: &Clock) -> Result<LimitReply>;

    /// GCRA decisions for `arrivals` requests of the subject at `key` that arrived
    /// together, in order: the same as that many [`gcra`](Self::gcra) calls at one
    /// instant. A limiter sends a subject's checks that overlap on an instance this way,
    /// so that a flood costs one call per round trip, not one per request. Redis makes it
    /// one script call; the default makes the calls one by one, each reading `clock`
    /// anew.
    async fn gcra_arrivals(
        &self,
        key: &str,
        params: GcraParams,
        clock: &Clock,
        arrivals: u32,
    ) -> Result<Vec<LimitReply>> {
        one_by_one(arrivals, || self.gcra(key, params, clock)).await
    }

    /// Sliding-window decisions for `arrivals` requests that arrived together, as
    /// [`gcra_arrivals`](Self::gcra_arrivals).
    async fn window_arrivals(
        &self,
        key: &str,
        params: WindowParams,
        clock: &Clock,
        arrivals: u32,
    ) -> Result<Vec<LimitReply>> {
        one_by_one(arrivals, || self.window(key, params, clock)).await
    }
}

/// `arrivals` decisions, one call each, in order.
async fn one_by_one<F, Fut>(arrivals: u32, mut decide: F) -> Result<Vec<LimitReply>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<LimitReply>>,
{
    let mut decided = Vec::with_capacity(arrivals as usize);
    for _ in 0..arrivals {
        decided.push(decide().await?);
    }
    Ok(decided)
}

/// What a limiter enforces per subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// GCRA: `rate` per `period`, `burst` at once, refilled continuously.
    Quota(Quota),
    /// Sliding window: at most `limit` in any rolling `period`.
    Window(Window),
}

impl Limit {
    /// Validates the quota ([`Quota::validate`]) or the window ([`Window::validate`]).
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Quota(quota) => quota.validate(),
            Self::Window(window) => window.validate(),
        }
    }

    /// The most requests allowed at once: the quota's burst or the window's limit.
    pub fn at_once(&self) -> u32 {
        match self {
            Self::Quota(quota) => quota.burst(),
            Self::Window(window) => window.limit(),
        }
    }
}

impl From<Quota> for Limit {
    fn from(quota: Quota) -> Self {
        Self::Quota(quota)
    }
}

impl From<Window> for Limit {
    fn from(window: Window) -> Self {
        Self::Window(window)
    }
}

/// The time source of stores without a clock of their own (the memory store): microseconds
/// since the Unix epoch. Redis ignores it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, micros)
        }))
    }

    /// A clock read from `now` (microseconds since the Unix epoch), for tests and
    /// simulations.
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The time now, in microseconds.
    pub fn now_us(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// What a limiter does when its store fails (Redis unreachable or too slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Allow the request (the decision says `degraded`), logging at WARN at most once a
    /// second. For limits whose outage should not take the service down.
    Open,
    /// Fail with the backend error: adapters answer 503. For limits that protect
    /// something costly (SMS sending).
    #[default]
    Closed,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
