//! Redis-specific checks: layouts byte for byte, round trips, outages.

use keygate::SessionUser as _;
use std::time::{Duration, Instant};

use keygate::{
    BackendError, Error, RedisOptions, RedisStore, SessionConfig, SessionManager, Token, UserId,
};
use keygate_tests::fixtures::{JavaUser, commands_since_reset, plant_java_session, pttl};
use keygate_tests::{RedisServer, eventually, free_port};

use crate::support::{NodeUser, redis_store};

async fn manager<T>(server: &RedisServer, config: SessionConfig) -> SessionManager<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    SessionManager::new(redis_store(server).await, config).unwrap()
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    server.query(redis::cmd("GET").arg(key))
}

fn hgetall(server: &RedisServer, key: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = server.query(redis::cmd("HGETALL").arg(key));
    fields.sort();
    fields
}

/// Round trips the server read during `f`, net of the measuring `INFO` calls.
async fn round_trips<F: Future<Output = ()>>(server: &RedisServer, f: F) -> u64 {
    let idle = {
        let before = server.info_stat("total_reads_processed");
        server.info_stat("total_reads_processed") - before
    };
    let before = server.info_stat("total_reads_processed");
    f.await;
    server.info_stat("total_reads_processed") - before - idle
}

#[tokio::test]
async fn node_seed_layout_is_the_users_json_byte_for_byte() {
    let server = RedisServer::start();
    let m = manager::<NodeUser>(&server, SessionConfig::node_seed("myapp")).await;
    let token = m
        .login(&UserId::from(598u64), &NodeUser::seed())
        .await
        .unwrap();
    let key = format!("myapp_{}", token.expose());
    assert_eq!(
        get(&server, &key).as_deref(),
        Some(r#"{"user_id":598,"mobile_phone":"","openid":"oGrf0v4ov5ETTCNtW_A-Zq61kgsI"}"#)
    );
    let ttl = pttl(&server, &key);
    assert!(
        (1_799_000..=1_800_000).contains(&ttl),
        "TTL 1800 s, got {ttl} ms"
    );

    // A session written by the Node service loads here.
    let node_token = "0123456789abcdef0123456789abcdef";
    let _: () = server.query(
        redis::cmd("SET")
            .arg(format!("myapp_{node_token}"))
            .arg(r#"{"user_id":7,"mobile_phone":"138","openid":"x"}"#)
            .arg("EX")
            .arg(1800),
    );
    let loaded = m
        .load(&Token::parse(node_token).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.user_id, 7);
}

#[tokio::test]
async fn java_seed_layout_is_a_hash_of_strings() {
    let server = RedisServer::start();
    let m = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let user = JavaUser::new(598);
    let token = m.login(&user.user_id(), &user).await.unwrap();
    let key = format!("login:token:{}", token.expose());
    assert_eq!(
        hgetall(&server, &key),
        [
            ("icon".to_owned(), String::new()),
            ("id".to_owned(), "598".to_owned()),
            ("nickName".to_owned(), "user_598".to_owned()),
        ]
    );
    assert!((1_799_000..=1_800_000).contains(&pttl(&server, &key)));

    // A hash written by the Spring service (HSET + EXPIRE) is a valid session.
    let java_token = "fedcba9876543210fedcba9876543210";
    plant_java_session(&server, java_token, &JavaUser::new(1010));
    let java_key = format!("login:token:{java_token}");
    let _: () = server.query(redis::cmd("EXPIRE").arg(&java_key).arg(5));
    let loaded = m
        .load(&Token::parse(java_token).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.data(), &JavaUser::new(1010));
    assert!(
        pttl(&server, &java_key) > 1_000_000,
        "loading reset the TTL to 1800 s"
    );
}

#[tokio::test]
async fn load_is_one_round_trip_and_nothing_else() {
    let server = RedisServer::start();
    let user = JavaUser::new(1);
    let json = manager::<JavaUser>(&server, SessionConfig::node_seed("app")).await;
    let hash = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let deadline = manager::<JavaUser>(
        &server,
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_secs(3600)),
    )
    .await;
    let json_token = json.login(&user.user_id(), &user).await.unwrap();
    let hash_token = hash.login(&user.user_id(), &user).await.unwrap();
    let deadline_token = deadline.login(&user.user_id(), &user).await.unwrap();
    // Scripts are loaded once; warm the touch script up.
    deadline.load(&deadline_token).await.unwrap().unwrap();

    for (m, token, expected) in [
        (&json, &json_token, vec![("getex".to_owned(), 1)]),
        (
            &hash,
            &hash_token,
            keygate_tests::fixtures::one_hash_touch(),
        ),
        (
            &deadline,
            &deadline_token,
            vec![
                ("evalsha".to_owned(), 1),
                ("hgetall".to_owned(), 1),
                ("pexpire".to_owned(), 1),
                ("pttl".to_owned(), 1),
                ("type".to_owned(), 1),
            ],
        ),
    ] {
        server.reset_stats();
        let trips = round_trips(&server, async {
            assert!(m.load(token).await.unwrap().is_some());
        })
        .await;
        assert_eq!(trips, 1, "one round trip");
        assert_eq!(commands_since_reset(&server), expected);
    }
}

#[tokio::test]
async fn touch_resets_ttl_and_absolute_deadline_caps_it() {
    let server = RedisServer::start();
    let user = JavaUser::new(1);
    let m = manager::<JavaUser>(
        &server,
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_secs(600)),
    )
    .await;
    let token = m.login(&user.user_id(), &user).await.unwrap();
    let key = format!("login:token:{}", token.expose());
    let deadline_key = format!("keygate:deadline:{{{key}}}");
    assert!((599_000..=600_000).contains(&pttl(&server, &deadline_key)));
    assert!(
        pttl(&server, &key) <= 600_000,
        "idle TTL starts capped by the lifetime"
    );

    // Pretend most of the lifetime has passed: the next touch may not extend past it.
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&deadline_key).arg(3000));
    m.load(&token).await.unwrap().unwrap();
    assert!(pttl(&server, &key) <= 3000);

    // Without a deadline, a touch resets the full idle TTL.
    let plain = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let token = plain.login(&user.user_id(), &user).await.unwrap();
    let key = format!("login:token:{}", token.expose());
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(5000));
    plain.load(&token).await.unwrap().unwrap();
    assert!(pttl(&server, &key) > 1_790_000);
}

#[tokio::test]
async fn replace_and_update_keep_the_ttl() {
    let server = RedisServer::start();
    for config in [SessionConfig::node_seed("k"), SessionConfig::java_seed()] {
        let m = manager::<JavaUser>(&server, config).await;
        let user = JavaUser::new(1);
        let token = m.login(&user.user_id(), &user).await.unwrap();
        let key = format!("{}{}", m.config().prefix(), token.expose());
        let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(50_000));
        let mut changed = user.clone();
        changed.icon = "a.png".into();
        assert!(m.replace(&token, &changed).await.unwrap());
        let ttl = pttl(&server, &key);
        assert!(
            (40_000..=50_000).contains(&ttl),
            "replace kept the TTL: {ttl}"
        );
        let session = m.load(&token).await.unwrap().unwrap();
        let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(50_000));
        changed.nick_name = "n".into();
        m.update(&session, &changed).await.unwrap();
        let ttl = pttl(&server, &key);
        assert!(
            (40_000..=50_000).contains(&ttl),
            "update kept the TTL: {ttl}"
        );
    }
}

#[tokio::test]
async fn corrupt_stored_data_is_no_session_and_left_alone() {
    let server = RedisServer::start();
    let json = manager::<NodeUser>(&server, SessionConfig::node_seed("c")).await;
    let hash = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let tokens: Vec<Token> = (0..5).map(|_| Token::generate().unwrap()).collect();
    let key = |prefix: &str, i: usize| format!("{prefix}{}", tokens[i].expose());
    let _: () = server.query(redis::cmd("SET").arg(key("c_", 0)).arg("{not json"));
    let _: () = server.query(redis::cmd("SET").arg(key("c_", 1)).arg(&[0xffu8, 0xfe][..]));
    let _: () = server.query(redis::cmd("SADD").arg(key("c_", 2)).arg("x"));
    let _: () = server.query(
        redis::cmd("HSET")
            .arg(key("login:token:", 3))
            .arg("id")
            .arg("abc"),
    );
    let _: () = server.query(redis::cmd("SET").arg(key("login:token:", 4)).arg("str"));
    for (i, token) in tokens.iter().enumerate().take(3) {
        assert!(json.load(token).await.unwrap().is_none(), "json case {i}");
        assert_eq!(
            server.query::<i64>(redis::cmd("EXISTS").arg(key("c_", i))),
            1
        );
    }
    for (i, token) in tokens.iter().enumerate().skip(3) {
        assert!(hash.load(token).await.unwrap().is_none(), "hash case {i}");
        assert_eq!(
            server.query::<i64>(redis::cmd("EXISTS").arg(key("login:token:", i))),
            1
        );
    }
}

#[tokio::test]
async fn url_carries_password_and_database() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let m = SessionManager::<JavaUser>::new(
        RedisStore::connect(&url).await.unwrap(),
        SessionConfig::java_seed(),
    )
    .unwrap();
    let user = JavaUser::new(1);
    let token = m.login(&user.user_id(), &user).await.unwrap();
    let mut admin = server.admin();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut admin).unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("login:token:{}", token.expose()))
        .query(&mut admin)
        .unwrap();
    assert_eq!(exists, 1, "the session is in db 3");

    let wrong = format!("redis://:wrong@127.0.0.1:{}/3", server.port());
    assert!(matches!(
        RedisStore::connect(&wrong).await,
        Err(Error::Backend(_))
    ));
}

#[tokio::test]
async fn unreachable_redis_fails_fast_at_connect() {
    let port = free_port();
    let started = Instant::now();
    let result = RedisStore::connect_with(
        RedisOptions::new(format!("redis://127.0.0.1:{port}"))
            .with_connect_timeout(Duration::from_millis(500)),
    )
    .await;
    assert!(matches!(result, Err(Error::Backend(_))));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(RedisStore::connect("not a url").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_requests_in_flight_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let m = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let user = JavaUser::new(1);
    let token = m.login(&user.user_id(), &user).await.unwrap();

    // Load continuously from 8 tasks while the server dies and comes back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (m, token, stop) = (m.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    match m.load(&token).await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            assert!(e.is_backend(), "{e}");
                            failed += 1;
                        }
                    }
                    slowest = slowest.max(started.elapsed());
                }
                (ok, failed, slowest)
            })
        })
        .collect();

    assert!(
        eventually(Duration::from_secs(2), async || m
            .load(&token)
            .await
            .is_ok())
        .await
    );
    server.stop();
    assert!(
        eventually(Duration::from_secs(3), async || m
            .load(&token)
            .await
            .is_err())
        .await,
        "the outage is reported"
    );
    server.restart();
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), async || m
            .load(&token)
            .await
            .is_ok())
        .await,
        "the same manager works again after the restart"
    );
    let recovery = back.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failed_total = 0;
    for worker in workers {
        let (ok, failed, slowest) = worker.await.unwrap();
        failed_total += failed;
        assert!(ok > 0);
        // Command timeout 500 ms; nothing hangs for the 30 s seen in old ConnectionManagers.
        assert!(
            slowest < Duration::from_millis(1500),
            "slowest call {slowest:?}"
        );
    }
    assert!(failed_total > 0, "the workers saw the outage");
    eprintln!(
        "recovered {recovery:?} after restart; {failed_total} failed calls during the outage"
    );
}

#[tokio::test]
async fn frozen_redis_times_out_then_recovers() {
    let server = RedisServer::start();
    let m = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let user = JavaUser::new(1);
    let token = m.login(&user.user_id(), &user).await.unwrap();
    server.pause();
    let started = Instant::now();
    let result = m.load(&token).await;
    let took = started.elapsed();
    server.resume();
    assert!(
        matches!(
            result,
            Err(Error::Backend(
                BackendError::Timeout(_) | BackendError::Redis(_)
            ))
        ),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), async || matches!(
            m.load(&token).await,
            Ok(Some(_))
        ))
        .await
    );
}

#[tokio::test]
async fn compact_tokens_make_smaller_sessions() {
    let server = RedisServer::start();
    let hex = manager::<NodeUser>(&server, SessionConfig::node_seed("myapp")).await;
    let compact = manager::<NodeUser>(
        &server,
        SessionConfig::node_seed("myapp").with_token_format(keygate::TokenFormat::Base64Url22),
    )
    .await;
    let uid = UserId::from(598u64);
    let hex_token = hex.login(&uid, &NodeUser::seed()).await.unwrap();
    let compact_token = compact.login(&uid, &NodeUser::seed()).await.unwrap();
    assert_eq!(compact_token.expose().len(), 22);
    // Sessions of either form load through either manager: the encoding is only how new
    // tokens are written.
    assert!(hex.load(&compact_token).await.unwrap().is_some());
    assert!(compact.load(&hex_token).await.unwrap().is_some());
    let usage = |token: &Token| -> u64 {
        server.query(
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("myapp_{}", token.expose())),
        )
    };
    let (hex_bytes, compact_bytes) = (usage(&hex_token), usage(&compact_token));
    eprintln!("bytes per session: hex {hex_bytes}, compact {compact_bytes}");
    assert!(compact_bytes < hex_bytes, "{compact_bytes} < {hex_bytes}");
}

/// With the Node layout's prefix, a persistent key `myapp_user_profile_598` could be named
/// as a token and got a 30-minute TTL. Tokens come in the forms that are issued,
/// and a key of the wrong type is never touched.
#[tokio::test]
async fn load_never_touches_a_key_that_is_not_a_session() {
    use keygate::Keygate;
    use keygate::web::RequestParts;

    struct Query(String);
    impl RequestParts for Query {
        fn header(&self, _: &str) -> Option<&[u8]> {
            None
        }
        fn query(&self) -> Option<&str> {
            Some(&self.0)
        }
        fn method(&self) -> &str {
            "GET"
        }
    }

    let server = RedisServer::start();
    let _: () = server.query(redis::cmd("SET").arg("myapp_user_profile_598").arg("{}"));
    let node = Keygate::new(manager::<NodeUser>(&server, SessionConfig::node_seed("myapp")).await);
    server.reset_stats();
    let rejection = node
        .resolve(&Query("tokenid=user_profile_598".into()))
        .await
        .unwrap_err();
    assert_eq!(rejection, keygate::web::Rejection::MalformedToken);
    assert!(commands_since_reset(&server).is_empty(), "no command sent");
    assert_eq!(
        pttl(&server, "myapp_user_profile_598"),
        -1,
        "still persistent"
    );

    // A key of the wrong type under a well-formed token: read as no session, TTL untouched.
    let token = Token::generate().unwrap();
    let string_key = format!("login:token:{}", token.expose());
    let _: () = server.query(redis::cmd("SET").arg(&string_key).arg("not a hash"));
    let java = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    assert!(java.load(&token).await.unwrap().is_none());
    assert_eq!(pttl(&server, &string_key), -1, "wrong type left alone");
    let hash_key = format!("myapp_{}", token.expose());
    let _: () = server.query(redis::cmd("HSET").arg(&hash_key).arg("a").arg("b"));
    let json = manager::<NodeUser>(&server, SessionConfig::node_seed("myapp")).await;
    assert!(json.load(&token).await.unwrap().is_none());
    assert_eq!(pttl(&server, &hash_key), -1, "wrong type left alone");

    // Other forms only by explicit configuration.
    let custom = SessionConfig::node_seed("myapp").with_token_formats(
        keygate::TokenFormats::standard().with(keygate::TokenFormat::Custom {
            min_len: 16,
            max_len: 64,
        }),
    );
    let wide = Keygate::new(manager::<NodeUser>(&server, custom).await);
    assert_eq!(
        wide.resolve(&Query("tokenid=user_profile_598".into()))
            .await
            .unwrap_err(),
        keygate::web::Rejection::NoSession,
        "a custom form reaches Redis"
    );
}

/// In the deadline key's last millisecond `PTTL` answers 0 while the session still exists;
/// the touch script then granted the full idle TTL and the session slid forever.
#[tokio::test]
async fn deadline_in_its_last_millisecond_ends_the_session() {
    let server = RedisServer::start();
    let m = manager::<JavaUser>(
        &server,
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_millis(5)),
    )
    .await;
    for trial in 0..3 {
        let user = JavaUser::new(trial);
        let token = m.login(&user.user_id(), &user).await.unwrap();
        let key = format!("login:token:{}", token.expose());
        let started = Instant::now();
        // Touch in a tight loop across the deadline.
        while started.elapsed() < Duration::from_millis(50) {
            let _ = m.load(&token).await.unwrap();
        }
        assert!(
            m.load(&token).await.unwrap().is_none(),
            "trial {trial}: past its lifetime"
        );
        let left = pttl(&server, &key);
        assert!(
            left <= 5,
            "trial {trial}: the session slid on with {left} ms"
        );
    }
}

/// Every per-user index key expires: with a lifetime after it, otherwise after the
/// retention, counted from the user's last login.
#[tokio::test]
async fn index_keys_expire() {
    let server = RedisServer::start();
    let user = JavaUser::new(1);
    let index = "keygate:user-sessions:1";
    let plain = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    plain.login(&user.user_id(), &user).await.unwrap();
    let days_30 = 30 * 24 * 3600 * 1000;
    let left = pttl(&server, index);
    assert!(
        (days_30 - 5000..=days_30).contains(&left),
        "30 days, got {left} ms"
    );

    let capped = manager::<JavaUser>(
        &server,
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_secs(3600)),
    )
    .await;
    capped.login(&user.user_id(), &user).await.unwrap();
    let left = pttl(&server, index);
    assert!(
        (3_595_000..=3_600_000).contains(&left),
        "the lifetime, got {left} ms"
    );
}

/// Out-of-range durations are refused when the configuration is built, not by every
/// command afterwards.
#[tokio::test]
async fn out_of_range_durations_are_refused_up_front() {
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    for config in [
        SessionConfig::java_seed().with_idle_ttl(Duration::MAX),
        SessionConfig::java_seed().with_absolute_lifetime(Duration::MAX),
        SessionConfig::java_seed().with_idle_ttl(Duration::ZERO),
    ] {
        let error = SessionManager::<JavaUser>::new(store.clone(), config).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{error:?}");
    }
}

/// With Redis down, listing, ending one session and rotating fail as backend errors (503
/// in an adapter) within the command timeout, and work again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_rotation_fail_as_backend_errors_while_redis_is_down() {
    let mut server = RedisServer::start();
    let m = manager::<JavaUser>(&server, SessionConfig::java_seed()).await;
    let user = JavaUser::new(1);
    let token = m.login(&user.user_id(), &user).await.unwrap();
    let session = m.load(&token).await.unwrap().unwrap();
    let id = m.session_id(&token);

    server.stop();
    let started = Instant::now();
    let listed = m.sessions(&user.user_id(), Some(&token)).await;
    assert!(listed.is_err_and(|e| e.is_backend()), "sessions");
    let ended = m.end_session(&user.user_id(), &id).await;
    assert!(ended.is_err_and(|e| e.is_backend()), "end_session");
    let rotated = m.rotate(&session).await;
    assert!(rotated.is_err_and(|e| e.is_backend()), "rotate");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Redis kept nothing on disk: back empty, listing works again and finds nothing.
    server.restart();
    assert!(
        eventually(Duration::from_secs(10), async || m
            .sessions(&user.user_id(), None)
            .await
            .is_ok_and(|list| list.is_empty()))
        .await
    );
    assert!(m.load(&token).await.unwrap().is_none());
}

/// The event log costs nothing when off (no stream key, no stream command, whatever the
/// sessions do) and nothing per request when on: a load, hit or miss, is the same one
/// round trip with the same commands either way, and writes no event.
#[tokio::test]
async fn the_event_log_is_free_when_off_and_loads_never_record() {
    use keygate::session::EventLog;
    let server = RedisServer::start();
    let user = JavaUser::new(5);
    let off = manager::<JavaUser>(&server, SessionConfig::java_seed())
        .await
        .with_session_users();
    let on = manager::<JavaUser>(
        &server,
        SessionConfig::java_seed().with_event_log(EventLog::new()),
    )
    .await
    .with_session_users();
    let json_off = manager::<NodeUser>(&server, SessionConfig::node_seed("app")).await;
    let json_on = manager::<NodeUser>(
        &server,
        SessionConfig::node_seed("app").with_event_log(EventLog::new()),
    )
    .await;

    // Everything a session goes through, with the log off: no stream command at all.
    server.reset_stats();
    let a = off.login(&user.user_id(), &user).await.unwrap();
    let b = off.login(&user.user_id(), &user).await.unwrap();
    let loaded = off.load(&a).await.unwrap().unwrap();
    let rotated = off.rotate(&loaded).await.unwrap().unwrap();
    off.end_session(&user.user_id(), &off.session_id(&rotated.token))
        .await
        .unwrap();
    off.logout_session(&off.load(&b).await.unwrap().unwrap())
        .await
        .unwrap();
    off.logout_everywhere(&user.user_id()).await.unwrap();
    off.sessions(&user.user_id(), None).await.unwrap();
    let streamed: Vec<_> = commands_since_reset(&server)
        .into_iter()
        .filter(|(name, _)| name.starts_with('x'))
        .collect();
    assert!(
        streamed.is_empty(),
        "stream commands with the log off: {streamed:?}"
    );
    let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("keygate:events:*"));
    assert!(keys.is_empty(), "no event key: {keys:?}");

    // A request costs the same with the log on as off: one round trip, same commands.
    let hash_on = on.login(&user.user_id(), &user).await.unwrap();
    let hash_off = off.login(&user.user_id(), &user).await.unwrap();
    let node = NodeUser::seed();
    let node_id = keygate::UserId::from(node.user_id);
    let json_token_on = json_on.login(&node_id, &node).await.unwrap();
    let json_token_off = json_off.login(&node_id, &node).await.unwrap();
    on.load(&hash_on).await.unwrap().unwrap(); // the touch script is cached now
    let unknown = Token::generate().unwrap();
    let events_before = on.recent_events(1000).await.unwrap().len();
    let mut costs = Vec::new();
    for (with_log, load) in [
        (
            true,
            Box::pin(async { on.load(&hash_on).await.unwrap().is_some() })
                as std::pin::Pin<Box<dyn Future<Output = bool>>>,
        ),
        (
            false,
            Box::pin(async { off.load(&hash_off).await.unwrap().is_some() }),
        ),
        (
            true,
            Box::pin(async { on.load(&unknown).await.unwrap().is_none() }),
        ),
        (
            false,
            Box::pin(async { off.load(&unknown).await.unwrap().is_none() }),
        ),
        (
            true,
            Box::pin(async { json_on.load(&json_token_on).await.unwrap().is_some() }),
        ),
        (
            false,
            Box::pin(async { json_off.load(&json_token_off).await.unwrap().is_some() }),
        ),
    ] {
        server.reset_stats();
        let mut ok = false;
        let trips = round_trips(&server, async {
            ok = load.await;
        })
        .await;
        assert!(ok);
        assert_eq!(trips, 1, "one round trip (log on: {with_log})");
        costs.push(commands_since_reset(&server));
    }
    for pair in costs.chunks(2) {
        assert_eq!(
            pair[0], pair[1],
            "the same commands with the log on and off"
        );
    }
    assert_eq!(
        on.recent_events(1000).await.unwrap().len(),
        events_before,
        "loads record nothing"
    );
}
