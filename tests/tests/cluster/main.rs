//! keygate on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel: the conformance
//! suites of sessions, codes, locks, rate limits and flash sales run on one shared cluster, each key
//! family's slot rule is checked, and failovers are followed without rebuilding the store.
//!
//! Every test that uses the shared cluster takes its turn ([`turn`]) and starts from an
//! empty cluster; the Sentinel test has its own servers and runs alongside.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../codes/suite.rs"]
mod codes_suite;
#[path = "../sessions/conformance.rs"]
mod conformance;
#[path = "../sessions/devices.rs"]
mod devices;
#[path = "../sessions/events.rs"]
mod events;
mod failover;
#[path = "../flash_sale/suite.rs"]
mod flash_sale_suite;
#[path = "../locks/suite.rs"]
mod locks_suite;
#[path = "../rate_limit/suite.rs"]
mod rate_limit_suite;
mod sentinel;
mod slots;
#[path = "../sessions/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the sessions binary, which uses all of it"
)]
mod support;

use keygate_tests::RedisCluster;
use keygate_tests::fixtures::Backend;
use tokio::sync::{Mutex, MutexGuard};

/// The shared cluster, to one test at a time, flushed, with a fresh store connected to it.
pub async fn turn() -> (MutexGuard<'static, ()>, Backend) {
    static TURN: Mutex<()> = Mutex::const_new(());
    let guard = TURN.lock().await;
    // Starting the cluster blocks for a few seconds, once.
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = RedisCluster::shared();
        cluster.flush();
        cluster
    })
    .await
    .expect("the shared cluster starts");
    (guard, Backend::cluster(cluster).await)
}

/// Generates one test per suite function, each run on the shared cluster in its turn.
macro_rules! on_cluster {
    ($module:ident => $suite:path: $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $suite as suite;
                    let (_turn, backend) = crate::turn().await;
                    suite::$name(&backend).await;
                }
            )*
        }
    };
}

on_cluster!(sessions => crate::conformance:
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

on_cluster!(session_devices => crate::devices:
    session_ids_are_stable_and_unlinkable_to_tokens,
    sessions_show_device_and_last_use,
    end_session_touches_only_that_session_of_that_user,
    rotate_is_atomic_and_keeps_the_session,
    login_chosen_expiry_is_kept_within_limits,
    login_chosen_expiry_ends_sessions,
    rotation_through_the_gate_sets_the_new_cookie,
    remember_me_cookie_lasts_the_chosen_lifetime,
    peek_sessions_lists_without_pruning,
);

on_cluster!(session_events => crate::events:
    each_change_records_one_event,
    expiry_is_recorded_once_when_the_index_prunes_it,
    the_caps_hold,
    a_crash_between_the_two_steps_loses_at_most_the_event_in_progress,
    followers_see_new_events,
    four_instances_record_exactly_one_event_per_change,
);

on_cluster!(rate_limit => crate::rate_limit_suite:
    four_instances_hammering_one_subject_get_exactly_the_burst,
    the_refusal_says_exactly_when_to_retry,
    idle_subjects_leave_no_key,
    subjects_with_odd_characters_are_distinct_and_safe,
    limiters_with_different_names_do_not_share_budgets,
    four_instances_hammering_one_subject_get_exactly_the_window_limit,
    the_window_refusal_says_when_the_oldest_leaves,
    the_window_rolls_exactly,
    idle_windows_leave_no_key,
);

on_cluster!(codes => crate::codes_suite:
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

on_cluster!(locks => crate::locks_suite:
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

on_cluster!(flash_sale => crate::flash_sale_suite:
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
