//! Metrics and tracing spans: what keygate records for whoever operates it.
//!
//! Metrics go through the [`metrics`](https://docs.rs/metrics) facade: keygate records, the
//! application installs the exporter it wants (Prometheus, StatsD, ...) or none, in which
//! case recording costs next to nothing. Install the recorder before building keygate's
//! session managers: the per-request metrics are registered once, when a manager is built
//! (a name lookup per request would cost more than the load it counts). Label values are
//! fixed words from the table
//! below or names the application chose (a limiter's name, a backend operation): never a
//! token, a code, a phone number or a user id.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `keygate_session_loads_total` | counter | `outcome` = `hit`, `miss`, `malformed`, `corrupt`, `backend_error` | session loads (one per request that carries a token, or none) |
//! | `keygate_backend_seconds` | histogram | `op` (`load`, `login`, `logout`, `logout_everywhere`, `end_session`, `operator_end`, `rotate`, `sessions`, `update`, `replace`, `code_send`, `code_verify`, `flash_sale_order`, `rate_limit`) | time of one backend operation, errors included |
//! | `keygate_backend_errors_total` | counter | `op` | backend operations that failed (unreachable, timeout, script error) |
//! | `keygate_rejections_total` | counter | `status` = `401`, `403`, `429`, `503` | requests an adapter refused before the handler |
//! | `keygate_logins_total` | counter | | sessions created |
//! | `keygate_logouts_total` | counter | `kind` = `one`, `everywhere`, `session`, `operator` | sessions ended on request (`session`: one by id) |
//! | `keygate_rotations_total` | counter | | tokens rotated |
//! | `keygate_session_events_total` | counter | `kind` = `login`, `logout`, `session-ended`, `logout-all`, `rotated`, `expired`, `evicted`, `operator-ended` | events recorded in the session event log (off unless configured) |
//! | `keygate_session_events_dropped_total` | counter | | events recorded for their user but not copied to the stream of all users (on a Redis Cluster, when that write failed) |
//! | `keygate_code_issued_total` | counter | `outcome` = `sent`, `cooldown`, `daily_limit`, `send_failed` | verification code requests |
//! | `keygate_code_verified_total` | counter | `outcome` = `ok`, `wrong`, `burned`, `missing` | verification attempts |
//! | `keygate_lock_acquired_total` | counter | | locks taken |
//! | `keygate_lock_waited_seconds` | histogram | | time from asking for a lock to holding it |
//! | `keygate_lock_busy_total` | counter | | lock requests that gave up (held elsewhere past the wait) |
//! | `keygate_lock_lost_total` | counter | | held locks found lost (lease expired or taken over) |
//! | `keygate_flash_sale_orders_total` | counter | `outcome` = `ordered`, `sold_out`, `already_ordered`, `unknown_voucher`, `not_started`, `ended` | flash-sale order attempts |
//! | `keygate_flash_sale_handled_total` | counter | `outcome` = `ok`, `failed`, `panicked` | orders the consumer handed to the handler |
//! | `keygate_flash_sale_dead_lettered_total` | counter | | orders moved to the dead-letter stream |
//! | `keygate_flash_sale_consumer_lag` | gauge | `shard` | orders not yet delivered to the consumer group (set by the running consumer every claim interval) |
//! | `keygate_flash_sale_pending` | gauge | `shard` | orders delivered and not yet acknowledged |
//! | `keygate_flash_sale_dead_letters` | gauge | `shard` | entries of the dead-letter stream |
//! | `keygate_rate_limit_decisions_total` | counter | `limiter` (the limiter's name), `outcome` = `allowed`, `refused`, `failed_open`, `failed_closed` | rate-limit decisions |
//!
//! Spans (level DEBUG, target `keygate`): `keygate.load` per session load (fields `layout`,
//! `outcome`, `elapsed_us`; never the token) and `keygate.op` per other backend operation
//! (fields `op`, `elapsed_us`), and `keygate.lock` per lock request (fields `outcome`,
//! `waited_us`; not the lock's name), and `keygate.order` per order the consumer handles
//! (fields `order_id`, `deliveries`). They open inside whatever span is current, so they
//! nest under the framework's request span.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::error::Result;
pub use crate::log_throttle::LogThrottle;

/// Metric names (the table in the [module docs](self)).
pub mod names {
    /// Session loads by outcome.
    pub const SESSION_LOADS: &str = "keygate_session_loads_total";
    /// Backend operation time.
    pub const BACKEND_SECONDS: &str = "keygate_backend_seconds";
    /// Failed backend operations.
    pub const BACKEND_ERRORS: &str = "keygate_backend_errors_total";
    /// Requests refused before the handler.
    pub const REJECTIONS: &str = "keygate_rejections_total";
    /// Sessions created.
    pub const LOGINS: &str = "keygate_logins_total";
    /// Sessions ended on request.
    pub const LOGOUTS: &str = "keygate_logouts_total";
    /// Tokens rotated.
    pub const ROTATIONS: &str = "keygate_rotations_total";
    /// Session events recorded, by kind.
    pub const SESSION_EVENTS: &str = "keygate_session_events_total";
    /// Session events not copied to the stream of all users.
    pub const SESSION_EVENTS_DROPPED: &str = "keygate_session_events_dropped_total";
    /// Verification code requests.
    pub const CODE_ISSUED: &str = "keygate_code_issued_total";
    /// Verification attempts.
    pub const CODE_VERIFIED: &str = "keygate_code_verified_total";
    /// Locks taken.
    pub const LOCK_ACQUIRED: &str = "keygate_lock_acquired_total";
    /// Time to take a lock.
    pub const LOCK_WAITED: &str = "keygate_lock_waited_seconds";
    /// Lock requests that gave up.
    pub const LOCK_BUSY: &str = "keygate_lock_busy_total";
    /// Held locks found lost.
    pub const LOCK_LOST: &str = "keygate_lock_lost_total";
    /// Flash-sale order attempts by outcome.
    pub const FLASH_SALE_ORDERS: &str = "keygate_flash_sale_orders_total";
    /// Orders the consumer handed to the handler, by outcome.
    pub const FLASH_SALE_HANDLED: &str = "keygate_flash_sale_handled_total";
    /// Orders moved to the dead-letter stream.
    pub const FLASH_SALE_DEAD_LETTERED: &str = "keygate_flash_sale_dead_lettered_total";
    /// Orders of a shard's stream not yet delivered to the consumer group (gauge).
    pub const FLASH_SALE_LAG: &str = "keygate_flash_sale_consumer_lag";
    /// Orders delivered to the group and not yet acknowledged (gauge).
    pub const FLASH_SALE_PENDING: &str = "keygate_flash_sale_pending";
    /// Entries of a shard's dead-letter stream (gauge).
    pub const FLASH_SALE_DEAD_LETTERS: &str = "keygate_flash_sale_dead_letters";
    /// Rate-limit decisions by limiter and outcome.
    pub const RATE_LIMIT_DECISIONS: &str = "keygate_rate_limit_decisions_total";
}

/// How a session load ended, as counted in `keygate_session_loads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadOutcome {
    Hit,
    Miss,
    Malformed,
    Corrupt,
    BackendError,
}

impl LoadOutcome {
    fn label(self) -> &'static str {
        match self {
            LoadOutcome::Hit => "hit",
            LoadOutcome::Miss => "miss",
            LoadOutcome::Malformed => "malformed",
            LoadOutcome::Corrupt => "corrupt",
            LoadOutcome::BackendError => "backend_error",
        }
    }
}

/// Counts a load that never reached the backend (a malformed token).
pub(crate) fn malformed_load() {
    count(
        names::SESSION_LOADS,
        "outcome",
        LoadOutcome::Malformed.label(),
    );
}

/// The metrics of the request path (one session load per request), registered once when
/// a session manager is built rather than looked up by name on every request: the
/// recorder must therefore be installed before keygate's managers are built.
#[derive(Clone)]
pub(crate) struct LoadMetrics {
    hit: metrics::Counter,
    miss: metrics::Counter,
    corrupt: metrics::Counter,
    backend_error: metrics::Counter,
    op: OpMetrics,
}

impl LoadMetrics {
    /// Registers the handles with the recorder installed now.
    pub(crate) fn register() -> Self {
        let outcome =
            |o: LoadOutcome| metrics::counter!(names::SESSION_LOADS, "outcome" => o.label());
        Self {
            hit: outcome(LoadOutcome::Hit),
            miss: outcome(LoadOutcome::Miss),
            corrupt: outcome(LoadOutcome::Corrupt),
            backend_error: outcome(LoadOutcome::BackendError),
            op: OpMetrics::register("load"),
        }
    }

    fn record(&self, outcome: LoadOutcome, elapsed: std::time::Duration) {
        let counter = match outcome {
            LoadOutcome::Hit => &self.hit,
            LoadOutcome::Miss => &self.miss,
            LoadOutcome::Corrupt => &self.corrupt,
            LoadOutcome::BackendError | LoadOutcome::Malformed => &self.backend_error,
        };
        counter.increment(1);
        self.op.seconds.record(elapsed.as_secs_f64());
        if outcome == LoadOutcome::BackendError {
            self.op.errors.increment(1);
        }
    }
}

/// The time and failures of one backend operation on the request path, registered once
/// (see [`LoadMetrics`]).
#[derive(Clone)]
pub(crate) struct OpMetrics {
    op: &'static str,
    seconds: metrics::Histogram,
    errors: metrics::Counter,
}

impl OpMetrics {
    /// Registers the handles of `op` with the recorder installed now.
    pub(crate) fn register(op: &'static str) -> Self {
        Self {
            op,
            seconds: metrics::histogram!(names::BACKEND_SECONDS, "op" => op),
            errors: metrics::counter!(names::BACKEND_ERRORS, "op" => op),
        }
    }

    /// Runs `work` inside a `keygate.op` span and records its time (and its failure).
    pub(crate) async fn timed<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.timed_by(work, Result::is_err).await
    }

    /// Like [`timed`](Self::timed), for operations whose error type says more than
    /// failure: `failed` tells which outcomes count as the backend's failure.
    pub(crate) async fn timed_by<T, E>(
        &self,
        work: impl Future<Output = std::result::Result<T, E>>,
        failed: impl Fn(&std::result::Result<T, E>) -> bool,
    ) -> std::result::Result<T, E> {
        let span = debug_span_if_wanted(|| {
            tracing::debug_span!(
                target: "keygate",
                "keygate.op",
                op = self.op,
                elapsed_us = tracing::field::Empty
            )
        });
        let started = Instant::now();
        // A disabled span (no subscriber wants it) is not entered on every poll.
        let result = if span.is_disabled() {
            work.await
        } else {
            work.instrument(span.clone()).await
        };
        let elapsed = started.elapsed();
        self.seconds.record(elapsed.as_secs_f64());
        if failed(&result) {
            self.errors.increment(1);
        }
        if !span.is_disabled() {
            span.record(
                "elapsed_us",
                u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            );
        }
        result
    }
}

/// The span `make` builds when some subscriber may want debug spans, else a disabled one
/// without building it: with no subscriber (or none at debug level) a span costs a branch
/// (building even a disabled span costs its metadata checks and, with `tracing`'s `log`
/// feature on, a log record check).
fn debug_span_if_wanted(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        make()
    } else {
        tracing::Span::none()
    }
}

/// One session load's `keygate.load` span and clock, started before the load and finished
/// with its outcome. The caller awaits the load itself (inside [`span`](Self::span) when a
/// subscriber wants it): a wrapper future taking the load by value would copy it twice.
pub(crate) struct LoadTiming {
    span: tracing::Span,
    started: Instant,
}

impl LoadTiming {
    pub(crate) fn start(layout: &'static str) -> Self {
        let span = debug_span_if_wanted(|| {
            tracing::debug_span!(
                target: "keygate",
                "keygate.load",
                layout,
                outcome = tracing::field::Empty,
                elapsed_us = tracing::field::Empty
            )
        });
        Self {
            span,
            started: Instant::now(),
        }
    }

    /// When the load began: the clock reading a load may use as its "now".
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The span to run the load in; `None` when no subscriber wants it (a disabled span is
    /// not entered on every poll).
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        (!self.span.is_disabled()).then_some(&self.span)
    }

    /// Records the load's outcome and time.
    pub(crate) fn finish(self, metrics: &LoadMetrics, outcome: LoadOutcome) {
        let elapsed = self.started.elapsed();
        metrics.record(outcome, elapsed);
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome.label());
            self.span.record(
                "elapsed_us",
                u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            );
        }
    }
}

/// Counts a refusal an adapter answers before the handler, by status.
pub fn rejection(status: u16) {
    let label = match status {
        401 => "401",
        403 => "403",
        429 => "429",
        503 => "503",
        _ => "other",
    };
    count(names::REJECTIONS, "status", label);
}

/// Adds one to a counter with one label.
pub(crate) fn count(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

/// Adds `n` to a counter without labels.
pub(crate) fn count_n(name: &'static str, n: u64) {
    metrics::counter!(name).increment(n);
}

/// Adds `n` to a counter with one label.
pub(crate) fn count_label_n(name: &'static str, label: &'static str, value: &'static str, n: u64) {
    metrics::counter!(name, label => value).increment(n);
}

/// Runs one backend operation inside a `keygate.op` span and records its time (and its
/// failure, if it fails).
pub(crate) async fn timed<T>(op: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
    // Off the request path: looking the handles up by name each time is fine here.
    OpMetrics::register(op).timed(work).await
}
