//! Sentinel over TLS: the sentinels are reached with `rediss://`, and so is the master
//! they name (it has no plain port at all), before and after a failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::{JavaUser, with_test_certificates};
use keygate_tests::tls::Pki;
use keygate_tests::{RedisSentinel, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_master_over_tls_through_a_failover() {
    let setup = Arc::new(
        tokio::task::spawn_blocking(RedisSentinel::start_tls)
            .await
            .unwrap(),
    );
    let urls = setup.sentinel_urls();
    assert!(urls.iter().all(|u| u.starts_with("rediss://")), "{urls:?}");

    // A CA the servers' certificates do not come from: the lookup fails, saying why.
    let started = Instant::now();
    let error = RedisStore::connect_with(
        RedisOptions::sentinel(RedisSentinel::MASTER_NAME, urls.clone())
            .with_ca_cert_pem(Pki::shared().other_ca_pem.clone())
            .with_connect_timeout(Duration::from_secs(2)),
    )
    .await
    .expect_err("a wrong CA fails");
    eprintln!("sentinel, wrong CA: {error} ({:?})", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    let store = RedisStore::connect_with(
        with_test_certificates(RedisOptions::sentinel(RedisSentinel::MASTER_NAME, urls))
            .with_command_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let m = SessionManager::<JavaUser>::new(store, SessionConfig::java_seed()).unwrap();
    let token = m
        .login(&UserId::from(1u64), &JavaUser::new(1))
        .await
        .unwrap();
    let old = setup.master_port().unwrap();
    let key = format!("login:token:{}", token.expose());
    assert_eq!(setup.query::<i64>(old, redis::cmd("EXISTS").arg(&key)), 1);
    assert!(eventually(Duration::from_secs(10), async || setup.replica_caught_up()).await);

    assert_eq!(setup.kill_master(), old);
    let mut promoted = None;
    assert!(
        eventually(Duration::from_secs(30), async || {
            promoted = setup.failover_done(old);
            promoted.is_some()
        })
        .await,
        "the sentinels promoted the replica"
    );
    // The same manager reads the session from the new master, over TLS.
    assert!(
        eventually(Duration::from_secs(20), async || matches!(
            m.load(&token).await,
            Ok(Some(session)) if session.id == 1
        ))
        .await,
        "the session is read from the promoted master"
    );
    let again = m
        .login(&UserId::from(2u64), &JavaUser::new(2))
        .await
        .unwrap();
    let promoted = promoted.unwrap();
    let key = format!("login:token:{}", again.expose());
    assert_eq!(
        setup.query::<i64>(promoted, redis::cmd("EXISTS").arg(&key)),
        1
    );
}
