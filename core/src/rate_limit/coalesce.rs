//! Overlapping checks of one subject share a store call. The first check of a subject
//! leads: it sends its call. Checks of that subject arriving while the call is in flight
//! queue behind it; when it returns, the first of them leads the next call, for all of
//! them at once, and hands each its decision. A subject flooding an instance thus costs
//! one call per round trip; a subject with one check at a time costs what it did.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::LimitReply;
use crate::error::{BackendError, Error, Result};

/// What a queued check is handed.
enum Turn {
    /// Its decision, from the call it went in.
    Decided(Result<LimitReply>),
    /// Its turn to lead, deciding these queued checks with its own.
    Lead(Vec<oneshot::Sender<Turn>>),
}

/// The subjects with a call in flight, and the checks queued behind each.
#[derive(Default)]
pub(super) struct Coalescer {
    queued: Mutex<HashMap<String, Vec<oneshot::Sender<Turn>>>>,
}

impl Coalescer {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<Turn>>>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One check of the subject at `key`: `call(n)` decides `n` arrivals in order (this
    /// check first, then the ones it leads).
    pub(super) async fn check<F, Fut>(&self, key: &str, call: F) -> Result<LimitReply>
    where
        F: FnOnce(u32) -> Fut,
        Fut: Future<Output = Result<Vec<LimitReply>>>,
    {
        let waiting = {
            match self.lock().entry(key.to_owned()) {
                Entry::Occupied(mut queue) => {
                    let (tx, rx) = oneshot::channel();
                    queue.get_mut().push(tx);
                    Some(rx)
                }
                Entry::Vacant(slot) => {
                    slot.insert(Vec::new());
                    None
                }
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
        // The next call starts before this one's decisions are handed out.
        self.hand_over(key, Vec::new());
        hand_out(outcome, followers)
    }

    /// Lets the first live queued check (after `carried`, the checks a cancelled leader
    /// was deciding) lead the next call for the others; forgets the subject when none is
    /// left.
    fn hand_over(&self, key: &str, mut carried: Vec<oneshot::Sender<Turn>>) {
        let mut queued = self.lock();
        if let Some(queue) = queued.get_mut(key) {
            carried.append(queue);
        }
        while !carried.is_empty() {
            let next = carried.remove(0);
            match next.send(Turn::Lead(std::mem::take(&mut carried))) {
                Ok(()) => return,
                // Its check was cancelled: the next one leads.
                Err(Turn::Lead(rest)) => carried = rest,
                Err(Turn::Decided(_)) => {}
            }
        }
        queued.remove(key);
    }
}

/// A leader's call in flight. Dropped before it ends (the leading request was cancelled),
/// it hands its followers and the queue to a new leader, which asks again: whether the
/// lost call counted them is unknown, so they may be counted twice, never zero times.
struct Lead<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    followers: Option<Vec<oneshot::Sender<Turn>>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(followers) = self.followers.take() {
            self.coalescer.hand_over(self.key, followers);
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
            self.coalescer.hand_over(self.key, followers);
        }
    }
}

/// The leader's decision; each follower gets its own, in arrival order.
fn hand_out(
    outcome: Result<Vec<LimitReply>>,
    followers: Vec<oneshot::Sender<Turn>>,
) -> Result<LimitReply> {
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
    use std::sync::atomic::{AtomicU32, Ordering};

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

    /// A coalescer whose calls count themselves, wait for the gate, and answer arrivals
    /// numbered from a running total.
    #[derive(Clone, Default)]
    struct Harness {
        coalescer: Arc<Coalescer>,
        calls: Arc<AtomicU32>,
        total: Arc<AtomicU32>,
        gate: Arc<Notify>,
    }

    impl Harness {
        fn check(&self, key: &'static str) -> impl Future<Output = Result<LimitReply>> + use<> {
            let h = self.clone();
            async move {
                let h = &h;
                h.coalescer
                    .check(key, |n| async move {
                        h.calls.fetch_add(1, Ordering::SeqCst);
                        h.gate.notified().await;
                        let first = h.total.fetch_add(n, Ordering::SeqCst);
                        Ok((first..first + n).map(|i| reply(u64::from(i))).collect())
                    })
                    .await
            }
        }

        fn spawn(&self, key: &'static str) -> tokio::task::JoinHandle<Result<LimitReply>> {
            tokio::spawn(self.check(key))
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }

        /// Yields until `n` calls have begun, failing after 5 s.
        async fn calls_begun(&self, n: u32) {
            let begun = async {
                while self.calls() < n {
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
    async fn checks_that_overlap_share_the_next_call_in_arrival_order() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let queued: Vec<_> = (0..3).map(|_| h.spawn("a")).collect();
        let other = h.spawn("b");
        h.queued("a", 3).await;
        h.calls_begun(2).await;
        // "b" has its own call; "a"'s three queued checks wait for the first to return.
        assert_eq!(h.calls(), 2);
        h.gate.notify_waiters();
        let _ = leader.await.unwrap().unwrap();
        let _ = other.await.unwrap().unwrap();
        h.calls_begun(3).await;
        h.gate.notify_waiters();
        let mut got = Vec::new();
        for check in queued {
            got.push(check.await.unwrap().unwrap().remaining);
        }
        // One more call for the three, each with its own decision.
        assert_eq!(h.calls(), 3);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "{got:?}");
        assert!(h.idle(), "nothing left behind");
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

    #[tokio::test]
    async fn a_failed_call_fails_every_check_in_it_as_a_backend_error() {
        let coalescer = Coalescer::default();
        let failed = coalescer
            .check("a", |_| async {
                Err(BackendError::Timeout(std::time::Duration::from_millis(5)).into())
            })
            .await;
        assert!(failed.unwrap_err().is_backend());
        let copy = copy_of(&Error::Backend(BackendError::Timeout(
            std::time::Duration::from_millis(5),
        )));
        assert!(matches!(copy, Error::Backend(BackendError::Timeout(_))));
        assert!(coalescer.lock().is_empty());
    }
}
