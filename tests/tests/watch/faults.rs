//! Outages end nothing by themselves, and hide no end for longer than the re-check
//! interval: a killed tracking connection, a frozen server, a server restarted empty.

use std::time::Duration;

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{Target, Watcher, unix_us};

/// The watcher's re-check interval in these tests.
const RECHECK: Duration = Duration::from_millis(500);
/// Room for a loaded machine on top of it.
const SLACK: Duration = Duration::from_millis(700);

async fn sessions(server: &RedisServer, n: u64) -> (SessionManager<JavaUser>, Vec<Token>) {
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let m = SessionManager::new(store, SessionConfig::java_seed()).unwrap();
    let mut tokens = Vec::new();
    for user in 0..n {
        tokens.push(
            m.login(&UserId::from(user), &JavaUser::new(user))
                .await
                .unwrap(),
        );
    }
    (m, tokens)
}

/// The ids of the clients that track keys (`CLIENT LIST` flag `t`).
fn tracking_clients(server: &RedisServer) -> Vec<String> {
    let list: String = server.query(redis::cmd("CLIENT").arg("LIST"));
    list.lines()
        .filter(|line| {
            line.split_whitespace().any(|f| {
                f.strip_prefix("flags=")
                    .is_some_and(|flags| flags.contains('t'))
            })
        })
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_hides_no_end_and_ends_no_live_session() {
    let server = RedisServer::start();
    let (m, tokens) = sessions(&server, 20).await;
    let recheck = RECHECK.as_millis().to_string();
    let mut watcher =
        Watcher::start(&Target::Single(server.url()), &["--recheck-ms", &recheck]).await;
    let mut ids = Vec::new();
    for token in &tokens {
        ids.push(watcher.watch(token).await);
    }
    assert_eq!(watcher.armed().await, 20);

    let killed = tracking_clients(&server);
    assert_eq!(killed.len(), 1, "one tracking connection");
    let _: i64 = server.query(redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&killed[0]));
    // Deleted right after the kill, while the watcher may not be tracking.
    let deleted_at = unix_us();
    for token in &tokens[..10] {
        let _: i64 = server.query(redis::cmd("DEL").arg(format!("login:token:{}", token.expose())));
    }
    for id in &ids[..10] {
        let (_, at) = watcher
            .ended(id, RECHECK + SLACK)
            .await
            .unwrap_or_else(|| panic!("deleted session {id} still watched"));
        assert!(at.saturating_sub(deleted_at) <= micros(RECHECK + SLACK));
    }
    // Tracking comes back on a new connection; the live sessions never end.
    assert!(
        keygate_tests::eventually(Duration::from_secs(5), async || {
            tracking_clients(&server)
                .iter()
                .any(|id| !killed.contains(id))
        })
        .await
    );
    watcher.drain(RECHECK * 3).await;
    for id in &ids[10..] {
        assert!(
            watcher.ended(id, Duration::ZERO).await.is_none(),
            "live {id} ended"
        );
    }
    for token in &tokens[10..] {
        assert!(m.load(token).await.unwrap().is_some());
    }

    // A frozen server (nothing answers, connections stay): nothing ends meanwhile, nor
    // after it thaws.
    server.pause();
    watcher.drain(RECHECK * 4).await;
    server.resume();
    watcher.drain(RECHECK * 3).await;
    for id in &ids[10..] {
        assert!(
            watcher.ended(id, Duration::ZERO).await.is_none(),
            "live {id} ended"
        );
    }
    assert!(watcher.armed().await == 10);

    // A session deleted now is announced again as usual.
    let _: i64 =
        server.query(redis::cmd("DEL").arg(format!("login:token:{}", tokens[10].expose())));
    let (reason, _) = watcher
        .ended(&ids[10], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reason, keygate::EndReason::Deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_empty_ends_every_watch_within_the_recheck_interval() {
    let mut server = RedisServer::start();
    let (_m, tokens) = sessions(&server, 20).await;
    let recheck = RECHECK.as_millis().to_string();
    let mut watcher =
        Watcher::start(&Target::Single(server.url()), &["--recheck-ms", &recheck]).await;
    let mut ids = Vec::new();
    for token in &tokens {
        ids.push(watcher.watch(token).await);
    }
    assert_eq!(watcher.armed().await, 20);

    server.stop();
    // Down for a while: checks fail, nothing ends.
    watcher.drain(RECHECK * 3).await;
    assert_eq!(watcher.ended_so_far(), 0, "an outage ended a watch");
    server.restart();
    let back_at = unix_us();
    for id in &ids {
        let (reason, at) = watcher
            .ended(id, RECHECK + SLACK)
            .await
            .unwrap_or_else(|| panic!("{id} not ended after the restart"));
        assert_eq!(reason, keygate::EndReason::Unknown);
        assert!(at.saturating_sub(back_at) <= micros(RECHECK + SLACK));
    }
}
