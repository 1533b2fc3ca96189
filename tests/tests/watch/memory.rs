//! The embedded backend: it announces ends and rotations itself, and expiry is seen by the
//! watch's timer.

use std::time::Duration;

use keygate::{EndReason, MemoryStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::JavaUser;

const WITHIN: Duration = Duration::from_secs(2);

async fn ends_with(ended: keygate::Ended, want: EndReason) {
    let reason = tokio::time::timeout(WITHIN, ended)
        .await
        .expect("ended in time");
    assert_eq!(reason, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_is_seen_on_the_memory_backend() {
    let store = MemoryStore::new();
    let m = SessionManager::<JavaUser>::new(store.clone(), SessionConfig::java_seed()).unwrap();
    let capped = SessionManager::<JavaUser>::new(
        store.clone(),
        SessionConfig::java_seed().with_max_sessions_per_user(1),
    )
    .unwrap();
    let short = SessionManager::<JavaUser>::new(
        store,
        SessionConfig::java_seed().with_idle_ttl(Duration::from_millis(300)),
    )
    .unwrap();
    let login = async |m: &SessionManager<JavaUser>, user: u64| {
        m.login(&UserId::from(user), &JavaUser::new(user))
            .await
            .unwrap()
    };

    let stays = login(&m, 1).await;
    let stays_watch = tokio::spawn(m.ended(&stays));

    let token = login(&m, 2).await;
    let ended = tokio::spawn(m.ended(&token));
    m.logout(&token).await.unwrap();
    assert_eq!(ended.await.unwrap(), EndReason::LoggedOut);
    // A watch of a session that ended already completes at once, with the end mark's
    // reason, however many watch it.
    let (again, twice) = tokio::join!(m.ended(&token), m.ended(&token));
    assert_eq!((again, twice), (EndReason::LoggedOut, EndReason::LoggedOut));

    let token = login(&m, 3).await;
    let ended = m.ended(&token);
    m.end_session(&UserId::from(3u64), &m.session_id(&token))
        .await
        .unwrap();
    ends_with(ended, EndReason::EndedFromAnotherDevice).await;

    let token = login(&m, 4).await;
    let ended = m.ended(&token);
    m.logout_everywhere(&UserId::from(4u64)).await.unwrap();
    ends_with(ended, EndReason::LoggedOutEverywhere).await;

    let token = login(&m, 5).await;
    let ended = m.ended(&token);
    let session = m.load(&token).await.unwrap().unwrap();
    m.rotate(&session).await.unwrap().unwrap();
    ends_with(ended, EndReason::Rotated).await;

    // Watched by another manager on the same store: the store announces to every one.
    let token = login(&capped, 6).await;
    let ended = m.ended(&token);
    login(&capped, 6).await;
    ends_with(ended, EndReason::SessionLimit).await;

    let token = login(&m, 7).await;
    let ended = m.ended(&token);
    m.operator_end(&UserId::from(7u64), Some(&m.session_id(&token)))
        .await
        .unwrap();
    ends_with(ended, EndReason::EndedByOperator).await;

    let token = login(&short, 8).await;
    ends_with(short.ended(&token), EndReason::Expired).await;

    assert!(!stays_watch.is_finished());
    assert!(m.load(&stays).await.unwrap().is_some());
    assert_eq!(m.watch_stats().watched, 1);
    stays_watch.abort();
    // A dropped watch lets its entry go.
    assert!(
        keygate_tests::eventually(WITHIN, async || m.watch_stats().watched == 0).await,
        "the aborted watch's entry stayed"
    );
}
