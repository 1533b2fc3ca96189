//! keygate over TLS, against real `redis-server` processes serving TLS only, with
//! certificates of a private CA made at run time: every suite (sessions, codes, locks,
//! flash sales) on one server with mutual TLS and on a 3+3 TLS cluster, the failure cases
//! (wrong CA, missing client certificate, expired certificate, plain server), an ACL user
//! with only the permissions keygate needs, and Sentinel over TLS.
//!
//! The TLS cluster is started once per run of this binary; suite tests on it take turns.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod acl;
#[path = "../codes/suite.rs"]
mod codes_suite;
#[path = "../sessions/conformance.rs"]
mod conformance;
mod failures;
#[path = "../flash_sale/suite.rs"]
mod flash_sale_suite;
#[path = "../locks/suite.rs"]
mod locks_suite;
mod ratio;
mod sentinel;
#[path = "../sessions/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the sessions binary, which uses all of it"
)]
mod support;

use keygate_tests::RedisCluster;
use keygate_tests::fixtures::Backend;
use tokio::sync::{Mutex, MutexGuard};

/// The shared TLS cluster, to one test at a time, flushed, with a fresh store connected to
/// it over TLS.
pub async fn cluster_turn() -> (MutexGuard<'static, ()>, Backend) {
    static TURN: Mutex<()> = Mutex::const_new(());
    let guard = TURN.lock().await;
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = RedisCluster::shared_tls();
        cluster.flush();
        cluster
    })
    .await
    .expect("the shared TLS cluster starts");
    (guard, Backend::cluster(cluster).await)
}

/// Generates, per suite function, one test on a private mutual-TLS server and one on the
/// shared TLS cluster.
macro_rules! over_tls {
    ($module:ident => $suite:path: $($name:ident),* $(,)?) => {
        mod $module {
            mod one_server {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        use $suite as suite;
                        let backend = keygate_tests::fixtures::Backend::redis_tls().await;
                        suite::$name(&backend).await;
                    }
                )*
            }
            mod cluster {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        use $suite as suite;
                        let (_turn, backend) = crate::cluster_turn().await;
                        suite::$name(&backend).await;
                    }
                )*
            }
        }
    };
}

over_tls!(sessions => crate::conformance:
    create_then_load,
    sliding_refresh_and_idle_expiry,
    absolute_lifetime_ends_an_active_session,
    replace_keeps_data_fresh_and_never_resurrects,
    destroy_races_never_resurrect,
    hash_updates_merge_fields,
    json_updates_detect_conflicts,
    destroy_ends_one_session,
    list_and_destroy_all,
    cap_evicts_the_oldest,
    hashed_keys_mode,
    malformed_tokens_are_rejected_before_the_store,
    corrupt_data_is_no_session,
    concurrent_creates_and_loads,
);

over_tls!(codes => crate::codes_suite:
    happy_path_logs_in_and_creates_the_user,
    wrong_code_counts_and_the_right_one_still_works,
    expired_code_fails,
    a_code_works_once,
    five_wrong_tries_burn_the_code,
    resend_cooldown_and_daily_cap,
    concurrent_verifications_of_one_code_succeed_once,
    invalid_phones_are_rejected_before_the_store,
    a_failed_send_leaves_no_code,
    hashed_codes_hide_the_code,
);

over_tls!(locks => crate::locks_suite:
    mutual_exclusion_and_increasing_fences,
    a_paused_holder_loses_the_lock_and_its_release_is_refused,
    try_acquire_on_a_held_lock_fails_fast,
    waiters_are_woken_by_the_release_not_the_poll,
    names_with_odd_characters_are_distinct_and_safe,
    a_dropped_guard_releases_in_the_background,
    with_lock_runs_the_work_and_releases,
    without_renewal_the_loss_is_reported_before_the_lease_ends,
    fence_keys_expire_and_fences_keep_increasing,
    status_shows_whether_held_the_lease_left_and_the_fence,
);

over_tls!(flash_sale => crate::flash_sale_suite:
    never_oversells_never_sells_twice,
    the_consumer_sees_every_order_once_acked,
    a_crashed_consumers_orders_are_reclaimed,
    failing_orders_are_retried_then_dead_lettered,
    order_ids_are_unique_and_increasing,
    the_sale_window_is_respected,
    unknown_vouchers_are_reported_not_errors,
    shutdown_finishes_the_order_in_hand,
    shutdown_during_a_blocking_read_is_prompt,
    a_stock_the_script_cannot_hold_is_refused,
    status_reports_stock_buyers_streams_and_groups,
    dead_letters_are_replayed_exactly_once_or_dropped,
);
