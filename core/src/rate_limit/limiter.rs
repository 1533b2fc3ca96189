//! The limiter: a store, a name, a limit and a failure mode.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::coalesce::Coalescer;
use super::refusals::Refusals;
use super::{Clock, FailureMode, Limit, RateLimitDecision, RateLimitStore};
use crate::error::{Error, Result};
use crate::log_throttle::LogThrottle;
use crate::telemetry;

/// Subjects longer than this (in bytes) are keyed by their SHA-256.
const MAX_PLAIN_SUBJECT: usize = 128;
/// The longest limiter name.
const MAX_NAME: usize = 64;

/// A limiter: a store, a name (part of its keys, so limiters with different names do not
/// share budgets), a [`Limit`] and a failure mode. Cheap to clone (one reference count:
/// a layer clones it for every request).
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    store: Arc<dyn RateLimitStore>,
    name: Arc<str>,
    limit: Limit,
    failure: FailureMode,
    clock: Clock,
    decisions: Decisions,
    /// Shared by clones, so a subject's overlapping checks share a call.
    coalescer: Arc<Coalescer>,
    /// Shared by clones: the refusals held until their waits are over.
    refusals: Arc<Refusals>,
}

/// The limiter's decision counters, registered once when it is built (see
/// [`telemetry`](crate::telemetry)).
#[derive(Clone)]
struct Decisions {
    allowed: metrics::Counter,
    refused: metrics::Counter,
    failed_open: metrics::Counter,
    failed_closed: metrics::Counter,
    op: telemetry::OpMetrics,
}

impl Decisions {
    fn register(limiter: &str) -> Self {
        let outcome = |o: &'static str| {
            metrics::counter!(
                telemetry::names::RATE_LIMIT_DECISIONS,
                "limiter" => limiter.to_owned(),
                "outcome" => o
            )
        };
        Self {
            allowed: outcome("allowed"),
            refused: outcome("refused"),
            failed_open: outcome("failed_open"),
            failed_closed: outcome("failed_closed"),
            op: telemetry::OpMetrics::register("rate_limit"),
        }
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.shared.name)
            .field("limit", &self.shared.limit)
            .field("failure", &self.shared.failure)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter named `name` (1 to 64 bytes) on `store`, failing closed, enforcing a
    /// [`Quota`](super::Quota) (GCRA) or a [`Window`](super::Window) (sliding window). Fails
    /// with [`Error::Config`] for an invalid name or limit ([`Limit::validate`]).
    pub fn new(store: impl RateLimitStore, name: &str, limit: impl Into<Limit>) -> Result<Self> {
        Self::from_shared(Arc::new(store), name, limit)
    }

    /// Like [`new`](Self::new), on a shared store.
    pub fn from_shared(
        store: Arc<dyn RateLimitStore>,
        name: &str,
        limit: impl Into<Limit>,
    ) -> Result<Self> {
        let limit = limit.into();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Error::Config(format!(
                "rate limiter name must be 1 to {MAX_NAME} bytes"
            )));
        }
        limit.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                decisions: Decisions::register(name),
                name: Arc::from(crate::key_escape::escape(name)),
                limit,
                failure: FailureMode::default(),
                clock: Clock::system(),
                coalescer: Arc::default(),
                refusals: Arc::default(),
            }),
        })
    }

    /// What to do when the store fails (default [`FailureMode::Closed`]).
    pub fn with_failure_mode(mut self, failure: FailureMode) -> Self {
        self.own().failure = failure;
        self
    }

    /// The clock of stores without one of their own (the memory store), and of the
    /// refusals the limiter holds ([`with_refusal_cache`](Self::with_refusal_cache)); Redis
    /// decides on the server's clock whatever this is.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.own().clock = clock;
        self
    }

    /// Holds at most `capacity` refusals (default
    /// [`DEFAULT_REFUSAL_CACHE`](super::DEFAULT_REFUSAL_CACHE), 10,000): a subject the store
    /// refused is refused by the limiter itself until its wait is over, without a store
    /// call (see the [module docs](super)). Past the capacity the least recently used is
    /// forgotten (its next check asks the store). 0 holds none: every check asks.
    pub fn with_refusal_cache(mut self, capacity: usize) -> Self {
        self.own().refusals = Arc::new(Refusals::new(capacity));
        self
    }

    /// This limiter's settings, to change: its own copy, with calls and held refusals of
    /// its own (a clone taken earlier keeps the old settings and must not share calls or
    /// refusals decided with the new ones).
    fn own(&mut self) -> &mut Shared {
        let shared = Arc::make_mut(&mut self.shared);
        shared.coalescer = Arc::default();
        shared.refusals = Arc::new(Refusals::new(shared.refusals.capacity()));
        shared
    }

    /// The limit.
    pub fn limit(&self) -> &Limit {
        &self.shared.limit
    }

    /// The failure mode.
    pub fn failure_mode(&self) -> FailureMode {
        self.shared.failure
    }

    /// The Redis key of `subject`: `keygate:rate:{<name>:<subject>}`, escaped (and a
    /// SHA-256 for subjects longer than 128 bytes).
    pub fn key(&self, subject: &str) -> String {
        let name = &self.shared.name;
        let mut key = String::with_capacity(16 + name.len() + subject.len().min(70) * 3);
        key.push_str("keygate:rate:{");
        key.push_str(name);
        key.push(':');
        if subject.len() > MAX_PLAIN_SUBJECT {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            key.push('#');
            for b in Sha256::digest(subject.as_bytes()) {
                key.push(char::from(HEX[usize::from(b >> 4)]));
                key.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        } else {
            crate::key_escape::escape_into(&mut key, subject);
        }
        key.push('}');
        key
    }

    /// Decides whether `subject` may make one more request now, and counts it if so.
    /// Checks of one subject that overlap on this instance share a store call, and a
    /// subject refused is refused without a call until its wait is over (see the
    /// [module docs](super)). A store failure is an error when failing closed, and an
    /// allowed, `degraded` decision when failing open.
    pub async fn check(&self, subject: &str) -> Result<RateLimitDecision> {
        let key = self.key(subject);
        let key = key.as_str();
        let shared = &*self.shared;
        let counters = &shared.decisions;
        if let Some(held) = shared.refusals.refused(key, shared.clock.now_us()) {
            counters.refused.increment(1);
            return Ok(RateLimitDecision::from_reply(held, shared.limit.at_once()));
        }
        let decide = shared.coalescer.check(key, |arrivals| async move {
            // Checks queued behind a call that was refused are refused with it.
            let sent_us = shared.clock.now_us();
            if let Some(held) = shared.refusals.refused(key, sent_us) {
                return Ok(vec![held; arrivals as usize]);
            }
            let replies = match shared.limit {
                Limit::Quota(quota) => {
                    let params = quota.params();
                    (shared.store)
                        .gcra_arrivals(key, params, &shared.clock, arrivals)
                        .await
                }
                Limit::Window(window) => {
                    let params = window.params();
                    (shared.store)
                        .window_arrivals(key, params, &shared.clock, arrivals)
                        .await
                }
            }?;
            // Arrivals are decided in order at one instant: the last one is the state after
            // all of them.
            if let Some(last) = replies.last() {
                shared.refusals.hold(key, sent_us, last);
            }
            Ok(replies)
        });
        let (decision, counter) = match counters.op.timed(decide).await {
            Ok(reply) => {
                let decision = RateLimitDecision::from_reply(reply, self.shared.limit.at_once());
                let counter = if decision.allowed {
                    &counters.allowed
                } else {
                    &counters.refused
                };
                (Ok(decision), counter)
            }
            Err(error) if error.is_backend() && self.shared.failure == FailureMode::Open => {
                static FAILED_OPEN: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = FAILED_OPEN.allow() {
                    tracing::warn!(%error, suppressed, limiter = %self.shared.name, "rate limit store failed; allowing (fail open, logged at most once a second)");
                }
                (
                    Ok(RateLimitDecision::degraded(self.shared.limit.at_once())),
                    &counters.failed_open,
                )
            }
            Err(error) => (Err(error), &counters.failed_closed),
        };
        counter.increment(1);
        decision
    }
}
