//! The session event log: what each change records, once; expiry found by the index;
//! the caps; the crash window; followers. Run on both backends and on the cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use keygate::backend::{SessionKeyRef, SessionStore};
use keygate::session::{EventLog, LoginOptions, SessionEvent, SessionEventKind};
use keygate::{
    LoginLimits, RedisOptions, RedisStore, SessionConfig, SessionId, SessionManager, Token, UserId,
};
use keygate_tests::eventually;
use keygate_tests::fixtures::{Backend, JavaUser};

use SessionEventKind::{
    Evicted, Expired, Login, Logout, LogoutAll, OperatorEnded, Rotated, SessionEnded,
};

fn logged() -> SessionConfig {
    SessionConfig::java_seed().with_event_log(EventLog::new())
}

fn manager_on(store: Arc<dyn SessionStore>, config: SessionConfig) -> SessionManager<JavaUser> {
    SessionManager::from_shared_store(store, config)
        .unwrap()
        .with_session_users()
}

fn manager(b: &Backend, config: SessionConfig) -> SessionManager<JavaUser> {
    manager_on(b.sessions(), config)
}

/// `n` stores on the backend's data: separate connections on Redis, as separate instances
/// of an application have.
async fn instances(b: &Backend, n: usize) -> Vec<Arc<dyn SessionStore>> {
    let mut stores: Vec<Arc<dyn SessionStore>> = Vec::with_capacity(n);
    for _ in 0..n {
        stores.push(match b {
            Backend::Memory(store) => Arc::new(store.clone()),
            Backend::Redis(_, server) => Arc::new(
                RedisStore::connect_with(
                    RedisOptions::new(server.url()).with_command_timeout(Duration::from_secs(2)),
                )
                .await
                .unwrap(),
            ),
            Backend::Cluster(_, cluster) => Arc::new(
                RedisStore::connect_with(
                    RedisOptions::cluster(cluster.urls())
                        .with_command_timeout(Duration::from_secs(2)),
                )
                .await
                .unwrap(),
            ),
        });
    }
    stores
}

fn kinds(events: &[SessionEvent]) -> Vec<SessionEventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// No field of any event holds a token or the token's key id.
fn assert_no_token(events: &[SessionEvent], tokens: &[&Token]) {
    for event in events {
        let text = format!("{event:?}");
        for token in tokens {
            assert!(
                !text.contains(token.expose()),
                "an event holds a token: {text}"
            );
        }
    }
}

/// Every kind of change records one event of its kind, in order, per user and globally,
/// naming the session by id only.
pub async fn each_change_records_one_event(b: &Backend) {
    let limits = LoginLimits::new(Duration::from_secs(3600), Duration::from_secs(86_400));
    let m = manager(
        b,
        logged()
            .with_login_limits(limits)
            .with_max_sessions_per_user(3),
    );
    let alice = UserId::from(1u64);
    let data = JavaUser::new(1);
    let phone = m
        .login_with(&alice, &data, &LoginOptions::new().with_device("Phone"))
        .await
        .unwrap();
    let remember = LoginOptions::new()
        .with_device("Laptop")
        .with_idle_ttl(Duration::from_secs(600))
        .with_lifetime(Duration::from_secs(7200));
    let laptop = m.login_with(&alice, &data, &remember).await.unwrap();
    let laptop_id = m.session_id(&laptop);
    let rotated = m
        .rotate(&m.load(&laptop).await.unwrap().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(m.end_session(&alice, &m.session_id(&phone)).await.unwrap());
    let tablet = m.login(&alice, &data).await.unwrap();
    assert!(
        m.logout_session(&m.load(&tablet).await.unwrap().unwrap())
            .await
            .unwrap()
    );
    // Four logins beyond a cap of 3 with one live session: the oldest (the rotated
    // laptop) is evicted.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(m.login(&alice, &data).await.unwrap());
    }
    assert_eq!(
        m.operator_end(&alice, Some(&m.session_id(&more[0])))
            .await
            .unwrap(),
        1
    );
    assert_eq!(m.logout_everywhere(&alice).await.unwrap(), 2);

    let events = m.events(&alice, 100).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            Login,
            Login,
            Rotated,
            SessionEnded,
            Login,
            Logout,
            Login,
            Login,
            Login,
            Evicted,
            OperatorEnded,
            LogoutAll,
            LogoutAll
        ]
    );
    assert_eq!(events[0].device.as_deref(), Some("Phone"));
    assert_eq!(events[0].idle_ttl, None, "the configuration's expiry");
    assert_eq!(events[1].session, laptop_id);
    assert_eq!(events[1].idle_ttl, Some(Duration::from_secs(600)));
    assert_eq!(events[1].lifetime, Some(Duration::from_secs(7200)));
    assert_eq!(events[2].session, laptop_id);
    assert_eq!(events[2].new_session, Some(m.session_id(&rotated.token)));
    assert_eq!(events[2].device.as_deref(), Some("Laptop"));
    assert_eq!(events[3].session, m.session_id(&phone));
    assert_eq!(events[5].session, m.session_id(&tablet));
    assert_eq!(
        events[9].session,
        m.session_id(&rotated.token),
        "the oldest left"
    );
    assert_eq!(events[10].session, m.session_id(&more[0]));
    assert!(events.iter().all(|e| e.user == alice));
    let mut positions: Vec<&str> = events.iter().map(|e| e.position.as_str()).collect();
    positions.dedup();
    assert_eq!(positions.len(), events.len(), "one entry each");

    let all = m.recent_events(100).await.unwrap();
    assert_eq!(
        kinds(&all),
        kinds(&events),
        "the global stream has the same"
    );
    let mut tokens = vec![&phone, &laptop, &rotated.token, &tablet];
    tokens.extend(more.iter());
    assert_no_token(&all, &tokens);
    assert_eq!(
        kinds(&m.events(&alice, 2).await.unwrap()),
        [LogoutAll, LogoutAll]
    );
    assert!(m.events(&UserId::from(2u64), 10).await.unwrap().is_empty());
}

/// A session that expired is recorded once, when the index prunes it; a load of an
/// unknown or ended token records nothing.
pub async fn expiry_is_recorded_once_when_the_index_prunes_it(b: &Backend) {
    let m = manager(b, logged().with_idle_ttl(Duration::from_millis(300)));
    let bob = UserId::from(2u64);
    let token = m.login(&bob, &JavaUser::new(2)).await.unwrap();
    // Watched without touching it (a load would keep it alive).
    assert!(
        eventually(Duration::from_secs(5), async || {
            m.peek_sessions(&bob).await.unwrap().is_empty()
        })
        .await
    );
    assert!(m.load(&token).await.unwrap().is_none());
    assert!(m.load(&Token::generate().unwrap()).await.unwrap().is_none());
    assert_eq!(
        kinds(&m.events(&bob, 10).await.unwrap()),
        [Login],
        "loads record nothing"
    );
    assert!(m.sessions(&bob, None).await.unwrap().is_empty());
    assert!(m.sessions(&bob, None).await.unwrap().is_empty());
    m.logout_everywhere(&bob).await.unwrap();
    let events = m.events(&bob, 10).await.unwrap();
    assert_eq!(kinds(&events), [Login, Expired]);
    assert_eq!(events[1].session, m.session_id(&token));
}

/// The streams keep at most their configured lengths.
pub async fn the_caps_hold(b: &Backend) {
    let log = EventLog::new().with_user_len(5).with_global_len(10);
    let m = manager(b, SessionConfig::java_seed().with_event_log(log));
    let carol = UserId::from(3u64);
    for _ in 0..40 {
        let token = m.login(&carol, &JavaUser::new(3)).await.unwrap();
        m.logout_session(&m.load(&token).await.unwrap().unwrap())
            .await
            .unwrap();
    }
    let events = m.events(&carol, 1000).await.unwrap();
    assert_eq!(events.len(), 5, "the user stream is trimmed exactly");
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(Logout),
        "the newest kept"
    );
    let all = m.recent_events(1000).await.unwrap();
    // Approximate trimming keeps whole stream nodes (100 entries each).
    assert!((10..=110).contains(&all.len()), "global: {}", all.len());
}

/// The crash window: a process that dies between a session change and its index change
/// leaves no event without its change, and the change is recorded late, once, as
/// `expired`.
pub async fn a_crash_between_the_two_steps_loses_at_most_the_event_in_progress(b: &Backend) {
    let m = manager(b, logged());
    let store = b.sessions();
    let dave = UserId::from(4u64);
    // An ending that stopped after deleting the session (what `logout` without the user
    // does too): no event, and the session is gone.
    let token = m.login(&dave, &JavaUser::new(4)).await.unwrap();
    let key = format!("login:token:{}", token.expose());
    let keys = SessionKeyRef {
        session: &key,
        deadline: None,
        own_idle: false,
    };
    assert_eq!(store.remove(&[keys]).await.unwrap(), 1);
    assert_eq!(kinds(&m.events(&dave, 10).await.unwrap()), [Login]);
    // A login that stopped after creating the session: no index entry, no event.
    let orphan = Token::generate().unwrap();
    let orphan_key = format!("login:token:{}", orphan.expose());
    let created = store
        .insert(
            SessionKeyRef {
                session: &orphan_key,
                deadline: None,
                own_idle: false,
            },
            &keygate::backend::StoredValue::Hash(vec![("id".into(), "4".into())]),
            keygate::backend::NewExpiry {
                idle_ms: 60_000,
                lifetime_ms: None,
                own_idle: false,
            },
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(kinds(&m.events(&dave, 10).await.unwrap()), [Login]);
    // The next pruning records the lost end once, as `expired`.
    assert!(m.sessions(&dave, None).await.unwrap().is_empty());
    let events = m.events(&dave, 10).await.unwrap();
    assert_eq!(kinds(&events), [Login, Expired]);
    assert_eq!(events[1].session, m.session_id(&token));
    assert!(m.sessions(&dave, None).await.unwrap().is_empty());
    assert_eq!(m.events(&dave, 10).await.unwrap().len(), 2, "once");
}

/// A follower sees new events of its user (or of all users) as they are recorded, and
/// resumes after a position without a gap.
pub async fn followers_see_new_events(b: &Backend) {
    let m = manager(b, logged());
    let erin = UserId::from(5u64);
    let before = m.login(&erin, &JavaUser::new(5)).await.unwrap();
    let mut mine = m.follow_events(Some(&erin)).await.unwrap();
    let mut everyone = m.follow_events(None).await.unwrap();
    let other = manager_on(instances(b, 1).await.remove(0), logged());
    let token = other
        .login_with(
            &erin,
            &JavaUser::new(5),
            &LoginOptions::new().with_device("Tablet"),
        )
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), mine.next())
        .await
        .expect("within 5 s")
        .unwrap();
    assert_eq!((next.kind, next.device.as_deref()), (Login, Some("Tablet")));
    assert_eq!(next.session, m.session_id(&token), "not the earlier login");
    let global = tokio::time::timeout(Duration::from_secs(5), everyone.next())
        .await
        .expect("within 5 s")
        .unwrap();
    assert_eq!(global.session, next.session);
    // Dropping a pending `next` loses nothing.
    let position = mine.position().to_owned();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), mine.next())
            .await
            .is_err()
    );
    other.logout_everywhere(&erin).await.unwrap();
    let mut ended = HashSet::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), mine.next())
            .await
            .expect("within 5 s")
            .unwrap();
        assert_eq!(event.kind, LogoutAll);
        ended.insert(event.session);
    }
    assert_eq!(
        ended,
        HashSet::from([m.session_id(&before), m.session_id(&token)])
    );
    let mut resumed = m.follow_events_after(Some(&erin), &position).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), resumed.next())
        .await
        .expect("within 5 s")
        .unwrap();
    assert_eq!(first.kind, LogoutAll, "resumes right after the position");
}

/// Four instances log in, log out, rotate, end sessions and log out everywhere at once:
/// every session has exactly one event that created it and at most one that ended it,
/// in that order, and the sessions the log leaves open are exactly those still live.
pub async fn four_instances_record_exactly_one_event_per_change(b: &Backend) {
    const USERS: u64 = 3;
    const STEPS: usize = 60;
    let stores = instances(b, 4).await;
    let managers: Vec<_> = stores
        .into_iter()
        .map(|store| manager_on(store, logged()))
        .collect();
    let mut tasks = Vec::new();
    for (n, m) in managers.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (n as u64 + 1);
            let mut roll = move |below: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % below
            };
            let mut mine: Vec<(UserId, Token)> = Vec::new();
            for _ in 0..STEPS {
                let user_n = 100 + roll(USERS);
                let user = UserId::from(user_n);
                match roll(10) {
                    0..=3 => {
                        let token = m.login(&user, &JavaUser::new(user_n)).await.unwrap();
                        mine.push((user, token));
                    }
                    4 | 5 if !mine.is_empty() => {
                        let (_, token) = mine.swap_remove(roll(mine.len() as u64) as usize);
                        if let Some(session) = m.load(&token).await.unwrap() {
                            m.logout_session(&session).await.unwrap();
                        }
                    }
                    6 | 7 if !mine.is_empty() => {
                        let at = roll(mine.len() as u64) as usize;
                        if let Some(session) = m.load(&mine[at].1).await.unwrap()
                            && let Some(rotated) = m.rotate(&session).await.unwrap()
                        {
                            mine[at].1 = rotated.token;
                        }
                    }
                    8 if !mine.is_empty() => {
                        let at = roll(mine.len() as u64) as usize;
                        let (user, token) = &mine[at];
                        m.end_session(user, &m.session_id(token)).await.unwrap();
                    }
                    _ => {
                        m.logout_everywhere(&user).await.unwrap();
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let m = &managers[0];
    let mut total = 0;
    for user_n in 100..100 + USERS {
        let user = UserId::from(user_n);
        let events = m.events(&user, 100_000).await.unwrap();
        total += events.len();
        // Per session: where it was created and where it ended, by position in the stream.
        let mut created: HashMap<SessionId, usize> = HashMap::new();
        let mut ended: HashMap<SessionId, usize> = HashMap::new();
        for (at, event) in events.iter().enumerate() {
            assert_eq!(event.user, user);
            if event.kind == Login {
                assert!(
                    created.insert(event.session.clone(), at).is_none(),
                    "one creation"
                );
                continue;
            }
            if let Some(new) = &event.new_session {
                assert!(created.insert(new.clone(), at).is_none(), "one creation");
            }
            let began = created.get(&event.session).copied();
            assert!(
                began.is_some_and(|began| began < at),
                "an end after its creation: {event:?}"
            );
            assert!(
                ended.insert(event.session.clone(), at).is_none(),
                "one end per session: {event:?}"
            );
        }
        let open: HashSet<SessionId> = created
            .keys()
            .filter(|id| !ended.contains_key(*id))
            .cloned()
            .collect();
        let live: HashSet<SessionId> = m
            .peek_sessions(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|info| info.id)
            .collect();
        assert_eq!(open, live, "the log's open sessions are the live ones");
    }
    assert!(total > STEPS, "the mix did something: {total} events");
}
