//! Corrupt data under a cached session: the cache serves nothing, touches nothing and
//! loses nothing, as without it.

use std::time::Duration;

use keygate::{SessionConfig, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{admin, instance, key_of, make_hit, near, poll_until, shared};

/// A session key overwritten from outside with another type or with bytes that are not
/// UTF-8: B, which had it cached, answers no session, and the foreign value keeps its type,
/// content and (absent) expiry.
///
/// The race this catches: a TTL refresh queued just before the outside write (here the one
/// a fill of a session whose TTL no longer covers the idle TTL queues at once). With a
/// plain `PEXPIRE` it set the foreign value's expiry (seen: `PTTL` 1,859,997 instead of
/// -1); a refresh is `PEXPIRE … GT` now, which never gives a key an expiry it did not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_under_a_cached_session_is_no_session_and_stays_untouched() {
    let _turn = shared().await;
    let server = RedisServer::start();
    for config in [SessionConfig::java_seed(), SessionConfig::node_seed("app")] {
        let config = config.with_near_cache(near(Duration::from_secs(60)));
        let a = instance(&server, config.clone()).await;
        let b = instance(&server, config).await;
        let mut outside = admin(&server).await;
        for corrupt in ["list", "bytes"] {
            let token = a
                .login(&UserId::from(5u64), &JavaUser::new(5))
                .await
                .unwrap();
            make_hit(&b, &token).await;
            let key = key_of(&b, &token);
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&key).ignore();
            match corrupt {
                "list" => pipe.cmd("RPUSH").arg(&key).arg("x").ignore(),
                _ => pipe.cmd("SET").arg(&key).arg(&b"\xff\xfe"[..]).ignore(),
            };
            let () = pipe.query_async(&mut outside).await.unwrap();
            let gone = poll_until(Duration::from_secs(1), async || {
                b.load(&token).await.unwrap().is_none()
            })
            .await;
            assert!(gone.is_some(), "{corrupt}: B answered no session");
            // Loads of corrupt data, a few of them through the cache's fill.
            for _ in 0..5 {
                assert!(b.load(&token).await.unwrap().is_none(), "{corrupt}");
            }
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut outside)
                .await
                .unwrap();
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut outside)
                .await
                .unwrap();
            let expected = if corrupt == "list" { "list" } else { "string" };
            assert_eq!(kind, expected, "{corrupt}: the foreign value kept its type");
            assert_eq!(ttl, -1, "{corrupt}: and was never given an expiry");
            if corrupt == "bytes" {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut outside)
                    .await
                    .unwrap();
                assert_eq!(bytes, b"\xff\xfe", "its content is intact");
            }
        }
        let stats = b.near_cache_stats().unwrap();
        assert!(
            stats.tracking,
            "corrupt data is no reason to drop tracking: {stats:?}"
        );
    }
}
