//! Every way a session ends, seen by a watcher in another process with the right reason.

use std::sync::Arc;
use std::time::Duration;

use keygate::{EndReason, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::JavaUser;

use crate::support::{Target, Watcher, unix_us};

/// The longest an end may take to reach the other process in these tests (the measured
/// delays are milliseconds; this leaves room for a loaded machine).
pub const END_WITHIN: Duration = Duration::from_secs(3);

/// A Redis deployment seen from the test: a store, the watcher's target, and raw access.
pub struct Place {
    pub store: RedisStore,
    pub target: Target,
    /// Deletes a key as another program would (`DEL` on the key's master).
    pub raw_del: Box<dyn Fn(&str) + Send + Sync>,
}

fn manager(place: &Place, config: SessionConfig) -> SessionManager<JavaUser> {
    SessionManager::new(place.store.clone(), config).expect("a valid configuration")
}

/// Logs in a new session of `user` (with the Java layout) and returns its token.
async fn login(m: &SessionManager<JavaUser>, user: u64) -> keygate::Token {
    m.login(&UserId::from(user), &JavaUser::new(user))
        .await
        .expect("login")
}

/// Waits for watch `id` to end and checks its reason and that it took at most
/// [`END_WITHIN`] from `since` (unix µs).
async fn expect_end(watcher: &mut Watcher, id: &str, want: EndReason, since: u128) {
    let Some((reason, at)) = watcher.ended(id, END_WITHIN * 2).await else {
        panic!("watch {id} did not end with {want}");
    };
    assert_eq!(reason, want, "watch {id}");
    let took = Duration::from_micros(u64::try_from(at.saturating_sub(since)).unwrap_or(u64::MAX));
    assert!(took <= END_WITHIN, "{want} took {took:?}");
}

/// Each way a session ends, one after another, watched by one watcher process started
/// with `extra` arguments. Users are numbered from `base` so that places may be reused.
pub async fn every_way_a_session_ends(place: &Place, extra: &[&str], base: u64) {
    let mut watcher = Watcher::start(&place.target, extra).await;
    let m = manager(place, SessionConfig::java_seed());
    let capped = manager(
        place,
        SessionConfig::java_seed().with_max_sessions_per_user(1),
    );
    let short = manager(
        place,
        SessionConfig::java_seed().with_idle_ttl(Duration::from_millis(1500)),
    );

    // A session that stays valid while all this happens does not end.
    let bystander = login(&m, base).await;
    let stays = watcher.watch(&bystander).await;

    // Its own logout.
    let token = login(&m, base + 1).await;
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    let since = unix_us();
    assert!(m.logout(&token).await.unwrap());
    expect_end(&mut watcher, &id, EndReason::LoggedOut, since).await;

    // Ended from another device, by its public id.
    let user = UserId::from(base + 2);
    let (phone, laptop) = (login(&m, base + 2).await, login(&m, base + 2).await);
    let id = watcher.watch(&phone).await;
    let other = watcher.watch(&laptop).await;
    watcher.armed().await;
    let since = unix_us();
    assert!(m.end_session(&user, &m.session_id(&phone)).await.unwrap());
    expect_end(&mut watcher, &id, EndReason::EndedFromAnotherDevice, since).await;

    // Log out everywhere: the laptop too, and one more.
    let third = login(&m, base + 2).await;
    let third_id = watcher.watch(&third).await;
    watcher.armed().await;
    let since = unix_us();
    assert_eq!(m.logout_everywhere(&user).await.unwrap(), 2);
    expect_end(&mut watcher, &other, EndReason::LoggedOutEverywhere, since).await;
    expect_end(
        &mut watcher,
        &third_id,
        EndReason::LoggedOutEverywhere,
        since,
    )
    .await;

    // Rotation: the old token's watch ends; the new token lives.
    let token = login(&m, base + 3).await;
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    let session = m.load(&token).await.unwrap().expect("live");
    let since = unix_us();
    let rotated = m.rotate(&session).await.unwrap().expect("rotated");
    expect_end(&mut watcher, &id, EndReason::Rotated, since).await;
    assert!(m.load(&rotated.token).await.unwrap().is_some());

    // A newer login beyond the per-user cap.
    let token = login(&capped, base + 4).await;
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    let since = unix_us();
    login(&capped, base + 4).await;
    expect_end(&mut watcher, &id, EndReason::SessionLimit, since).await;

    // An operator (what `keygate-cli sessions end` calls), one session and all.
    let token = login(&m, base + 5).await;
    let all = login(&m, base + 6).await;
    let id = watcher.watch(&token).await;
    let all_id = watcher.watch(&all).await;
    watcher.armed().await;
    let since = unix_us();
    assert_eq!(
        m.operator_end(&UserId::from(base + 5), Some(&m.session_id(&token)))
            .await
            .unwrap(),
        1
    );
    expect_end(&mut watcher, &id, EndReason::EndedByOperator, since).await;
    let since = unix_us();
    assert_eq!(
        m.operator_end(&UserId::from(base + 6), None).await.unwrap(),
        1
    );
    expect_end(&mut watcher, &all_id, EndReason::EndedByOperator, since).await;

    // Deleted by another program.
    let token = login(&m, base + 7).await;
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    let since = unix_us();
    (place.raw_del)(&format!("login:token:{}", token.expose()));
    expect_end(&mut watcher, &id, EndReason::Deleted, since).await;

    // Expiry of the idle TTL: the session is never used again.
    let token = login(&short, base + 8).await;
    let logged_in = unix_us();
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    expect_end(&mut watcher, &id, EndReason::Expired, logged_in + 1_500_000).await;

    // The bystander, watched all along, is still watched and still valid.
    watcher.drain(Duration::from_millis(100)).await;
    assert!(
        watcher.ended(&stays, Duration::ZERO).await.is_none(),
        "a valid session's watch ended"
    );
    assert!(m.load(&bystander).await.unwrap().is_some());
}

/// A session with an absolute lifetime, used all the time, ends at its deadline: the
/// watcher (which knows the companion keys) sees it expire.
pub async fn an_absolute_lifetime_ends_an_active_session(place: &Place, extra: &[&str], user: u64) {
    let mut args = vec!["--lifetime-ms", "2000"];
    args.extend_from_slice(extra);
    let mut watcher = Watcher::start(&place.target, &args).await;
    let m = Arc::new(manager(
        place,
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_millis(2000)),
    ));
    let token = login(&m, user).await;
    let deadline = unix_us() + 2_000_000;
    let id = watcher.watch(&token).await;
    watcher.armed().await;
    // Used every 100 ms by "another instance" until it is over.
    let using = {
        let (m, token) = (Arc::clone(&m), token.clone());
        tokio::spawn(async move {
            while m.load(&token).await.ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    expect_end(&mut watcher, &id, EndReason::Expired, deadline).await;
    let _ = using.await;
}
