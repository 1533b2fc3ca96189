//! The refusals a limiter holds. A subject the store refused with "retry after R" stays
//! refused until R: a quota's theoretical arrival time and a window's log only grow while
//! it is refused (refusals change nothing, admissions on other instances add), so until
//! then the limiter answers the subject's checks itself, with the same refusal and its
//! waits counting down, instead of asking the store again. A client that keeps sending
//! over its limit then costs the store nothing until its wait is over.
//!
//! The wait is timed on the limiter's clock from when the call was sent, not from when its
//! answer came: the store decided after that, so the limiter's hold ends at or before the
//! store's, never after (the time a reply takes is never added to anyone's wait). Only an
//! operator deleting the subject's key shortens the real wait; the limiter keeps refusing
//! until the wait it was told (see the [module docs](super)).

use std::sync::{Mutex, MutexGuard, PoisonError};

use lru::LruCache;

use super::LimitReply;

/// How many refused subjects a limiter holds by default (each its key and three numbers:
/// a few megabytes at most).
pub const DEFAULT_REFUSAL_CACHE: usize = 10_000;

/// One held refusal, on the limiter's clock (µs).
#[derive(Debug, Clone, Copy)]
struct Held {
    /// When the call that was refused was sent: a clock reading before this is a clock
    /// that stepped back, and the hold is dropped.
    since_us: u64,
    /// When the subject may be allowed again.
    until_us: u64,
    /// When its budget is full again.
    reset_at_us: u64,
}

/// A limiter's held refusals, by key: at most `capacity`, the least recently used
/// forgotten first. Shared by a limiter's clones.
pub(super) struct Refusals {
    capacity: usize,
    held: Mutex<LruCache<String, Held>>,
}

impl Refusals {
    /// Holds at most `capacity` refusals (0: none, every check asks the store).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            // Unbounded as far as the map goes: it grows with use rather than being
            // allocated at full size for every limiter; `hold` keeps the bound.
            held: Mutex::new(LruCache::unbounded()),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The refusal held for `key` at `now_us`, as the store would answer it (no budget, the
    /// wait and the reset counted down); `None` when none is held, or it is over (then it
    /// is forgotten).
    pub(super) fn refused(&self, key: &str, now_us: u64) -> Option<LimitReply> {
        if self.capacity == 0 {
            return None;
        }
        let mut held = self.lock();
        if held.is_empty() {
            return None;
        }
        let refusal = *held.get(key)?;
        if now_us < refusal.since_us || now_us >= refusal.until_us {
            held.pop(key);
            return None;
        }
        let retry_after_us = refusal.until_us - now_us;
        Some(LimitReply {
            allowed: false,
            remaining: 0,
            retry_after_us,
            reset_us: refusal
                .reset_at_us
                .saturating_sub(now_us)
                .max(retry_after_us),
            now_us,
        })
    }

    /// Holds the refusal `reply` (of a call sent at `sent_us`) for `key`; an allowed reply
    /// holds nothing. Past the capacity, the least recently used refusal is forgotten.
    pub(super) fn hold(&self, key: &str, sent_us: u64, reply: &LimitReply) {
        if self.capacity == 0 || reply.allowed || reply.retry_after_us == 0 {
            return;
        }
        let refusal = Held {
            since_us: sent_us,
            until_us: sent_us.saturating_add(reply.retry_after_us),
            reset_at_us: sent_us.saturating_add(reply.reset_us),
        };
        let mut held = self.lock();
        if held.get(key).is_none() {
            while held.len() >= self.capacity {
                held.pop_lru();
            }
        }
        held.put(key.to_owned(), refusal);
    }

    /// How many refusals are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Default for Refusals {
    fn default() -> Self {
        Self::new(DEFAULT_REFUSAL_CACHE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(retry_after_us: u64, reset_us: u64) -> LimitReply {
        LimitReply {
            allowed: false,
            remaining: 0,
            retry_after_us,
            reset_us,
            now_us: 0,
        }
    }

    #[test]
    fn a_refusal_is_held_until_its_wait_is_over_counting_down() {
        let refusals = Refusals::default();
        refusals.hold("k", 1_000, &refused(500, 2_000));
        let at = |now| {
            refusals
                .refused("k", now)
                .map(|r| (r.retry_after_us, r.reset_us))
        };
        assert_eq!(at(1_000), Some((500, 2_000)));
        assert_eq!(at(1_200), Some((300, 1_800)));
        assert_eq!(at(1_499), Some((1, 1_501)));
        assert_eq!(at(1_500), None, "over at the wait's end");
        assert_eq!(refusals.len(), 0, "and forgotten");
        assert!(refusals.refused("other", 1_000).is_none());
    }

    #[test]
    fn allowed_replies_and_clocks_that_step_back_hold_nothing() {
        let refusals = Refusals::default();
        let mut allowed = refused(0, 100);
        allowed.allowed = true;
        refusals.hold("k", 1_000, &allowed);
        assert_eq!(refusals.len(), 0);
        refusals.hold("k", 1_000, &refused(500, 500));
        assert!(
            refusals.refused("k", 999).is_none(),
            "the clock stepped back"
        );
        assert_eq!(refusals.len(), 0);
    }

    #[test]
    fn the_bound_holds_the_least_recently_used_going_first() {
        let refusals = Refusals::new(3);
        for (i, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            refusals.hold(key, 0, &refused(1_000, 1_000));
            assert!(refusals.len() <= 3, "{i}");
        }
        assert!(refusals.refused("a", 1).is_none());
        assert!(refusals.refused("b", 1).is_none());
        assert!(refusals.refused("c", 1).is_some());
        // c was used: holding f forgets d, the least recently used.
        refusals.hold("f", 0, &refused(1_000, 1_000));
        assert!(refusals.refused("d", 1).is_none());
        assert!(refusals.refused("c", 1).is_some());
        assert!(refusals.refused("e", 1).is_some());
        // Holding a subject again replaces its refusal without forgetting another.
        refusals.hold("f", 10, &refused(5, 5));
        assert_eq!(refusals.len(), 3);
        assert_eq!(refusals.refused("f", 12).map(|r| r.retry_after_us), Some(3));
        let none = Refusals::new(0);
        none.hold("a", 0, &refused(1_000, 1_000));
        assert!(none.refused("a", 1).is_none());
    }
}
