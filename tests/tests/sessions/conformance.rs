//! Behaviour every backend must have.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use keygate::web::Rejection;
use keygate::{Keygate, Layout, SessionConfig, Token, UpdateOutcome, UserId};
use keygate_tests::fixtures::Authorization;

use crate::support::{Backend, JavaUser, Managers, NodeUser};
use keygate_tests::observed::{CallCount, ObservedStore};

fn uid(n: u64) -> UserId {
    UserId::from(n)
}

pub async fn create_then_load(b: &Backend) {
    for config in [
        SessionConfig::node_seed("myapp"),
        SessionConfig::java_seed(),
    ] {
        let json = b.manager::<NodeUser>(SessionConfig::node_seed("myapp"));
        let token = json.login(&uid(598), &NodeUser::seed()).await.unwrap();
        assert_eq!(token.expose().len(), 32);
        let session = json.load(&token).await.unwrap().expect("session exists");
        assert_eq!(session.data(), &NodeUser::seed());
        assert_eq!(session.token(), &token);

        let hash = b.manager::<JavaUser>(config.clone());
        let token = hash.login(&uid(7), &JavaUser::new(7)).await.unwrap();
        let session = hash.load(&token).await.unwrap().expect("session exists");
        assert_eq!(session.into_data(), JavaUser::new(7));

        let unknown = Token::generate().unwrap();
        assert!(hash.load(&unknown).await.unwrap().is_none());
    }
}

pub async fn sliding_refresh_and_idle_expiry(b: &Backend) {
    for codec in [Layout::Json, Layout::Hash] {
        let m = b.manager::<JavaUser>(
            SessionConfig::new("slide:", codec).with_idle_ttl(Duration::from_millis(1000)),
        );
        let token = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
        // Touched every 600 ms, the session outlives its first 1000 ms TTL twice over.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert!(
                m.load(&token).await.unwrap().is_some(),
                "{codec:?}: refreshed"
            );
        }
        // Left alone longer than the idle TTL, it is gone.
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert!(
            m.load(&token).await.unwrap().is_none(),
            "{codec:?}: idle expiry"
        );
    }
}

pub async fn absolute_lifetime_ends_an_active_session(b: &Backend) {
    for codec in [Layout::Json, Layout::Hash] {
        let m = b.manager::<JavaUser>(
            SessionConfig::new("abs:", codec)
                .with_idle_ttl(Duration::from_secs(60))
                .with_absolute_lifetime(Duration::from_millis(1200)),
        );
        let token = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(m.load(&token).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(m.load(&token).await.unwrap().is_some());
        // Active all along, yet past its lifetime.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(m.load(&token).await.unwrap().is_none(), "{codec:?}");
    }
}

pub async fn replace_keeps_data_fresh_and_never_resurrects(b: &Backend) {
    for config in [SessionConfig::node_seed("rep"), SessionConfig::java_seed()] {
        let m = b.manager::<JavaUser>(config);
        let token = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
        let mut changed = JavaUser::new(1);
        changed.nick_name = "renamed".into();
        assert!(m.replace(&token, &changed).await.unwrap());
        assert_eq!(m.load(&token).await.unwrap().unwrap().data(), &changed);

        assert!(m.logout(&token).await.unwrap());
        assert!(!m.replace(&token, &changed).await.unwrap());
        assert!(m.load(&token).await.unwrap().is_none());
    }
}

pub async fn destroy_races_never_resurrect(b: &Backend) {
    for config in [SessionConfig::node_seed("race"), SessionConfig::java_seed()] {
        let m = b.manager::<JavaUser>(config);
        let mut rounds = Vec::new();
        for i in 0..100 {
            let m = m.clone();
            rounds.push(tokio::spawn(async move {
                let token = m.login(&uid(i), &JavaUser::new(i)).await.unwrap();
                let session = m.load(&token).await.unwrap().unwrap();
                let mut changed = JavaUser::new(i);
                changed.icon = "new".into();
                let (replace, update, destroy) = tokio::join!(
                    m.replace(&token, &changed),
                    m.update(&session, &changed),
                    m.logout(&token),
                );
                assert!(destroy.unwrap(), "the session existed until destroyed");
                replace.unwrap();
                update.unwrap();
                // Whatever the interleaving, a destroyed session stays destroyed.
                m.load(&token).await.unwrap().is_none()
            }));
        }
        for round in rounds {
            assert!(round.await.unwrap(), "a destroyed session came back");
        }
    }
}

pub async fn hash_updates_merge_fields(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let token = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    // Two requests load the same session, each changes a different field.
    let first = m.load(&token).await.unwrap().unwrap();
    let second = m.load(&token).await.unwrap().unwrap();
    let mut a = first.data().clone();
    a.nick_name = "from-a".into();
    let mut b2 = second.data().clone();
    b2.icon = "from-b.png".into();
    assert_eq!(m.update(&first, &a).await.unwrap(), UpdateOutcome::Updated);
    assert_eq!(
        m.update(&second, &b2).await.unwrap(),
        UpdateOutcome::Updated
    );
    let now = m.load(&token).await.unwrap().unwrap().into_data();
    assert_eq!(now.nick_name, "from-a", "the first change survived");
    assert_eq!(now.icon, "from-b.png", "the second change landed");
    m.logout(&token).await.unwrap();
    assert_eq!(m.update(&first, &a).await.unwrap(), UpdateOutcome::Gone);
}

pub async fn json_updates_detect_conflicts(b: &Backend) {
    let m = b.manager::<NodeUser>(SessionConfig::node_seed("cas"));
    let token = m.login(&uid(598), &NodeUser::seed()).await.unwrap();
    let first = m.load(&token).await.unwrap().unwrap();
    let second = m.load(&token).await.unwrap().unwrap();
    let mut a = NodeUser::seed();
    a.mobile_phone = "13800000000".into();
    let mut c = NodeUser::seed();
    c.openid = "other".into();
    assert_eq!(m.update(&first, &a).await.unwrap(), UpdateOutcome::Updated);
    assert_eq!(
        m.update(&second, &c).await.unwrap(),
        UpdateOutcome::Conflict
    );
    assert_eq!(m.load(&token).await.unwrap().unwrap().data(), &a);
    m.logout(&token).await.unwrap();
    assert_eq!(m.update(&first, &a).await.unwrap(), UpdateOutcome::Gone);
}

pub async fn destroy_ends_one_session(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let one = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    let two = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    assert!(m.logout(&one).await.unwrap());
    assert!(
        !m.logout(&one).await.unwrap(),
        "second destroy finds nothing"
    );
    assert!(m.load(&one).await.unwrap().is_none());
    assert!(m.load(&two).await.unwrap().is_some());
}

pub async fn list_and_destroy_all(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let alice = UserId::new("alice@example.com").unwrap();
    let tokens = [
        m.login(&alice, &JavaUser::new(1)).await.unwrap(),
        m.login(&alice, &JavaUser::new(1)).await.unwrap(),
        m.login(&alice, &JavaUser::new(1)).await.unwrap(),
    ];
    let bob_token = m.login(&uid(2), &JavaUser::new(2)).await.unwrap();

    let list = m.sessions(&alice, Some(&tokens[1])).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list.iter().map(|s| s.current).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert!(
        list.windows(2)
            .all(|w| w[0].created_at_ms <= w[1].created_at_ms)
    );

    m.logout(&tokens[0]).await.unwrap();
    assert_eq!(m.sessions(&alice, None).await.unwrap().len(), 2);

    assert_eq!(m.logout_everywhere(&alice).await.unwrap(), 2);
    for token in &tokens {
        assert!(m.load(token).await.unwrap().is_none());
    }
    assert!(m.sessions(&alice, None).await.unwrap().is_empty());
    assert!(
        m.load(&bob_token).await.unwrap().is_some(),
        "other users keep theirs"
    );
}

pub async fn cap_evicts_the_oldest(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed().with_max_sessions_per_user(2));
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(m.login(&uid(1), &JavaUser::new(1)).await.unwrap());
    }
    let alive: Vec<bool> = futures_util::future::join_all(tokens.iter().map(|t| m.load(t)))
        .await
        .into_iter()
        .map(|r| r.unwrap().is_some())
        .collect();
    assert_eq!(alive, [false, false, true, true]);
    assert_eq!(m.sessions(&uid(1), None).await.unwrap().len(), 2);
}

pub async fn hashed_keys_mode(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed().with_hashed_keys(true));
    let token = m.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    assert_eq!(
        m.load(&token).await.unwrap().unwrap().data(),
        &JavaUser::new(1)
    );
    // The raw token is not a key: a plain manager cannot find the session.
    let plain = b.manager::<JavaUser>(SessionConfig::java_seed());
    assert!(plain.load(&token).await.unwrap().is_none());
    assert!(m.sessions(&uid(1), Some(&token)).await.unwrap()[0].current);
    assert!(m.logout(&token).await.unwrap());
    assert!(m.load(&token).await.unwrap().is_none());
}

pub async fn malformed_tokens_are_rejected_before_the_store(b: &Backend) {
    let counting = Arc::new(ObservedStore::new(b.sessions(), CallCount::default()));
    let manager = keygate::SessionManager::<JavaUser>::from_shared_store(
        counting.clone(),
        SessionConfig::java_seed(),
    )
    .unwrap();
    let gate = Keygate::new(manager);
    let huge = vec![b'a'; 10 * 1024];
    for bad in [
        b"*".to_vec(),
        huge,
        "dd9b7511874889f4192fbda3d8b088é".as_bytes().to_vec(),
        b"dd9b7511874889f4\x01192fbda3d8b0881c".to_vec(),
        b"login:token:*".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ] {
        let rejection = gate.resolve(&Authorization(bad)).await.unwrap_err();
        assert_eq!(rejection, Rejection::MalformedToken);
    }
    // Any bytes at all: a seeded stream of 2,000 random headers of up to 400 bytes.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = usize::try_from(next() % 400).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        let well_formed = std::str::from_utf8(&bytes).is_ok_and(|s| {
            let s = s.trim();
            Token::parse(s.strip_prefix("Bearer ").unwrap_or(s).trim()).is_ok()
        });
        let rejection = gate.resolve(&Authorization(bytes)).await.unwrap_err();
        if !well_formed {
            // An empty or blank header carries no token at all.
            assert!(
                matches!(
                    rejection,
                    Rejection::MalformedToken | Rejection::MissingToken
                ),
                "{rejection:?}"
            );
        }
    }
    assert_eq!(
        counting.observer.get(),
        0,
        "no store call for malformed tokens"
    );

    let unknown = Token::generate().unwrap();
    let rejection = gate
        .resolve(&Authorization::new(unknown.expose()))
        .await
        .unwrap_err();
    assert_eq!(rejection, Rejection::NoSession);
    assert_eq!(
        counting.observer.get(),
        1,
        "one store call for a well-formed token"
    );
}

pub async fn corrupt_data_is_no_session(b: &Backend) {
    // A JSON session read through the hash codec (same prefix): the key holds another type.
    let json = b.manager::<JavaUser>(SessionConfig::new("shared:", Layout::Json));
    let hash = b.manager::<JavaUser>(SessionConfig::new("shared:", Layout::Hash));
    let token = json.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    assert!(hash.load(&token).await.unwrap().is_none());
    let token = hash.login(&uid(1), &JavaUser::new(1)).await.unwrap();
    assert!(json.load(&token).await.unwrap().is_none());

    // Data of another shape than the session type.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Other {
        name: String,
    }
    let other = b.manager::<Other>(SessionConfig::new("shape:", Layout::Json));
    let typed = b.manager::<JavaUser>(SessionConfig::new("shape:", Layout::Json));
    let token = other
        .login(&uid(1), &Other { name: "x".into() })
        .await
        .unwrap();
    assert!(typed.load(&token).await.unwrap().is_none());
    // The corrupt entry is reported as absent, not destroyed: its owner still reads it.
    assert!(other.load(&token).await.unwrap().is_some());
}

pub async fn concurrent_creates_and_loads(b: &Backend) {
    let m = b.manager::<JavaUser>(SessionConfig::java_seed());
    let tasks: Vec<_> = (0..300u64)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let token = m.login(&uid(i % 50), &JavaUser::new(i)).await.unwrap();
                let loaded = m.load(&token).await.unwrap().unwrap();
                assert_eq!(loaded.id, i, "each token loads its own user");
                token
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        assert!(seen.insert(task.await.unwrap()), "tokens are unique");
    }
    let mut total = 0;
    for user in 0..50 {
        total += m.sessions(&uid(user), None).await.unwrap().len();
    }
    assert_eq!(total, 300);
}
