//! Checks that overlap on an instance share a store call. The first check leads: it
//! sends its call. Checks arriving while that call is in flight queue behind it; when it
//! returns, the first of them leads the next call, for all of them at once (each subject
//! with its arrivals, in order), and hands each its decision. A busy instance thus costs
//! one call per round trip; a lone check costs what it did.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::LimitReply;
use crate::error::{BackendError, Error, Result};

/// Most checks decided in one call: a bigger batch would hold Redis (one script) longer.
const MAX_BATCH: usize = 256;

/// A queued check: its subject's key and where its turn goes.
type Waiter = (String, oneshot::Sender<Turn>);

/// What a queued check is handed.
enum Turn {
    /// Its decision, from the call it went in.
    Decided(Result<LimitReply>),
    /// Its turn to lead, deciding these queued checks with its own.
    Lead(Vec<Waiter>),
}

/// Whether a call is in flight (`Some`), and the checks queued behind it.
#[derive(Default)]
pub(super) struct Coalescer {
    queue: Mutex<Option<Vec<Waiter>>>,
}

/// The subjects of one call, each with its arrivals, and each check's subject (the
/// leader's first).
struct Batch {
    subjects: Vec<(String, u32)>,
    of_check: Vec<usize>,
}

impl Batch {
    fn new(own: &str, followers: &[Waiter]) -> Self {
        let mut batch = Batch {
            subjects: vec![(own.to_owned(), 1)],
            of_check: Vec::with_capacity(followers.len() + 1),
        };
        batch.of_check.push(0);
        if followers.is_empty() {
            return batch;
        }
        let mut index: HashMap<&str, usize> = HashMap::from([(own, 0)]);
        for (key, _) in followers {
            let i = *index.entry(key.as_str()).or_insert_with(|| {
                batch.subjects.push((key.clone(), 0));
                batch.subjects.len() - 1
            });
            batch.subjects[i].1 += 1;
            batch.of_check.push(i);
        }
        batch
    }
}

impl Coalescer {
    fn lock(&self) -> MutexGuard<'_, Option<Vec<Waiter>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One check of the subject at `key`: `call(subjects)` decides each subject's
    /// arrivals in order (this check is the first arrival of the first subject).
    pub(super) async fn check<F, Fut>(&self, key: &str, call: F) -> Result<LimitReply>
    where
        F: FnOnce(Vec<(String, u32)>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<LimitReply>>>>,
    {
        let waiting = {
            let mut queue = self.lock();
            match queue.as_mut() {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push((key.to_owned(), tx));
                    Some(rx)
                }
                None => {
                    *queue = Some(Vec::new());
                    None
                }
            }
        };
        let followers = match waiting {
            None => Vec::new(),
            Some(rx) => {
                let mut queued = Queued {
                    coalescer: self,
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
        let batch = Batch::new(key, &followers);
        let mut lead = Lead {
            coalescer: self,
            followers: Some(followers),
        };
        let outcome = call(batch.subjects).await;
        let followers = lead.followers.take().unwrap_or_default();
        // The next call starts before this one's decisions are handed out; while the
        // store fails, the checks queued meanwhile fail with this call.
        let failure = outcome.as_ref().err().filter(|error| error.is_backend());
        self.hand_over(Vec::new(), failure);
        hand_out(outcome, &batch.of_check, followers)
    }

    /// Lets the first live queued check (after `carried`, the checks a cancelled leader
    /// was deciding) lead the next call for the next ones, up to [`MAX_BATCH`]; marks no
    /// call in flight when none is left. With a `failure`, every queued check fails with
    /// it instead.
    fn hand_over(&self, mut carried: Vec<Waiter>, failure: Option<&Error>) {
        let mut queue = self.lock();
        carried.extend(queue.take().unwrap_or_default());
        if let Some(error) = failure {
            for (_, waiter) in carried {
                let _ = waiter.send(Turn::Decided(Err(copy_of(error))));
            }
            return;
        }
        while !carried.is_empty() {
            let mut rest = carried.split_off(1);
            let later = rest.split_off(rest.len().min(MAX_BATCH - 1));
            let Some((_, next)) = carried.pop() else {
                break;
            };
            match next.send(Turn::Lead(rest)) {
                Ok(()) => {
                    *queue = Some(later);
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
/// lost call counted them is unknown, so they may be counted twice, never zero times.
struct Lead<'a> {
    coalescer: &'a Coalescer,
    followers: Option<Vec<Waiter>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(followers) = self.followers.take() {
            self.coalescer.hand_over(followers, None);
        }
    }
}

/// A check queued behind a call. Dropped while queued (its request was cancelled), it
/// stops further turns from reaching it, and passes on the lead if it was handed it
/// already: otherwise a call would stay in flight that never comes.
struct Queued<'a> {
    coalescer: &'a Coalescer,
    rx: oneshot::Receiver<Turn>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(Turn::Lead(followers)) = self.rx.try_recv() {
            self.coalescer.hand_over(followers, None);
        }
    }
}

/// The leader's decision; each follower gets its own: the next of its subject's, in
/// arrival order.
fn hand_out(
    outcome: Result<Vec<Vec<LimitReply>>>,
    of_check: &[usize],
    followers: Vec<Waiter>,
) -> Result<LimitReply> {
    let replies = match outcome {
        Ok(replies) => replies,
        Err(error) => {
            for (_, follower) in followers {
                let _ = follower.send(Turn::Decided(Err(copy_of(&error))));
            }
            return Err(error);
        }
    };
    let mut per_subject: Vec<_> = replies.into_iter().map(Vec::into_iter).collect();
    let mut decided = of_check.iter().map(|&subject| {
        per_subject
            .get_mut(subject)
            .and_then(Iterator::next)
            .ok_or_else(|| BackendError::Protocol("a rate limit call decided too few").into())
    });
    let own = decided
        .next()
        .unwrap_or_else(|| Err(BackendError::Protocol("a rate limit call decided too few").into()));
    for ((_, follower), decision) in followers.into_iter().zip(decided) {
        // A follower whose check was cancelled no longer wants its decision.
        let _ = follower.send(Turn::Decided(decision));
    }
    own
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

    type Subjects = Vec<(String, u32)>;

    /// A coalescer whose calls record their subjects, wait for the gate, and answer each
    /// arrival with its number in a running total (or fail, when told to).
    #[derive(Clone, Default)]
    struct Harness {
        coalescer: Arc<Coalescer>,
        batches: Arc<Mutex<Vec<Subjects>>>,
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
                    .check(key, |subjects| async move {
                        h.batches
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(subjects.clone());
                        h.gate.notified().await;
                        if h.fail.load(Ordering::SeqCst) {
                            let timeout = std::time::Duration::from_millis(5);
                            return Err(BackendError::Timeout(timeout).into());
                        }
                        Ok(subjects
                            .iter()
                            .map(|(_, n)| {
                                let first = h.total.fetch_add(*n, Ordering::SeqCst);
                                (first..first + n).map(|i| reply(u64::from(i))).collect()
                            })
                            .collect())
                    })
                    .await
            }
        }

        fn spawn(&self, key: &'static str) -> tokio::task::JoinHandle<Result<LimitReply>> {
            tokio::spawn(self.check(key))
        }

        fn batches(&self) -> Vec<Subjects> {
            self.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        /// Yields until `n` calls have begun, failing after 5 s.
        async fn calls_begun(&self, n: usize) {
            let begun = async {
                while self.batches().len() < n {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(5), begun)
                .await
                .expect("the call begins: the checks are not stuck");
        }

        /// Yields until `n` checks are queued.
        async fn queued(&self, n: usize) {
            while self.coalescer.lock().as_ref().map(Vec::len) != Some(n) {
                tokio::task::yield_now().await;
            }
        }

        fn idle(&self) -> bool {
            self.coalescer.lock().is_none()
        }
    }

    fn subjects(list: &[(&str, u32)]) -> Subjects {
        list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    #[tokio::test]
    async fn checks_that_overlap_share_the_next_call_each_subject_in_arrival_order() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let mut queued = Vec::new();
        for key in ["b", "a", "b", "c", "b"] {
            queued.push(h.spawn(key));
            h.queued(queued.len()).await;
        }
        // One call in flight; the five checks wait for it to return.
        assert_eq!(h.batches().len(), 1);
        h.gate.notify_waiters();
        assert_eq!(leader.await.unwrap().unwrap().remaining, 0);
        h.calls_begun(2).await;
        assert_eq!(
            h.batches(),
            vec![
                subjects(&[("a", 1)]),
                subjects(&[("b", 3), ("a", 1), ("c", 1)])
            ],
            "the first queued check leads, its subject first"
        );
        h.gate.notify_waiters();
        let mut got = Vec::new();
        for check in queued {
            got.push(check.await.unwrap().unwrap().remaining);
        }
        // The second call numbered b's three arrivals 1..=3, then a's 4 and c's 5: each
        // check got the next decision of its own subject, in arrival order.
        assert_eq!(got, vec![1, 4, 2, 5, 3]);
        assert!(h.idle(), "nothing left behind");
    }

    #[tokio::test]
    async fn a_call_takes_at_most_a_batch_and_the_rest_goes_in_the_next() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let queued: Vec<_> = (0..MAX_BATCH + 10).map(|_| h.spawn("a")).collect();
        h.queued(MAX_BATCH + 10).await;
        for calls in 2..=3 {
            h.gate.notify_waiters();
            h.calls_begun(calls).await;
        }
        h.gate.notify_waiters();
        assert!(leader.await.unwrap().is_ok());
        for check in queued {
            assert!(check.await.unwrap().is_ok());
        }
        let sizes: Vec<u32> = h.batches().iter().map(|b| b[0].1).collect();
        assert_eq!(sizes, vec![1, MAX_BATCH as u32, 10]);
        assert!(h.idle());
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_its_queue_to_a_new_leader() {
        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        let follower = h.spawn("b");
        h.queued(1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        h.calls_begun(2).await;
        h.gate.notify_waiters();
        let decided = follower.await.unwrap().unwrap();
        assert_eq!(decided.remaining, 0, "the new leader's own call decided it");
        assert!(h.idle());
    }

    /// Seen in the benchmark: a queued check handed the lead, then cancelled (its client
    /// hung up) before it ran, took the lead to its grave, and every later check
    /// queued behind a call that never came.
    #[tokio::test]
    async fn a_check_cancelled_after_it_was_handed_the_lead_passes_it_on() {
        use futures_util::FutureExt;

        let h = Harness::default();
        let leader = h.spawn("a");
        h.calls_begun(1).await;
        // Queued behind the leader, then never polled again.
        let mut handed = Box::pin(h.check("a"));
        assert!(handed.as_mut().now_or_never().is_none());
        let mut behind = Box::pin(h.check("b"));
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
        let queued: Vec<_> = (0..3).map(|_| h.spawn("b")).collect();
        h.queued(3).await;
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
        assert_eq!(h.batches().len(), 1, "no call of their own");
        assert!(h.idle());
    }
}
