//! Processing orders from the stream with a consumer group.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::sale::FlashSale;
use super::{Entry, FlashSaleStore, Order, ShardKeys};
use crate::telemetry::{self, names};
use crate::token::Token;
use crate::ttl::millis;

/// Idle-claim passes per claim interval at most, when passes find nothing idle.
const CLAIM_PASSES: usize = 32;

/// The error recorded for (and dead-lettered with) an order whose handler panicked.
const HANDLER_PANICKED: &str = "handler panicked";

/// The handler failed; the order stays pending and is retried after the claim idle time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// What the app does with each order (typically: write it to its database). Called at
/// least once per order: make it idempotent by [`Order::order_id`]. A handler that panics
/// counts as a failed delivery (error `handler panicked`, logged at ERROR without the
/// panic's message); the consumer keeps running.
#[async_trait]
pub trait OrderHandler: Send + Sync + 'static {
    /// Processes one order. `Ok` acknowledges it; `Err` leaves it for a retry.
    async fn handle(&self, order: &Order) -> Result<(), HandlerError>;
}

/// Consumer settings. Defaults: group `keygate-orders`, a unique consumer name per process
/// and consumer, batches of 16, reads blocking up to 2 s, entries idle 30 s reclaimed every
/// 5 s, dead-lettered after 5 deliveries, the orders stream trimmed every 5 s, the newest
/// 10,000 dead letters kept per shard.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    group: String,
    name: Option<String>,
    batch: usize,
    block: Duration,
    claim_idle: Duration,
    claim_every: Duration,
    max_deliveries: u64,
    trim_every: Option<Duration>,
    dead_letter_cap: u64,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            group: "keygate-orders".into(),
            name: None,
            batch: 16,
            block: Duration::from_secs(2),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(5),
            max_deliveries: 5,
            trim_every: Some(Duration::from_secs(5)),
            dead_letter_cap: 10_000,
        }
    }
}

impl ConsumerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The consumer group (all processes that share the work use the same one).
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// A fixed consumer name (default: unique per process and consumer). A consumer that
    /// restarts under the same name first finishes its own pending entries.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Entries read at once; those handled are acknowledged together after the batch, in
    /// one round trip (an entry handled before a crash mid-batch is handled again).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Longest a read waits for new entries. A [`ConsumerHandle::shutdown`] does not wait
    /// for it: the read in flight is dropped with its connection, so nothing more is
    /// delivered to the stopped consumer.
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block.clamp(Duration::from_millis(1), crate::ttl::MAX_TTL);
        self
    }

    /// Entries pending this long are taken over (their consumer is presumed dead) and
    /// failed entries retried; checked every `every`.
    pub fn with_claim(mut self, idle: Duration, every: Duration) -> Self {
        self.claim_idle = idle.min(crate::ttl::MAX_TTL);
        self.claim_every = every.clamp(Duration::from_millis(1), crate::ttl::MAX_TTL);
        self
    }

    /// Deliveries after which an entry goes to the dead-letter stream.
    pub fn with_max_deliveries(mut self, max: u64) -> Self {
        self.max_deliveries = max.max(1);
        self
    }

    /// How often each shard's worker trims the orders stream (`None`: never). A trim
    /// removes only entries every consumer group of the stream is done with: those before
    /// the oldest pending entry (with any consumer, crashed ones included) and the last
    /// delivered one of every group. The stream then holds about the pending and
    /// undelivered orders, not every order ever taken. Turn it off if something else reads
    /// the stream without a consumer group.
    pub fn with_trim_every(mut self, every: Option<Duration>) -> Self {
        self.trim_every = every.map(|every| every.max(Duration::from_millis(1)));
        self
    }

    /// The most dead letters kept per shard (at least 1): beyond it, the oldest dead
    /// letters are dropped from the dead-letter stream.
    pub fn with_dead_letter_cap(mut self, cap: u64) -> Self {
        self.dead_letter_cap = cap.max(1);
        self
    }
}

/// Runs an [`OrderHandler`] over the orders stream of every shard.
pub struct OrderConsumer {
    store: Arc<dyn FlashSaleStore>,
    shards: u64,
    handler: Arc<dyn OrderHandler>,
    options: ConsumerOptions,
}

impl std::fmt::Debug for OrderConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderConsumer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A running consumer. [`shutdown`](Self::shutdown) stops it after the order in hand;
/// dropping the handle stops it too.
#[derive(Debug)]
pub struct ConsumerHandle {
    name: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ConsumerHandle {
    /// The consumer's name in the group.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops at once, mid-order if need be, as a crash would: whatever was taken and not
    /// acknowledged stays pending and is reclaimed by another consumer.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Stops reading, lets the order being handled finish, and waits for that. A blocking
    /// read in flight is abandoned at once, not waited out.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl OrderConsumer {
    /// A consumer of `sale`'s orders.
    pub fn new(sale: &FlashSale, handler: impl OrderHandler, options: ConsumerOptions) -> Self {
        Self {
            store: Arc::clone(&sale.store),
            shards: sale.shards,
            handler: Arc::new(handler),
            options,
        }
    }

    /// Starts one task per shard on the current Tokio runtime.
    pub fn spawn(self) -> ConsumerHandle {
        let name = self.options.name.clone().unwrap_or_else(unique_name);
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(self);
        let tasks = (0..shared.shards)
            .map(|shard| {
                let worker = Worker {
                    consumer: Arc::clone(&shared),
                    keys: ShardKeys::new(shard),
                    shard: shard.to_string(),
                    claim_cursor: "0-0".to_owned(),
                    name: name.clone(),
                    stopped: stopped.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        ConsumerHandle { name, stop, tasks }
    }
}

/// `keygate-<pid>-<random>`: unique per process and per consumer in it.
fn unique_name() -> String {
    let random = Token::generate()
        .map(|t| t.expose()[..8].to_owned())
        .unwrap_or_default();
    format!("keygate-{}-{random}", std::process::id())
}

struct Worker {
    consumer: Arc<OrderConsumer>,
    keys: ShardKeys,
    /// Where the next idle-claim pass starts: passes go round the pending list instead of
    /// looking at its head again each time.
    claim_cursor: String,
    name: String,
    stopped: watch::Receiver<bool>,
    /// The shard's number, as the gauges' label.
    shard: String,
}

impl Worker {
    fn stopping(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Waits `pause` unless asked to stop first.
    async fn pause(&mut self, pause: Duration) {
        tokio::select! {
            _ = self.stopped.changed() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }

    async fn run(mut self) {
        let c = Arc::clone(&self.consumer);
        let o = &c.options;
        let retry = Duration::from_millis(500);
        // Set-up: the group exists and a reader is connected; retried until Redis answers.
        let mut reader = loop {
            if self.stopping() {
                return;
            }
            let ready = async {
                c.store.ensure_group(&self.keys, &o.group).await?;
                c.store.reader().await
            };
            match ready.await {
                Ok(reader) => break reader,
                Err(error) => {
                    tracing::warn!(%error, "order consumer cannot start yet");
                    self.pause(retry).await;
                }
            }
        };
        // A restart under the same name first finishes what it had taken.
        match c
            .store
            .read_own_pending(&self.keys, &o.group, &self.name, o.batch * 64)
            .await
        {
            Ok(entries) => self.process(entries).await,
            Err(error) => tracing::warn!(%error, "reading own pending orders failed"),
        }
        let mut next_claim = Instant::now();
        let mut next_trim = o.trim_every.map(|every| Instant::now() + every);
        while !self.stopping() {
            if let Some(at) = next_trim
                && Instant::now() >= at
            {
                if let Err(error) = c.store.trim(&self.keys).await {
                    tracing::warn!(%error, "trimming the orders stream failed");
                }
                next_trim = o.trim_every.map(|every| Instant::now() + every);
            }
            if Instant::now() >= next_claim {
                self.report_backlog().await;
                self.claim_idle().await;
                next_claim = Instant::now() + o.claim_every;
            }
            let next_chore = next_trim.map_or(next_claim, |at| at.min(next_claim));
            let block = o
                .block
                .min(next_chore.saturating_duration_since(Instant::now()));
            let read = tokio::select! {
                _ = self.stopped.changed() => break,
                read = reader.read_new(&self.keys, &o.group, &self.name, o.batch, millis(block)) => read,
            };
            match read {
                Ok(entries) => self.process(entries).await,
                Err(error) => {
                    tracing::warn!(%error, "reading orders failed; retrying");
                    self.pause(retry).await;
                    // A Redis that restarted empty lost the group (NOGROUP): make it again,
                    // and reconnect the reader.
                    if let Err(error) = c.store.ensure_group(&self.keys, &o.group).await {
                        tracing::warn!(%error, "recreating the consumer group failed");
                    }
                    if let Ok(fresh) = c.store.reader().await {
                        reader = fresh;
                    }
                }
            }
        }
    }

    /// Sets the shard's backlog gauges (what `keygate-cli flash-sale status` shows): the
    /// group's lag and pending entries, and the dead letters. Best effort: a failure only
    /// leaves the last values in place.
    async fn report_backlog(&self) {
        let c = &self.consumer;
        let shard = self.shard.clone();
        if let Ok(lengths) = c.store.lengths(&self.keys).await {
            metrics::gauge!(names::FLASH_SALE_DEAD_LETTERS, "shard" => shard.clone())
                .set(lengths.dead_letters as f64);
        }
        let Ok(groups) = c.store.groups(&self.keys).await else {
            return;
        };
        if let Some(group) = groups.iter().find(|g| g.name == c.options.group) {
            metrics::gauge!(names::FLASH_SALE_PENDING, "shard" => shard.clone())
                .set(group.pending as f64);
            if let Some(lag) = group.lag {
                metrics::gauge!(names::FLASH_SALE_LAG, "shard" => shard).set(lag as f64);
            }
        }
    }

    /// Takes over idle entries of crashed consumers. Each pass looks at no more than
    /// `10 × batch` pending entries and resumes where the last one stopped; passes that
    /// find nothing idle continue (up to [`CLAIM_PASSES`] per call) until one claims
    /// something or the pending list has been gone round.
    async fn claim_idle(&mut self) {
        let c = Arc::clone(&self.consumer);
        let o = &c.options;
        for _ in 0..CLAIM_PASSES {
            let claimed = c
                .store
                .claim_idle(
                    &self.keys,
                    &o.group,
                    &self.name,
                    millis(o.claim_idle),
                    &self.claim_cursor,
                    o.batch,
                )
                .await;
            match claimed {
                Ok(claimed) => {
                    self.claim_cursor = claimed.next;
                    let wrapped = self.claim_cursor == "0-0";
                    if !claimed.entries.is_empty() {
                        self.process(claimed.entries).await;
                        return;
                    }
                    if wrapped || self.stopping() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reclaiming idle orders failed");
                    return;
                }
            }
        }
    }

    /// Hands each entry to the handler; acknowledges successes, records failures, and
    /// dead-letters entries delivered too often or that are not orders.
    async fn process(&mut self, entries: Vec<Entry>) {
        let c = Arc::clone(&self.consumer);
        let o = &c.options;
        // Handled entries are acknowledged together once the batch is done.
        let mut handled: Vec<String> = Vec::new();
        for entry in entries {
            let outcome = match entry.order() {
                Err(reason) => {
                    let _ = c.store.record_error(&self.keys, &entry.id, &reason).await;
                    telemetry::count_n(names::FLASH_SALE_DEAD_LETTERED, 1);
                    c.store
                        .dead_letter(&self.keys, &o.group, &entry, o.dead_letter_cap)
                        .await
                }
                Ok(_) if entry.deliveries > o.max_deliveries => {
                    tracing::warn!(id = %entry.id, deliveries = entry.deliveries, "order dead-lettered");
                    telemetry::count_n(names::FLASH_SALE_DEAD_LETTERED, 1);
                    c.store
                        .dead_letter(&self.keys, &o.group, &entry, o.dead_letter_cap)
                        .await
                }
                Ok(order) => {
                    // A panicking handler is a failed delivery, not the end of this shard's
                    // worker. The panic's message is not logged: it may carry user data.
                    let span = tracing::debug_span!(
                        target: "keygate",
                        "keygate.order",
                        order_id = order.order_id,
                        deliveries = entry.deliveries
                    );
                    let result = AssertUnwindSafe(c.handler.handle(&order))
                        .catch_unwind()
                        .instrument(span)
                        .await;
                    let label = match &result {
                        Ok(Ok(())) => "ok",
                        Ok(Err(_)) => "failed",
                        Err(_) => "panicked",
                    };
                    telemetry::count(names::FLASH_SALE_HANDLED, "outcome", label);
                    match result {
                        Ok(Ok(())) => {
                            handled.push(entry.id);
                            continue;
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(order_id = order.order_id, %error, "order handler failed; will retry");
                            c.store.record_error(&self.keys, &entry.id, &error.0).await
                        }
                        Err(_panic) => {
                            tracing::error!(
                                order_id = order.order_id,
                                id = %entry.id,
                                deliveries = entry.deliveries,
                                "order handler panicked; will retry"
                            );
                            c.store
                                .record_error(&self.keys, &entry.id, HANDLER_PANICKED)
                                .await
                        }
                    }
                }
            };
            if let Err(error) = outcome {
                // The entry stays pending and is reclaimed later.
                tracing::warn!(%error, id = %entry.id, "order bookkeeping failed");
            }
        }
        if let Err(error) = c.store.ack(&self.keys, &o.group, &handled).await {
            // The entries stay pending, are reclaimed later and handled again.
            tracing::warn!(%error, entries = handled.len(), "acknowledging orders failed");
        }
    }
}
