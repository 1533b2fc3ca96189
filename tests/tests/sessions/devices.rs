//! Session ids, devices and last use; ending one session; rotation; per-login expiry
//! (remember-me). Run on both backends and on the cluster.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate::backend::SessionKeyRef;
use keygate::session::LoginOptions;
use keygate::{
    Error, LoginLimits, SessionConfig, SessionId, SessionManager, SessionUser, Token, UserId,
};
use keygate_tests::eventually;
use keygate_tests::fixtures::{Backend, JavaUser};

use crate::support::Managers;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn device(label: &str) -> LoginOptions {
    LoginOptions::new().with_device(label)
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Ids name sessions stably, differ per session, and reveal nothing of the token.
pub async fn session_ids_are_stable_and_unlinkable_to_tokens(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let alice = user("alice");
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(m.login(&alice, &JavaUser::new(1)).await.unwrap());
    }
    let first = m.sessions(&alice, Some(&tokens[1])).await.unwrap();
    let again = m.sessions(&alice, None).await.unwrap();
    let ids: Vec<&SessionId> = first.iter().map(|s| &s.id).collect();
    assert_eq!(
        ids,
        again.iter().map(|s| &s.id).collect::<Vec<_>>(),
        "stable"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "distinct");
    assert_eq!(
        first.iter().map(|s| s.current).collect::<Vec<_>>(),
        [false, true, false]
    );
    for (info, token) in first.iter().zip(&tokens) {
        let id = info.id.as_str();
        assert_eq!(SessionId::parse(id).as_ref(), Some(&info.id));
        let token = token.expose();
        assert_ne!(id, token);
        assert_ne!(id, sha256_hex(token));
        assert!(!sha256_hex(token).contains(id) && !token.contains(&id[..8]));
        // A session id is no token: as one, it opens nothing.
        let as_token = Token::parse(id).unwrap();
        assert!(m.load(&as_token).await.unwrap().is_none());
    }
}

/// The list shows each login's device and when it was last used, to the second, without
/// a write per request.
pub async fn sessions_show_device_and_last_use(b: &Backend) {
    let m =
        b.manager::<JavaUser>(SessionConfig::java_seed().with_idle_ttl(Duration::from_secs(60)));
    let alice = user("alice");
    let phone = m
        .login_with(
            &alice,
            &JavaUser::new(1),
            &device("KeygateTest/1.0 (phone)"),
        )
        .await
        .unwrap();
    let laptop = m
        .login_with(
            &alice,
            &JavaUser::new(1),
            &device("KeygateTest/1.0 (laptop)"),
        )
        .await
        .unwrap();
    let created = now_ms();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(m.load(&phone).await.unwrap().is_some());
    let used = now_ms();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let list = m.sessions(&alice, Some(&laptop)).await.unwrap();
    assert_eq!(list.len(), 2);
    let (p, l) = (&list[0], &list[1]);
    assert_eq!(p.device.as_deref(), Some("KeygateTest/1.0 (phone)"));
    assert_eq!(l.device.as_deref(), Some("KeygateTest/1.0 (laptop)"));
    assert!(l.current && !p.current);
    assert!(
        (p.last_seen_ms - used).abs() <= 250,
        "phone last seen {} ms from its last use",
        p.last_seen_ms - used
    );
    assert!(
        (l.last_seen_ms - created).abs() <= 250,
        "laptop last seen {} ms from its login",
        l.last_seen_ms - created
    );
    assert!(l.last_seen_ms >= l.created_at_ms && p.last_seen_ms >= p.created_at_ms + 1000);
    let unlabelled = m.login(&alice, &JavaUser::new(1)).await.unwrap();
    let list = m.sessions(&alice, Some(&unlabelled)).await.unwrap();
    assert_eq!(list[2].device, None);
}

/// Ending a session by id ends that one, and only for its own user.
pub async fn end_session_touches_only_that_session_of_that_user(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let (alice, bob) = (user("alice"), user("bob"));
    let a1 = m.login(&alice, &JavaUser::new(1)).await.unwrap();
    let a2 = m.login(&alice, &JavaUser::new(1)).await.unwrap();
    let b1 = m.login(&bob, &JavaUser::new(2)).await.unwrap();
    let bobs = m.sessions(&bob, None).await.unwrap();
    let alices = m.sessions(&alice, Some(&a2)).await.unwrap();

    assert!(
        !m.end_session(&alice, &bobs[0].id).await.unwrap(),
        "bob's id"
    );
    assert!(m.load(&b1).await.unwrap().is_some(), "bob untouched");
    let unknown = SessionId::parse(&"0".repeat(32)).unwrap();
    assert!(!m.end_session(&alice, &unknown).await.unwrap());

    assert!(m.end_session(&alice, &alices[0].id).await.unwrap());
    assert!(m.load(&a1).await.unwrap().is_none(), "ended");
    assert!(m.load(&a2).await.unwrap().is_some(), "the other one lives");
    assert!(
        !m.end_session(&alice, &alices[0].id).await.unwrap(),
        "twice"
    );
    let left = m.sessions(&alice, Some(&a2)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, alices[1].id);
    let bobs_now = m.sessions(&bob, None).await.unwrap();
    assert_eq!(
        bobs_now.iter().map(|s| &s.id).collect::<Vec<_>>(),
        bobs.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
}

/// Rotation moves the session to a new token in one step; the old token stops working at
/// that instant, concurrent requests see the session or nothing, and the list keeps its
/// creation time and device.
pub async fn rotate_is_atomic_and_keeps_the_session(b: &Backend) {
    for config in [
        SessionConfig::java_seed(),
        SessionConfig::node_seed("myapp").with_absolute_lifetime(Duration::from_secs(600)),
        SessionConfig::java_seed().with_hashed_keys(true),
    ] {
        let m = b.manager::<JavaUser>(config);
        // Rotation re-indexes under the user the data names.
        let alice = JavaUser::new(1).user_id();
        let old = m
            .login_with(&alice, &JavaUser::new(1), &device("KeygateTest (rotating)"))
            .await
            .unwrap();
        let before = m.sessions(&alice, Some(&old)).await.unwrap();
        let session = m.load(&old).await.unwrap().unwrap();

        let readers: Vec<_> = (0..100)
            .map(|_| {
                let (m, old) = (m.clone(), old.clone());
                tokio::spawn(async move { m.load(&old).await.unwrap().map(|s| s.into_data()) })
            })
            .collect();
        let rotated = m
            .rotate(&session)
            .await
            .unwrap()
            .expect("the session was live");
        let expected_left = m.config().absolute_lifetime();
        assert_eq!(rotated.lifetime_left.is_some(), expected_left.is_some());
        if let (Some(left), Some(lifetime)) = (rotated.lifetime_left, expected_left) {
            assert!(left <= lifetime && left + Duration::from_secs(10) > lifetime);
        }
        let new = rotated.token;
        for reader in readers {
            // The old session, or none: never anything else.
            if let Some(data) = reader.await.unwrap() {
                assert_eq!(data, JavaUser::new(1));
            }
        }
        assert_ne!(new, old);
        assert!(m.load(&old).await.unwrap().is_none(), "old token ended");
        assert_eq!(
            m.load(&new).await.unwrap().unwrap().data(),
            &JavaUser::new(1)
        );
        let after = m.sessions(&alice, Some(&new)).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(after[0].current);
        assert_eq!(after[0].created_at_ms, before[0].created_at_ms);
        assert_eq!(after[0].device.as_deref(), Some("KeygateTest (rotating)"));
        assert_ne!(after[0].id, before[0].id, "a new token, a new id");
        // The old one cannot be rotated again; the new one ends with logout everywhere.
        assert_eq!(m.rotate(&session).await.unwrap(), None);
        assert_eq!(m.logout_everywhere(&alice).await.unwrap(), 1);
        assert!(m.load(&new).await.unwrap().is_none());
    }
}

fn remember_me_config() -> SessionConfig {
    SessionConfig::java_seed()
        .with_idle_ttl(Duration::from_secs(60))
        .with_login_limits(LoginLimits::new(
            Duration::from_secs(600),
            Duration::from_secs(3600),
        ))
}

/// What is left of a session's expiry, read from the store.
async fn ttl_of(b: &Backend, config: &SessionConfig, token: &Token) -> Option<(u64, Option<u64>)> {
    let session = format!("{}{}", config.prefix(), token.expose());
    let companion = format!("{}{{{session}}}", config.deadline_prefix());
    let ttls = b
        .sessions()
        .ttls(&[SessionKeyRef {
            session: &session,
            deadline: Some(&companion),
            own_idle: true,
        }])
        .await
        .unwrap();
    ttls[0].map(|t| (t.ttl_ms.unwrap_or(u64::MAX), t.deadline_ms))
}

/// A login may choose its session's idle TTL and lifetime within the configured limits;
/// loads keep to them, and other sessions keep the configuration's.
pub async fn login_chosen_expiry_is_kept_within_limits(b: &Backend) {
    let config = remember_me_config();
    let m = b.manager::<JavaUser>(config.clone());
    let alice = user("alice");
    let remember = LoginOptions::new().with_idle_ttl(Duration::from_secs(300));
    assert_eq!(
        m.lifetime_for(&remember).unwrap(),
        Some(Duration::from_secs(3600)),
        "no lifetime chosen: the longest allowed"
    );
    assert_eq!(m.lifetime_for(&LoginOptions::new()).unwrap(), None);
    let long = m
        .login_with(&alice, &JavaUser::new(1), &remember)
        .await
        .unwrap();
    let plain = m.login(&alice, &JavaUser::new(1)).await.unwrap();
    assert!(m.load(&long).await.unwrap().is_some());
    assert!(m.load(&plain).await.unwrap().is_some());
    let (ttl, deadline) = ttl_of(b, &config, &long).await.unwrap();
    assert!(
        (295_000..=300_000).contains(&ttl),
        "own idle TTL kept: {ttl}"
    );
    assert!(deadline.is_some_and(|d| (3_590_000..=3_600_000).contains(&d)));
    let (ttl, deadline) = ttl_of(b, &config, &plain).await.unwrap();
    assert!(
        (55_000..=60_000).contains(&ttl),
        "configured idle TTL: {ttl}"
    );
    assert_eq!(deadline, None, "a plain session has no companion");

    // A chosen lifetime caps the idle TTL.
    let short = LoginOptions::new()
        .with_idle_ttl(Duration::from_secs(300))
        .with_lifetime(Duration::from_secs(120));
    let token = m
        .login_with(&alice, &JavaUser::new(1), &short)
        .await
        .unwrap();
    assert!(m.load(&token).await.unwrap().is_some());
    let (ttl, _) = ttl_of(b, &config, &token).await.unwrap();
    assert!(ttl <= 120_000, "capped by the lifetime: {ttl}");

    // Beyond the limits, or without limits: refused before anything is written.
    for too_far in [
        LoginOptions::new().with_idle_ttl(Duration::from_secs(601)),
        LoginOptions::new().with_lifetime(Duration::from_secs(3601)),
    ] {
        let error = m.login_with(&alice, &JavaUser::new(1), &too_far).await;
        assert!(matches!(error, Err(Error::Config(_))), "{too_far:?}");
    }
    let unlimited = b.manager::<JavaUser>(SessionConfig::java_seed());
    let error = unlimited
        .login_with(&alice, &JavaUser::new(1), &remember)
        .await;
    assert!(matches!(error, Err(Error::Config(_))));
    assert_eq!(m.sessions(&alice, None).await.unwrap().len(), 3);
}

/// A short chosen idle TTL ends the session that soon, and a chosen lifetime ends it however
/// active.
pub async fn login_chosen_expiry_ends_sessions(b: &Backend) {
    let config = remember_me_config();
    let m: SessionManager<JavaUser> = b.manager(config.clone());
    let alice = user("alice");
    let brief = LoginOptions::new().with_idle_ttl(Duration::from_millis(300));
    let token = m
        .login_with(&alice, &JavaUser::new(1), &brief)
        .await
        .unwrap();
    assert!(m.load(&token).await.unwrap().is_some());
    // Watch without loading (a load would reset the idle TTL).
    let gone = eventually(Duration::from_secs(3), async || {
        ttl_of(b, &config, &token).await.is_none()
    })
    .await;
    assert!(gone, "idle for 300 ms: over");
    assert!(m.load(&token).await.unwrap().is_none());

    let bounded = LoginOptions::new().with_lifetime(Duration::from_millis(700));
    let token = m
        .login_with(&alice, &JavaUser::new(1), &bounded)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let ended = eventually(Duration::from_secs(4), async || {
        m.load(&token).await.unwrap().is_none()
    })
    .await;
    assert!(ended, "an active session still ends at its lifetime");
    assert!(started.elapsed() >= Duration::from_millis(650));
}

/// A browser request: a cookie, a `User-Agent`, a method.
struct Browser {
    cookie: String,
    method: &'static str,
}

impl keygate::web::RequestParts for Browser {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            "cookie" => Some(self.cookie.as_bytes()),
            "user-agent" => Some(b"KeygateTest/browser"),
            "host" => Some(b"app.example"),
            "origin" => Some(b"https://app.example"),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn method(&self) -> &str {
        self.method
    }
}

/// Through the gate, as an adapter drives it: login sets the cookie (with the device),
/// rotation sets the new token with what is left of the lifetime, and the old cookie no
/// longer opens anything.
pub async fn rotation_through_the_gate_sets_the_new_cookie(b: &Backend) {
    let manager = b.manager::<JavaUser>(
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_secs(3600)),
    );
    let gate = keygate::Keygate::new(manager.clone()).with_cookie(keygate::SessionCookie::new());
    let first = Browser {
        cookie: String::new(),
        method: "POST",
    };
    let login = gate.for_request(&first);
    let token = login.login(&JavaUser::new(1)).await.unwrap();
    assert_eq!(
        login.take_set_cookie().unwrap(),
        format!(
            "token={}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=3600",
            token.expose()
        )
    );
    let listed = manager
        .sessions(&JavaUser::new(1).user_id(), None)
        .await
        .unwrap();
    assert_eq!(listed[0].device.as_deref(), Some("KeygateTest/browser"));

    let next = Browser {
        cookie: format!("token={}", token.expose()),
        method: "POST",
    };
    let request = gate.for_request(&next);
    let session = request.resolve(&next).await.unwrap();
    let new = session.rotate().await.unwrap().expect("live");
    let cookie = request.take_set_cookie().unwrap();
    let prefix = format!(
        "token={}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=",
        new.expose()
    );
    let max_age: u64 = cookie
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{cookie}"))
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&max_age), "what is left: {max_age}");
    let again = gate.for_request(&next);
    assert!(
        again.resolve(&next).await.is_err(),
        "the old cookie is dead"
    );
    assert!(manager.load(&new).await.unwrap().is_some());
}

/// Remember-me through the gate: the cookie's `Max-Age` is the lifetime the login chose;
/// a plain login on the same gate gets a session cookie (no absolute lifetime).
pub async fn remember_me_cookie_lasts_the_chosen_lifetime(b: &Backend) {
    let manager = b.manager::<JavaUser>(remember_me_config());
    let gate = keygate::Keygate::new(manager)
        .with_cookie(keygate::SessionCookie::new().with_secure(false));
    let browser = Browser {
        cookie: String::new(),
        method: "POST",
    };
    let request = gate.for_request(&browser);
    let remember = LoginOptions::new()
        .with_idle_ttl(Duration::from_secs(600))
        .with_lifetime(Duration::from_secs(1800));
    let token = request
        .login_with(&JavaUser::new(1), remember)
        .await
        .unwrap();
    assert_eq!(
        request.take_set_cookie().unwrap(),
        format!(
            "token={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=1800",
            token.expose()
        )
    );
    let request = gate.for_request(&browser);
    let token = request.login(&JavaUser::new(1)).await.unwrap();
    assert_eq!(
        request.take_set_cookie().unwrap(),
        format!("token={}; Path=/; HttpOnly; SameSite=Lax", token.expose())
    );
}

/// `peek_sessions` lists what `sessions` lists and writes nothing: looked at through the
/// wrong layout, a user's index keeps the entries of its live sessions.
pub async fn peek_sessions_lists_without_pruning(b: &Backend) {
    let java = b.manager::<JavaUser>(SessionConfig::java_seed());
    let other = b.manager::<JavaUser>(SessionConfig::node_seed("elsewhere"));
    let carol = user("carol");
    let first = java
        .login_with(&carol, &JavaUser::new(3), &device("phone"))
        .await
        .unwrap();
    java.login(&carol, &JavaUser::new(3)).await.unwrap();
    let listed = java.sessions(&carol, None).await.unwrap();
    let peeked = java.peek_sessions(&carol).await.unwrap();
    assert_eq!(
        peeked
            .iter()
            .map(|s| (&s.id, &s.device))
            .collect::<Vec<_>>(),
        listed
            .iter()
            .map(|s| (&s.id, &s.device))
            .collect::<Vec<_>>()
    );
    assert!(peeked.iter().all(|s| !s.current));

    // Through another layout the sessions look ended; a peek leaves their entries alone.
    assert!(other.peek_sessions(&carol).await.unwrap().is_empty());
    assert_eq!(java.sessions(&carol, None).await.unwrap().len(), 2);
    // An ended session's entry stays until a pruning walk.
    java.logout(&first).await.unwrap();
    assert_eq!(java.peek_sessions(&carol).await.unwrap().len(), 1);
    // `sessions` through the wrong layout prunes every entry: what the peek is for.
    assert!(other.sessions(&carol, None).await.unwrap().is_empty());
    assert!(java.sessions(&carol, None).await.unwrap().is_empty());
}
