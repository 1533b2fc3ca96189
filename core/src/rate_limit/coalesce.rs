//! Checks of one subject that overlap on an instance share a store call. The first check
//! of a subject leads: it sends its call. Checks of that subject arriving while the call
//! is in flight queue behind it; when it returns, the first of them leads the next call,
//! for all of them at once, and hands each its decision. A subject flooding an instance
//! thus costs one call per round trip; other subjects never wait for it, and a lone
//! check costs what it did.
//!
//! Subjects do not share calls: one subject's flood would make every other client's
//! check wait behind it, a cancelled leader would have other clients' checks counted
//! twice, and on a Cluster one failing shard would fail them all. Measured, sharing
//! calls across subjects did not raise throughput either (0.63 → 0.64× of the GETEX
//! route with 10,000 client addresses, 2026-12-02).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::LimitReply;
use crate::error::{BackendError, Error, Result};

/// Most checks of a subject decided in one call: a bigger batch would hold Redis (one
/// script) longer.
const MAX_BATCH: usize = 256;

type Waiter = oneshot::Sender<Turn>;

/// What a queued check is handed.
enum Turn {
    /// Its decision, from the call it went in.
    Decided(Result<LimitReply>),
    /// Its turn to lead, deciding these queued checks with its own.
    Lead(Vec<Waiter>),
}

/// The subjects with a call in flight, and the checks queued behind each.
#[derive(Default)]
pub(super) struct Coalescer {
    queued: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl Coalescer {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Waiter>>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One check of the subject at `key`: `call(n)` decides `n` arrivals of it in order
    /// (this check first, then the ones it leads).
    pub(super) async fn check<F, Fut>(&self, key: &str, call: F) -> Result<LimitReply>
    where
        F: FnOnce(u32) -> Fut,
        Fut: Future<Output = Result<Vec<LimitReply>>>,
    {
        let waiting = match self.lock().entry(key.to_owned()) {
            Entry::Occupied(mut queue) => {
                let (tx, rx) = oneshot::channel();
                queue.get_mut().push(tx);
                Some(rx)
            }
            Entry::Vacant(slot) => {
                slot.insert(Vec::new());
                None
            }
        };
        let followers = match waiting {
            None => Vec::new(),
            Some(rx) => {
                let mut queued = Queued {
                    coalescer: self,
                    key,
                    rx,
                };
                match (&mut queued.rx).await {
                    Ok(Turn::Decided(decision)) => return decision,
                    Ok(Turn::Lead(followers)) => followers,
                    // Every queued check is handed a turn, even by a cancelled leader.
                    Err(_) => {
                        return Err(
                            BackendError::Protocol("a shared rate limit call was lost").into()
                        );
                    }
                }
            }
        };
        let arrivals = u32::try_from(followers.len() + 1).unwrap_or(u32::MAX);
        let mut lead = Lead {
            coalescer: self,
            key,
            followers: Some(followers),
        };
        let outcome = call(arrivals).await;
        let followers = lead.followers.take().unwrap_or_default();
        // The next call starts before this one's decisions are handed out; while the
        // store fails, the checks queued meanwhile fail with this call.
        let failure = outcome.as_ref().err().filter(|error| error.is_backend());
        self.hand_over(key, Vec::new(), failure);
        hand_out(outcome, followers)
    }

    /// Lets the first live queued check of `key` (after `carried`, the checks a cancelled
    /// leader was deciding) lead the next call for the next ones, up to [`MAX_BATCH`];
    /// forgets the subject when none is left. With a `failure`, every queued check fails
    /// with it instead.
    fn hand_over(&self, key: &str, mut carried: Vec<Waiter>, failure: Option<&Error>) {
        let mut queued = self.lock();
        carried.extend(queued.remove(key).unwrap_or_default());
        if let Some(error) = failure {
            for waiter in carried {
                let _ = waiter.send(Turn::Decided(Err(copy_of(error))));
            }
            return;
        }
        while !carried.is_empty() {
            let mut rest = carried.split_off(1);
            let later = rest.split_off(rest.len().min(MAX_BATCH - 1));
            let Some(next) = carried.pop() else {
                break;
            };
            match next.send(Turn::Lead(rest)) {
                Ok(()) => {
                    queued.insert(key.to_owned(), later);
                    return;
                }
                // Its check was cancelled: the next one leads.
                Err(Turn::Lead(mut rest)) => {
                    rest.extend(later);
                    carried = rest;
                }
                Err(Turn::Decided(_)) => carried = later,
            }
        }
    }
}

/// A leader's call in flight. Dropped before it ends (the leading request was cancelled),
/// it hands its followers and the queue to a new leader, which asks again: whether the
/// lost call counted them is unknown, so they (all of its own subject) may be counted
/// twice, never zero times.
struct Lead<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    followers: Option<Vec<Waiter>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(followers) = self.followers.take() {
            self.coalescer.hand_over(self.key, followers, None);
        }
    }
}

/// A check queued behind a call. Dropped while queued (its request was cancelled), it
/// stops further turns from reaching it, and passes on the lead if it was handed it
/// already: otherwise the subject would keep a call in flight that never comes.
struct Queued<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    rx: oneshot::Receiver<Turn>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(Turn::Lead(followers)) = self.rx.try_recv() {
            self.coalescer.hand_over(self.key, followers, None);
        }
    }
}

/// The leader's decision; each follower gets its own, in arrival order.
fn hand_out(outcome: Result<Vec<LimitReply>>, followers: Vec<Waiter>) -> Result<LimitReply> {
    match outcome {
        Ok(replies) if replies.len() == followers.len() + 1 => {
            let mut replies = replies.into_iter();
            let own = replies.next();
            for (follower, reply) in followers.into_iter().zip(replies) {
                // A follower whose check was cancelled no longer wants its decision.
                let _ = follower.send(Turn::Decided(Ok(reply)));
            }
            own.ok_or_else(|| BackendError::Protocol("no rate limit decision").into())
        }
        Ok(_) => {
            let error = || BackendError::Protocol("a rate limit call decided too few arrivals");
            for follower in followers {
                let _ = follower.send(Turn::Decided(Err(error().into())));
            }
            Err(error().into())
        }
        Err(error) => {
            for follower in followers {
                let _ = follower.send(Turn::Decided(Err(copy_of(&error))));
            }
            Err(error)
        }
    }
}

/// The same failure for each check of a call that failed: a backend error stays one (so
/// that failing open still applies), a script failure stays one (a 500).
fn copy_of(error: &Error) -> Error {
    match error {
        Error::Backend(BackendError::Redis(e)) => BackendError::Redis(e.clone()).into(),
        Error::Backend(BackendError::Timeout(after)) => BackendError::Timeout(*after).into(),
        Error::Backend(BackendError::NotTls(at)) => BackendError::NotTls(at.clone()).into(),
        Error::Backend(BackendError::Protocol(what)) => BackendError::Protocol(what).into(),
        Error::Script(message) => Error::Script(message.clone()),
        other => Error::Script(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use tokio::sync::Notify;

    use super::*;

    fn reply(n: u64) -> LimitReply {
        LimitReply {
            allowed: true,
            remaining: n,
            retry_after_us: 0,
            reset_us: 0,
            now_us: 0,
        }
    }

    /// A coalescer whose calls record their subject and arrivals, wait for the gate, and
    /// answer each arrival with its number in a running total (or fail, when told to).
    #[derive(Clone, Default)]
    struct Harness {
        coalescer: Arc<Coalescer>,
        calls: Arc<Mutex<Vec<(&'static str, u32)>>>,
        total: Arc<AtomicU32>,
        gate: Arc<Notify>,
        fail: Arc<AtomicBool>,
    }

    impl Harness {
        fn check(&self, key: &'static str) -> impl Future<Output = Result<LimitReply>> + use<> {
            let h = self.clone();
            async move {
                let h = &h;
                h.coalescer
                    .check(key, |n| async move {
                        h.calls
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((key, n));
                        h.gate.notified().await;
                        if h.fail.load(Ordering::SeqCst) {
                            let timeout = std::time::Duration::from_millis(5);
                            return Err(BackendError::Timeout(timeout).into());
                        }
                        let first = h.total.fetch_add(n, Ordering::SeqCst);
                        Ok((first..first + n).map(|i| reply(u64::from(i))).collect())
                    })
                    .await
            }
        }

        fn spawn(&self, key: &'static str) -> tokio::task::JoinHandle<Result<LimitReply>> {
            tokio::spawn(self.check(key))
        }

        fn calls(&self) -> Vec<(&'static str, u32)> {
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        /// Yields until `n` calls have begun, failing after 5 s.
        async fn calls_begun(&self, n: usize) {
            let begun = async {
                while self.calls().len() < n {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(5), begun)
                .await
                .expect("the call begins: the subject is not stuck");
        }

        /// Yields until `n` checks of `key` are queued.
        async fn queued(&self, key: &str, n: usize) {
            while self.coalescer.lock().get(key).map(Vec::len) != Some(n) {
                tokio::task::yield_now().await;
            }
        }

        fn idle(&self) -> bool {
            self.coalescer.lock().is_empty()
        }
    }

    #[tokio::test]
    async fn checks_of_a_subject_that_overlap_share_the_next_call_in_arrival_order() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let queued: Vec<_> = (0..3).map(|_| h.spawn("a")).collect();
        h.queued("a", 3).await;
        // Another subject never waits for "a": it has its own call at once.
        let other = h.spawn("b");
        h.calls_begun(2).await;
        assert_eq!(h.calls(), vec![("a", 1), ("b", 1)]);
        h.gate.notify_waiters();
        let _ = leader.await.unwrap().unwrap();
        let _ = other.await.unwrap().unwrap();
        h.calls_begun(3).await;
        assert_eq!(h.calls()[2], ("a", 3), "one call for the three queued");
        h.gate.notify_waiters();
        let mut got = Vec::new();
        for check in queued {
            got.push(check.await.unwrap().unwrap().remaining);
        }
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "in arrival order: {got:?}"
        );
        assert_eq!(h.calls().len(), 3);
        assert!(h.idle(), "nothing left behind");
    }

    #[tokio::test]
    async fn a_call_takes_at_most_a_batch_and_the_rest_goes_in_the_next() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let queued: Vec<_> = (0..MAX_BATCH + 10).map(|_| h.spawn("a")).collect();
        h.queued("a", MAX_BATCH + 10).await;
        for calls in 2..=3 {
            h.gate.notify_waiters();
            h.calls_begun(calls).await;
        }
        h.gate.notify_waiters();
        assert!(leader.await.unwrap().is_ok());
        for check in queued {
            assert!(check.await.unwrap().is_ok());
        }
        let sizes: Vec<u32> = h.calls().iter().map(|(_, n)| *n).collect();
        assert_eq!(sizes, vec![1, MAX_BATCH as u32, 10]);
        assert!(h.idle());
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_its_queue_to_a_new_leader() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let follower = h.spawn("a");
        h.queued("a", 1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        h.calls_begun(2).await;
        h.gate.notify_waiters();
        let decided = follower.await.unwrap().unwrap();
        assert_eq!(decided.remaining, 0, "the new leader's own call decided it");
        assert!(h.idle());
    }

    /// Seen in the benchmark: a queued check handed the lead, then cancelled (its client
    /// hung up) before it ran, took the lead to its grave, and every later check of the
    /// subject queued behind a call that never came.
    #[tokio::test]
    async fn a_check_cancelled_after_it_was_handed_the_lead_passes_it_on() {
        use futures_util::FutureExt;

        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        // Queued behind the leader, then never polled again.
        let mut handed = Box::pin(h.check("a"));
        assert!(handed.as_mut().now_or_never().is_none());
        let mut behind = Box::pin(h.check("a"));
        assert!(behind.as_mut().now_or_never().is_none());
        h.gate.notify_waiters();
        let _ = leader.await.unwrap().unwrap();
        // The lead went to `handed`, which is dropped unpolled: `behind` must lead now.
        drop(handed);
        let led = tokio::spawn(behind);
        h.calls_begun(2).await;
        h.gate.notify_waiters();
        assert!(led.await.unwrap().is_ok());
        assert!(h.idle());
    }

    /// While the store fails, the checks queued behind a failed call fail with it (a
    /// backend error, so failing open applies) instead of each waiting for a call.
    #[tokio::test]
    async fn a_failed_call_fails_the_checks_queued_behind_it() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let queued: Vec<_> = (0..3).map(|_| h.spawn("a")).collect();
        h.queued("a", 3).await;
        h.fail.store(true, Ordering::SeqCst);
        h.gate.notify_waiters();
        assert!(leader.await.unwrap().unwrap_err().is_backend());
        for check in queued {
            let error = check.await.unwrap().unwrap_err();
            assert!(
                matches!(error, Error::Backend(BackendError::Timeout(_))),
                "{error}"
            );
        }
        assert_eq!(h.calls().len(), 1, "no call of their own");
        assert!(h.idle());
    }
}
