//! Rate limiting shared by every instance of a service: a GCRA limiter kept in Redis.
//!
//! A [`RateLimiter`] allows `rate` requests per `period` to each subject (a client IP, a
//! phone number, a user id), with a `burst`: up to `burst` requests at once, then one
//! every `period / rate` ([`Quota`]). It is the generic cell rate algorithm (GCRA): per
//! subject one number is stored, the theoretical arrival time (TAT); a request is allowed
//! when the TAT, moved on by one emission interval, stays within `burst` intervals of now.
//!
//! - **One round trip.** Each decision is one script call that reads the TAT, decides,
//!   writes the new TAT and answers the decision, the remaining budget, the exact wait
//!   before a refused request would be allowed (`retry_after`) and the time until the
//!   budget is full again (`reset`).
//! - **The server's clock.** The script takes the time from Redis (`TIME`), not from the
//!   application, so instances whose clocks disagree make the same decisions.
//! - **Small, self-cleaning state.** One key per limited subject,
//!   `keygate:rate:{<limiter name>:<subject>}` (one hash tag, so the script is single-slot
//!   on Redis Cluster), holding one integer with a TTL equal to the time until the budget
//!   is full again: an idle subject's key expires by itself. Names and subjects are
//!   escaped into the tag (they cannot close it, glob or collide); subjects longer than
//!   128 bytes are replaced by their SHA-256, so keys stay small whatever the subject.
//! - **Failure is a choice per limiter** ([`FailureMode`]): fail open (allow while Redis
//!   is unreachable, logging at WARN at most once a second) or fail closed (an error:
//!   adapters answer 503).
//!
//! The embedded [`MemoryStore`](crate::MemoryStore) makes the same decisions for the same
//! arrivals (the same function on the same integers, [`gcra`]), on the process's clock
//! (or one given with [`RateLimiter::with_clock`]).
//!
//! Subjects are never logged: they may be phone numbers.
//!
//! ```no_run
//! # async fn run() -> Result<(), keygate::Error> {
//! use keygate::RedisStore;
//! use keygate::rate_limit::{FailureMode, Quota, RateLimiter};
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
//! // 30 per minute, at most 10 at once; refuse (503) while Redis is unreachable.
//! let sms = RateLimiter::new(store, "sms", Quota::per_minute(30).with_burst(10))?
//!     .with_failure_mode(FailureMode::Closed);
//! let decision = sms.check("phone:13800138000").await?;
//! if !decision.allowed {
//!     println!("retry in {:?}", decision.retry_after);
//! }
//! # Ok(()) }
//! ```
//!
//! The framework adapters wrap a limiter in a middleware keyed by the client's IP
//! ([`client_ip`]); [`RateLimiter::admit`] and [`Refusal`] are the framework-neutral
//! part they translate.

#[cfg(feature = "memory")]
mod memory;
mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::config::MAX_TTL;
use crate::error::{Error, Result};
use crate::http::{Envelope, retry_after_secs};
use crate::transport::RequestParts;

/// Subjects longer than this (in bytes) are keyed by their SHA-256.
const MAX_PLAIN_SUBJECT: usize = 128;
/// The longest limiter name.
const MAX_NAME: usize = 64;

/// How many requests a subject may make: `rate` per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `rate` per `period`; the burst is `rate` (the whole budget may be used at once).
    pub fn new(rate: u32, period: Duration) -> Self {
        Self {
            rate,
            period,
            burst: rate,
        }
    }

    /// `rate` per second, burst `rate`.
    pub fn per_second(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(1))
    }

    /// `rate` per minute, burst `rate`.
    pub fn per_minute(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(60))
    }

    /// `rate` per hour, burst `rate`.
    pub fn per_hour(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(3600))
    }

    /// At most `burst` requests at once (at least 1).
    pub fn with_burst(self, burst: u32) -> Self {
        Self { burst, ..self }
    }

    /// Requests per period.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Refuses `rate` 0, a zero period or one above [`MAX_TTL`], `burst` 0, and a
    /// period shorter than `rate` microseconds.
    pub fn validate(&self) -> Result<()> {
        if self.rate == 0 {
            return Err(Error::Config("rate limit: rate must be positive".into()));
        }
        crate::config::check_ttl("rate limit period", self.period)?;
        if self.burst == 0 {
            return Err(Error::Config("rate limit: burst must be at least 1".into()));
        }
        let params = self.params();
        if params.interval_us == 0 {
            return Err(Error::Config(
                "rate limit: more than one request per microsecond".into(),
            ));
        }
        if params.tolerance_us > micros(MAX_TTL) {
            return Err(Error::Config(
                "rate limit: burst × period / rate is beyond the longest expiry keygate accepts"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The GCRA parameters of this quota.
    pub fn params(&self) -> GcraParams {
        let interval_us = micros(self.period) / u64::from(self.rate.max(1));
        GcraParams {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(self.burst)),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The integers a GCRA decision works on, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcraParams {
    /// The emission interval: `period / rate`.
    pub interval_us: u64,
    /// How far ahead of now the theoretical arrival time may run: `interval × burst`.
    pub tolerance_us: u64,
}

/// What a store answers for one decision, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcraReply {
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

/// One GCRA decision: given the stored theoretical arrival time (`None`: no key) and the
/// time now, the reply and the TAT to store (`None`: leave the key as it is). The Redis
/// script computes exactly this, on the same integers.
pub fn gcra(stored_tat: Option<u64>, now_us: u64, params: GcraParams) -> (GcraReply, Option<u64>) {
    let tat = stored_tat.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(params.interval_us);
    let allow_at = new_tat.saturating_sub(params.tolerance_us);
    if allow_at > now_us {
        let reply = GcraReply {
            allowed: false,
            remaining: 0,
            retry_after_us: allow_at - now_us,
            reset_us: tat - now_us,
            now_us,
        };
        return (reply, None);
    }
    let ahead = new_tat - now_us;
    let reply = GcraReply {
        allowed: true,
        remaining: params.tolerance_us.saturating_sub(ahead) / params.interval_us.max(1),
        retry_after_us: 0,
        reset_us: ahead,
        now_us,
    };
    (reply, Some(new_tat))
}

/// Storage of rate-limit state: one atomic GCRA decision per call.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Decides for the subject at `key` and records an allowed request, atomically.
    /// `clock` is the time now in microseconds for stores without a clock of their own;
    /// Redis ignores it and uses the server's `TIME`.
    async fn gcra(&self, key: &str, params: GcraParams, clock: &Clock) -> Result<GcraReply>;
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

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitDecision {
    /// Whether the request may go on (it has been counted).
    pub allowed: bool,
    /// The burst: the most requests allowed at once (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would still be allowed right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// For a refused request, how long until it would be allowed (zero when allowed).
    pub retry_after: Duration,
    /// How long until the whole burst is available again (`RateLimit-Reset`).
    pub reset: Duration,
    /// Allowed without asking the store, because it failed and the limiter fails open.
    pub degraded: bool,
}

impl RateLimitDecision {
    fn from_reply(reply: GcraReply, quota: &Quota) -> Self {
        Self {
            allowed: reply.allowed,
            limit: quota.burst,
            remaining: u32::try_from(reply.remaining)
                .unwrap_or(u32::MAX)
                .min(quota.burst),
            retry_after: Duration::from_micros(reply.retry_after_us),
            reset: Duration::from_micros(reply.reset_us),
            degraded: false,
        }
    }

    fn degraded(quota: &Quota) -> Self {
        Self {
            allowed: true,
            limit: quota.burst,
            remaining: quota.burst,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
            degraded: true,
        }
    }

    /// The IETF draft `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// headers (reset in whole seconds, rounded up), and for a refused request
    /// `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            (
                "RateLimit-Reset",
                u64::try_from(self.reset.as_millis().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .to_string(),
            ),
        ];
        if !self.allowed {
            headers.push((
                "Retry-After",
                retry_after_secs(self.retry_after).to_string(),
            ));
        }
        headers
    }
}

/// The message of a refused request's envelope.
pub const TOO_MANY_REQUESTS: &str = "too many requests";

/// What an adapter answers instead of running the handler: the status, the headers and
/// the JSON envelope body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// 429 (over the limit) or 503 (the store failed and the limiter fails closed) or 500
    /// (anything else).
    pub status: u16,
    /// Headers to set.
    pub headers: Vec<(&'static str, String)>,
    /// `{"success":false,"errorMsg":"..."}`.
    pub body: String,
}

impl Refusal {
    /// 429 for a refused decision.
    pub fn too_many(decision: &RateLimitDecision) -> Self {
        Self {
            status: 429,
            headers: decision.headers(),
            body: Envelope::error(TOO_MANY_REQUESTS).to_json(),
        }
    }

    /// 503 or 500 for an error (logged by the adapters' one policy).
    pub fn error(error: &Error) -> Self {
        crate::adapter::report_error(error);
        Self {
            status: error.status(),
            headers: Vec::new(),
            body: error.body(),
        }
    }
}

/// A limiter: a store, a name (part of its keys, so limiters with different names do not
/// share budgets), a quota and a failure mode. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    name: Arc<str>,
    quota: Quota,
    params: GcraParams,
    failure: FailureMode,
    clock: Clock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter named `name` (1 to 64 bytes) on `store`, failing closed. Fails with
    /// [`Error::Config`] for an invalid name or quota ([`Quota::validate`]).
    pub fn new(store: impl RateLimitStore, name: &str, quota: Quota) -> Result<Self> {
        Self::from_shared(Arc::new(store), name, quota)
    }

    /// Like [`new`](Self::new), on a shared store.
    pub fn from_shared(store: Arc<dyn RateLimitStore>, name: &str, quota: Quota) -> Result<Self> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Error::Config(format!(
                "rate limiter name must be 1 to {MAX_NAME} bytes"
            )));
        }
        quota.validate()?;
        Ok(Self {
            store,
            name: Arc::from(crate::keys::escape(name)),
            quota,
            params: quota.params(),
            failure: FailureMode::default(),
            clock: Clock::system(),
        })
    }

    /// What to do when the store fails (default [`FailureMode::Closed`]).
    pub fn with_failure_mode(self, failure: FailureMode) -> Self {
        Self { failure, ..self }
    }

    /// The clock of stores without one of their own (the memory store); Redis uses the
    /// server's clock whatever this is.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The failure mode.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure
    }

    /// The Redis key of `subject`: `keygate:rate:{<name>:<subject>}`, escaped (and a
    /// SHA-256 for subjects longer than 128 bytes).
    pub fn key(&self, subject: &str) -> String {
        let subject = if subject.len() > MAX_PLAIN_SUBJECT {
            let digest = Sha256::digest(subject.as_bytes());
            let mut hex = String::with_capacity(65);
            hex.push('#');
            for b in digest {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        } else {
            crate::keys::escape(subject)
        };
        format!("keygate:rate:{{{}:{subject}}}", self.name)
    }

    /// Decides whether `subject` may make one more request now, and counts it if so. A
    /// store failure is an error when failing closed, and an allowed, `degraded` decision
    /// when failing open.
    pub async fn check(&self, subject: &str) -> Result<RateLimitDecision> {
        match self
            .store
            .gcra(&self.key(subject), self.params, &self.clock)
            .await
        {
            Ok(reply) => Ok(RateLimitDecision::from_reply(reply, &self.quota)),
            Err(error) if error.is_backend() && self.failure == FailureMode::Open => {
                if crate::adapter::may_warn_now() {
                    tracing::warn!(%error, limiter = %self.name, "rate limit store failed; allowing (fail open, logged at most once a second)");
                }
                Ok(RateLimitDecision::degraded(&self.quota))
            }
            Err(error) => Err(error),
        }
    }

    /// [`check`](Self::check) for a middleware: the allowed decision, or what to answer
    /// instead of running the handler (429, or 503/500 when the store failed and the
    /// limiter fails closed).
    pub async fn admit(&self, subject: &str) -> std::result::Result<RateLimitDecision, Refusal> {
        match self.check(subject).await {
            Ok(decision) if decision.allowed => Ok(decision),
            Ok(decision) => Err(Refusal::too_many(&decision)),
            Err(error) => Err(Refusal::error(&error)),
        }
    }
}

/// What a middleware's key function sees of a request.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct KeyInput<'a> {
    /// The connection's peer address, when the framework knows it.
    pub peer: Option<IpAddr>,
    /// The client's IP: the peer, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy ([`client_ip`]).
    pub client_ip: Option<IpAddr>,
    /// The request's headers and query.
    pub request: &'a dyn RequestParts,
}

type KeyFn = dyn Fn(&KeyInput<'_>) -> Option<String> + Send + Sync;

/// A limiter as the adapters' middleware applies it: which subject a request counts
/// against (by default its client IP, `ip:<address>`), and which proxies are trusted to
/// say who the client is. Cheap to clone.
#[derive(Clone)]
pub struct RateLimitPolicy {
    limiter: RateLimiter,
    trusted: Arc<[IpAddr]>,
    key: Option<Arc<KeyFn>>,
}

impl std::fmt::Debug for RateLimitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitPolicy")
            .field("limiter", &self.limiter)
            .field("trusted_proxies", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl RateLimitPolicy {
    /// Every request counts against its client IP: the connection's peer address (no
    /// proxy is trusted). A request whose peer address the framework does not know counts
    /// against one shared subject, `ip:unknown`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self {
            limiter,
            trusted: Arc::from(Vec::new()),
            key: None,
        }
    }

    /// Trusts these proxies' `X-Forwarded-For` (its first header line): when the peer is
    /// one of them, the client IP is the rightmost address of the header that is not one
    /// of them ([`client_ip`]). Never list an address clients can connect from directly.
    pub fn with_trusted_proxies(self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            trusted: proxies.into_iter().collect(),
            ..self
        }
    }

    /// Keys requests by `key` instead of the client IP; `None` lets a request through
    /// without counting it (an exempt route or client).
    pub fn with_key(
        self,
        key: impl Fn(&KeyInput<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            key: Some(Arc::new(key)),
            ..self
        }
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The subject a request counts against (`None`: not counted).
    pub fn subject(&self, peer: Option<IpAddr>, request: &dyn RequestParts) -> Option<String> {
        let forwarded = request
            .header("x-forwarded-for")
            .and_then(|v| std::str::from_utf8(v).ok());
        let client = peer.map(|peer| client_ip(peer, forwarded, &self.trusted));
        match &self.key {
            Some(key) => key(&KeyInput {
                peer,
                client_ip: client,
                request,
            }),
            None => Some(match client {
                Some(ip) => format!("ip:{ip}"),
                None => "ip:unknown".to_owned(),
            }),
        }
    }

    /// Decides for a request's subject: `Ok` to run the handler (with the decision, `None`
    /// for an uncounted request), or the [`Refusal`] to answer instead.
    pub async fn admit(
        &self,
        subject: Option<String>,
    ) -> std::result::Result<Option<RateLimitDecision>, Refusal> {
        match subject {
            Some(subject) => self.limiter.admit(&subject).await.map(Some),
            None => Ok(None),
        }
    }
}

/// The client's IP for rate limiting: the connection's `peer`, unless `peer` is one of the
/// `trusted` proxies; then the rightmost address of `X-Forwarded-For` (`forwarded_for`,
/// the header's values joined by commas) that is not a trusted proxy. A malformed hop
/// stops the walk at the last trusted address seen, so a client cannot pick its key by
/// sending garbage.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    if let Some(header) = forwarded_for {
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !trusted.contains(&ip) {
                break;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let params = Quota::per_minute(3).params();
        assert_eq!(params.interval_us, 20_000_000);
        let mut tat = None;
        let t0 = 1_000_000_000;
        for left in [2, 1, 0] {
            let (reply, new) = gcra(tat, t0, params);
            assert!(reply.allowed);
            assert_eq!(reply.remaining, left);
            tat = new;
        }
        let (reply, new) = gcra(tat, t0 + 1, params);
        assert!(!reply.allowed);
        assert_eq!(new, None);
        assert_eq!(reply.retry_after_us, 20_000_000 - 1);
        assert_eq!(reply.reset_us, 60_000_000 - 1);
        let (reply, _) = gcra(tat, t0 + 20_000_000, params);
        assert!(reply.allowed);
    }

    #[test]
    fn quotas_are_validated() {
        assert!(Quota::per_minute(0).validate().is_err());
        assert!(Quota::per_minute(3).with_burst(0).validate().is_err());
        assert!(Quota::new(1, Duration::ZERO).validate().is_err());
        assert!(
            Quota::new(1, MAX_TTL + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(Quota::new(1, MAX_TTL).with_burst(2).validate().is_err());
        assert!(Quota::per_minute(30).with_burst(10).validate().is_ok());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let peer: IpAddr = "203.0.113.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let xff = Some("1.1.1.1, 198.51.100.7");
        assert_eq!(client_ip(peer, xff, &[proxy]), peer);
        assert_eq!(
            client_ip(proxy, xff, &[proxy]),
            IpAddr::from([198, 51, 100, 7])
        );
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7, 10.0.0.1"), &[proxy]),
            IpAddr::from([198, 51, 100, 7])
        );
        assert_eq!(client_ip(proxy, Some("junk"), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
    }

    #[test]
    fn refusals_carry_the_headers() {
        let decision = RateLimitDecision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after: Duration::from_millis(19_001),
            reset: Duration::from_millis(59_001),
            degraded: false,
        };
        let refusal = Refusal::too_many(&decision);
        assert_eq!(refusal.status, 429);
        assert_eq!(
            refusal.body,
            r#"{"success":false,"errorMsg":"too many requests"}"#
        );
        assert!(refusal.headers.contains(&("Retry-After", "20".into())));
        assert!(refusal.headers.contains(&("RateLimit-Reset", "60".into())));
        assert!(refusal.headers.contains(&("RateLimit-Limit", "3".into())));
    }
}
