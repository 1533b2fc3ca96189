//! Creating sessions the way production does: `SessionManager::login`, many logins in
//! flight on the one multiplexed connection, so that every session has its per-user index
//! entry (and companion key) as a real login leaves it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keygate::{SessionManager, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;

/// Logins (or other calls) in flight at once.
pub const IN_FLIGHT: usize = 256;

/// Runs `op(i)` for every `i` in `from..to`, [`IN_FLIGHT`] at a time on the current
/// runtime; returns what each call answered (in no particular order) and how long it took.
pub async fn concurrently<F, Fut, R>(from: usize, to: usize, op: F) -> Result<(Vec<R>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send,
    R: Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT.min(to.saturating_sub(from)).max(1))
        .map(|_| {
            let op = Arc::clone(&op);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return Ok::<_, crate::Error>(out);
                    }
                    out.push(op(i).await?);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(to.saturating_sub(from));
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, started.elapsed()))
}

/// The user of the `i`th session of a population: one user per session (`<tag><i>`), as a
/// user base where each user is logged in once.
pub fn user_of(tag: &str, i: usize) -> Result<UserId> {
    Ok(UserId::new(format!("{tag}{i}"))?)
}

/// Logs in users `from..to` (one session each) with `data`; returns the tokens when
/// `keep` (else an empty list) and the logins per second.
pub async fn login_range<T>(
    sessions: &SessionManager<T>,
    tag: &'static str,
    data: &T,
    from: usize,
    to: usize,
    keep: bool,
) -> Result<(Vec<String>, f64)>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let manager = sessions.clone();
    let data = Arc::new(data.clone());
    let (tokens, took) = concurrently(from, to, move |i| {
        let manager = manager.clone();
        let data = Arc::clone(&data);
        async move {
            let user = user_of(tag, i)?;
            let token = manager.login(&user, &data).await?;
            Ok(keep.then(|| token.expose().to_owned()))
        }
    })
    .await?;
    let rate = (to - from) as f64 / took.as_secs_f64().max(1e-9);
    Ok((tokens.into_iter().flatten().collect(), rate))
}

/// Logs in one user `count` times (sessions of one user, for index sizes).
pub async fn login_one_user<T>(
    sessions: &SessionManager<T>,
    user: &UserId,
    data: &T,
    count: usize,
) -> Result<Vec<String>>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    // Sequential: concurrent logins of one user would prune each other's pages.
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        tokens.push(sessions.login(user, data).await?.expose().to_owned());
    }
    Ok(tokens)
}
