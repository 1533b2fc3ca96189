//! `ended()`: a watched session's end is seen, with its reason, by a watcher in another
//! process (`session_watcher`), on one server (with and without the near cache), a Redis
//! Cluster and behind Sentinel; outages end nothing by themselves and hide no end for longer
//! than the re-check interval; watching costs no command while nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cost;
mod faults;
mod measure;
mod memory;
mod reasons;
mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::{RedisOptions, RedisStore};
use keygate_tests::{RedisCluster, RedisSentinel, RedisServer};
use reasons::Place;
use support::Target;

/// A place on a fresh private server.
pub async fn single() -> (Place, Arc<RedisServer>) {
    let server = Arc::new(RedisServer::start());
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let raw = Arc::clone(&server);
    let place = Place {
        store,
        target: Target::Single(server.url()),
        raw_del: Box::new(move |key| {
            let _: i64 = raw.query(redis::cmd("DEL").arg(key));
        }),
    };
    (place, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_is_seen_in_another_process_on_one_server() {
    let (place, _server) = single().await;
    reasons::every_way_a_session_ends(&place, &[], 100).await;
    reasons::an_absolute_lifetime_ends_an_active_session(&place, &[], 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_is_seen_by_a_watcher_sharing_the_near_cache() {
    let (place, _server) = single().await;
    reasons::every_way_a_session_ends(&place, &["--near-cache"], 100).await;
    reasons::an_absolute_lifetime_ends_an_active_session(&place, &["--near-cache"], 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_is_seen_in_another_process_on_a_cluster() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap(),
    );
    let store = RedisStore::connect_with(
        RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let raw = Arc::clone(&cluster);
    let place = Place {
        store,
        target: Target::Cluster(cluster.urls()),
        raw_del: Box::new(move |key| {
            let _: i64 = raw.query_key(key, redis::cmd("DEL").arg(key));
        }),
    };
    reasons::every_way_a_session_ends(&place, &[], 100).await;
    reasons::every_way_a_session_ends(&place, &["--near-cache"], 300).await;
    reasons::an_absolute_lifetime_ends_an_active_session(&place, &[], 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_is_seen_in_another_process_behind_sentinel() {
    let setup = Arc::new(
        tokio::task::spawn_blocking(RedisSentinel::start)
            .await
            .unwrap(),
    );
    let store = RedisStore::connect_with(
        RedisOptions::sentinel(RedisSentinel::MASTER_NAME, setup.sentinel_urls())
            .with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let raw = Arc::clone(&setup);
    let place = Place {
        store,
        target: Target::Sentinel(RedisSentinel::MASTER_NAME.to_owned(), setup.sentinel_urls()),
        raw_del: Box::new(move |key| {
            let master = raw.master_port().expect("a master");
            let _: i64 = raw.query(master, redis::cmd("DEL").arg(key));
        }),
    };
    reasons::every_way_a_session_ends(&place, &[], 100).await;
    reasons::an_absolute_lifetime_ends_an_active_session(&place, &[], 200).await;
}
