//! The cached sessions: sharded LRU maps bounded by count and bytes, and the bookkeeping
//! that keeps a fill from putting back what an invalidation removed while it was in flight.

use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use lru::LruCache;

use super::redis::FillExpiry;
use crate::codec::StoredValue;

/// At most this many shards (locks); fewer for caches smaller than that.
const MAX_SHARDS: usize = 16;
/// Bytes an entry takes beyond its key and data: the map's slot, the list links, the
/// entry's fields, the allocations' headers.
const ENTRY_OVERHEAD: usize = 160;
/// Bytes a hash field takes beyond its name and value (two `String`s).
const FIELD_OVERHEAD: usize = 48;

/// A session decoded from an entry's data, shared by the loads that hit it. The cache does
/// not know the session type (its manager does); it knows the data the session holds.
pub(crate) trait DecodedSession: Any + Send + Sync {
    /// The data the session was decoded from.
    fn stored(&self) -> &StoredValue;
}

/// A shared [`DecodedSession`].
pub(crate) type Decoded = Arc<dyn DecodedSession>;

/// An entry's data: as read, or inside the session a load decoded from it (one copy, not
/// two).
enum Data {
    Stored(StoredValue),
    Decoded(Decoded),
}

impl Data {
    fn stored(&self) -> &StoredValue {
        match self {
            Self::Stored(value) => value,
            Self::Decoded(session) => session.stored(),
        }
    }
}

struct Entry {
    data: Data,
    /// Tells this entry from an earlier or later one of the same key.
    stamp: u64,
    /// The tracking epoch the entry was read in; another epoch means it may have missed an
    /// invalidation.
    epoch: u64,
    /// When the TTL set in Redis ends at the earliest, by this process's clock.
    expires_at: Instant,
    /// When the TTL was last set (the command was sent).
    refreshed_at: Instant,
    /// The absolute deadline, by this process's clock (a little early).
    deadline_at: Option<Instant>,
    /// The session's own idle TTL, when its login chose one.
    own_idle_ms: Option<u64>,
    /// Whether the companion key follows the session's TTL (a refresh extends both).
    companion_follows: bool,
    /// Whether a refresh is queued or in flight.
    refreshing: bool,
    bytes: usize,
}

/// Fills of one key in flight.
struct Pending {
    fills: u32,
    /// Bumped by every invalidation of the key while fills are in flight: a fill is cached
    /// only if it did not change since the fill began.
    generation: u64,
}

struct Shard {
    entries: LruCache<String, Entry, RandomState>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    pending: HashMap<String, Pending>,
    next_stamp: u64,
}

impl Shard {
    /// One fill of `key` is over (finished, or its future dropped): forget the record
    /// once none is left, so the map holds only keys with fills in flight.
    fn release(&mut self, key: &str) {
        if let Some(pending) = self.pending.get_mut(key) {
            pending.fills = pending.fills.saturating_sub(1);
            if pending.fills == 0 {
                self.pending.remove(key);
            }
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.entries.pop(key) {
            Some(entry) => {
                self.bytes -= entry.bytes;
                true
            }
            None => false,
        }
    }

    /// Drops the least recently used entries beyond the bounds.
    fn shrink(&mut self) -> u64 {
        let mut evicted = 0;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, entry)) => {
                    self.bytes -= entry.bytes;
                    evicted += 1;
                }
                None => break,
            }
        }
        evicted
    }
}

/// What a hit serves.
pub(super) enum Held {
    /// The session a load decoded from the entry before.
    Decoded(Decoded),
    /// The data, with the entry's stamp: what the caller decodes from it may be kept
    /// ([`Entries::keep_decoded`]).
    Stored { value: StoredValue, stamp: u64 },
}

/// What a lookup found.
pub(super) enum Lookup {
    /// Served from memory; `refresh` when this hit is the one that must refresh the TTL.
    Hit { held: Held, refresh: bool },
    /// Not cached, or not usable any more (read in an older epoch, past its TTL).
    Miss,
}

/// A fill in flight: the key, the epoch and key generation it started in and when its
/// command was sent. Dropped without [`Entries::finish_fill`] (the request's future was
/// cancelled mid-fill), it still releases its record.
pub(super) struct FillTicket<'a> {
    entries: &'a Entries,
    key: String,
    epoch: u64,
    generation: u64,
    sent: Instant,
    finished: bool,
}

impl Drop for FillTicket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            lock(self.entries.shard(&self.key)).release(&self.key);
        }
    }
}

/// What [`Entries::finish_fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Filled {
    pub cached: bool,
    /// Not cached because it is larger than its shard's share of the byte budget: its
    /// loads must touch it in Redis themselves.
    pub too_large: bool,
    /// Whether the entry's TTL must be refreshed now (the fill only read it).
    pub refresh: bool,
    pub evicted: u64,
    /// The cached entry's stamp.
    pub stamp: u64,
}

pub(super) struct Entries {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    touch_every: Duration,
}

fn size_of(key: &str, value: &StoredValue) -> usize {
    let data = match value {
        StoredValue::Json(text) => text.len(),
        StoredValue::Hash(fields) => fields
            .iter()
            .map(|(name, value)| name.len() + value.len() + FIELD_OVERHEAD)
            .sum(),
    };
    ENTRY_OVERHEAD + key.len() + data
}

/// Whether two reads of a session hold the same data (a hash's fields in any order).
fn same_data(a: &StoredValue, b: &StoredValue) -> bool {
    match (a, b) {
        (StoredValue::Hash(a), StoredValue::Hash(b)) if a != b => {
            let (mut a, mut b): (Vec<_>, Vec<_>) = (a.iter().collect(), b.iter().collect());
            a.sort_unstable();
            b.sort_unstable();
            a == b
        }
        _ => a == b,
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it half-updated in a way that serves
    // wrong data: every update removes before it inserts.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entries {
    pub(super) fn new(max_entries: usize, max_bytes: usize, touch_every: Duration) -> Self {
        let count = MAX_SHARDS.min(max_entries).max(1);
        Self::with_shards(count, max_entries, max_bytes, touch_every)
    }

    fn with_shards(
        count: usize,
        max_entries: usize,
        max_bytes: usize,
        touch_every: Duration,
    ) -> Self {
        let shards = (0..count)
            .map(|i| {
                // Split the bounds exactly: the shards' sum is the configured bound.
                let share = |total: usize| total / count + usize::from(i < total % count);
                Mutex::new(Shard {
                    entries: LruCache::unbounded_with_hasher(RandomState::default()),
                    bytes: 0,
                    max_entries: share(max_entries),
                    max_bytes: share(max_bytes),
                    pending: HashMap::new(),
                    next_stamp: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::default(),
            touch_every,
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(key);
        let index = usize::try_from(hash % self.shards.len() as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Looks `key` up for a load in `epoch` at `now`; `decoded` when the caller takes a
    /// decoded session. At most one hit per `touch_every` gets `refresh: true`, and until
    /// that refresh is done no other does.
    pub(super) fn lookup(&self, key: &str, now: Instant, epoch: u64, decoded: bool) -> Lookup {
        let mut shard = lock(self.shard(key));
        let usable = match shard.entries.get_mut(key) {
            None => return Lookup::Miss,
            Some(entry)
                if entry.epoch == epoch
                    && now < entry.expires_at
                    && entry.deadline_at.is_none_or(|deadline| now < deadline) =>
            {
                let refresh = !entry.refreshing
                    && now.saturating_duration_since(entry.refreshed_at) >= self.touch_every;
                entry.refreshing |= refresh;
                let held = match &entry.data {
                    Data::Decoded(session) if decoded => Held::Decoded(Arc::clone(session)),
                    data => Held::Stored {
                        value: data.stored().clone(),
                        stamp: entry.stamp,
                    },
                };
                Some((held, refresh))
            }
            Some(_) => None,
        };
        match usable {
            Some((held, refresh)) => Lookup::Hit { held, refresh },
            None => {
                shard.remove(key);
                Lookup::Miss
            }
        }
    }

    /// Registers a fill of `key` about to be sent in `epoch`.
    pub(super) fn begin_fill(&self, key: &str, epoch: u64) -> FillTicket<'_> {
        let mut shard = lock(self.shard(key));
        let pending = shard.pending.entry(key.to_owned()).or_insert(Pending {
            fills: 0,
            generation: 0,
        });
        pending.fills += 1;
        let generation = pending.generation;
        FillTicket {
            entries: self,
            key: key.to_owned(),
            epoch,
            generation,
            sent: Instant::now(),
            finished: false,
        }
    }

    /// Ends a fill: with what Redis answered (the data and its expiry), cached if nothing
    /// invalidated the key since the fill began, `epoch` is still the ticket's and it fits
    /// in its shard's share of the byte budget (a larger one is not cached and evicts
    /// nothing); without (the key is gone, or the fill failed), the entry is dropped. An entry whose TTL left
    /// does not cover the idle TTL is cached with its refresh due (`Filled::refresh`).
    pub(super) fn finish_fill(
        &self,
        mut ticket: FillTicket<'_>,
        found: Option<(StoredValue, FillExpiry)>,
        epoch: u64,
    ) -> Filled {
        ticket.finished = true;
        let key = std::mem::take(&mut ticket.key);
        let mut shard = lock(self.shard(&key));
        let invalidated = shard
            .pending
            .get(&key)
            .is_none_or(|pending| pending.generation != ticket.generation);
        shard.release(&key);
        shard.remove(&key);
        let not_cached = Filled {
            cached: false,
            too_large: false,
            refresh: false,
            evicted: 0,
            stamp: 0,
        };
        let Some((value, expiry)) = found else {
            return not_cached;
        };
        if invalidated || epoch != ticket.epoch {
            return not_cached;
        }
        // As if refreshed when the TTL left was set in full; a refresh is due now when the
        // TTL does not cover the idle TTL (or the process is younger than that).
        let due_since = expiry
            .since_refresh_ms
            .and_then(|ms| ticket.sent.checked_sub(Duration::from_millis(ms)));
        let refresh = due_since.is_none();
        let bytes = size_of(&key, &value);
        if bytes > shard.max_bytes {
            // Larger than the shard's whole share of the byte budget: caching it would
            // push every other entry of the shard out, then itself. Loads of it go to Redis.
            return Filled {
                too_large: true,
                ..not_cached
            };
        }
        shard.bytes += bytes;
        shard.next_stamp += 1;
        let stamp = shard.next_stamp;
        shard.entries.push(
            key,
            Entry {
                data: Data::Stored(value),
                stamp,
                epoch,
                expires_at: ticket.sent + Duration::from_millis(expiry.ttl_ms),
                refreshed_at: due_since.unwrap_or(ticket.sent),
                deadline_at: expiry
                    .deadline_ms
                    .map(|ms| ticket.sent + Duration::from_millis(ms)),
                own_idle_ms: expiry.own_idle_ms,
                companion_follows: expiry.companion_follows,
                refreshing: refresh,
                bytes,
            },
        );
        let evicted = shard.shrink();
        Filled {
            cached: true,
            too_large: false,
            refresh,
            evicted,
            stamp,
        }
    }

    /// Keeps `session`, decoded from the data of `key`'s entry with `stamp`, for the next
    /// hits to share; nothing when that entry is gone (or replaced) meanwhile. The session
    /// holds the entry's data from then on; its decoded form (the token and the data as
    /// `T`) counts as one more copy of the key and data in the byte budget. Returns how
    /// many entries that evicted.
    pub(super) fn keep_decoded(&self, key: &str, stamp: u64, session: Decoded) -> u64 {
        let mut shard = lock(self.shard(key));
        let Some(entry) = shard.entries.peek_mut(key) else {
            return 0;
        };
        if entry.stamp != stamp || matches!(entry.data, Data::Decoded(_)) {
            return 0;
        }
        let extra = entry.bytes - ENTRY_OVERHEAD;
        entry.data = Data::Decoded(session);
        entry.bytes += extra;
        shard.bytes += extra;
        shard.shrink()
    }

    /// The TTL a refresh of `key` sets now: its idle TTL (its own, or `idle_ms`) plus
    /// `slack_ms`, capped at its deadline, and whether its companion key follows it (is
    /// refreshed alike); `None` when it is not cached in `epoch` or its deadline has passed
    /// (the entry is then dropped).
    pub(super) fn refresh_ttl(
        &self,
        key: &str,
        epoch: u64,
        idle_ms: u64,
        slack_ms: u64,
        now: Instant,
    ) -> Option<(u64, bool)> {
        let mut shard = lock(self.shard(key));
        let ttl = shard
            .entries
            .peek(key)
            .filter(|e| e.epoch == epoch)
            .and_then(|entry| {
                let ttl = entry
                    .own_idle_ms
                    .unwrap_or(idle_ms)
                    .saturating_add(slack_ms);
                let ttl = match entry.deadline_at {
                    None => Some(ttl),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(now);
                        let left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                        (left > 0).then(|| ttl.min(left))
                    }
                };
                ttl.map(|ttl| (ttl, entry.companion_follows))
            });
        if ttl.is_none() {
            shard.remove(key);
        }
        ttl
    }

    /// A refresh sent at `sent` read back `held` and the TTL it had left, `ttl_ms` (counted
    /// from `sent`, so a little early): the entry takes that TTL if it holds the same data,
    /// and is dropped otherwise (it missed a change). Whether an entry of `epoch` is still
    /// there.
    pub(super) fn refreshed(
        &self,
        key: &str,
        epoch: u64,
        sent: Instant,
        ttl_ms: u64,
        held: &StoredValue,
    ) -> bool {
        let mut shard = lock(self.shard(key));
        let Some(entry) = shard.entries.peek_mut(key).filter(|e| e.epoch == epoch) else {
            return false;
        };
        if !same_data(entry.data.stored(), held) {
            shard.remove(key);
            return false;
        }
        entry.expires_at = sent + Duration::from_millis(ttl_ms);
        entry.refreshed_at = sent;
        entry.refreshing = false;
        true
    }

    /// Drops `key` and spoils the fills of it in flight; whether an entry was dropped.
    pub(super) fn invalidate(&self, key: &str) -> bool {
        let mut shard = lock(self.shard(key));
        if let Some(pending) = shard.pending.get_mut(key) {
            pending.generation += 1;
        }
        shard.remove(key)
    }

    /// Drops everything and spoils every fill in flight.
    pub(super) fn clear(&self) {
        for shard in &*self.shards {
            let mut shard = lock(shard);
            shard.entries.clear();
            shard.bytes = 0;
            for pending in shard.pending.values_mut() {
                pending.generation += 1;
            }
        }
    }

    /// How many sessions are cached, and their estimated bytes.
    pub(super) fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), shard| {
            let shard = lock(shard);
            (n + shard.entries.len(), b + shard.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> StoredValue {
        StoredValue::Json(s.to_owned())
    }

    fn touched(ttl_ms: u64) -> FillExpiry {
        FillExpiry {
            ttl_ms,
            deadline_ms: None,
            own_idle_ms: None,
            companion_follows: false,
            since_refresh_ms: Some(0),
        }
    }

    fn fill(entries: &Entries, key: &str, value: &str, epoch: u64) -> Filled {
        let ticket = entries.begin_fill(key, epoch);
        entries.finish_fill(ticket, Some((json(value), touched(60_000))), epoch)
    }

    fn hit(entries: &Entries, key: &str, epoch: u64) -> Option<String> {
        match entries.lookup(key, Instant::now(), epoch, false) {
            Lookup::Hit {
                held:
                    Held::Stored {
                        value: StoredValue::Json(text),
                        ..
                    },
                ..
            } => Some(text),
            _ => None,
        }
    }

    /// A decoded session as the tests see it: a number and the data it came from.
    struct Number(u32, StoredValue);

    impl DecodedSession for Number {
        fn stored(&self) -> &StoredValue {
            &self.1
        }
    }

    fn number(n: u32, data: &str) -> Decoded {
        Arc::new(Number(n, json(data)))
    }

    fn decoded_hit(entries: &Entries, key: &str) -> Option<Decoded> {
        match entries.lookup(key, Instant::now(), 1, true) {
            Lookup::Hit {
                held: Held::Decoded(session),
                ..
            } => Some(session),
            _ => None,
        }
    }

    #[test]
    fn a_kept_decoded_session_is_shared_until_its_entry_changes() {
        let entries = Entries::with_shards(1, 100, 1 << 20, Duration::from_secs(60));
        let filled = fill(&entries, "k", "old", 1);
        let (_, bytes) = entries.size();
        // Until a load keeps what it decoded, hits serve the data.
        assert!(decoded_hit(&entries, "k").is_none());
        assert_eq!(entries.keep_decoded("k", filled.stamp, number(1, "old")), 0);
        let any = decoded_hit(&entries, "k").map(|d| d as Arc<dyn Any + Send + Sync>);
        let shared = any.and_then(|d| d.downcast::<Number>().ok());
        assert_eq!(shared.map(|n| n.0), Some(1));
        // Counted as one more copy of key and data; a caller that decodes itself still
        // gets the data.
        assert_eq!(entries.size().1, bytes + "k".len() + "old".len());
        assert_eq!(hit(&entries, "k", 1).as_deref(), Some("old"));
        // A later fill is another entry: what was decoded from the earlier one is not kept
        // for it, nor served.
        entries.invalidate("k");
        let refilled = fill(&entries, "k", "new", 1);
        assert_ne!(refilled.stamp, filled.stamp);
        entries.keep_decoded("k", filled.stamp, number(1, "old"));
        assert!(decoded_hit(&entries, "k").is_none());
        assert_eq!(hit(&entries, "k", 1).as_deref(), Some("new"));
    }

    #[test]
    fn an_invalidation_during_a_fill_keeps_the_fill_out() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        let ticket = entries.begin_fill("k", 1);
        assert!(!entries.invalidate("k"));
        let done = entries.finish_fill(ticket, Some((json("old"), touched(60_000))), 1);
        assert!(!done.cached);
        assert_eq!(hit(&entries, "k", 1), None);
        // The next fill, begun after the invalidation, is kept.
        assert!(fill(&entries, "k", "new", 1).cached);
        assert_eq!(hit(&entries, "k", 1).as_deref(), Some("new"));
    }

    #[test]
    fn a_cancelled_fill_leaves_no_record_and_spoils_nothing_later() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        drop(entries.begin_fill("k", 1));
        entries.clear();
        assert!(fill(&entries, "k", "v", 1).cached, "a later fill is cached");
        let pending: usize = entries.shards.iter().map(|s| lock(s).pending.len()).sum();
        assert_eq!(pending, 0, "no record left behind");
    }

    #[test]
    fn overlapping_fills_after_an_invalidation_are_cached_again() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        let first = entries.begin_fill("k", 1);
        entries.invalidate("k");
        // A second fill begins after the invalidation, while the first is in flight.
        let second = entries.begin_fill("k", 1);
        assert!(
            !entries
                .finish_fill(first, Some((json("old"), touched(60_000))), 1)
                .cached
        );
        let third = entries.begin_fill("k", 1);
        assert!(
            entries
                .finish_fill(second, Some((json("new"), touched(60_000))), 1)
                .cached
        );
        assert!(
            entries
                .finish_fill(third, Some((json("new"), touched(60_000))), 1)
                .cached
        );
    }

    #[test]
    fn a_clear_spoils_fills_in_flight_and_other_epochs_miss() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        let ticket = entries.begin_fill("a", 1);
        entries.clear();
        assert!(
            !entries
                .finish_fill(ticket, Some((json("x"), touched(60_000))), 1)
                .cached
        );
        assert!(fill(&entries, "b", "y", 1).cached);
        assert_eq!(
            hit(&entries, "b", 2),
            None,
            "an entry of epoch 1 is no hit in epoch 2"
        );
        assert_eq!(entries.size().0, 0, "and it was dropped");
        let ticket = entries.begin_fill("c", 2);
        assert!(
            !entries
                .finish_fill(ticket, Some((json("z"), touched(60_000))), 3)
                .cached
        );
    }

    #[test]
    fn entries_past_their_ttl_miss() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        let ticket = entries.begin_fill("k", 1);
        entries.finish_fill(ticket, Some((json("v"), touched(1))), 1);
        let later = Instant::now() + Duration::from_millis(5);
        assert!(matches!(entries.lookup("k", later, 1, false), Lookup::Miss));
    }

    #[test]
    fn refreshes_respect_own_idle_and_the_deadline() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        let ticket = entries.begin_fill("k", 1);
        let expiry = FillExpiry {
            ttl_ms: 1_000,
            deadline_ms: Some(5_000),
            own_idle_ms: Some(2_000),
            companion_follows: false,
            since_refresh_ms: None,
        };
        let filled = entries.finish_fill(ticket, Some((json("v"), expiry)), 1);
        assert!(filled.cached && filled.refresh);
        let now = Instant::now();
        assert_eq!(
            entries.refresh_ttl("k", 1, 1_000, 500, now),
            Some((2_500, false))
        );
        let late = now + Duration::from_millis(4_000);
        let (capped, _) = entries.refresh_ttl("k", 1, 1_000, 500, late).unwrap();
        assert!(capped <= 1_000, "{capped}");
        let past = now + Duration::from_millis(6_000);
        assert_eq!(entries.refresh_ttl("k", 1, 1_000, 500, past), None);
        assert_eq!(
            entries.size().0,
            0,
            "past its deadline the entry is dropped"
        );
    }

    #[test]
    fn a_fill_whose_ttl_covers_idle_is_refreshed_when_a_refresh_would_have_been() {
        let entries = Entries::new(100, 1 << 20, Duration::from_millis(100));
        let ticket = entries.begin_fill("k", 1);
        let sent = ticket.sent;
        // Set in full (idle + slack) 30 ms before the fill: due 70 ms after it.
        let expiry = FillExpiry {
            ttl_ms: 1_070,
            deadline_ms: None,
            own_idle_ms: None,
            companion_follows: false,
            since_refresh_ms: Some(30),
        };
        let filled = entries.finish_fill(ticket, Some((json("v"), expiry)), 1);
        assert!(filled.cached && !filled.refresh);
        let early = sent + Duration::from_millis(60);
        assert!(matches!(
            entries.lookup("k", early, 1, false),
            Lookup::Hit { refresh: false, .. }
        ));
        let due = sent + Duration::from_millis(75);
        assert!(matches!(
            entries.lookup("k", due, 1, false),
            Lookup::Hit { refresh: true, .. }
        ));
    }

    #[test]
    fn a_refresh_that_reads_other_data_drops_the_entry() {
        let entries = Entries::new(100, 1 << 20, Duration::from_secs(60));
        fill(&entries, "k", "old", 1);
        let now = Instant::now();
        assert!(entries.refreshed("k", 1, now, 60_000, &json("old")));
        assert_eq!(hit(&entries, "k", 1).as_deref(), Some("old"));
        assert!(!entries.refreshed("k", 1, now, 60_000, &json("new")));
        assert_eq!(hit(&entries, "k", 1), None);
        let pairs = |p: &[(&str, &str)]| {
            StoredValue::Hash(
                p.iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect(),
            )
        };
        assert!(same_data(
            &pairs(&[("a", "1"), ("b", "2")]),
            &pairs(&[("b", "2"), ("a", "1")])
        ));
        assert!(!same_data(&pairs(&[("a", "1")]), &pairs(&[("a", "2")])));
    }

    #[test]
    fn one_refresh_per_touch_interval() {
        let entries = Entries::new(100, 1 << 20, Duration::from_millis(10));
        fill(&entries, "k", "v", 1);
        let now = Instant::now();
        assert!(matches!(
            entries.lookup("k", now, 1, false),
            Lookup::Hit { refresh: false, .. }
        ));
        let due = now + Duration::from_millis(20);
        assert!(matches!(
            entries.lookup("k", due, 1, false),
            Lookup::Hit { refresh: true, .. }
        ));
        assert!(matches!(
            entries.lookup("k", due, 1, false),
            Lookup::Hit { refresh: false, .. }
        ));
    }

    /// A session larger than its shard's share of the byte budget is not cached, and
    /// evicts nothing: it used to push every other entry of its shard out, then itself.
    #[test]
    fn an_entry_larger_than_its_shard_is_not_cached_and_evicts_nothing() {
        let budget = 2 * (ENTRY_OVERHEAD + 100);
        let one = Entries::with_shards(1, 100, budget, Duration::from_secs(60));
        fill(&one, "a", "1", 1);
        fill(&one, "b", "2", 1);
        let (count, bytes) = one.size();
        let huge = "x".repeat(budget);
        let filled = fill(&one, "huge", &huge, 1);
        assert_eq!(
            filled,
            Filled {
                cached: false,
                too_large: true,
                refresh: false,
                evicted: 0,
                stamp: 0,
            }
        );
        assert_eq!(one.size(), (count, bytes), "nothing evicted");
        assert!(hit(&one, "a", 1).is_some() && hit(&one, "b", 1).is_some());
        assert_eq!(hit(&one, "huge", 1), None);
        // One that fits exactly is cached (and evicts the least recently used to make room).
        let fits = "y".repeat(budget - ENTRY_OVERHEAD - "fits".len());
        let filled = fill(&one, "fits", &fits, 1);
        assert!(filled.cached && filled.evicted == 2, "{filled:?}");
        assert_eq!(hit(&one, "fits", 1).as_deref(), Some(fits.as_str()));
    }

    #[test]
    fn bounded_by_count_and_bytes_least_recently_used_first() {
        let entries = Entries::new(3, 1 << 20, Duration::from_secs(60));
        for key in ["a", "b", "c", "d", "e"] {
            fill(&entries, key, "v", 1);
        }
        // Three shards of one entry each: at most three, however the keys hash.
        let (count, _) = entries.size();
        assert!((1..=3).contains(&count), "{count}");
        let big = "x".repeat(4000);
        let small = Entries::new(1000, 3 * (ENTRY_OVERHEAD + 4001), Duration::from_secs(60));
        for key in ["a", "b", "c", "d", "e", "f", "g"] {
            fill(&small, key, &big, 1);
        }
        let (count, bytes) = small.size();
        assert!(bytes <= 3 * (ENTRY_OVERHEAD + 4001), "{bytes}");
        assert!(count <= 3, "{count}");
        // One shard: the least recently used goes first.
        let one = Entries::with_shards(1, 2, 1 << 20, Duration::from_secs(60));
        fill(&one, "a", "1", 1);
        fill(&one, "b", "2", 1);
        assert!(hit(&one, "a", 1).is_some());
        fill(&one, "c", "3", 1);
        assert!(hit(&one, "a", 1).is_some() && hit(&one, "b", 1).is_none());
    }
}
