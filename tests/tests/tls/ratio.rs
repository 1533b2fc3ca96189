//! What TLS costs: load-and-touch calls per second on one connection, TLS against plain,
//! on the same machine in the same run (rounds alternate). Ignored (a measurement, not a
//! check): `cargo test --release -p keygate-tests --test tls tls_cost -- --ignored
//! --nocapture`.

use std::time::{Duration, Instant};

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::fixtures::{JavaUser, with_test_certificates};
use keygate_tests::{RedisServer, TlsServer};

const ROUND: Duration = Duration::from_secs(2);

/// Calls per second of `load` (one `GETEX`) for `ROUND`, with `callers` concurrent callers
/// on the store's one multiplexed connection.
async fn rate(m: &SessionManager<JavaUser>, token: &Token, callers: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (m, token) = (m.clone(), token.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                while started.elapsed() < ROUND {
                    let session = m.load(&token).await.unwrap();
                    assert_eq!(session.map(|s| s.id), Some(1));
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

async fn manager(options: RedisOptions) -> (SessionManager<JavaUser>, Token) {
    let store = RedisStore::connect_with(options).await.unwrap();
    let m = SessionManager::new(store, SessionConfig::node_seed("bench")).unwrap();
    let token = m
        .login(&UserId::from(1u64), &JavaUser::new(1))
        .await
        .unwrap();
    (m, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn tls_cost() {
    let plain_server = RedisServer::start();
    let tls_server = RedisServer::start_tls(TlsServer::default(), &[]);
    let (plain, plain_token) = manager(RedisOptions::new(plain_server.url())).await;
    let (tls, tls_token) =
        manager(with_test_certificates(RedisOptions::new(tls_server.url()))).await;
    for callers in [1, 64] {
        let (mut plain_rates, mut tls_rates) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            plain_rates.push(rate(&plain, &plain_token, callers).await);
            tls_rates.push(rate(&tls, &tls_token, callers).await);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (p, t) = (median(&mut plain_rates), median(&mut tls_rates));
        eprintln!(
            "{callers} caller(s) on one connection: plain {p:.0} calls/s, TLS {t:.0} calls/s, \
             TLS/plain {:.2} (rounds plain {plain_rates:.0?}, TLS {tls_rates:.0?})",
            t / p
        );
        assert!(p > 0.0 && t > 0.0);
    }
}
