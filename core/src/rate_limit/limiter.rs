//! The limiter: a store, a name, a limit and a failure mode.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::coalesce::Coalescer;
use super::{Clock, FailureMode, Limit, RateLimitDecision, RateLimitStore, Refusal};
use crate::error::{Error, Result};
use crate::telemetry;

/// Subjects longer than this (in bytes) are keyed by their SHA-256.
const MAX_PLAIN_SUBJECT: usize = 128;
/// The longest limiter name.
const MAX_NAME: usize = 64;

/// A limiter: a store, a name (part of its keys, so limiters with different names do not
/// share budgets), a [`Limit`] and a failure mode. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    name: Arc<str>,
    limit: Limit,
    failure: FailureMode,
    clock: Clock,
    decisions: Decisions,
    /// Shared by clones, so a subject's overlapping checks share a call.
    coalescer: Arc<Coalescer>,
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
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("failure", &self.failure)
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
            store,
            decisions: Decisions::register(name),
            name: Arc::from(crate::keys::escape(name)),
            limit,
            failure: FailureMode::default(),
            clock: Clock::system(),
            coalescer: Arc::default(),
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

    /// The limit.
    pub fn limit(&self) -> &Limit {
        &self.limit
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

    /// Decides whether `subject` may make one more request now, and counts it if so.
    /// Checks of one subject that overlap share a store call (see the
    /// [module docs](super)). A store failure is an error when failing closed, and an allowed, `degraded` decision
    /// when failing open.
    pub async fn check(&self, subject: &str) -> Result<RateLimitDecision> {
        let key = self.key(subject);
        let key = key.as_str();
        let decide = self.coalescer.check(key, |arrivals| async move {
            match self.limit {
                Limit::Quota(quota) => {
                    self.store
                        .gcra_arrivals(key, quota.params(), &self.clock, arrivals)
                        .await
                }
                Limit::Window(window) => {
                    self.store
                        .window_arrivals(key, window.params(), &self.clock, arrivals)
                        .await
                }
            }
        });
        let counters = &self.decisions;
        let (decision, counter) = match counters.op.timed(decide).await {
            Ok(reply) => {
                let decision = RateLimitDecision::from_reply(reply, self.limit.at_once());
                let counter = if decision.allowed {
                    &counters.allowed
                } else {
                    &counters.refused
                };
                (Ok(decision), counter)
            }
            Err(error) if error.is_backend() && self.failure == FailureMode::Open => {
                if crate::adapter::may_warn_now() {
                    tracing::warn!(%error, limiter = %self.name, "rate limit store failed; allowing (fail open, logged at most once a second)");
                }
                (
                    Ok(RateLimitDecision::degraded(self.limit.at_once())),
                    &counters.failed_open,
                )
            }
            Err(error) => (Err(error), &counters.failed_closed),
        };
        counter.increment(1);
        decision
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
