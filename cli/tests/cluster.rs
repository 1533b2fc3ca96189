//! `sessions count` and `flash-sale dead-letters replay` of the built `keygate-cli` on a
//! Redis Cluster (3 masters), through `REDIS_CLUSTER_URLS`. The cluster is started once for
//! this binary and shared by its tests, one at a time, flushed before each.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::flash_sale::FlashSale;
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::RedisCluster;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use support::sale::dead_lettered_orders;
use support::{Run, cli};

/// The shared cluster, to one test at a time, flushed, with a store connected to it.
async fn turn() -> (MutexGuard<'static, ()>, Arc<RedisCluster>, RedisStore) {
    static TURN: Mutex<()> = Mutex::const_new(());
    let guard = TURN.lock().await;
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = RedisCluster::shared();
        cluster.flush();
        cluster
    })
    .await
    .expect("the shared cluster starts");
    let store = RedisStore::connect_with(
        RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    (guard, cluster, store)
}

fn run(cluster: &RedisCluster, args: &[&str]) -> Run {
    cli(&[("REDIS_CLUSTER_URLS", cluster.urls().join(","))], args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_count_scans_every_master() {
    let (_turn, cluster, store) = turn().await;
    let java = SessionManager::<Value>::new(store.clone(), SessionConfig::java_seed()).unwrap();
    let users = 40u64;
    let mut masters_used = std::collections::HashSet::new();
    for user in 0..users {
        let token = java
            .login(&UserId::from(user), &json!({"id": user}))
            .await
            .unwrap();
        masters_used.insert(cluster.master_of(&format!("login:token:{}", token.expose())));
    }
    assert!(
        masters_used.len() > 1,
        "sessions spread over several masters"
    );

    let counted = run(&cluster, &["sessions", "count", "--json"]).json();
    assert_eq!(
        counted,
        json!([
            {"layout": "java", "prefix": "login:token:", "redisType": "hash", "keys": users},
            {"layout": "index", "prefix": "keygate:user-sessions:", "redisType": "zset", "keys": users},
        ])
    );
    // What each master holds adds up to the count.
    let per_master: Vec<Vec<String>> =
        cluster.query_masters(redis::cmd("KEYS").arg("login:token:*"));
    assert_eq!(per_master.iter().map(Vec::len).sum::<usize>() as u64, users);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_exactly_once_on_a_cluster() {
    let (_turn, cluster, store) = turn().await;
    // Three shards, so the voucher's streams live on some master of the cluster.
    let sale = FlashSale::new(store).with_shards(3);
    let voucher = 5u64;
    let orders = dead_lettered_orders(&sale, voucher, 3, &[1]).await;
    let shard = sale.shard_of(voucher).to_string();
    let listed = run(
        &cluster,
        &[
            "flash-sale",
            "dead-letters",
            "list",
            "5",
            "--shards",
            "3",
            "--json",
        ],
    )
    .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["orderId"], orders[0].to_string());
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let stream = format!("keygate:seckill:{{keygate:seckill:{shard}}}:orders");
    let xlen = || -> u64 { cluster.query_key(&stream, redis::cmd("XLEN").arg(&stream)) };
    let before = xlen();
    let args = [
        "flash-sale",
        "dead-letters",
        "replay",
        "5",
        &id,
        "--shards",
        "3",
        "--yes",
    ];
    let replayed = run(&cluster, &[&args[..], &["--json"]].concat()).json();
    assert_eq!(replayed["replayed"], id.as_str());
    assert_eq!(xlen(), before + 1);
    run(&cluster, &args).assert_error("no dead letter");
    assert_eq!(xlen(), before + 1, "enqueued exactly once");

    let status = run(
        &cluster,
        &["flash-sale", "status", "5", "--shards", "3", "--json"],
    )
    .json();
    assert_eq!(status["shard"], 2);
    assert_eq!(status["deadLetters"], 0);
    assert_eq!(status["stock"], 2);
}
