//! Edge cases of sessions: each one failed before its fix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use keygate::backend::SessionKeyRef;
use keygate::session::LoginOptions;
use keygate::{Error, LoginLimits, SessionConfig, SessionManager, SessionUser, UserId};
use keygate_tests::fixtures::{Backend, JavaUser};
use keygate_tests::observed::{ObservedStore, StoreCall, StoreObserver};

use crate::support::Managers;

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

fn with_lifetime() -> SessionConfig {
    SessionConfig::java_seed()
        .with_idle_ttl(Duration::from_secs(60))
        .with_absolute_lifetime(Duration::from_secs(60))
}

/// Deletes the deadline key of a `java_seed` session (as an eviction would), checking that
/// it existed.
async fn remove_deadline_key(b: &Backend, token: &keygate::Token) {
    let deadline = format!("keygate:deadline:{{login:token:{}}}", token.expose());
    let removed = b
        .sessions()
        .remove(&[SessionKeyRef {
            session: &deadline,
            deadline: None,
            own_idle: false,
        }])
        .await
        .unwrap();
    assert_eq!(removed, 1, "the deadline key existed");
}

/// A session whose deadline key is gone (evicted, or expired in its last millisecond) is
/// over: it is not served and its idle TTL is not renewed.
pub async fn missing_deadline_key_ends_the_session(b: &Backend) {
    let m = b.manager::<JavaUser>(with_lifetime());
    let token = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    assert!(m.load(&token).await.unwrap().is_some());
    remove_deadline_key(b, &token).await;
    assert!(
        m.load(&token).await.unwrap().is_none(),
        "no deadline key, no session"
    );
}

/// What a store does between a create's steps: runs another request of the same user.
#[derive(Clone, Copy)]
enum Interleave {
    List,
    DestroyAll,
}

/// Watches the calls reaching the real store: it can run `interleave` for alice just
/// before every insert, and it records the widest batch any call covered.
struct Observer {
    interleave: Option<Interleave>,
    other: OnceLock<SessionManager<JavaUser>>,
    widest: AtomicUsize,
}

type Observed = ObservedStore<Observer>;

fn observed(b: &Backend, interleave: Option<Interleave>) -> Observed {
    ObservedStore::new(
        b.sessions(),
        Observer {
            interleave,
            other: OnceLock::new(),
            widest: AtomicUsize::new(0),
        },
    )
}

#[async_trait]
impl StoreObserver for Observer {
    async fn before(&self, call: StoreCall) -> keygate::Result<()> {
        match call {
            StoreCall::Insert => {
                if let (Some(other), Some(interleave)) = (self.other.get(), self.interleave) {
                    match interleave {
                        Interleave::List => drop(other.sessions(&alice(), None).await?),
                        Interleave::DestroyAll => drop(other.logout_everywhere(&alice()).await?),
                    }
                }
            }
            StoreCall::Remove(n)
            | StoreCall::Exists(n)
            | StoreCall::Ttls(n)
            | StoreCall::IndexPage(n)
            | StoreCall::IndexRemove(n) => {
                self.widest.fetch_max(n, Ordering::SeqCst);
            }
            _ => {}
        }
        Ok(())
    }
}

fn racing(b: &Backend, interleave: Interleave) -> SessionManager<JavaUser> {
    let config = SessionConfig::java_seed();
    let store = Arc::new(observed(b, Some(interleave)));
    let other = SessionManager::from_shared_store(b.sessions(), config.clone()).unwrap();
    assert!(store.observer.other.set(other).is_ok());
    SessionManager::from_shared_store(store, config).unwrap()
}

/// A `list` (or a cap's pruning) that runs while a login is half done must not hide the new
/// session from the index for good.
pub async fn create_racing_with_list_stays_indexed(b: &Backend) {
    let m = racing(b, Interleave::List);
    let token = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    assert_eq!(m.sessions(&alice(), None).await.unwrap().len(), 1, "listed");
    assert_eq!(
        m.logout_everywhere(&alice()).await.unwrap(),
        1,
        "logged out"
    );
    assert!(m.load(&token).await.unwrap().is_none());
}

/// A login that completes after a concurrent "log out everywhere" may survive that one, but
/// never the next.
pub async fn create_racing_with_destroy_all_stays_indexed(b: &Backend) {
    let m = racing(b, Interleave::DestroyAll);
    let token = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    assert!(m.load(&token).await.unwrap().is_some());
    let plain = b.manager::<JavaUser>(SessionConfig::java_seed());
    assert_eq!(plain.logout_everywhere(&alice()).await.unwrap(), 1);
    assert!(m.load(&token).await.unwrap().is_none());
}

/// `list` and `destroy_all` over a user with many sessions work in bounded batches, and
/// still see every session.
pub async fn index_work_per_call_is_bounded(b: &Backend) {
    let widest = Arc::new(observed(b, None));
    let m =
        SessionManager::<JavaUser>::from_shared_store(widest.clone(), SessionConfig::java_seed())
            .unwrap();
    let sessions = 700;
    for _ in 0..sessions {
        m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    }
    assert_eq!(m.sessions(&alice(), None).await.unwrap().len(), sessions);
    assert_eq!(
        m.logout_everywhere(&alice()).await.unwrap(),
        sessions as u64
    );
    assert!(m.sessions(&alice(), None).await.unwrap().is_empty());
    let widest = widest.observer.widest.load(Ordering::SeqCst);
    assert!(
        widest <= keygate::session::INDEX_BATCH,
        "largest call covered {widest} keys"
    );
}

/// Logging in prunes the index entries of sessions that ended, so an index holds about as
/// many entries as its user has live sessions, not one per login ever made.
pub async fn create_prunes_ended_sessions_from_the_index(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    for _ in 0..20 {
        let token = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
        m.logout(&token).await.unwrap();
    }
    let live = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    let entries = b
        .sessions()
        .index_page("keygate:user-sessions:alice", 0, 1000)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "only the live session is indexed");
    assert!(m.load(&live).await.unwrap().is_some());
}

/// A hash update that would remove every field would delete the session: refused.
pub async fn hash_update_removing_every_field_is_refused(b: &Backend) {
    #[derive(serde::Serialize, serde::Deserialize, Clone)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    }
    let m = b.manager::<Sparse>(SessionConfig::java_seed());
    let token = m.login(&alice(), &Sparse { id: Some(1) }).await.unwrap();
    let session = m.load(&token).await.unwrap().unwrap();
    let error = m.update(&session, &Sparse { id: None }).await.unwrap_err();
    assert!(matches!(error, Error::Encode(_)), "{error:?}");
    let replaced = m.replace(&token, &Sparse { id: None }).await;
    assert!(matches!(replaced, Err(Error::Encode(_))), "{replaced:?}");
    let kept = m.load(&token).await.unwrap().expect("session kept");
    assert_eq!(kept.data().id, Some(1));
}

/// What runs while a rotation is half done (the session renamed, its index entry not yet
/// moved).
#[derive(Clone, Copy)]
enum DuringRotation {
    LogoutEverywhere,
    List,
}

/// Runs `during` once, on the first store call after a rotation's rename.
struct RotationObserver {
    during: DuringRotation,
    renamed: std::sync::atomic::AtomicBool,
    fired: std::sync::atomic::AtomicBool,
    other: OnceLock<SessionManager<JavaUser>>,
}

#[async_trait]
impl StoreObserver for RotationObserver {
    async fn before(&self, call: StoreCall) -> keygate::Result<()> {
        if call == StoreCall::Rename {
            self.renamed.store(true, Ordering::SeqCst);
        } else if self.renamed.load(Ordering::SeqCst)
            && !self.fired.swap(true, Ordering::SeqCst)
            && let Some(other) = self.other.get()
        {
            let user = JavaUser::new(1).user_id();
            match self.during {
                DuringRotation::LogoutEverywhere => drop(other.logout_everywhere(&user).await?),
                DuringRotation::List => drop(other.sessions(&user, None).await?),
            }
        }
        Ok(())
    }
}

fn rotating(b: &Backend, during: DuringRotation) -> SessionManager<JavaUser> {
    let config = SessionConfig::java_seed();
    let store = Arc::new(ObservedStore::new(
        b.sessions(),
        RotationObserver {
            during,
            renamed: false.into(),
            fired: false.into(),
            other: OnceLock::new(),
        },
    ));
    let other = SessionManager::from_shared_store(b.sessions(), config.clone()).unwrap();
    assert!(store.observer.other.set(other).is_ok());
    SessionManager::from_shared_store(store, config).unwrap()
}

/// A "log out everywhere" that runs while a rotation is half done still ends the session:
/// once it has returned, neither the old nor the new token works.
pub async fn logout_everywhere_during_rotation_ends_the_session(b: &Backend) {
    let m = rotating(b, DuringRotation::LogoutEverywhere);
    let user = JavaUser::new(1).user_id();
    let token = m.login(&user, &JavaUser::new(1)).await.unwrap();
    let session = m.load(&token).await.unwrap().unwrap();
    let rotated = m.rotate(&session).await.unwrap();
    assert!(m.load(&token).await.unwrap().is_none());
    if let Some(rotated) = rotated {
        assert!(
            m.load(&rotated.token).await.unwrap().is_none(),
            "the rotated token outlived a completed logout everywhere"
        );
    }
    assert!(m.sessions(&user, None).await.unwrap().is_empty());
}

/// A listing that runs while a rotation is half done never leaves a live session out of
/// the index (where "log out everywhere" could not find it): the session is either listed
/// with its device and creation time, or ended.
pub async fn listing_during_rotation_never_hides_a_live_session(b: &Backend) {
    let m = rotating(b, DuringRotation::List);
    let user = JavaUser::new(1).user_id();
    let options = keygate::session::LoginOptions::new().with_device("Phone A");
    let token = m
        .login_with(&user, &JavaUser::new(1), &options)
        .await
        .unwrap();
    let before = m.sessions(&user, None).await.unwrap();
    let session = m.load(&token).await.unwrap().unwrap();
    let rotated = m.rotate(&session).await.unwrap();
    let after = m.sessions(&user, None).await.unwrap();
    match rotated {
        Some(rotated) if m.load(&rotated.token).await.unwrap().is_some() => {
            assert_eq!(after.len(), 1, "the live rotated session is listed");
            assert_eq!(after[0].device.as_deref(), Some("Phone A"));
            assert_eq!(after[0].created_at_ms, before[0].created_at_ms);
        }
        _ => assert!(
            after.is_empty(),
            "an ended session is not listed: {after:?}"
        ),
    }
    assert_eq!(
        m.logout_everywhere(&user).await.unwrap(),
        after.len() as u64
    );
}

/// A session whose deadline key is gone is over: rotating it gives no new token.
pub async fn rotating_a_session_without_its_deadline_key_gives_nothing(b: &Backend) {
    let m = b.manager::<JavaUser>(with_lifetime());
    let token = m.login(&alice(), &JavaUser::new(1)).await.unwrap();
    let session = m.load(&token).await.unwrap().unwrap();
    remove_deadline_key(b, &token).await;
    assert_eq!(m.rotate(&session).await.unwrap(), None);
}

/// Login limits and no configured lifetime: logins may choose their expiry, and other
/// sessions have none.
fn remember_me() -> SessionConfig {
    SessionConfig::java_seed()
        .with_idle_ttl(Duration::from_secs(60))
        .with_login_limits(LoginLimits::new(
            Duration::from_secs(600),
            Duration::from_secs(3600),
        ))
}

/// With login limits and no configured lifetime, a session whose companion key is gone
/// (evicted, deleted) is over, whether its login chose a lifetime (the deadline went with
/// the companion) or not: it is not served, not renewed, not rotated and not listed. It
/// used to slide on the configuration's idle TTL for ever.
pub async fn missing_companion_ends_a_session_under_login_limits(b: &Backend) {
    let m = b.manager::<JavaUser>(remember_me());
    let choices = [
        LoginOptions::new().with_lifetime(Duration::from_secs(1800)),
        LoginOptions::new().with_idle_ttl(Duration::from_secs(300)),
        LoginOptions::new()
            .with_idle_ttl(Duration::from_secs(300))
            .with_lifetime(Duration::from_secs(1800)),
        LoginOptions::new(),
    ];
    for options in choices {
        let token = m
            .login_with(&alice(), &JavaUser::new(1), &options)
            .await
            .unwrap();
        let session = m.load(&token).await.unwrap().expect("live");
        let listed = m.sessions(&alice(), None).await.unwrap().len();
        remove_deadline_key(b, &token).await;
        assert!(
            m.load(&token).await.unwrap().is_none(),
            "{options:?}: no companion, no session"
        );
        assert_eq!(m.rotate(&session).await.unwrap(), None, "{options:?}");
        assert_eq!(
            m.sessions(&alice(), None).await.unwrap().len(),
            listed - 1,
            "{options:?}: not listed"
        );
    }
}

/// Under login limits a session whose login chose nothing still slides on the
/// configuration's idle TTL for as long as it is used, and has no deadline: its companion
/// follows it.
pub async fn plain_sessions_under_login_limits_slide_without_end(b: &Backend) {
    let config = remember_me().with_idle_ttl(Duration::from_millis(400));
    let m = b.manager::<JavaUser>(config);
    // Rotation indexes under the user the data names.
    let user = JavaUser::new(1).user_id();
    let token = m.login(&user, &JavaUser::new(1)).await.unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert!(m.load(&token).await.unwrap().is_some(), "used, so alive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = m.load(&token).await.unwrap().unwrap();
    let rotated = m.rotate(&session).await.unwrap().expect("live");
    assert_eq!(rotated.lifetime_left, None, "no deadline");
    let list = m.sessions(&user, Some(&rotated.token)).await.unwrap();
    assert!(list.len() == 1 && list[0].current, "{list:?}");
    // Left alone, it ends after the idle TTL, companion and all.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(m.load(&rotated.token).await.unwrap().is_none());
    assert!(m.sessions(&user, None).await.unwrap().is_empty());
}
